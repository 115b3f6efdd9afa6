//go:build openblas

package nn

// netlib's cgo bindings declare the CBLAS functions but no library to link
// them from (it leaves the choice to CGO_LDFLAGS), so a plain
// `go build -tags openblas` failed with undefined cblas_* references. This
// package names Debian's libopenblas (libopenblas-dev; the .so carries the
// CBLAS interface, no separate libcblas is needed) itself, so
//
//	go test -tags openblas ./internal/nn/...
//
// links with no environment; it is equivalent to CGO_LDFLAGS=-lopenblas.

// #cgo LDFLAGS: -lopenblas
// void openblas_set_num_threads(int);
import "C"

import (
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/netlib/blas/netlib"
)

// blasImpl is OpenBLAS through cgo (Debian libopenblas-dev); it never
// changes after start-up.
var blasImpl = newSplitBLAS()

// BLAS names the BLAS this build multiplies matrices with.
const BLAS = "openblas"

// splitBLAS runs OpenBLAS single-threaded and splits each large product's
// rows among goroutines itself. OpenBLAS's own threads spin between
// calls; on a machine whose cores the engine's goroutines (im2col,
// element-wise layers, the optimiser) also use, they took the cores from
// each other (measured: a fifth of the CPU in OpenBLAS's idle loop, the
// CNN slower than the pure-Go build).
type splitBLAS struct{ netlib.Implementation }

func newSplitBLAS() splitBLAS {
	C.openblas_set_num_threads(1)
	return splitBLAS{}
}

// splitMin is the multiply-adds below which a product stays on one
// goroutine: starting another costs more than it saves.
const splitMin = 1 << 22

func (s splitBLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	workers := min(runtime.GOMAXPROCS(0), m)
	if m*n*k < splitMin || workers < 2 {
		s.Implementation.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	// Rows lo..hi of C need rows lo..hi of op(A): A's rows, or its
	// columns when transposed (same leading dimension either way).
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*m/workers, (w+1)*m/workers
		off := lo * lda
		if tA != blas.NoTrans {
			off = lo
		}
		wg.Go(func() {
			s.Implementation.Sgemm(tA, tB, hi-lo, n, k, alpha, a[off:], lda, b, ldb, beta, c[lo*ldc:], ldc)
		})
	}
	wg.Wait()
}

// packedWeights: OpenBLAS packs inside every call; Dense.Freeze keeps
// nothing and Forward calls it as before.
type packedWeights = *struct{}

func packWeights([]float32, int, int) packedWeights { return nil }

func packedBytes(packedWeights) int64 { return 0 }

func gemmPacked(int, []float32, packedWeights, float32, []float32) {
	panic("nn: no packed weights with OpenBLAS")
}
