package onnx

import (
	"errors"
	"fmt"
	"slices"

	"github.com/hpcml/hpcml/internal/nn"
)

// Operators that move or describe data without computing on it: Flatten,
// Reshape, Constant, and the int64 shape arithmetic (Shape, Gather,
// Unsqueeze, Squeeze, Concat) that PyTorch emits for x.view(x.size(0), -1).
// All of them accept float and int64 values alike.

func compileFlatten(c *nodeCtx) (kernel, error) {
	if err := c.arity(1, 1); err != nil {
		return nil, err
	}
	axis, err := c.attrInt("axis", 1)
	if err != nil {
		return nil, err
	}
	return single(func(in []*value) (*value, error) {
		x := in[0]
		r := int64(len(x.shape))
		a := axis
		if a < 0 {
			a += r
		}
		if a < 0 || a > r {
			return nil, fmt.Errorf("axis %d is out of range for rank %d", axis, r)
		}
		return x.reshaped([]int{nn.Volume(x.shape[:a]), nn.Volume(x.shape[a:])}), nil
	}), nil
}

func compileReshape(c *nodeCtx) (kernel, error) {
	if err := c.arity(2, 2); err != nil {
		return nil, err
	}
	allowZero, err := c.attrInt("allowzero", 0)
	if err != nil {
		return nil, err
	}
	if s := c.consts[1]; s != nil {
		if !s.isInt {
			return nil, errors.New("the shape (input 1) is FLOAT, want INT64")
		}
		if countOf(s.i, -1) > 1 {
			return nil, fmt.Errorf("shape %v has more than one -1", s.i)
		}
	}
	return single(func(in []*value) (*value, error) {
		x, s := in[0], in[1]
		if !s.isInt {
			return nil, errors.New("the shape (input 1) is FLOAT, want INT64")
		}
		shape, err := reshapeTarget(x.shape, s.i, allowZero != 0)
		if err != nil {
			return nil, err
		}
		return x.reshaped(shape), nil
	}), nil
}

// reshapeTarget resolves a Reshape shape against the input's: 0 copies the
// input's dimension (unless allowzero), one -1 takes what is left.
func reshapeTarget(in []int, spec []int64, allowZero bool) ([]int, error) {
	impossible := func() error {
		return fmt.Errorf("cannot reshape %v (%d values) to %v", in, nn.Volume(in), spec)
	}
	total := nn.Volume(in)
	out := make([]int, len(spec))
	infer := -1
	known := 1
	for i, d := range spec {
		switch {
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("shape %v has more than one -1", spec)
			}
			infer = i
			continue
		case d == 0 && !allowZero:
			if i >= len(in) {
				return nil, fmt.Errorf("shape %v copies dimension %d, but the input %v has rank %d", spec, i, in, len(in))
			}
			out[i] = in[i]
		case d < 0:
			return nil, fmt.Errorf("shape %v has a negative dimension", spec)
		default:
			// Checked before the product so that it cannot overflow.
			if d > int64(total) && total > 0 {
				return nil, impossible()
			}
			out[i] = int(d)
		}
		known *= out[i]
		if total > 0 && known > total {
			return nil, impossible()
		}
	}
	if infer >= 0 {
		if known == 0 || total%known != 0 {
			return nil, impossible()
		}
		out[infer] = total / known
	} else if known != total {
		return nil, impossible()
	}
	return out, nil
}

func compileConstant(c *nodeCtx) (kernel, error) {
	if err := c.arity(0, 0); err != nil {
		return nil, err
	}
	if len(c.node.Attributes) != 1 {
		return nil, fmt.Errorf("has %d attributes; a Constant takes exactly one", len(c.node.Attributes))
	}
	a := c.node.Attributes[0]
	var v *value
	switch a.Name {
	case "value":
		if a.T == nil {
			return nil, errors.New("attribute value holds no tensor")
		}
		var err error
		if v, err = tensorValue(a.T); err != nil {
			return nil, err
		}
	case "value_float":
		v = &value{shape: []int{}, f: []float32{a.F}}
	case "value_floats":
		v = &value{shape: []int{len(a.Floats)}, f: slices.Clone(a.Floats)}
	case "value_int":
		v = intValue([]int{}, []int64{a.I})
	case "value_ints":
		v = intValue([]int{len(a.Ints)}, slices.Clone(a.Ints))
	default:
		return nil, fmt.Errorf("attribute %s is not supported (value, value_float(s), value_int(s) are)", a.Name)
	}
	return single(func([]*value) (*value, error) { return v, nil }), nil
}

// compileShape gives a value's shape as int64, with opset 15's start/end
// slice.
func compileShape(c *nodeCtx) (kernel, error) {
	if err := c.arity(1, 1); err != nil {
		return nil, err
	}
	start, err := c.attrInt("start", 0)
	if err != nil {
		return nil, err
	}
	end, hasEnd := int64(0), false
	if a, err := c.attr("end", attrInt); err != nil {
		return nil, err
	} else if a != nil {
		end, hasEnd = a.I, true
	}
	return single(func(in []*value) (*value, error) {
		r := int64(len(in[0].shape))
		clamp := func(i int64) int64 {
			if i < 0 {
				i += r
			}
			return min(max(i, 0), r)
		}
		lo, hi := clamp(start), r
		if hasEnd {
			hi = clamp(end)
		}
		dims := []int64{}
		for _, d := range in[0].shape[lo:max(lo, hi)] {
			dims = append(dims, int64(d))
		}
		return intValue([]int{len(dims)}, dims), nil
	}), nil
}

func compileGather(c *nodeCtx) (kernel, error) {
	if err := c.arity(2, 2); err != nil {
		return nil, err
	}
	axis, err := c.attrInt("axis", 0)
	if err != nil {
		return nil, err
	}
	return single(func(in []*value) (*value, error) {
		data, idx := in[0], in[1]
		if !idx.isInt {
			return nil, errors.New("the indices (input 1) are FLOAT, want INT64")
		}
		ax, err := normAxis(axis, len(data.shape))
		if err != nil {
			return nil, err
		}
		dim := data.shape[ax]
		outer, inner := nn.Volume(data.shape[:ax]), nn.Volume(data.shape[ax+1:])
		shape := slices.Concat(data.shape[:ax], idx.shape, data.shape[ax+1:])
		out := &value{shape: shape, isInt: data.isInt}
		n, err := checkedVolume(shape)
		if err != nil {
			return nil, err
		}
		if data.isInt {
			out.i = make([]int64, 0, n)
		} else {
			out.f = make([]float32, 0, n)
		}
		for o := 0; o < outer; o++ {
			for _, k := range idx.i {
				if k < 0 {
					k += int64(dim)
				}
				if k < 0 || k >= int64(dim) {
					return nil, fmt.Errorf("index %d is out of range for dimension %d of size %d", k, ax, dim)
				}
				base := (o*dim + int(k)) * inner
				if data.isInt {
					out.i = append(out.i, data.i[base:base+inner]...)
				} else {
					out.f = append(out.f, data.f[base:base+inner]...)
				}
			}
		}
		return out, nil
	}), nil
}

// compileSqueeze handles Unsqueeze and Squeeze, whose axes moved from an
// attribute to an input in opset 13.
func compileSqueeze(c *nodeCtx, unsqueeze bool) (kernel, error) {
	fromInput := c.opset >= 13
	if fromInput {
		minIn := 1
		if unsqueeze {
			minIn = 2
		}
		if err := c.arity(minIn, 2); err != nil {
			return nil, err
		}
	} else if err := c.arity(1, 1); err != nil {
		return nil, err
	}
	attrAxes, hasAttr, err := c.attrInts("axes")
	if err != nil {
		return nil, err
	}
	if unsqueeze && !fromInput && !hasAttr {
		return nil, errors.New("attribute axes is required")
	}
	return single(func(in []*value) (*value, error) {
		x := in[0]
		axes, given := attrAxes, hasAttr
		if fromInput {
			axes, given = nil, len(in) > 1 && in[1] != nil
			if given {
				if !in[1].isInt {
					return nil, errors.New("the axes (input 1) are FLOAT, want INT64")
				}
				axes = in[1].i
			}
		}
		if unsqueeze {
			return unsqueezeValue(x, axes)
		}
		return squeezeValue(x, axes, given)
	}), nil
}

func unsqueezeValue(x *value, axes []int64) (*value, error) {
	rank := len(x.shape) + len(axes)
	ones := make([]bool, rank)
	for _, a := range axes {
		ax, err := normAxis(a, rank)
		if err != nil {
			return nil, err
		}
		if ones[ax] {
			return nil, fmt.Errorf("axis %d is given twice", a)
		}
		ones[ax] = true
	}
	shape := make([]int, 0, rank)
	j := 0
	for _, one := range ones {
		if one {
			shape = append(shape, 1)
		} else {
			shape = append(shape, x.shape[j])
			j++
		}
	}
	return x.reshaped(shape), nil
}

func squeezeValue(x *value, axes []int64, given bool) (*value, error) {
	drop := make([]bool, len(x.shape))
	for i, d := range x.shape {
		drop[i] = !given && d == 1
	}
	for _, a := range axes {
		ax, err := normAxis(a, len(x.shape))
		if err != nil {
			return nil, err
		}
		if x.shape[ax] != 1 {
			return nil, fmt.Errorf("cannot squeeze axis %d of shape %v: it is not 1", a, x.shape)
		}
		drop[ax] = true
	}
	shape := []int{}
	for i, d := range x.shape {
		if !drop[i] {
			shape = append(shape, d)
		}
	}
	return x.reshaped(shape), nil
}

func compileConcat(c *nodeCtx) (kernel, error) {
	if err := c.arity(1, len(c.node.Inputs)); err != nil {
		return nil, err
	}
	a, err := c.attr("axis", attrInt)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return nil, errors.New("attribute axis is required")
	}
	axis := a.I
	return single(func(in []*value) (*value, error) {
		first := in[0]
		ax, err := normAxis(axis, len(first.shape))
		if err != nil {
			return nil, err
		}
		shape := slices.Clone(first.shape)
		shape[ax] = 0
		for i, v := range in {
			if v == nil {
				return nil, fmt.Errorf("input %d is empty", i)
			}
			if v.isInt != first.isInt {
				return nil, fmt.Errorf("input %d is %s, input 0 %s", i, v.typeName(), first.typeName())
			}
			if len(v.shape) != len(shape) {
				return nil, fmt.Errorf("input %d has shape %v, input 0 %v: ranks differ", i, v.shape, first.shape)
			}
			for d := range shape {
				if d != ax && v.shape[d] != first.shape[d] {
					return nil, fmt.Errorf("input %d has shape %v, input 0 %v: they differ outside axis %d", i, v.shape, first.shape, ax)
				}
			}
			shape[ax] += v.shape[ax]
		}
		out := &value{shape: shape, isInt: first.isInt}
		n, err := checkedVolume(shape)
		if err != nil {
			return nil, err
		}
		if first.isInt {
			out.i = make([]int64, 0, n)
		} else {
			out.f = make([]float32, 0, n)
		}
		outer, inner := nn.Volume(shape[:ax]), nn.Volume(shape[ax+1:])
		for o := 0; o < outer; o++ {
			for _, v := range in {
				chunk := v.shape[ax] * inner
				if first.isInt {
					out.i = append(out.i, v.i[o*chunk:(o+1)*chunk]...)
				} else {
					out.f = append(out.f, v.f[o*chunk:(o+1)*chunk]...)
				}
			}
		}
		return out, nil
	}), nil
}

func countOf(v []int64, x int64) int {
	n := 0
	for _, y := range v {
		if y == x {
			n++
		}
	}
	return n
}

// compilePad is constant-mode Pad, which PyTorch writes in front of an
// AveragePool that counts its padding. The pads (begins, then ends) are
// an input from opset 11, an attribute before; both must be known at load.
func compilePad(c *nodeCtx) (kernel, error) {
	mode, err := c.attrString("mode", "constant")
	if err != nil {
		return nil, err
	}
	if mode != "constant" {
		return nil, fmt.Errorf("attribute mode=%q is not supported (constant is)", mode)
	}
	var pads []int64
	fill := float32(0)
	if c.opset >= 11 {
		if err := c.arity(2, 3); err != nil {
			return nil, err
		}
		if pads, err = c.constInts(1, "pads"); err != nil {
			return nil, err
		}
		if c.has(2) {
			v, err := c.constFloat(2, "constant_value")
			if err != nil {
				return nil, err
			}
			if len(v.f) != 1 {
				return nil, fmt.Errorf("the constant_value has %d values, want 1", len(v.f))
			}
			fill = v.f[0]
		}
	} else {
		if err := c.arity(1, 1); err != nil {
			return nil, err
		}
		var ok bool
		if pads, ok, err = c.attrInts("pads"); err != nil {
			return nil, err
		} else if !ok {
			return nil, errors.New("attribute pads is required")
		}
		if fill, err = c.attrFloat("value", 0); err != nil {
			return nil, err
		}
	}
	for _, p := range pads {
		if p < 0 {
			return nil, fmt.Errorf("pads %v: negative padding (cropping) is not supported", pads)
		}
	}
	return single(func(in []*value) (*value, error) {
		x := in[0]
		if err := wantFloat(x, "the input"); err != nil {
			return nil, err
		}
		r := len(x.shape)
		if len(pads) != 2*r {
			return nil, fmt.Errorf("pads %v do not fit an input of rank %d", pads, r)
		}
		if r == 0 {
			return x, nil
		}
		shape := make([]int, r)
		for i, d := range x.shape {
			if pads[i] > maxElements || pads[r+i] > maxElements {
				return nil, fmt.Errorf("pads %v hold more than %d values", pads, maxElements)
			}
			shape[i] = d + int(pads[i]) + int(pads[r+i])
		}
		if _, err := checkedVolume(shape); err != nil {
			return nil, err
		}
		y := newFloat(shape...)
		if fill != 0 {
			for i := range y.f {
				y.f[i] = fill
			}
		}
		if len(x.f) == 0 {
			return y, nil
		}
		// Copy the input row by row (its last dimension) into place.
		last := x.shape[r-1]
		idx := make([]int, r)
		for src := 0; src < len(x.f); src += last {
			dst := 0
			for d := 0; d < r; d++ {
				dst = dst*shape[d] + idx[d] + int(pads[d])
			}
			copy(y.f[dst:dst+last], x.f[src:src+last])
			for d := r - 2; d >= 0; d-- {
				idx[d]++
				if idx[d] < x.shape[d] {
					break
				}
				idx[d] = 0
			}
		}
		return y, nil
	}), nil
}
