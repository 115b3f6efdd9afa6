package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// benchShapes are the products the nn engine runs (m×n×k, with the stored
// layout of A and B): a 784-256-10 MLP at batch 64 (forward x·Wᵀ, weight
// gradient dyᵀ·x, input gradient dy·W); a LeNet-style CNN on 28×28 MNIST at
// batch 64 (conv 1→32 and 32→64 channels, 5×5 kernels), both as the
// row-per-pixel im2col product (pixels × out-channels × patch) and as
// Conv2D lays it out, channel-major (forward W·cols, weight gradient
// dY·colsᵀ, input gradient Wᵀ·dY); and a square reference.
var benchShapes = []struct {
	name           string
	transA, transB bool
	m, n, k        int
}{
	{"fwd_NT_64x256x784", false, true, 64, 256, 784},
	{"dW_TN_784x256x64", true, false, 784, 256, 64},
	{"dW_TN_256x784x64", true, false, 256, 784, 64},
	{"dX_NN_64x784x256", false, false, 64, 784, 256},
	{"fc2_NT_64x10x128", false, true, 64, 10, 128},
	{"conv1_NN_12544x32x25", false, false, 12544, 32, 25},
	{"conv2_NN_3136x64x800", false, false, 3136, 64, 800},
	{"conv2_NT_3136x64x800", false, true, 3136, 64, 800},
	{"conv1fwd_NN_32x50176x25", false, false, 32, 50176, 25},
	{"conv1dW_NT_32x25x50176", false, true, 32, 25, 50176},
	{"conv1dX_TN_25x50176x32", true, false, 25, 50176, 32},
	{"conv2fwd_NN_64x12544x800", false, false, 64, 12544, 800},
	{"conv2dW_NT_64x800x12544", false, true, 64, 800, 12544},
	{"conv2dX_TN_800x12544x64", true, false, 800, 12544, 64},
	{"sq_NN_512x512x512", false, false, 512, 512, 512},
}

func BenchmarkSgemm(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range benchShapes {
		lda, ldb := s.k, s.n
		if s.transA {
			lda = s.m
		}
		if s.transB {
			ldb = s.k
		}
		a := randSlice(rng, s.m*s.k)
		bm := randSlice(rng, s.k*s.n)
		c := randSlice(rng, s.m*s.n)
		flops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
		report := func(b *testing.B) {
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		}
		impls := map[string]config{"gemm": defaultConfig()}
		one := defaultConfig()
		one.maxThreads = 1
		impls["gemm1"] = one
		for _, name := range []string{"gemm", "gemm1"} {
			cfg := impls[name]
			b.Run(fmt.Sprintf("%s/%s", s.name, name), func(b *testing.B) {
				for b.Loop() {
					sgemm(cfg, s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
				}
				report(b)
			})
		}
		b.Run(s.name+"/gonum", func(b *testing.B) {
			ta, tb := blas.NoTrans, blas.NoTrans
			if s.transA {
				ta = blas.Trans
			}
			if s.transB {
				tb = blas.Trans
			}
			var impl gonum.Implementation
			for b.Loop() {
				impl.Sgemm(ta, tb, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
			}
			report(b)
		})
	}
}
