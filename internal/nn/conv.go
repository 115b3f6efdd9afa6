package nn

import (
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/hpcml/hpcml/internal/nn/vec"
)

// Conv2D is a 2-D convolution over NCHW images — a cross-correlation, as
// PyTorch's Conv2d and ONNX's Conv compute it — with a square kernel, one
// stride and one zero padding for both axes. W is OutC×InC×K×K and B is
// OutC, the layouts PyTorch and ONNX use.
type Conv2D struct {
	InC, OutC, Kernel, Stride, Padding int
	W, B                               *Param

	// cols recycles the per-sample buffers — the (InC·K·K)×(OH·OW) im2col
	// matrix, Backward's dcols and the zero-bordered image im2col copies
	// into — and partials Backward's per-lane partial gradients between
	// calls (nil in a Conv2D not made by NewConv2D: then every call
	// allocates).
	cols, partials *scratch
	recycling
}

// NewConv2D makes a Conv2D layer with weights drawn by init (fan-in
// InC·K·K, fan-out OutC·K·K) and zero bias.
func NewConv2D(name string, inC, outC, kernel, stride, padding int, init Init, rng *rand.Rand) *Conv2D {
	c := &Conv2D{
		InC: inC, OutC: outC, Kernel: kernel, Stride: stride, Padding: padding,
		W:    newParam(name+".weight", false, outC, inC, kernel, kernel),
		B:    newParam(name+".bias", true, outC),
		cols: &scratch{}, partials: &scratch{}, recycling: newRecycling(),
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

// convCache keeps the forward pass's input: Backward rebuilds each
// sample's im2col matrix from it rather than keeping the whole batch's —
// for a 64-image batch that matrix is tens of megabytes, which two
// training processes on one machine would push through the memory bus
// (and out of the shared L3 cache) twice per step, while one sample's
// stays in a core's L2 between being built and being used.
type convCache struct {
	g convGeom
	x []float32
}

// convLanes is how many partial weight gradients Backward sums: the
// batch's samples are split into this many contiguous lanes whatever the
// number of goroutines, each lane accumulates its samples in order and
// the lanes are added in order, so the gradient's bits do not depend on
// GOMAXPROCS (a resumed or re-run training reproduces a run exactly).
const convLanes = 8

// Forward convolves sample by sample: im2col lays one image out as a
// (InC·K·K)×(OH·OW) matrix and one GEMM with the OutC×(InC·K·K) weights
// writes that sample's OutC×OH×OW block of y, already in NCHW order. A
// sample's matrix fits a core's L2 cache (about 300 KB for 16 channels
// of 14×14 through 5×5), and samples run in parallel.
func (c *Conv2D) Forward(ctx *Context, x *Tensor) (*Tensor, any) {
	g := c.geom(x)
	plane, ckk, chw := g.oh*g.ow, g.c*g.k*g.k, g.c*g.h*g.w
	y := c.output(false, g.n, c.OutC, g.oh, g.ow) // the GEMMs (beta 0) write it all
	bias, outC := c.B.Value.Data, c.OutC
	parallelFor(g.n, grain(outC*ckk*plane), func(lo, hi int) {
		cols, pad := c.cols.get(ckk*plane), c.cols.get(g.padded())
		for n := lo; n < hi; n++ {
			im2col(&g, x.Data[n*chw:(n+1)*chw], cols, pad)
			out := y.Data[n*outC*plane : (n+1)*outC*plane]
			gemm(false, false, outC, plane, ckk, 1, c.W.Value.Data, cols, 0, out)
			for oc, b := range bias {
				row := out[oc*plane : (oc+1)*plane]
				for j := range row {
					row[j] += b
				}
			}
		}
		c.cols.put(cols)
		c.cols.put(pad)
	})
	if !ctx.Training {
		return y, nil
	}
	return y, &convCache{g: g, x: x.Data}
}

// Backward works sample by sample as Forward does. dy's block for a
// sample is already the OutC×(OH·OW) matrix the forward GEMM produced,
// so dW += dY·colsᵀ (with cols rebuilt from the cached input) and, for
// the input, dcols = Wᵀ·dY folded back onto the image by col2im, need no
// layout copies. Weight and bias gradients are summed per lane
// (convLanes) and then in lane order.
func (c *Conv2D) Backward(cache any, dy *Tensor, needInput bool) *Tensor {
	cc := cache.(*convCache)
	g := cc.g
	plane, ckk, chw := g.oh*g.ow, g.c*g.k*g.k, g.c*g.h*g.w
	outC := c.OutC
	var dx *Tensor
	if needInput {
		dx = c.inputGrad(true, g.n, g.c, g.h, g.w) // col2im adds into it
	}
	lanes := min(convLanes, g.n)
	wSize := outC * ckk
	partial := c.partials.get(lanes * (wSize + outC))
	clear(partial)
	perLane := (g.n + lanes - 1) / lanes
	perSample := outC * ckk * plane * 3 // three products' worth of work
	parallelFor(lanes, grain(perLane*perSample), func(lo, hi int) {
		cols, pad := c.cols.get(ckk*plane), c.cols.get(g.padded())
		var dcols []float32
		if needInput {
			dcols = c.cols.get(ckk * plane)
		}
		for lane := lo; lane < hi; lane++ {
			dw := partial[lane*(wSize+outC) : lane*(wSize+outC)+wSize]
			db := partial[lane*(wSize+outC)+wSize : (lane+1)*(wSize+outC)]
			for n := lane * perLane; n < min((lane+1)*perLane, g.n); n++ {
				dout := dy.Data[n*outC*plane : (n+1)*outC*plane]
				for oc := range db {
					var s float32
					for _, v := range dout[oc*plane : (oc+1)*plane] {
						s += v
					}
					db[oc] += s
				}
				im2col(&g, cc.x[n*chw:(n+1)*chw], cols, pad)
				gemm(false, true, outC, ckk, plane, 1, dout, cols, 1, dw)
				if needInput {
					gemm(true, false, ckk, plane, outC, 1, c.W.Value.Data, dout, 0, dcols)
					col2im(&g, dcols, dx.Data[n*chw:(n+1)*chw])
				}
			}
		}
		c.cols.put(cols)
		c.cols.put(pad)
		if dcols != nil {
			c.cols.put(dcols)
		}
	})
	dW, dB := c.W.Grad.Data, c.B.Grad.Data
	for lane := range lanes {
		p := partial[lane*(wSize+outC) : (lane+1)*(wSize+outC)]
		for i, v := range p[:wSize] {
			dW[i] += v
		}
		for i, v := range p[wSize:] {
			dB[i] += v
		}
	}
	c.partials.put(partial)
	return dx
}

// scratch recycles large float32 buffers through a sync.Pool, which is
// safe for concurrent calls and lets the GC reclaim the buffers when
// idle. It saves allocating, clearing and faulting in a buffer for every
// goroutine of every call. Buffers come back dirty: callers overwrite
// every element (im2col does; a GEMM with beta 0 does) or clear them. A
// nil scratch allocates.
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

// im2col writes one image x (C×H×W) as the matrix cols of C·K·K rows
// (channel, kernel row, kernel column) by OH·OW columns (output row,
// output column), with zeros where a tap falls on the padding. Every
// element of cols is written, so it may come from a reused buffer. With
// padding it first copies the image into pad (g.padded() elements) with
// zero borders, so that every tap row is a plain copy: no bounds to work
// out and nothing to clear per row — rows are short (14 floats for
// 14×14 maps) and the per-row bookkeeping cost more than the copies.
func im2col(g *convGeom, x, cols, pad []float32) {
	c, k, s, oh, ow := g.c, g.k, g.s, g.oh, g.ow
	src, h, w := g.pad(x, pad)
	plane, hw := oh*ow, h*w
	for ch := 0; ch < c; ch++ {
		img := src[ch*hw : (ch+1)*hw]
		for kh := 0; kh < k; kh++ {
			for kw := 0; kw < k; kw++ {
				r := (ch*k+kh)*k + kw
				row := cols[r*plane : (r+1)*plane]
				if s == 1 {
					vec.CopyRows(row, ow, img[kh*w+kw:], w, oh, ow)
					continue
				}
				for y := 0; y < oh; y++ {
					dst := row[y*ow : (y+1)*ow]
					start := (y*s+kh)*w + kw
					for i := range dst {
						dst[i] = img[start+i*s]
					}
				}
			}
		}
	}
}

// padded is the number of elements of one image with its zero border.
func (g *convGeom) padded() int { return g.c * (g.h + 2*g.p) * (g.w + 2*g.p) }

// pad returns x with g.p zeros around each plane, written into buf (at
// least g.padded() long), and the padded height and width; x itself when
// there is no padding.
func (g *convGeom) pad(x, buf []float32) ([]float32, int, int) {
	if g.p == 0 {
		return x, g.h, g.w
	}
	h, w, p := g.h+2*g.p, g.w+2*g.p, g.p
	buf = buf[:g.c*h*w]
	clear(buf)
	for ch := 0; ch < g.c; ch++ {
		for y := 0; y < g.h; y++ {
			copy(buf[(ch*h+y+p)*w+p:], x[(ch*g.h+y)*g.w:(ch*g.h+y+1)*g.w])
		}
	}
	return buf, h, w
}

// col2im is im2col's adjoint for one image: it adds every element of cols
// onto the pixel of dx (C×H×W) it was read from (padding taps are
// dropped). dx must start zeroed.
func col2im(g *convGeom, cols, dx []float32) {
	c, h, w, k, s, p, oh, ow := g.c, g.h, g.w, g.k, g.s, g.p, g.oh, g.ow
	plane, hw := oh*ow, h*w
	for ch := 0; ch < c; ch++ {
		dst := dx[ch*hw : (ch+1)*hw]
		for kh := 0; kh < k; kh++ {
			for kw := 0; kw < k; kw++ {
				r := (ch*k+kh)*k + kw
				row := cols[r*plane : (r+1)*plane]
				off := kw - p
				owLo, owHi := validRange(ow, s, off, w)
				if owLo == owHi {
					continue
				}
				if s == 1 {
					// Output rows y whose input row y−p+kh is inside the image.
					yLo, yHi := max(0, p-kh), min(oh, h+p-kh)
					if yLo < yHi {
						vec.AddRows(dst[(yLo-p+kh)*w+owLo+off:], w, row[yLo*ow+owLo:], ow, yHi-yLo, owHi-owLo)
					}
					continue
				}
				for y := 0; y < oh; y++ {
					ih := y*s - p + kh
					if ih < 0 || ih >= h {
						continue
					}
					src := row[y*ow+owLo : y*ow+owHi]
					drow := dst[ih*w : (ih+1)*w]
					iw := owLo*s + off
					for _, v := range src {
						drow[iw] += v
						iw += s
					}
				}
			}
		}
	}
}
