package nn

import (
	"fmt"
	"math/rand/v2"
)

// Dense is a fully connected layer, y = x·Wᵀ + b, with W stored out×in as
// PyTorch and ONNX's Gemm (transB=1) keep it.
type Dense struct {
	In, Out int
	W, B    *Param
	recycling
	// frozen is W packed once by Freeze for inference, or nil.
	frozen packedWeights
}

// NewDense makes a Dense layer with weights drawn by init and zero bias.
func NewDense(name string, in, out int, init Init, rng *rand.Rand) *Dense {
	d := &Dense{In: in, Out: out, W: newParam(name+".weight", false, out, in), B: newParam(name+".bias", true, out), recycling: newRecycling()}
	init(d.W.Value.Data, in, out, rng)
	return d
}

func (d *Dense) Kind() string     { return "dense" }
func (d *Dense) Params() []*Param { return []*Param{d.W, d.B} }

func (d *Dense) OutShape(in []int) ([]int, error) {
	if len(in) != 1 || in[0] != d.In {
		return nil, fmt.Errorf("dense expects %d inputs, got shape %v", d.In, in)
	}
	return []int{d.Out}, nil
}

// Freeze packs W once for inference, the way every product would pack it
// again (a third of a small batch's time in a served model): Forward
// outside training then multiplies by the packed copy, with the same
// result to the bit. W must not change afterwards — it is for layers
// whose weights are fixed for their life, as an imported model's are;
// training a frozen layer panics. With OpenBLAS it does nothing.
func (d *Dense) Freeze() {
	if d.In > 0 && d.Out > 0 {
		d.frozen = packWeights(d.W.Value.Data, d.Out, d.In)
	}
}

// PackedBytes is the memory Freeze's packed copy of W takes (0 when the
// layer is not frozen).
func (d *Dense) PackedBytes() int64 { return packedBytes(d.frozen) }

func (d *Dense) Forward(ctx *Context, x *Tensor) (*Tensor, any) {
	n := x.Batch()
	y := d.output(false, n, d.Out) // every row gets the bias below
	b := d.B.Value.Data
	for i := 0; i < n; i++ {
		copy(y.Data[i*d.Out:(i+1)*d.Out], b)
	}
	if d.frozen != nil {
		if ctx.Training {
			panic("nn: training a frozen Dense layer (its packed weights would go stale)")
		}
		if n > 0 {
			gemmPacked(n, x.Data, d.frozen, 1, y.Data)
		}
		return y, nil
	}
	gemm(false, true, n, d.Out, d.In, 1, x.Data, d.W.Value.Data, 1, y.Data)
	if !ctx.Training {
		return y, nil
	}
	return y, x
}

func (d *Dense) Backward(cache any, dy *Tensor, needInput bool) *Tensor {
	x := cache.(*Tensor)
	n := x.Batch()
	gemm(true, false, d.Out, d.In, n, 1, dy.Data, x.Data, 1, d.W.Grad.Data)
	db := d.B.Grad.Data
	for i := 0; i < n; i++ {
		row := dy.Data[i*d.Out : (i+1)*d.Out]
		for j, v := range row {
			db[j] += v
		}
	}
	if !needInput {
		return nil
	}
	dx := d.inputGrad(false, x.Shape...) // beta 0: the product overwrites it
	gemm(false, false, n, d.In, d.Out, 1, dy.Data, d.W.Value.Data, 0, dx.Data)
	return dx
}
