package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/hpcml/hpcml/internal/nn"
)

// value is a tensor flowing through an imported graph: float32 for the
// network itself, int64 for the shape arithmetic exporters put in front of
// Reshape. Kernels treat their input values as read-only — constants and
// the caller's tensors are shared, never copied — so a kernel that
// changes data makes a new value.
type value struct {
	shape []int
	f     []float32 // when !isInt
	i     []int64   // when isInt
	isInt bool
}

// maxElements bounds any tensor a kernel sizes from the model's own
// numbers (pads, broadcast shapes, gathered indices), at 2^28 values (1 GiB
// of float32): a corrupt or hostile file must get an error, not exhaust
// memory or overflow a length.
const maxElements = 1 << 28

// checkedVolume is the element count of shape, or an error past maxElements.
func checkedVolume(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		if d > 0 && n > maxElements/d {
			return 0, fmt.Errorf("shape %v holds more than %d values", shape, maxElements)
		}
		n *= d
	}
	return n, nil
}

func floatValue(t *nn.Tensor) *value { return &value{shape: t.Shape, f: t.Data} }

func newFloat(shape ...int) *value {
	return &value{shape: slices.Clone(shape), f: make([]float32, nn.Volume(shape))}
}

func intValue(shape []int, v []int64) *value { return &value{shape: shape, i: v, isInt: true} }

// tensor views a float value as an nn.Tensor, sharing its data.
func (v *value) tensor() *nn.Tensor { return &nn.Tensor{Shape: v.shape, Data: v.f} }

func (v *value) len() int {
	if v.isInt {
		return len(v.i)
	}
	return len(v.f)
}

func (v *value) typeName() string {
	if v.isInt {
		return "INT64"
	}
	return "FLOAT"
}

// reshaped returns a value sharing v's data with another shape.
func (v *value) reshaped(shape []int) *value {
	return &value{shape: shape, f: v.f, i: v.i, isInt: v.isInt}
}

// tensorValue converts an initializer or Constant tensor. FLOAT becomes a
// float value; INT64, INT32 and BOOL become int64 values (they only ever
// feed shape arithmetic and flags here). Other types are refused by name.
func tensorValue(t *tensorProto) (*value, error) {
	if t.External {
		return nil, fmt.Errorf("tensor %q keeps its data in an external file, which is not supported: save the model with its weights inside", t.Name)
	}
	shape := make([]int, len(t.Dims))
	n := 1
	for i, d := range t.Dims {
		if d < 0 || d > math.MaxInt32 {
			return nil, fmt.Errorf("tensor %q has dimension %d", t.Name, d)
		}
		shape[i] = int(d)
		if n > 0 && int(d) > math.MaxInt/n {
			return nil, fmt.Errorf("tensor %q: shape %v is too large", t.Name, t.Dims)
		}
		n *= int(d)
	}
	mismatch := func(got int) error {
		return fmt.Errorf("tensor %q holds %d values for shape %v", t.Name, got, t.Dims)
	}
	switch t.DataType {
	case dtFloat:
		var f []float32
		switch {
		case t.HasRaw:
			if len(t.RawData) != 4*n {
				return nil, mismatch(len(t.RawData) / 4)
			}
			f = make([]float32, n)
			for i := range f {
				f[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.RawData[4*i:]))
			}
		default:
			if len(t.FloatData) != n {
				return nil, mismatch(len(t.FloatData))
			}
			f = t.FloatData
		}
		return &value{shape: shape, f: f}, nil
	case dtInt64, dtInt32, dtBool:
		size := 8
		switch t.DataType {
		case dtInt32:
			size = 4
		case dtBool:
			size = 1
		}
		iv := make([]int64, 0, n)
		switch {
		case t.HasRaw:
			if len(t.RawData) != size*n {
				return nil, mismatch(len(t.RawData) / size)
			}
			for i := 0; i < n; i++ {
				switch size {
				case 8:
					iv = append(iv, int64(binary.LittleEndian.Uint64(t.RawData[8*i:])))
				case 4:
					iv = append(iv, int64(int32(binary.LittleEndian.Uint32(t.RawData[4*i:]))))
				default:
					iv = append(iv, int64(t.RawData[i]))
				}
			}
		case t.DataType == dtInt64:
			if len(t.Int64Data) != n {
				return nil, mismatch(len(t.Int64Data))
			}
			iv = append(iv, t.Int64Data...)
		default: // INT32 and BOOL both travel in int32_data
			if len(t.Int32Data) != n {
				return nil, mismatch(len(t.Int32Data))
			}
			for _, x := range t.Int32Data {
				iv = append(iv, int64(x))
			}
		}
		return intValue(shape, iv), nil
	}
	return nil, fmt.Errorf("tensor %q has element type %s; only FLOAT, INT64, INT32 and BOOL tensors are supported", t.Name, dataTypeName(t.DataType))
}
