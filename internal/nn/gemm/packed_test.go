package gemm

import (
	"math/rand/v2"
	"testing"
)

// TestSgemmPackedIdentical checks that a product with B packed once is
// Sgemm's, to the bit, for every kernel and blocking, both layouts of B,
// any number of goroutines (cut along m, along n, and the shapes Sgemm
// cuts along k), edges and padded strides included; and that one
// PackedB serves many products.
func TestSgemmPackedIdentical(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	shapes := [][3]int{{1, 512, 2048}, {7, 10, 512}, {32, 512, 2048}, {300, 45, 70}, {5, 33, 9}, {3, 7, 9000}, {1, 1, 1}, {0, 5, 5}, {4, 5, 0}}
	for kname, kern := range kernels() {
		for cname, base := range configs(kern) {
			for _, s := range shapes {
				for _, transB := range []bool{false, true} {
					m, n, k := s[0], s[1], s[2]
					pad := rng.IntN(3)
					ldb := max(n+pad, 1)
					if transB {
						ldb = max(k+pad, 1)
					}
					rows := k
					if transB {
						rows = n
					}
					b := randSlice(rng, max(rows*ldb, 1))
					pb := packB(base, transB, k, n, b, ldb)
					for _, threads := range []int{1, 2, 3} {
						cfg := base
						cfg.maxThreads = threads
						if cname == "default" {
							cfg.minWork = 1 << 10
						}
						for rep := range 2 { // the same PackedB, new A and C
							lda, ldc := max(k+pad, 1), max(n+pad, 1)
							a := randSlice(rng, max(m*lda, 1))
							c0 := randSlice(rng, max(m*ldc, 1))
							want := append([]float32(nil), c0...)
							sgemm(cfg, false, transB, m, n, k, 1.5, a, lda, b, ldb, 0.5, want, ldc)
							got := append([]float32(nil), c0...)
							sgemmPacked(cfg, m, 1.5, a, lda, pb, 0.5, got, ldc)
							for i := range got {
								if got[i] != want[i] {
									t.Fatalf("%s/%s %v transB=%v threads=%d rep %d: C[%d] = %g packed, %g by Sgemm",
										kname, cname, s, transB, threads, rep, i, got[i], want[i])
								}
							}
						}
					}
				}
			}
		}
	}
}

func TestSgemmPackedPanics(t *testing.T) {
	pb := PackB(false, 3, 4, make([]float32, 12), 4)
	defer func() {
		if recover() == nil {
			t.Fatal("an A too short for its shape did not panic")
		}
	}()
	SgemmPacked(2, 1, make([]float32, 5), 3, pb, 0, make([]float32, 8), 4)
}
