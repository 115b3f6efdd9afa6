//go:build openblas

package nn

import "gonum.org/v1/netlib/blas/netlib"

// blasImpl is OpenBLAS through cgo (Debian libopenblas-dev); it never
// changes after start-up.
var blasImpl netlib.Implementation

// BLAS names the BLAS this build multiplies matrices with.
const BLAS = "openblas"
