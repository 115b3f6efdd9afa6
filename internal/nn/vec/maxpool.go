package vec

import "fmt"

// maxPool2x2Go pools one output row of 2×2 windows at stride 2: dst[j] is
// the maximum of r0[2j], r0[2j+1], r1[2j], r1[2j+1] — the first of them
// in that order on ties, and a NaN if there is one (the first NaN) — and,
// if am is not nil, am[j] = base + its place (2j, 2j+1, w+2j or w+2j+1).
func maxPool2x2Go(r0, r1, dst []float32, am []int32, base, w int) {
	for j := range dst {
		c := 2 * j
		best, at := r0[c], c
		if v := r0[c+1]; v > best || (v != v && best == best) {
			best, at = v, c+1
		}
		if v := r1[c]; v > best || (v != v && best == best) {
			best, at = v, w+c
		}
		if v := r1[c+1]; v > best || (v != v && best == best) {
			best, at = v, w+c+1
		}
		dst[j] = best
		if am != nil {
			am[j] = int32(base + at)
		}
	}
}

func checkMaxPool(r0, r1, dst []float32, am []int32) {
	if len(r0) < 2*len(dst) || len(r1) < 2*len(dst) || (am != nil && len(am) < len(dst)) {
		panic(fmt.Sprintf("vec: MaxPool2x2Row of %d outputs from rows of %d and %d (argmax %d)", len(dst), len(r0), len(r1), len(am)))
	}
}
