//go:build !openblas

package nn

import (
	gogemm "github.com/hpcml/hpcml/internal/nn/gemm"
	"gonum.org/v1/gonum/blas"
)

// blasImpl is the engine's own pure-Go GEMM (package gemm: packed panels and
// an AVX2+FMA assembly micro-kernel where the CPU has them, plain Go
// elsewhere); it never changes after start-up.
var blasImpl goGemm

// BLAS names the BLAS this build multiplies matrices with.
const BLAS = "go-gemm"

// goGemm gives gogemm.Sgemm the Sgemm method of gonum's blas.Float32Level3,
// which gemm in blas.go calls.
type goGemm struct{}

func (goGemm) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gogemm.Sgemm(tA != blas.NoTrans, tB != blas.NoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// packedWeights is a weight matrix packed once for inference (Dense.Freeze).
type packedWeights = *gogemm.PackedB

// packWeights packs the out×in weights w for products x·wᵀ.
func packWeights(w []float32, out, in int) packedWeights {
	return gogemm.PackB(true, in, out, w, in)
}

func packedBytes(pb packedWeights) int64 {
	if pb == nil {
		return 0
	}
	return pb.Bytes()
}

// gemmPacked computes C (m×n) = A·op(B) + beta·C, op(B) packed by packWeights.
func gemmPacked(m int, a []float32, pb packedWeights, beta float32, c []float32) {
	gogemm.SgemmPacked(m, 1, a, pb.K(), pb, beta, c, pb.N())
}
