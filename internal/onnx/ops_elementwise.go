package onnx

import (
	"errors"
	"fmt"
	"math"

	"github.com/hpcml/hpcml/internal/nn"
)

// Element-wise operators: the four arithmetic ones with numpy
// broadcasting, the activations, softmax, and the pass-throughs.

func compileBinary(c *nodeCtx, op string) (kernel, error) {
	if err := c.arity(2, 2); err != nil {
		return nil, err
	}
	var ff func(x, y float32) float32
	var fi func(x, y int64) int64
	switch op {
	case "Add":
		ff, fi = func(x, y float32) float32 { return x + y }, func(x, y int64) int64 { return x + y }
	case "Sub":
		ff, fi = func(x, y float32) float32 { return x - y }, func(x, y int64) int64 { return x - y }
	case "Mul":
		ff, fi = func(x, y float32) float32 { return x * y }, func(x, y int64) int64 { return x * y }
	case "Div":
		ff, fi = func(x, y float32) float32 { return x / y }, func(x, y int64) int64 { return x / y }
	}
	return single(func(in []*value) (*value, error) {
		a, b := in[0], in[1]
		if a.isInt != b.isInt {
			return nil, fmt.Errorf("inputs are %s and %s; both must be the same type", a.typeName(), b.typeName())
		}
		shape, err := broadcastShape(a.shape, b.shape)
		if err != nil {
			return nil, err
		}
		if _, err := checkedVolume(shape); err != nil {
			return nil, err
		}
		if a.isInt {
			if op == "Div" {
				for _, y := range b.i {
					if y == 0 {
						return nil, errors.New("integer division by zero")
					}
				}
			}
			return intValue(shape, broadcast(a.i, b.i, a.shape, b.shape, shape, fi)), nil
		}
		return &value{shape: shape, f: broadcast(a.f, b.f, a.shape, b.shape, shape, ff)}, nil
	}), nil
}

// broadcastShape is numpy's broadcast of two shapes: aligned at the
// right, each dimension equal or 1.
func broadcastShape(a, b []int) ([]int, error) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := 0; i < n; i++ {
		da, db := 1, 1
		if j := i - (n - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (n - len(b)); j >= 0 {
			db = b[j]
		}
		switch {
		case da == db || db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, fmt.Errorf("shapes %v and %v do not broadcast", a, b)
		}
	}
	return out, nil
}

// broadcast applies f to a and b broadcast to shape out. Equal shapes and
// a scalar operand — nearly every call — take a flat loop; the rest walk
// the outer dimensions with an odometer and the last one in a tight loop.
func broadcast[T float32 | int64](a, b []T, as, bs, out []int, f func(x, y T) T) []T {
	n := nn.Volume(out)
	y := make([]T, n)
	switch {
	case len(a) == n && len(b) == n:
		for i := range y {
			y[i] = f(a[i], b[i])
		}
		return y
	case len(b) == 1 && len(a) == n:
		for i := range y {
			y[i] = f(a[i], b[0])
		}
		return y
	case len(a) == 1 && len(b) == n:
		for i := range y {
			y[i] = f(a[0], b[i])
		}
		return y
	}
	if n == 0 {
		return y
	}
	rank := len(out)
	sa, sb := bstrides(as, out), bstrides(bs, out)
	last := out[rank-1]
	la, lb := sa[rank-1], sb[rank-1]
	idx := make([]int, rank)
	for o := 0; o < n; o += last {
		ia, ib := 0, 0
		for d := 0; d < rank-1; d++ {
			ia += idx[d] * sa[d]
			ib += idx[d] * sb[d]
		}
		for k := 0; k < last; k++ {
			y[o+k] = f(a[ia+k*la], b[ib+k*lb])
		}
		for d := rank - 2; d >= 0; d-- {
			idx[d]++
			if idx[d] < out[d] {
				break
			}
			idx[d] = 0
		}
	}
	return y
}

// bstrides are the element strides of a tensor of shape s read as shape
// out: 0 along broadcast dimensions.
func bstrides(s, out []int) []int {
	st := make([]int, len(out))
	stride := 1
	for i := len(out) - 1; i >= 0; i-- {
		j := i - (len(out) - len(s))
		if j < 0 {
			continue
		}
		if s[j] != 1 {
			st[i] = stride
		}
		stride *= s[j]
	}
	return st
}

func compileUnary(c *nodeCtx, op string) (kernel, error) {
	if err := c.arity(1, 1); err != nil {
		return nil, err
	}
	var layer nn.Layer
	var f func(float64) float64
	switch op {
	case "Relu", "Tanh", "Sigmoid":
		layer = nn.NewActivation(map[string]string{"Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid"}[op])
	case "Erf":
		f = math.Erf
	case "Gelu":
		approx, err := c.attrString("approximate", "none")
		if err != nil {
			return nil, err
		}
		switch approx {
		case "none":
			layer = nn.NewActivation("gelu")
		case "tanh":
			f = func(x float64) float64 {
				return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
			}
		default:
			return nil, fmt.Errorf("attribute approximate=%q is not supported (none or tanh)", approx)
		}
	}
	if r, ok := layer.(nn.Recycler); ok {
		c.recycler = r
	}
	return single(func(in []*value) (*value, error) {
		x := in[0]
		if err := wantFloat(x, "the input"); err != nil {
			return nil, err
		}
		if layer != nil {
			y, _ := layer.Forward(nn.Infer(), x.tensor())
			return floatValue(y), nil
		}
		y := newFloat(x.shape...)
		for i, v := range x.f {
			y.f[i] = float32(f(float64(v)))
		}
		return y, nil
	}), nil
}

// compileSoftmax covers both definitions: from opset 13 along one axis
// (default -1), before it over the input flattened to 2-D at axis
// (default 1).
func compileSoftmax(c *nodeCtx, logSoftmax bool) (kernel, error) {
	if err := c.arity(1, 1); err != nil {
		return nil, err
	}
	coerced := c.opset < 13
	def := int64(-1)
	if coerced {
		def = 1
	}
	axis, err := c.attrInt("axis", def)
	if err != nil {
		return nil, err
	}
	return single(func(in []*value) (*value, error) {
		x := in[0]
		if err := wantFloat(x, "the input"); err != nil {
			return nil, err
		}
		rank := len(x.shape)
		if rank == 0 {
			return nil, errors.New("the input is a scalar")
		}
		ax, err := normAxis(axis, rank)
		if err != nil {
			return nil, err
		}
		size, inner := x.shape[ax], nn.Volume(x.shape[ax+1:])
		if coerced {
			size, inner = nn.Volume(x.shape[ax:]), 1
		}
		y := newFloat(x.shape...)
		if size == 0 {
			return y, nil
		}
		outer := len(x.f) / (size * inner)
		for o := 0; o < outer; o++ {
			for k := 0; k < inner; k++ {
				base := o*size*inner + k
				mx := x.f[base]
				for j := 1; j < size; j++ {
					mx = max(mx, x.f[base+j*inner])
				}
				var sum float64
				for j := 0; j < size; j++ {
					sum += math.Exp(float64(x.f[base+j*inner] - mx))
				}
				for j := 0; j < size; j++ {
					d := float64(x.f[base+j*inner] - mx)
					if logSoftmax {
						y.f[base+j*inner] = float32(d - math.Log(sum))
					} else {
						y.f[base+j*inner] = float32(math.Exp(d) / sum)
					}
				}
			}
		}
		return y, nil
	}), nil
}

func compileIdentity(c *nodeCtx) (kernel, error) {
	if err := c.arity(1, 1); err != nil {
		return nil, err
	}
	return single(func(in []*value) (*value, error) { return in[0], nil }), nil
}

// compileDropout is the identity of inference. A graph exported in
// training mode (training_mode true, or its mask output wanted) is
// refused: its outputs would depend on random masks.
func compileDropout(c *nodeCtx) (kernel, error) {
	if err := c.arity(1, 3); err != nil {
		return nil, err
	}
	if c.has(2) {
		tm, err := c.constInput(2, "training_mode")
		if err != nil {
			return nil, err
		}
		if tm.isInt && len(tm.i) == 1 && tm.i[0] != 0 {
			return nil, errors.New("training_mode is true; export the model for inference")
		}
	}
	return compileIdentity(&nodeCtx{node: &nodeProto{Inputs: c.node.Inputs[:1]}})
}
