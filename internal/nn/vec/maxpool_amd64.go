//go:build amd64

package vec

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// maxPool2x2AVX2 does 8·blocks outputs (maxpool_amd64.s); am may be nil.
// The scalar loop's data-dependent branches mispredict on real
// activations: it spent ~4 ns per input element.
//
//go:noescape
func maxPool2x2AVX2(blocks int, r0, r1, dst *float32, am *int32, base, w int)

// MaxPool2x2Row pools one output row of 2×2 windows at stride 2 from the
// input rows r0 and r1 (maxPool2x2Go), 8 outputs at a time where the CPU
// has AVX2; am, if not nil, gets base + each maximum's place.
func MaxPool2x2Row(r0, r1, dst []float32, am []int32, base, w int) {
	checkMaxPool(r0, r1, dst, am)
	blocks := 0
	if cpu.X86.HasAVX2 {
		blocks = len(dst) / 8
	}
	if blocks > 0 {
		var amp *int32
		if am != nil {
			amp = unsafe.SliceData(am)
		}
		maxPool2x2AVX2(blocks, unsafe.SliceData(r0), unsafe.SliceData(r1), unsafe.SliceData(dst), amp, base, w)
	}
	done := blocks * 8
	if blocks > 0 && done < len(dst) {
		// Redo the row's last 8 outputs as one more block: the overlap
		// is computed and stored again with the same values.
		at := len(dst) - 8
		var amp *int32
		if am != nil {
			amp = &am[at]
		}
		maxPool2x2AVX2(1, &r0[2*at], &r1[2*at], &dst[at], amp, base+2*at, w)
		return
	}
	if done < len(dst) {
		var rest []int32
		if am != nil {
			rest = am[done:]
		}
		maxPool2x2Go(r0[2*done:], r1[2*done:], dst[done:], rest, base+2*done, w)
	}
}
