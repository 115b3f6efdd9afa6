package nn

import (
	"fmt"
	"slices"
)

// Tensor is a dense row-major float32 array.
type Tensor struct {
	Shape []int
	Data  []float32
}

// NewTensor returns a zero tensor of the given shape.
func NewTensor(shape ...int) *Tensor {
	return &Tensor{Shape: slices.Clone(shape), Data: make([]float32, Volume(shape))}
}

// FromData wraps data in a tensor of the given shape; the lengths must agree.
func FromData(data []float32, shape ...int) (*Tensor, error) {
	if n := Volume(shape); n != len(data) {
		return nil, fmt.Errorf("nn: %d values do not fill shape %v (%d)", len(data), shape, n)
	}
	return &Tensor{Shape: slices.Clone(shape), Data: data}, nil
}

// Volume is the number of elements a shape holds.
func Volume(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Len is the number of elements.
func (t *Tensor) Len() int { return len(t.Data) }

// Batch is the first dimension: the number of samples.
func (t *Tensor) Batch() int {
	if len(t.Shape) == 0 {
		return 1
	}
	return t.Shape[0]
}

// SampleLen is the number of elements per sample.
func (t *Tensor) SampleLen() int { return Volume(t.Shape[1:]) }

// Clone returns a deep copy.
func (t *Tensor) Clone() *Tensor {
	return &Tensor{Shape: slices.Clone(t.Shape), Data: slices.Clone(t.Data)}
}

// Reshape returns a tensor sharing t's data with another shape of the same volume.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	if Volume(shape) != len(t.Data) {
		panic(fmt.Sprintf("nn: reshape %v to %v changes the volume", t.Shape, shape))
	}
	return &Tensor{Shape: slices.Clone(shape), Data: t.Data}
}

// Zero sets every element to 0.
func (t *Tensor) Zero() { clear(t.Data) }

// Rows returns samples [lo, hi) as a tensor sharing t's data.
func (t *Tensor) Rows(lo, hi int) *Tensor {
	n := t.SampleLen()
	shape := slices.Clone(t.Shape)
	shape[0] = hi - lo
	return &Tensor{Shape: shape, Data: t.Data[lo*n : hi*n]}
}

// sameShape reports whether two shapes are equal.
func sameShape(a, b []int) bool { return slices.Equal(a, b) }
