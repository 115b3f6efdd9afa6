// Package nn is hpcml's neural-network engine: float32 tensors, layers with
// forward and backward passes, losses, optimisers and learning-rate
// schedules, in pure Go: matrix products go through package gemm (an
// AVX2/FMA kernel, pure Go elsewhere), or OpenBLAS with -tags openblas.
//
// Layers are stateless apart from their parameters: Forward returns the
// output and a cache that Backward consumes, so one model can serve many
// concurrent inference calls while a training step holds its own caches.
// Shapes carry the batch as their first dimension; images are NCHW.
package nn
