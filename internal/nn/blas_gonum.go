//go:build !openblas

package nn

import "gonum.org/v1/gonum/blas/gonum"

// blasImpl is gonum's pure-Go BLAS; it never changes after start-up.
var blasImpl gonum.Implementation

// BLAS names the BLAS this build multiplies matrices with.
const BLAS = "gonum"
