package vec

import "fmt"

// checkRows panics unless rows rows of width floats fit in dst and src at
// their strides: the assembly does not check.
func checkRows(op string, dst []float32, dstStride int, src []float32, srcStride, rows, width int) {
	if rows <= 0 || width <= 0 {
		return
	}
	if width > dstStride || width > srcStride || (rows-1)*dstStride+width > len(dst) || (rows-1)*srcStride+width > len(src) {
		panic(fmt.Sprintf("vec: %s of %d rows of %d floats does not fit (dst %d at stride %d, src %d at stride %d)",
			op, rows, width, len(dst), dstStride, len(src), srcStride))
	}
}

// copyRowsGo copies rows rows of width floats from src (a row every
// srcStride floats) to dst (every dstStride).
func copyRowsGo(dst []float32, dstStride int, src []float32, srcStride, rows, width int) {
	for r := 0; r < rows; r++ {
		copy(dst[r*dstStride:r*dstStride+width], src[r*srcStride:r*srcStride+width])
	}
}

// addRowsGo adds rows rows of width floats of src (a row every srcStride
// floats) onto dst (every dstStride).
func addRowsGo(dst []float32, dstStride int, src []float32, srcStride, rows, width int) {
	for r := 0; r < rows; r++ {
		d := dst[r*dstStride : r*dstStride+width]
		s := src[r*srcStride : r*srcStride+width]
		for i, v := range s {
			d[i] += v
		}
	}
}
