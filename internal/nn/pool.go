package nn

import (
	"fmt"
	"github.com/hpcml/hpcml/internal/nn/vec"
	"slices"
)

// Pool2D is max or average pooling over NCHW images with a square window.
// Padding never contributes a value: max pooling ignores it (as if it were
// −∞), and average pooling divides by the number of real pixels in each
// window, not by K·K — ONNX AveragePool's count_include_pad=0 and
// TensorFlow's "SAME" averaging (PyTorch's AvgPool2d needs
// count_include_pad=False to match). Without padding the two agree.
type Pool2D struct {
	Max                     bool
	Kernel, Stride, Padding int
	recycling
}

// NewPool2D makes a max (isMax) or average pooling layer.
func NewPool2D(isMax bool, kernel, stride, padding int) *Pool2D {
	return &Pool2D{Max: isMax, Kernel: kernel, Stride: stride, Padding: padding, recycling: newRecycling()}
}

func (p *Pool2D) Kind() string {
	if p.Max {
		return "maxpool2d"
	}
	return "avgpool2d"
}

func (p *Pool2D) Params() []*Param { return nil }

func (p *Pool2D) OutShape(in []int) ([]int, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("%s needs a C×H×W input, got shape %v", p.Kind(), in)
	}
	if p.Kernel <= 0 || p.Stride <= 0 || p.Padding < 0 {
		return nil, fmt.Errorf("%s needs kernel > 0, stride > 0 and padding ≥ 0, got %d, %d, %d", p.Kind(), p.Kernel, p.Stride, p.Padding)
	}
	// PyTorch's limit: it keeps a real pixel in every window (so no max
	// over padding only and no average over nothing) and keeps models
	// comparable with PyTorch.
	if 2*p.Padding > p.Kernel {
		return nil, fmt.Errorf("%s padding %d is more than half the kernel %d", p.Kind(), p.Padding, p.Kernel)
	}
	oh, ow := windows(in[1], p.Kernel, p.Stride, p.Padding), windows(in[2], p.Kernel, p.Stride, p.Padding)
	if oh <= 0 || ow <= 0 {
		return nil, fmt.Errorf("%s kernel %d with padding %d is larger than the %d×%d image", p.Kind(), p.Kernel, p.Padding, in[1], in[2])
	}
	return []int{in[0], oh, ow}, nil
}

func (p *Pool2D) geom(x *Tensor) convGeom {
	if len(x.Shape) != 4 {
		panic(fmt.Sprintf("nn: %s got a batch of shape %v", p.Kind(), x.Shape))
	}
	g := convGeom{n: x.Shape[0], c: x.Shape[1], h: x.Shape[2], w: x.Shape[3], k: p.Kernel, s: p.Stride, p: p.Padding}
	g.oh, g.ow = windows(g.h, g.k, g.s, g.p), windows(g.w, g.k, g.s, g.p)
	if g.oh <= 0 || g.ow <= 0 {
		panic(fmt.Sprintf("nn: %s kernel %d does not fit a batch of shape %v", p.Kind(), p.Kernel, x.Shape))
	}
	return g
}

// window is the part of the input a pooling window at output position
// (oh, ow) covers, clipped to the image: rows [h0, h1), columns [w0, w1).
func (g *convGeom) window(oh, ow int) (h0, h1, w0, w1 int) {
	h0, w0 = oh*g.s-g.p, ow*g.s-g.p
	h1, w1 = min(h0+g.k, g.h), min(w0+g.k, g.w)
	return max(h0, 0), h1, max(w0, 0), w1
}

// poolCache keeps the geometry and, for max pooling, the position in its
// input plane of each output's maximum, where the gradient goes.
type poolCache struct {
	g      convGeom
	argmax []int32
}

func (p *Pool2D) Forward(ctx *Context, x *Tensor) (*Tensor, any) {
	g := p.geom(x)
	hw, plane := g.h*g.w, g.oh*g.ow
	y := p.output(false, g.n, g.c, g.oh, g.ow) // every window writes its output
	var argmax []int32
	if p.Max && ctx.Training {
		argmax = make([]int32, len(y.Data))
	}
	fast := p.Max && p.Kernel == 2 && p.Stride == 2 && p.Padding == 0
	parallelFor(g.n*g.c, grain(hw), func(lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			src, dst := x.Data[pl*hw:(pl+1)*hw], y.Data[pl*plane:(pl+1)*plane]
			if fast {
				var am []int32
				if argmax != nil {
					am = argmax[pl*plane : (pl+1)*plane]
				}
				maxPool2x2(src, dst, am, g.w, g.oh, g.ow)
				continue
			}
			for oh := 0; oh < g.oh; oh++ {
				for ow := 0; ow < g.ow; ow++ {
					h0, h1, w0, w1 := g.window(oh, ow)
					o := oh*g.ow + ow
					if !p.Max {
						var s float32
						for ih := h0; ih < h1; ih++ {
							for _, v := range src[ih*g.w+w0 : ih*g.w+w1] {
								s += v
							}
						}
						dst[o] = s / float32((h1-h0)*(w1-w0))
						continue
					}
					// The first maximum wins ties (as PyTorch and ONNX); a
					// NaN is taken as the maximum, so it propagates.
					bi := h0*g.w + w0
					best := src[bi]
					for ih := h0; ih < h1; ih++ {
						row := src[ih*g.w+w0 : ih*g.w+w1]
						for j, v := range row {
							if v > best || (v != v && best == best) {
								best, bi = v, ih*g.w+w0+j
							}
						}
					}
					dst[o] = best
					if argmax != nil {
						argmax[pl*plane+o] = int32(bi)
					}
				}
			}
		}
	})
	if !ctx.Training {
		return y, nil
	}
	return y, &poolCache{g: g, argmax: argmax}
}

// maxPool2x2 is max pooling's common case, 2×2 windows at stride 2
// without padding, a row of outputs at a time by vec.MaxPool2x2Row (the
// general loop's window arithmetic costs more than the comparisons); same
// semantics: the first maximum of a window wins ties, a NaN wins. am, if
// not nil, gets the maxima's places.
func maxPool2x2(src, dst []float32, am []int32, w, oh, ow int) {
	for i := 0; i < oh; i++ {
		var amRow []int32
		if am != nil {
			amRow = am[i*ow : i*ow+ow]
		}
		vec.MaxPool2x2Row(src[2*i*w:2*i*w+w], src[(2*i+1)*w:(2*i+1)*w+w], dst[i*ow:i*ow+ow], amRow, 2*i*w, w)
	}
}

// Backward sends each output's gradient to its window's maximum (max
// pooling) or spreads it evenly over the window's real pixels (average).
func (p *Pool2D) Backward(cache any, dy *Tensor, needInput bool) *Tensor {
	if !needInput {
		return nil
	}
	pc := cache.(*poolCache)
	g := pc.g
	hw, plane := g.h*g.w, g.oh*g.ow
	dx := p.inputGrad(true, g.n, g.c, g.h, g.w) // gradients are added into it
	parallelFor(g.n*g.c, grain(hw), func(lo, hi int) {
		for pl := lo; pl < hi; pl++ {
			src, dst := dy.Data[pl*plane:(pl+1)*plane], dx.Data[pl*hw:(pl+1)*hw]
			if p.Max {
				for o, i := range pc.argmax[pl*plane : (pl+1)*plane] {
					dst[i] += src[o]
				}
				continue
			}
			for oh := 0; oh < g.oh; oh++ {
				for ow := 0; ow < g.ow; ow++ {
					h0, h1, w0, w1 := g.window(oh, ow)
					v := src[oh*g.ow+ow] / float32((h1-h0)*(w1-w0))
					for ih := h0; ih < h1; ih++ {
						row := dst[ih*g.w+w0 : ih*g.w+w1]
						for j := range row {
							row[j] += v
						}
					}
				}
			}
		}
	})
	return dx
}

// GlobalAvgPool averages each channel of a C×H×W input over its H×W
// pixels, giving C features (ONNX GlobalAveragePool followed by a flatten).
type GlobalAvgPool struct{}

// NewGlobalAvgPool makes a global average pooling layer.
func NewGlobalAvgPool() *GlobalAvgPool { return &GlobalAvgPool{} }

func (*GlobalAvgPool) Kind() string     { return "globalavgpool" }
func (*GlobalAvgPool) Params() []*Param { return nil }

func (*GlobalAvgPool) OutShape(in []int) ([]int, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("globalavgpool needs a C×H×W input, got shape %v", in)
	}
	return []int{in[0]}, nil
}

func (*GlobalAvgPool) Forward(ctx *Context, x *Tensor) (*Tensor, any) {
	if len(x.Shape) != 4 {
		panic(fmt.Sprintf("nn: globalavgpool got a batch of shape %v", x.Shape))
	}
	n, c, hw := x.Shape[0], x.Shape[1], x.Shape[2]*x.Shape[3]
	y := NewTensor(n, c)
	inv := 1 / float64(hw)
	parallelFor(n*c, grain(hw), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			var s float64
			for _, v := range x.Data[i*hw : (i+1)*hw] {
				s += float64(v)
			}
			y.Data[i] = float32(s * inv)
		}
	})
	if !ctx.Training {
		return y, nil
	}
	return y, slices.Clone(x.Shape)
}

func (*GlobalAvgPool) Backward(cache any, dy *Tensor, needInput bool) *Tensor {
	if !needInput {
		return nil
	}
	shape := cache.([]int)
	hw := shape[2] * shape[3]
	dx := NewTensor(shape...)
	inv := 1 / float32(hw)
	parallelFor(len(dy.Data), grain(hw), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			v := dy.Data[i] * inv
			row := dx.Data[i*hw : (i+1)*hw]
			for j := range row {
				row[j] = v
			}
		}
	})
	return dx
}
