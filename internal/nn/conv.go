package nn

import (
	"fmt"
	"math/rand/v2"
	"sync"
)

// Conv2D is a 2-D convolution over NCHW images — a cross-correlation, as
// PyTorch's Conv2d and ONNX's Conv compute it — with a square kernel, one
// stride and one zero padding for both axes. W is OutC×InC×K×K and B is
// OutC, the layouts PyTorch and ONNX use.
type Conv2D struct {
	InC, OutC, Kernel, Stride, Padding int
	W, B                               *Param

	// cols and outs recycle the temporary (InC·K·K)×(N·OH·OW) and
	// OutC×(N·OH·OW) matrices between calls (nil in a Conv2D not made by
	// NewConv2D: then every call allocates).
	cols, outs *scratch
}

// NewConv2D makes a Conv2D layer with weights drawn by init (fan-in
// InC·K·K, fan-out OutC·K·K) and zero bias.
func NewConv2D(name string, inC, outC, kernel, stride, padding int, init Init, rng *rand.Rand) *Conv2D {
	c := &Conv2D{
		InC: inC, OutC: outC, Kernel: kernel, Stride: stride, Padding: padding,
		W:    newParam(name+".weight", false, outC, inC, kernel, kernel),
		B:    newParam(name+".bias", true, outC),
		cols: &scratch{}, outs: &scratch{},
	}
	init(c.W.Value.Data, inC*kernel*kernel, outC*kernel*kernel, rng)
	return c
}

func (c *Conv2D) Kind() string     { return "conv2d" }
func (c *Conv2D) Params() []*Param { return []*Param{c.W, c.B} }

func (c *Conv2D) OutShape(in []int) ([]int, error) {
	if len(in) != 3 || in[0] != c.InC {
		return nil, fmt.Errorf("conv2d expects a %d×H×W input, got shape %v", c.InC, in)
	}
	if c.Kernel <= 0 || c.Stride <= 0 || c.Padding < 0 {
		return nil, fmt.Errorf("conv2d needs kernel > 0, stride > 0 and padding ≥ 0, got %d, %d, %d", c.Kernel, c.Stride, c.Padding)
	}
	oh, ow := windows(in[1], c.Kernel, c.Stride, c.Padding), windows(in[2], c.Kernel, c.Stride, c.Padding)
	if oh <= 0 || ow <= 0 {
		return nil, fmt.Errorf("conv2d kernel %d with padding %d is larger than the %d×%d image", c.Kernel, c.Padding, in[1], in[2])
	}
	return []int{c.OutC, oh, ow}, nil
}

// windows is the number of kernel positions along an axis of the given
// size (floor mode, as PyTorch and ONNX by default), or 0 when the kernel
// does not fit at all.
func windows(size, kernel, stride, padding int) int {
	span := size + 2*padding - kernel
	if span < 0 {
		return 0
	}
	return span/stride + 1
}

// convGeom is the geometry of one convolution (or pooling) call.
type convGeom struct {
	n, c, h, w int // input batch, channels, height, width
	k, s, p    int // kernel, stride, padding
	oh, ow     int // output height and width
}

func (c *Conv2D) geom(x *Tensor) convGeom {
	if len(x.Shape) != 4 || x.Shape[1] != c.InC {
		panic(fmt.Sprintf("nn: conv2d with %d input channels got a batch of shape %v", c.InC, x.Shape))
	}
	g := convGeom{n: x.Shape[0], c: c.InC, h: x.Shape[2], w: x.Shape[3], k: c.Kernel, s: c.Stride, p: c.Padding}
	g.oh, g.ow = windows(g.h, g.k, g.s, g.p), windows(g.w, g.k, g.s, g.p)
	if g.oh <= 0 || g.ow <= 0 {
		panic(fmt.Sprintf("nn: conv2d kernel %d does not fit a batch of shape %v", c.Kernel, x.Shape))
	}
	return g
}

// convCache keeps the im2col matrix of the forward pass: the weight
// gradient needs it, and keeping it costs memory but saves rebuilding it.
type convCache struct {
	g    convGeom
	cols []float32
}

// Forward lays the whole batch out as one (InC·K·K)×(N·OH·OW) matrix
// (im2col) so the convolution is a single GEMM with the OutC×(InC·K·K)
// weights — one large product keeps the BLAS busy where N small ones per
// sample would not. The product comes out channel-major, OutC×(N·OH·OW), so
// each (sample, channel) plane of y is a contiguous block of it and the
// move to NCHW is a block copy that also adds the bias.
func (c *Conv2D) Forward(ctx *Context, x *Tensor) (*Tensor, any) {
	g := c.geom(x)
	plane, ckk := g.oh*g.ow, g.c*g.k*g.k
	np := g.n * plane
	cols := c.cols.get(ckk * np)
	im2col(&g, x.Data, cols)
	out := c.outs.get(c.OutC * np)
	gemm(false, false, c.OutC, np, ckk, 1, c.W.Value.Data, cols, 0, out)
	y := NewTensor(g.n, c.OutC, g.oh, g.ow)
	bias, outC := c.B.Value.Data, c.OutC
	parallelFor(g.n*outC, grain(plane), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			n, oc := i/outC, i%outC
			dst := y.Data[i*plane : (i+1)*plane]
			src := out[oc*np+n*plane : oc*np+(n+1)*plane]
			dst = dst[:len(src)] // lets the compiler drop the bounds checks below
			b := bias[oc]
			for j, v := range src {
				dst[j] = v + b
			}
		}
	})
	c.outs.put(out)
	if !ctx.Training {
		c.cols.put(cols)
		return y, nil
	}
	// The cache keeps cols until Release (Model.Backward calls it after
	// this layer's Backward): a direct caller of Backward may use a cache
	// more than once, so Backward itself cannot give it back.
	return y, &convCache{g: g, cols: cols}
}

// Release gives a training cache's im2col matrix back to the pool.
func (c *Conv2D) Release(cache any) {
	if cc, ok := cache.(*convCache); ok && cc.cols != nil && c.cols != nil {
		c.cols.put(cc.cols)
		cc.cols = nil
	}
}

// Backward turns dy into the channel-major OutC×(N·OH·OW) matrix the
// forward GEMM produced, then dW += dY·colsᵀ and, for the input, dcols =
// Wᵀ·dY folded back onto the image by col2im.
func (c *Conv2D) Backward(cache any, dy *Tensor, needInput bool) *Tensor {
	cc := cache.(*convCache)
	g := cc.g
	plane, ckk := g.oh*g.ow, g.c*g.k*g.k
	np := g.n * plane
	dout := c.outs.get(c.OutC * np)
	db := c.B.Grad.Data
	// One channel per item, so each goroutine owns its bias gradient.
	parallelFor(c.OutC, grain(np), func(lo, hi int) {
		for oc := lo; oc < hi; oc++ {
			var sum float64
			for n := 0; n < g.n; n++ {
				src := dy.Data[(n*c.OutC+oc)*plane : (n*c.OutC+oc+1)*plane]
				copy(dout[oc*np+n*plane:], src)
				var s float32
				for _, v := range src {
					s += v
				}
				sum += float64(s)
			}
			db[oc] += float32(sum)
		}
	})
	gemm(false, true, c.OutC, ckk, np, 1, dout, cc.cols, 1, c.W.Grad.Data)
	if !needInput {
		c.outs.put(dout)
		return nil
	}
	dcols := c.cols.get(ckk * np)
	gemm(true, false, ckk, np, c.OutC, 1, c.W.Value.Data, dout, 0, dcols)
	c.outs.put(dout)
	dx := NewTensor(g.n, g.c, g.h, g.w)
	col2im(&g, dcols, dx.Data)
	c.cols.put(dcols)
	return dx
}

// scratch recycles large float32 buffers through a sync.Pool, which is
// safe for concurrent calls and lets the GC reclaim the buffers when
// idle. It saves clearing and faulting in tens of megabytes per call (the
// im2col matrix of a 64-image batch of 32-channel 14×14 maps through a
// 5×5 kernel is 40 MB). Buffers come back dirty: callers overwrite every
// element (im2col does; a GEMM with beta 0 does). A nil scratch allocates.
type scratch struct{ pool sync.Pool }

func (s *scratch) get(n int) []float32 {
	if s != nil {
		if b, ok := s.pool.Get().(*[]float32); ok && cap(*b) >= n {
			return (*b)[:n]
		}
	}
	return make([]float32, n)
}

func (s *scratch) put(b []float32) {
	if s != nil {
		s.pool.Put(&b)
	}
}

// grain is parallelFor's minimum items per goroutine for items of the
// given cost in elements: about 16k elements of work per goroutine, below
// which starting one costs more than it saves.
func grain(costPerItem int) int {
	return max(1, (1<<14)/max(costPerItem, 1))
}

// validRange is the range [lo, hi) of output positions o in [0, outN)
// whose input position o·stride + off falls inside [0, size): the
// positions a kernel tap reads real pixels rather than padding at.
func validRange(outN, stride, off, size int) (lo, hi int) {
	if off < 0 {
		lo = (-off + stride - 1) / stride
	}
	if last := size - 1 - off; last >= 0 {
		hi = min(last/stride+1, outN)
	}
	return min(lo, hi), hi
}

// im2col writes x (N×C×H×W) as the matrix cols of C·K·K rows (channel,
// kernel row, kernel column) by N·OH·OW columns (sample, output row,
// output column), with zeros where a tap falls on the padding. Every
// element of cols is written, so it may come from a reused buffer. The
// (sample, channel) pairs write disjoint parts and run in parallel.
func im2col(g *convGeom, x, cols []float32) {
	// Locals, not g's fields, in the loops: the compiler cannot tell that
	// the float stores leave g alone and would reload every field.
	c, h, w, k, s, p, oh, ow := g.c, g.h, g.w, g.k, g.s, g.p, g.oh, g.ow
	plane, hw := oh*ow, h*w
	ld := g.n * plane
	parallelFor(g.n*c, grain(k*k*plane), func(lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			n, ch := nc/c, nc%c
			src := x[nc*hw : (nc+1)*hw]
			for kh := 0; kh < k; kh++ {
				for kw := 0; kw < k; kw++ {
					r := (ch*k+kh)*k + kw
					row := cols[r*ld+n*plane : r*ld+(n+1)*plane]
					off := kw - p // input column = ow·s + off
					owLo, owHi := validRange(ow, s, off, w)
					for y := 0; y < oh; y++ {
						dst := row[y*ow : (y+1)*ow]
						ih := y*s - p + kh
						if ih < 0 || ih >= h || owLo == owHi {
							clear(dst)
							continue
						}
						clear(dst[:owLo])
						clear(dst[owHi:])
						srow := src[ih*w : (ih+1)*w]
						d := dst[owLo:owHi]
						if s == 1 {
							copy(d, srow[owLo+off:owHi+off])
							continue
						}
						iw := owLo*s + off
						for i := range d {
							d[i] = srow[iw]
							iw += s
						}
					}
				}
			}
		}
	})
}

// col2im is im2col's adjoint: it adds every element of cols onto the pixel
// it was read from (padding taps are dropped). dx must start zeroed. Each
// (sample, channel) plane of dx is owned by one goroutine.
func col2im(g *convGeom, cols, dx []float32) {
	c, h, w, k, s, p, oh, ow := g.c, g.h, g.w, g.k, g.s, g.p, g.oh, g.ow
	plane, hw := oh*ow, h*w
	ld := g.n * plane
	parallelFor(g.n*c, grain(k*k*plane), func(lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			n, ch := nc/c, nc%c
			dst := dx[nc*hw : (nc+1)*hw]
			for kh := 0; kh < k; kh++ {
				for kw := 0; kw < k; kw++ {
					r := (ch*k+kh)*k + kw
					row := cols[r*ld+n*plane : r*ld+(n+1)*plane]
					off := kw - p
					owLo, owHi := validRange(ow, s, off, w)
					if owLo == owHi {
						continue
					}
					for y := 0; y < oh; y++ {
						ih := y*s - p + kh
						if ih < 0 || ih >= h {
							continue
						}
						src := row[y*ow+owLo : y*ow+owHi]
						drow := dst[ih*w : (ih+1)*w]
						if s == 1 {
							d := drow[owLo+off : owHi+off]
							d = d[:len(src)] // bounds checks out of the loop
							for i, v := range src {
								d[i] += v
							}
							continue
						}
						iw := owLo*s + off
						for _, v := range src {
							drow[iw] += v
							iw += s
						}
					}
				}
			}
		}
	})
}
