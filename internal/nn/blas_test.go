package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestGemm checks gemm against a naive float64 product for every transpose
// combination and odd sizes (which exercise the BLAS kernels' edge
// handling). It runs in both builds, so gonum and OpenBLAS are held to the
// same results.
func TestGemm(t *testing.T) {
	// The last is past the OpenBLAS build's row split (2^22 multiply-adds).
	sizes := [][3]int{{1, 1, 1}, {3, 5, 7}, {7, 13, 5}, {17, 1, 9}, {1, 19, 4}, {67, 45, 33}, {130, 71, 129}, {131, 173, 211}}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sz := range sizes {
		m, n, k := sz[0], sz[1], sz[2]
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				t.Run(fmt.Sprintf("%dx%dx%d/tA=%v/tB=%v", m, n, k, ta, tb), func(t *testing.T) {
					a, b, c := randSlice(rng, m*k), randSlice(rng, k*n), randSlice(rng, m*n)
					const alpha, beta = 0.75, -0.5
					want := make([]float64, m*n)
					for i := range m {
						for j := range n {
							var s float64
							for p := range k {
								av := a[i*k+p] // A stored m×k
								if ta {
									av = a[p*m+i] // A stored k×m
								}
								bv := b[p*n+j] // B stored k×n
								if tb {
									bv = b[j*k+p] // B stored n×k
								}
								s += float64(av) * float64(bv)
							}
							want[i*n+j] = alpha*s + beta*float64(c[i*n+j])
						}
					}
					gemm(ta, tb, m, n, k, alpha, a, b, beta, c)
					for i, w := range want {
						// Each term is O(1); float32 accumulation of k of them
						// stays well within 1e-5·k.
						if d := math.Abs(float64(c[i]) - w); d > 1e-5*float64(k+1) {
							t.Fatalf("%s: c[%d] = %g, want %g (|diff| %g)", BLAS, i, c[i], w, d)
						}
					}
				})
			}
		}
	}
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// TestGemmBetaZeroOverwrites checks that beta = 0 ignores C's old
// contents, NaN included, as BLAS specifies: the convolution hands gemm
// recycled buffers holding whatever the last call left there.
func TestGemmBetaZeroOverwrites(t *testing.T) {
	for _, sz := range [][3]int{{3, 5, 7}, {64, 96, 80}} {
		m, n, k := sz[0], sz[1], sz[2]
		rng := rand.New(rand.NewPCG(3, 3))
		a, b := randSlice(rng, m*k), randSlice(rng, k*n)
		want := make([]float32, m*n)
		gemm(false, false, m, n, k, 1, a, b, 0, want)
		c := make([]float32, m*n)
		for i := range c {
			c[i] = float32(math.NaN())
		}
		gemm(false, false, m, n, k, 1, a, b, 0, c)
		for i := range c {
			if c[i] != want[i] {
				t.Fatalf("%s %dx%dx%d: c[%d] = %g after beta 0 over NaN, want %g", BLAS, m, n, k, i, c[i], want[i])
			}
		}
	}
}
