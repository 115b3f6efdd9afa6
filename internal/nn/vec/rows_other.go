//go:build !amd64

package vec

// CopyRows copies rows rows of width floats from src (a row every
// srcStride floats) to dst (every dstStride).
func CopyRows(dst []float32, dstStride int, src []float32, srcStride, rows, width int) {
	checkRows("CopyRows", dst, dstStride, src, srcStride, rows, width)
	copyRowsGo(dst, dstStride, src, srcStride, rows, width)
}

// AddRows adds rows rows of width floats of src (a row every srcStride
// floats) onto dst (every dstStride).
func AddRows(dst []float32, dstStride int, src []float32, srcStride, rows, width int) {
	checkRows("AddRows", dst, dstStride, src, srcStride, rows, width)
	addRowsGo(dst, dstStride, src, srcStride, rows, width)
}
