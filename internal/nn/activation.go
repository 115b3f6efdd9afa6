package nn

import (
	"fmt"
	"math"

	"github.com/hpcml/hpcml/internal/nn/vec"
)

// Activation is an element-wise non-linearity: relu, gelu (the exact erf
// form, as PyTorch's default and ONNX's Gelu), tanh or sigmoid.
type Activation struct {
	kind string
	recycling
}

// NewActivation makes the activation named kind.
func NewActivation(kind string) *Activation {
	return &Activation{kind: kind, recycling: newRecycling()}
}

func (a *Activation) Kind() string                     { return a.kind }
func (a *Activation) Params() []*Param                 { return nil }
func (a *Activation) OutShape(in []int) ([]int, error) { return in, nil }

// activationCache keeps what the derivative needs: the input for relu and
// gelu, the output for tanh and sigmoid — and for a relu computed in
// place only the output (y > 0 exactly where x > 0, NaN included).
type activationCache struct{ x, y *Tensor }

func (a *Activation) Forward(ctx *Context, x *Tensor) (*Tensor, any) {
	y := a.output(false, x.Shape...) // every kind writes every element
	xs, ys := x.Data, y.Data
	parallelFor(len(xs), 1<<15, func(lo, hi int) {
		switch a.kind {
		case "relu":
			vec.ReLU(xs[lo:hi], ys[lo:hi])
		case "gelu":
			for i := lo; i < hi; i++ {
				v := float64(xs[i])
				ys[i] = float32(0.5 * v * (1 + math.Erf(v/math.Sqrt2)))
			}
		case "tanh":
			for i := lo; i < hi; i++ {
				ys[i] = float32(math.Tanh(float64(xs[i])))
			}
		case "sigmoid":
			for i := lo; i < hi; i++ {
				ys[i] = sigmoid(xs[i])
			}
		default:
			panic(fmt.Sprintf("nn: unknown activation %q", a.kind))
		}
	})
	if !ctx.Training {
		return y, nil
	}
	return y, activationCache{x: x, y: y}
}

// forwardInPlace is relu written over x, whose memory Model hands over.
func (a *Activation) forwardInPlace(ctx *Context, x *Tensor) (*Tensor, any, bool) {
	if a.kind != "relu" {
		return nil, nil, false
	}
	xs := x.Data
	parallelFor(len(xs), 1<<15, func(lo, hi int) { vec.ReLU(xs[lo:hi], xs[lo:hi]) })
	if !ctx.Training {
		return x, nil, true
	}
	return x, activationCache{y: x}, true
}

// backwardInPlace is relu's backward pass written over dy.
func (a *Activation) backwardInPlace(cache any, dy *Tensor) (*Tensor, bool) {
	if a.kind != "relu" {
		return nil, false
	}
	mask := reluMask(cache.(activationCache))
	gs := dy.Data
	parallelFor(len(gs), 1<<15, func(lo, hi int) { vec.ReLUBackward(mask[lo:hi], gs[lo:hi], gs[lo:hi]) })
	return dy, true
}

// reluMask is what relu's derivative tests for > 0: the input, or the
// output of a relu computed in place.
func reluMask(c activationCache) []float32 {
	if c.x != nil {
		return c.x.Data
	}
	return c.y.Data
}

func (a *Activation) Backward(cache any, dy *Tensor, needInput bool) *Tensor {
	if !needInput {
		return nil
	}
	c := cache.(activationCache)
	dx := a.inputGrad(false, dy.Shape...)
	var xs []float32 // nil for a relu computed in place
	if c.x != nil {
		xs = c.x.Data
	}
	ys, gs, ds := c.y.Data, dy.Data, dx.Data
	parallelFor(len(gs), 1<<15, func(lo, hi int) {
		switch a.kind {
		case "relu":
			vec.ReLUBackward(reluMask(c)[lo:hi], gs[lo:hi], ds[lo:hi])
		case "gelu":
			for i := lo; i < hi; i++ {
				v := float64(xs[i])
				cdf := 0.5 * (1 + math.Erf(v/math.Sqrt2))
				pdf := math.Exp(-0.5*v*v) / math.Sqrt(2*math.Pi)
				ds[i] = gs[i] * float32(cdf+v*pdf)
			}
		case "tanh":
			for i := lo; i < hi; i++ {
				ds[i] = gs[i] * (1 - ys[i]*ys[i])
			}
		case "sigmoid":
			for i := lo; i < hi; i++ {
				ds[i] = gs[i] * ys[i] * (1 - ys[i])
			}
		}
	})
	return dx
}

func sigmoid(v float32) float32 {
	if v >= 0 {
		return float32(1 / (1 + math.Exp(-float64(v))))
	}
	e := math.Exp(float64(v))
	return float32(e / (1 + e))
}
