//go:build amd64

package gemm

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// kernel6x16 and kernel4x16 are the AVX2+FMA micro-kernels
// (kernel_amd64.s): kernelFunc on raw pointers, with the strides counted in
// float32, for h ≤ 6 and h ≤ 4 rows.
//
//go:noescape
func kernel6x16(h, kc int, a *float32, rsa, csa int, b *float32, c *float32, ldc int, alpha, beta float32)

//go:noescape
func kernel4x16(h, kc int, a *float32, rsa, csa int, b *float32, c *float32, ldc int, alpha, beta float32)

// kernelAVX2 checks the operands' bounds, which the assembly does not, and
// calls the kernel for h rows.
func kernelAVX2(h, kc int, a []float32, rsa, csa int, b []float32, c []float32, ldc int, alpha, beta float32) {
	if h < 1 || h > mr {
		panic("gemm: micro-kernel for a tile of no rows or too many")
	}
	if kc > 0 {
		_ = a[(h-1)*rsa+(kc-1)*csa]
		_ = b[kc*nr-1]
	}
	_ = c[(h-1)*ldc+nr-1]
	if h <= 4 {
		kernel4x16(h, kc, unsafe.SliceData(a), rsa, csa, unsafe.SliceData(b), unsafe.SliceData(c), ldc, alpha, beta)
		return
	}
	kernel6x16(h, kc, unsafe.SliceData(a), rsa, csa, unsafe.SliceData(b), unsafe.SliceData(c), ldc, alpha, beta)
}

//go:noescape
func kernel6x16n(tiles, kc int, a *float32, rsa, csa, astep int, b *float32, c *float32, ldc int, alpha, beta float32)

// columnAVX2 is the columnFunc of kernel6x16n.
func columnAVX2(tiles, kc int, a []float32, rsa, csa, astep int, b []float32, c []float32, ldc int, alpha, beta float32) {
	if tiles < 1 {
		return
	}
	if kc > 0 {
		_ = a[(tiles-1)*astep+(mr-1)*rsa+(kc-1)*csa]
		_ = b[kc*nr-1]
	}
	_ = c[(tiles*mr-1)*ldc+nr-1]
	kernel6x16n(tiles, kc, unsafe.SliceData(a), rsa, csa, astep, unsafe.SliceData(b), unsafe.SliceData(c), ldc, alpha, beta)
}

// The column kernel gets the start-up check that selfcheck.go gives the
// others, for the same reason: its argument offsets are not checked by
// the build.
func init() {
	if !hasAVX2Kernel() {
		return
	}
	if err := checkColumn(columnAVX2); err != nil {
		panic(fmt.Sprintf("gemm: the assembly column kernel failed its start-up check: %v; "+
			"kernel_amd64.s and the declarations in kernel_amd64.go probably disagree "+
			"(a build from a half-saved tree? go vet ./internal/nn/gemm compares them)", err))
	}
}

func bestColumn() columnFunc {
	if hasAVX2Kernel() {
		return columnAVX2
	}
	return columnGo
}

func hasAVX2Kernel() bool { return cpu.X86.HasAVX2 && cpu.X86.HasFMA }

func bestKernel() kernelFunc {
	if hasAVX2Kernel() {
		return kernelAVX2
	}
	return kernelGo
}

func bestPack() packer {
	if hasAVX2Kernel() {
		return packer{rows: rowsAVX2, panel: panelAVX2}
	}
	return packer{rows: rowsGo, panel: panelGo}
}

// rowsAVX2 is the rowsFunc of packBN16.
func rowsAVX2(kc, panels int, src []float32, ldb int, dst []float32) {
	if kc == 0 || panels == 0 {
		return
	}
	_ = src[(kc-1)*ldb+panels*nr-1]
	_ = dst[panels*kc*nr-1]
	packBN16(kc, panels, unsafe.SliceData(src), ldb, unsafe.SliceData(dst))
}

// panelAVX2 is the panelFunc of packBT8, which does 8 rows of B at a time
// and the columns in blocks of 8; the rest go through panelGo's loop.
func panelAVX2(kc, w int, src []float32, ldb int, dst []float32) {
	dst = dst[:kc*nr]
	if w == 0 {
		clear(dst)
		return
	}
	_ = src[(w-1)*ldb+kc-1]
	blocks := kc / 8
	j := 0
	if blocks > 0 {
		for ; j+8 <= w; j += 8 {
			packBT8(blocks, unsafe.SliceData(src[j*ldb:]), ldb, unsafe.SliceData(dst[j:]))
		}
	}
	for ; j < w; j++ {
		row := src[j*ldb : j*ldb+blocks*8]
		for p, v := range row {
			dst[p*nr+j] = v
		}
	}
	for j := 0; j < w; j++ {
		row := src[j*ldb+blocks*8 : j*ldb+kc]
		for p, v := range row {
			dst[(blocks*8+p)*nr+j] = v
		}
	}
	if w < nr {
		for p := 0; p < kc; p++ {
			clear(dst[p*nr+w : p*nr+nr])
		}
	}
}

// packBT8 transposes 8 rows of B into columns 0–7 of a packed panel: for
// p < 8·blocks and j < 8, dst[p·16+j] = src[j·ldb+p] (kernel_amd64.s).
//
//go:noescape
func packBT8(blocks int, src *float32, ldb int, dst *float32)

// packBN16 copies kc rows of B into panels full packed panels: for p < kc,
// q < panels and j < 16, dst[q·kc·16+p·16+j] = src[p·ldb+q·16+j]
// (kernel_amd64.s).
//
//go:noescape
func packBN16(kc, panels int, src *float32, ldb int, dst *float32)
