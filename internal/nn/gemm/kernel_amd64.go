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
