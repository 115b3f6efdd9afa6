//go:build !amd64

package vec

// MaxPool2x2Row is maxPool2x2Go.
func MaxPool2x2Row(r0, r1, dst []float32, am []int32, base, w int) {
	checkMaxPool(r0, r1, dst, am)
	maxPool2x2Go(r0, r1, dst, am, base, w)
}
