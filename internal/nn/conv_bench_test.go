package nn

import (
	"fmt"
	"testing"
)

// BenchmarkConv2D times the convolutions of an MNIST-sized CNN on a batch
// of 64: the first layer (1→32 channels, 5×5, 28×28) and the second
// (32→64, 5×5, 14×14), both with "same" padding. gflop/s counts the
// multiply-adds of the convolution itself (2 flops each) for the pass
// timed; backward does two such products when it needs dx, one without.
func BenchmarkConv2D(b *testing.B) {
	for _, c := range []struct{ n, inC, outC, hw, k, p int }{
		{64, 1, 32, 28, 5, 2},
		{64, 32, 64, 14, 5, 2},
	} {
		l := NewConv2D("c", c.inC, c.outC, c.k, 1, c.p, HeNormal, testRNG())
		x := randTensor(testRNG(), c.n, c.inC, c.hw, c.hw)
		shape, err := l.OutShape([]int{c.inC, c.hw, c.hw})
		if err != nil {
			b.Fatal(err)
		}
		flops := 2 * float64(c.n*Volume(shape)*c.inC*c.k*c.k)
		name := fmt.Sprintf("%dx%dx%dx%d_%d_k%d", c.n, c.inC, c.hw, c.hw, c.outC, c.k)
		report := func(b *testing.B, products float64) {
			b.ReportMetric(products*flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "gflop/s")
		}
		b.Run(name+"/forward", func(b *testing.B) {
			for b.Loop() {
				l.Forward(Infer(), x)
			}
			report(b, 1)
		})
		ctx := &Context{Training: true}
		y, cache := l.Forward(ctx, x)
		for _, needInput := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/backward_dx=%v", name, needInput), func(b *testing.B) {
				for b.Loop() {
					l.Backward(cache, y, needInput)
				}
				report(b, map[bool]float64{false: 1, true: 2}[needInput])
			})
		}
	}
}

// BenchmarkIm2col times the layout work of one sample of LeNet's second
// convolution (16 channels of 14×14, 5×5, padding 2), which runs twice per
// sample and step (forward, and rebuilt in backward) besides col2im.
func BenchmarkIm2col(b *testing.B) {
	g := convGeom{n: 1, c: 16, h: 14, w: 14, k: 5, s: 1, p: 2}
	g.oh, g.ow = windows(g.h, g.k, g.s, g.p), windows(g.w, g.k, g.s, g.p)
	x := make([]float32, g.c*g.h*g.w)
	cols := make([]float32, g.c*g.k*g.k*g.oh*g.ow)
	pad := make([]float32, g.padded())
	b.Run("im2col", func(b *testing.B) {
		for b.Loop() {
			im2col(&g, x, cols, pad)
		}
	})
	b.Run("col2im", func(b *testing.B) {
		for b.Loop() {
			col2im(&g, cols, x)
		}
	})
}
