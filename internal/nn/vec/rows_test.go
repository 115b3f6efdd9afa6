package vec

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestRowsMatchGo checks CopyRows and AddRows against the Go loops bit for
// bit over widths below, at and above the vector length and strides with
// gaps, with −0, NaN and infinities in the data, and that nothing outside
// the rows is touched.
func TestRowsMatchGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	special := []float32{float32(math.Copysign(0, -1)), 0, float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))}
	fill := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(rng.NormFloat64())
			if rng.IntN(6) == 0 {
				s[i] = special[rng.IntN(len(special))]
			}
		}
		return s
	}
	same := func(a, b []float32) int {
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				return i
			}
		}
		return -1
	}
	for _, width := range []int{1, 5, 7, 8, 9, 14, 15, 16, 17, 28, 31, 64} {
		for _, rows := range []int{1, 3, 14} {
			srcStride, dstStride := width+rng.IntN(5), width+rng.IntN(5)
			src := fill((rows-1)*srcStride + width + 3)
			dst := fill((rows-1)*dstStride + width + 3)
			want := append([]float32(nil), dst...)
			got := append([]float32(nil), dst...)
			CopyRows(got, dstStride, src, srcStride, rows, width)
			copyRowsGo(want, dstStride, src, srcStride, rows, width)
			if i := same(got, want); i >= 0 {
				t.Fatalf("CopyRows width %d rows %d: element %d is %v, want %v", width, rows, i, got[i], want[i])
			}
			got, want = append(got[:0], dst...), append(want[:0], dst...)
			AddRows(got, dstStride, src, srcStride, rows, width)
			addRowsGo(want, dstStride, src, srcStride, rows, width)
			if i := same(got, want); i >= 0 {
				t.Fatalf("AddRows width %d rows %d: element %d is %v (%#x), want %v (%#x)", width, rows, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			}
		}
	}
}

func TestRowsBounds(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("AddRows past the end of dst did not panic")
		}
	}()
	AddRows(make([]float32, 20), 10, make([]float32, 100), 10, 3, 8)
}
