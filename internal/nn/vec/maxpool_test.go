package vec

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestMaxPoolMatchesGo checks the vector 2×2 max pooling against the Go
// loop bit for bit, argmax included: ties (repeated values), NaNs in any
// of the four places, ±0 and infinities, with and without argmax, on row
// lengths with and without a tail.
func TestMaxPoolMatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	special := []float32{float32(math.NaN()), float32(math.Copysign(0, -1)), 0, float32(math.Inf(1)), float32(math.Inf(-1)), 1, 1}
	for _, n := range []int{1, 7, 8, 9, 14, 16, 33} {
		for trial := range 20 {
			w := 2*n + trial%3
			r0, r1 := make([]float32, w), make([]float32, w)
			for i := range w {
				r0[i], r1[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
				if rng.IntN(3) == 0 {
					r0[i] = special[rng.IntN(len(special))]
				}
				if rng.IntN(3) == 0 {
					r1[i] = special[rng.IntN(len(special))]
				}
			}
			base := 2 * trial * w
			got, want := make([]float32, n), make([]float32, n)
			gotAM, wantAM := make([]int32, n), make([]int32, n)
			MaxPool2x2Row(r0, r1, got, gotAM, base, w)
			maxPool2x2Go(r0, r1, want, wantAM, base, w)
			for j := range n {
				if math.Float32bits(got[j]) != math.Float32bits(want[j]) || gotAM[j] != wantAM[j] {
					t.Fatalf("n=%d output %d of %v / %v: %v at %d, want %v at %d", n, j, r0[2*j:2*j+2], r1[2*j:2*j+2], got[j], gotAM[j], want[j], wantAM[j])
				}
			}
			noAM := make([]float32, n)
			MaxPool2x2Row(r0, r1, noAM, nil, base, w)
			for j := range n {
				if math.Float32bits(noAM[j]) != math.Float32bits(want[j]) {
					t.Fatalf("n=%d output %d without argmax: %v, want %v", n, j, noAM[j], want[j])
				}
			}
		}
	}
}

func BenchmarkMaxPool2x2Row(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	r0, r1 := make([]float32, 28), make([]float32, 28)
	for i := range r0 {
		r0[i], r1[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
	}
	dst, am := make([]float32, 14), make([]int32, 14)
	b.Run("vec", func(b *testing.B) {
		for b.Loop() {
			MaxPool2x2Row(r0, r1, dst, am, 0, 28)
		}
	})
	b.Run("go", func(b *testing.B) {
		for b.Loop() {
			maxPool2x2Go(r0, r1, dst, am, 0, 28)
		}
	})
}
