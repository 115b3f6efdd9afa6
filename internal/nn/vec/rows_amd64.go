//go:build amd64

package vec

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// copyRowsAVX and addRowsAVX handle rows of at least 8 floats
// (rows_amd64.s). The convolution's im2col and col2im move rows of 10–30
// floats (the width of a feature map), thousands per image: a call to
// memmove or a scalar loop per row cost more than the data.
//
//go:noescape
func copyRowsAVX(dst *float32, dstStride int, src *float32, srcStride, rows, width int)

//go:noescape
func addRowsAVX(dst *float32, dstStride int, src *float32, srcStride, rows, width int)

// CopyRows copies rows rows of width floats from src (a row every
// srcStride floats) to dst (every dstStride).
func CopyRows(dst []float32, dstStride int, src []float32, srcStride, rows, width int) {
	checkRows("CopyRows", dst, dstStride, src, srcStride, rows, width)
	if rows <= 0 || width <= 0 {
		return
	}
	if width < 8 || !cpu.X86.HasAVX {
		copyRowsGo(dst, dstStride, src, srcStride, rows, width)
		return
	}
	copyRowsAVX(unsafe.SliceData(dst), dstStride, unsafe.SliceData(src), srcStride, rows, width)
}

// AddRows adds rows rows of width floats of src (a row every srcStride
// floats) onto dst (every dstStride).
func AddRows(dst []float32, dstStride int, src []float32, srcStride, rows, width int) {
	checkRows("AddRows", dst, dstStride, src, srcStride, rows, width)
	if rows <= 0 || width <= 0 {
		return
	}
	if width < 8 || !cpu.X86.HasAVX {
		addRowsGo(dst, dstStride, src, srcStride, rows, width)
		return
	}
	addRowsAVX(unsafe.SliceData(dst), dstStride, unsafe.SliceData(src), srcStride, rows, width)
}
