package nn

import "gonum.org/v1/gonum/blas"

// gemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices,
// op(A) m×k, op(B) k×n, C m×n; transA/transB say whether A (k×m) and B
// (n×k) are stored transposed. It goes through the build's BLAS (blasImpl).
func gemm(transA, transB bool, m, n, k int, alpha float32, a, b []float32, beta float32, c []float32) {
	if m == 0 || n == 0 {
		return
	}
	ta, lda := blas.NoTrans, k
	if transA {
		ta, lda = blas.Trans, m
	}
	tb, ldb := blas.NoTrans, n
	if transB {
		tb, ldb = blas.Trans, k
	}
	if k == 0 {
		for i := range c[:m*n] {
			c[i] *= beta
		}
		return
	}
	blasImpl.Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, n)
}
