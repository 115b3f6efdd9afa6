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
// links with no environment; it is equivalent to
// CGO_LDFLAGS=-lopenblas. OpenBLAS's own thread count follows
// OPENBLAS_NUM_THREADS (default: one thread per core).

// #cgo LDFLAGS: -lopenblas
import "C"

import "gonum.org/v1/netlib/blas/netlib"

// blasImpl is OpenBLAS through cgo (Debian libopenblas-dev); it never
// changes after start-up.
var blasImpl netlib.Implementation

// BLAS names the BLAS this build multiplies matrices with.
const BLAS = "openblas"
