package nn

import "fmt"

// Dropout zeroes each input with probability Rate while training and
// scales the survivors by 1/(1−Rate) ("inverted" dropout, as PyTorch), so
// inference is the identity and needs no rescaling.
type Dropout struct {
	Rate float64
	recycling
}

// NewDropout makes a dropout layer; Build has checked rate is in [0, 1).
func NewDropout(rate float64) *Dropout { return &Dropout{Rate: rate, recycling: newRecycling()} }

func (d *Dropout) Kind() string                     { return "dropout" }
func (d *Dropout) Params() []*Param                 { return nil }
func (d *Dropout) OutShape(in []int) ([]int, error) { return in, nil }

// dropoutCache is the mask: 0 for a dropped input, 1/(1−Rate) for a kept
// one. A nil mask (rate 0) passes gradients through unchanged.
type dropoutCache struct{ mask []float32 }

// Forward returns x itself when nothing is dropped (inference, rate 0);
// layers never write to their input or output, so sharing is safe.
func (d *Dropout) Forward(ctx *Context, x *Tensor) (*Tensor, any) {
	if !ctx.Training {
		return x, nil
	}
	if d.Rate == 0 {
		return x, dropoutCache{}
	}
	if ctx.RNG == nil {
		panic("nn: dropout in training needs Context.RNG")
	}
	if d.Rate < 0 || d.Rate >= 1 {
		panic(fmt.Sprintf("nn: dropout rate %g is outside [0, 1)", d.Rate))
	}
	// The draws stay on this goroutine, in order, so a seeded RNG gives the
	// same mask however many cores there are.
	scale := float32(1 / (1 - d.Rate))
	mask := make([]float32, len(x.Data))
	y := d.output(true, x.Shape...) // dropped elements stay 0
	for i, v := range x.Data {
		if ctx.RNG.Float64() >= d.Rate {
			mask[i] = scale
			y.Data[i] = v * scale
		}
	}
	return y, dropoutCache{mask: mask}
}

func (d *Dropout) Backward(cache any, dy *Tensor, needInput bool) *Tensor {
	if !needInput {
		return nil
	}
	mask := cache.(dropoutCache).mask
	if mask == nil {
		return dy
	}
	dx := d.inputGrad(false, dy.Shape...) // every element written
	for i, m := range mask {
		dx.Data[i] = dy.Data[i] * m
	}
	return dx
}
