package nn

import (
	"fmt"
	"math/rand/v2"
)

// Residual is a residual block (He et al. 2016): y = relu(shortcut(x) +
// body(x)). The shortcut is the identity when the body keeps the shape,
// and otherwise a 1×1 convolution with the stride that gives the body's
// output size — ResNet's projection shortcut.
type Residual struct {
	Body     []Layer
	Shortcut *Conv2D
}

// NewResidual makes a residual block around body, which maps per-sample
// shape in to out. When they differ both must be C×H×W and the body's
// output size must be what a stride-s 1×1 convolution gives, ⌈H/s⌉×⌈W/s⌉;
// the shortcut's parameters are named name+".shortcut.weight/.bias".
func NewResidual(name string, in, out []int, body []Layer, rng *rand.Rand) (*Residual, error) {
	r := &Residual{Body: body}
	if sameShape(in, out) {
		return r, nil
	}
	if len(in) != 3 || len(out) != 3 {
		return nil, fmt.Errorf("residual body maps shape %v to %v; only a C×H×W image to another can be reconciled by a shortcut (a flat body must keep its size)", in, out)
	}
	s := shortcutStride(in[1], in[2], out[1], out[2])
	if s == 0 {
		return nil, fmt.Errorf("residual body maps shape %v to %v; a 1×1 shortcut of stride s gives ⌈%d/s⌉×⌈%d/s⌉, which no stride makes %d×%d (pad the body's convolutions to keep ⌈H/s⌉)", in, out, in[1], in[2], out[1], out[2])
	}
	r.Shortcut = NewConv2D(name+".shortcut", in[0], out[0], 1, s, 0, HeNormal, rng)
	return r, nil
}

// shortcutStride is the smallest stride s with ⌈h/s⌉ = oh and ⌈w/s⌉ = ow,
// or 0 when there is none.
func shortcutStride(h, w, oh, ow int) int {
	for s := 1; s <= max(h, w); s++ {
		if (h+s-1)/s == oh && (w+s-1)/s == ow {
			return s
		}
	}
	return 0
}

func (r *Residual) Kind() string { return "residual" }

// Params are the body's parameters in order, then the shortcut's.
func (r *Residual) Params() []*Param {
	var ps []*Param
	for _, l := range r.Body {
		ps = append(ps, l.Params()...)
	}
	if r.Shortcut != nil {
		ps = append(ps, r.Shortcut.Params()...)
	}
	return ps
}

// Buffers are those of the body's stateful layers (BatchNorm), in order.
func (r *Residual) Buffers() []*Param {
	var bs []*Param
	for _, l := range r.Body {
		if s, ok := l.(Stateful); ok {
			bs = append(bs, s.Buffers()...)
		}
	}
	return bs
}

func (r *Residual) OutShape(in []int) ([]int, error) {
	shape := in
	for i, l := range r.Body {
		out, err := l.OutShape(shape)
		if err != nil {
			return nil, fmt.Errorf("residual body layer %d (%s): %w", i, l.Kind(), err)
		}
		shape = out
	}
	if r.Shortcut == nil {
		if !sameShape(shape, in) {
			return nil, fmt.Errorf("residual body maps shape %v to %v and there is no shortcut to match them", in, shape)
		}
		return shape, nil
	}
	sc, err := r.Shortcut.OutShape(in)
	if err != nil {
		return nil, fmt.Errorf("residual shortcut: %w", err)
	}
	if !sameShape(sc, shape) {
		return nil, fmt.Errorf("residual body gives shape %v but the shortcut %v", shape, sc)
	}
	return shape, nil
}

type residualCache struct {
	body     []any
	shortcut any
	y        *Tensor // relu's output: its positive entries pass gradients
}

func (r *Residual) Forward(ctx *Context, x *Tensor) (*Tensor, any) {
	var caches []any
	if ctx.Training {
		caches = make([]any, len(r.Body))
	}
	h := x
	for i, l := range r.Body {
		var c any
		h, c = l.Forward(ctx, h)
		if caches != nil {
			caches[i] = c
		}
	}
	s, sc := x, any(nil)
	if r.Shortcut != nil {
		s, sc = r.Shortcut.Forward(ctx, x)
	}
	if len(h.Data) != len(s.Data) {
		panic(fmt.Sprintf("nn: residual body gives shape %v, the shortcut %v", h.Shape, s.Shape))
	}
	y := NewTensor(h.Shape...)
	parallelFor(len(y.Data), 1<<15, func(lo, hi int) {
		hs, ss, ys := h.Data[lo:hi], s.Data[lo:hi], y.Data[lo:hi]
		for i := range ys {
			ys[i] = max(hs[i]+ss[i], 0)
		}
	})
	if !ctx.Training {
		return y, nil
	}
	return y, &residualCache{body: caches, shortcut: sc, y: y}
}

// Backward sends relu's gradient down both paths and adds what they give
// for x. The body runs even when needInput is false: its parameters still
// need their gradients.
func (r *Residual) Backward(cache any, dy *Tensor, needInput bool) *Tensor {
	rc := cache.(*residualCache)
	dz := NewTensor(dy.Shape...)
	for i, v := range rc.y.Data {
		if v > 0 {
			dz.Data[i] = dy.Data[i]
		}
	}
	g := dz
	for i := len(r.Body) - 1; i >= 0; i-- {
		g = r.Body[i].Backward(rc.body[i], g, needInput || i > 0)
	}
	gs := dz
	if r.Shortcut != nil {
		gs = r.Shortcut.Backward(rc.shortcut, dz, needInput)
	}
	if !needInput {
		return nil
	}
	// A fresh tensor: g or gs may be dz itself or share data with it.
	dx := NewTensor(gs.Shape...)
	for i := range dx.Data {
		dx.Data[i] = g.Data[i] + gs.Data[i]
	}
	return dx
}
