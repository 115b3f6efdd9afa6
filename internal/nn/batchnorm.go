package nn

import (
	"fmt"
	"math"
)

// BatchNorm normalises each channel of a C×H×W input over the batch and
// the pixels, or each feature of a flat [C] input over the batch, then
// scales by Gamma and shifts by Beta (Ioffe & Szegedy 2015).
//
// Training normalises with the batch's mean and biased variance and moves
// the running statistics the way PyTorch does:
//
//	running = (1 − Momentum)·running + Momentum·batch
//
// with the unbiased batch variance for Var. (ONNX's BatchNormalization
// writes the momentum the other way round: its momentum is 1 − Momentum.)
// Inference normalises with the running statistics, so it never changes
// the layer and is safe to call concurrently; training updates Mean and
// Var and must not run concurrently with anything else on the layer.
type BatchNorm struct {
	C                      int
	Momentum, Epsilon      float64
	Gamma, Beta, Mean, Var *Param
}

// NewBatchNorm makes a BatchNorm layer over channels with Gamma 1, Beta 0
// and running statistics mean 0, variance 1 (PyTorch's starting point).
func NewBatchNorm(name string, channels int, momentum, eps float64) *BatchNorm {
	b := &BatchNorm{
		C: channels, Momentum: momentum, Epsilon: eps,
		Gamma: newParam(name+".weight", true, channels),
		Beta:  newParam(name+".bias", true, channels),
		Mean:  newParam(name+".running_mean", true, channels),
		Var:   newParam(name+".running_var", true, channels),
	}
	for i := range channels {
		b.Gamma.Value.Data[i] = 1
		b.Var.Value.Data[i] = 1
	}
	return b
}

func (b *BatchNorm) Kind() string     { return "batchnorm" }
func (b *BatchNorm) Params() []*Param { return []*Param{b.Gamma, b.Beta} }

// Buffers are the running mean and variance: state a checkpoint and an
// export carry, which no optimiser touches.
func (b *BatchNorm) Buffers() []*Param { return []*Param{b.Mean, b.Var} }

func (b *BatchNorm) OutShape(in []int) ([]int, error) {
	if (len(in) != 1 && len(in) != 3) || in[0] != b.C {
		return nil, fmt.Errorf("batchnorm over %d channels needs a [%d] or %d×H×W input, got shape %v", b.C, b.C, b.C, in)
	}
	return in, nil
}

// bnCache keeps the normalised input and each channel's 1/σ for Backward.
type bnCache struct {
	xhat   *Tensor
	invStd []float64
}

// split returns the batch size and the number of values per channel per
// sample (H·W, or 1 for flat features).
func (b *BatchNorm) split(x *Tensor) (n, hw int) {
	if (len(x.Shape) != 2 && len(x.Shape) != 4) || x.Shape[1] != b.C {
		panic(fmt.Sprintf("nn: batchnorm over %d channels got a batch of shape %v", b.C, x.Shape))
	}
	return x.Batch(), x.SampleLen() / b.C
}

func (b *BatchNorm) Forward(ctx *Context, x *Tensor) (*Tensor, any) {
	n, hw := b.split(x)
	C := b.C
	y := NewTensor(x.Shape...)
	gamma, beta := b.Gamma.Value.Data, b.Beta.Value.Data
	if !ctx.Training {
		mean, vr := b.Mean.Value.Data, b.Var.Value.Data
		parallelFor(C, grain(n*hw), func(lo, hi int) {
			for c := lo; c < hi; c++ {
				inv := 1 / math.Sqrt(float64(vr[c])+b.Epsilon)
				scale := float32(float64(gamma[c]) * inv)
				shift := float32(float64(beta[c]) - float64(mean[c])*float64(gamma[c])*inv)
				for s := 0; s < n; s++ {
					off := (s*C + c) * hw
					src, dst := x.Data[off:off+hw], y.Data[off:off+hw]
					for i, v := range src {
						dst[i] = v*scale + shift
					}
				}
			}
		})
		return y, nil
	}
	xhat := NewTensor(x.Shape...)
	invStd := make([]float64, C)
	m := float64(n * hw)
	rMean, rVar := b.Mean.Value.Data, b.Var.Value.Data
	mom := b.Momentum
	// One channel per item: each goroutine owns its channels' statistics.
	parallelFor(C, grain(n*hw), func(lo, hi int) {
		for c := lo; c < hi; c++ {
			// Two passes in float64: the one-pass E[x²]−E[x]² loses the
			// variance to cancellation when the mean is large.
			var sum float64
			for s := 0; s < n; s++ {
				off := (s*C + c) * hw
				for _, v := range x.Data[off : off+hw] {
					sum += float64(v)
				}
			}
			mu := sum / m
			var ss float64
			for s := 0; s < n; s++ {
				off := (s*C + c) * hw
				for _, v := range x.Data[off : off+hw] {
					d := float64(v) - mu
					ss += d * d
				}
			}
			vb := ss / m
			inv := 1 / math.Sqrt(vb+b.Epsilon)
			invStd[c] = inv
			fmu, finv, g, bt := float32(mu), float32(inv), gamma[c], beta[c]
			for s := 0; s < n; s++ {
				off := (s*C + c) * hw
				src, xh, dst := x.Data[off:off+hw], xhat.Data[off:off+hw], y.Data[off:off+hw]
				for i, v := range src {
					h := (v - fmu) * finv
					xh[i] = h
					dst[i] = g*h + bt
				}
			}
			rMean[c] = float32((1-mom)*float64(rMean[c]) + mom*mu)
			// One value per channel says nothing about the variance (the
			// unbiased estimate divides by zero; PyTorch refuses such a
			// batch), so the running variance keeps its value.
			if m > 1 {
				rVar[c] = float32((1-mom)*float64(rVar[c]) + mom*ss/(m-1))
			}
		}
	})
	return y, &bnCache{xhat: xhat, invStd: invStd}
}

// Backward is the batch-statistics gradient: with M values per channel,
//
//	dx = γ/σ · (dy − mean(dy) − x̂·mean(dy·x̂))
//
// since the batch mean and variance depend on every input.
func (b *BatchNorm) Backward(cache any, dy *Tensor, needInput bool) *Tensor {
	bc := cache.(*bnCache)
	n, hw := b.split(dy)
	C := b.C
	m := float64(n * hw)
	var dx *Tensor
	if needInput {
		dx = NewTensor(dy.Shape...)
	}
	gamma, dGamma, dBeta := b.Gamma.Value.Data, b.Gamma.Grad.Data, b.Beta.Grad.Data
	parallelFor(C, grain(n*hw), func(lo, hi int) {
		for c := lo; c < hi; c++ {
			var sdy, sdyx float64
			for s := 0; s < n; s++ {
				off := (s*C + c) * hw
				xh := bc.xhat.Data[off : off+hw]
				for i, g := range dy.Data[off : off+hw] {
					sdy += float64(g)
					sdyx += float64(g) * float64(xh[i])
				}
			}
			dGamma[c] += float32(sdyx)
			dBeta[c] += float32(sdy)
			if dx == nil {
				continue
			}
			k := float32(float64(gamma[c]) * bc.invStd[c])
			mdy, mdyx := float32(sdy/m), float32(sdyx/m)
			for s := 0; s < n; s++ {
				off := (s*C + c) * hw
				xh, g, d := bc.xhat.Data[off:off+hw], dy.Data[off:off+hw], dx.Data[off:off+hw]
				xh, g = xh[:len(d)], g[:len(d)] // bounds checks out of the loop
				for i := range d {
					d[i] = k * (g[i] - mdy - xh[i]*mdyx)
				}
			}
		}
	})
	return dx
}
