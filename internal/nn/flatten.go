package nn

import "slices"

// Flatten turns each sample of any shape into a flat vector of its
// elements in row-major order (ONNX Flatten with axis 1). It copies
// nothing: input and output share their data.
type Flatten struct{}

// NewFlatten makes a flatten layer.
func NewFlatten() *Flatten { return &Flatten{} }

func (*Flatten) Kind() string     { return "flatten" }
func (*Flatten) Params() []*Param { return nil }

func (*Flatten) OutShape(in []int) ([]int, error) { return []int{Volume(in)}, nil }

func (*Flatten) Forward(ctx *Context, x *Tensor) (*Tensor, any) {
	y := x.Reshape(x.Batch(), x.SampleLen())
	if !ctx.Training {
		return y, nil
	}
	return y, slices.Clone(x.Shape)
}

func (*Flatten) Backward(cache any, dy *Tensor, needInput bool) *Tensor {
	if !needInput {
		return nil
	}
	return dy.Reshape(cache.([]int)...)
}
