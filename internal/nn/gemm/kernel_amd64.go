//go:build amd64

package gemm

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// kernel6x16 is the AVX2+FMA micro-kernel (kernel_amd64.s): kernelFunc on
// raw pointers, with the strides counted in float32.
//
//go:noescape
func kernel6x16(kc int, a *float32, rsa, csa int, b *float32, c *float32, ldc int, alpha, beta float32)

// kernelAVX2 checks the operands' bounds, which the assembly does not, and
// calls it.
func kernelAVX2(kc int, a []float32, rsa, csa int, b []float32, c []float32, ldc int, alpha, beta float32) {
	if kc > 0 {
		_ = a[(mr-1)*rsa+(kc-1)*csa]
		_ = b[kc*nr-1]
	}
	_ = c[(mr-1)*ldc+nr-1]
	kernel6x16(kc, unsafe.SliceData(a), rsa, csa, unsafe.SliceData(b), unsafe.SliceData(c), ldc, alpha, beta)
}

func hasAVX2Kernel() bool { return cpu.X86.HasAVX2 && cpu.X86.HasFMA }

func bestKernel() kernelFunc {
	if hasAVX2Kernel() {
		return kernelAVX2
	}
	return kernelGo
}

func bestPanel() panelFunc {
	if hasAVX2Kernel() {
		return panelAVX2
	}
	return panelGo
}

// panelAVX2 is the panelFunc of packBT16, which does the columns in blocks
// of 8; the rest go through panelGo's loop.
func panelAVX2(kc int, src []float32, ldb int, dst []float32) {
	_ = src[(nr-1)*ldb+kc-1]
	dst = dst[:kc*nr]
	blocks := kc / 8
	if blocks > 0 {
		packBT16(blocks, unsafe.SliceData(src), ldb, unsafe.SliceData(dst))
	}
	for j := 0; j < nr; j++ {
		for p := blocks * 8; p < kc; p++ {
			dst[p*nr+j] = src[j*ldb+p]
		}
	}
}

// packBT16 transposes 16 rows of B into a packed panel: for p < 8·blocks
// and j < 16, dst[p·16+j] = src[j·ldb+p] (kernel_amd64.s).
//
//go:noescape
func packBT16(blocks int, src *float32, ldb int, dst *float32)
