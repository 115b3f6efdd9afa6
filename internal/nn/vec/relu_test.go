package vec

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestReLUMatchesGo checks the vector ReLU and its backward pass against
// the Go loops bit for bit, with NaN, ±0, ±Inf and denormals among the
// inputs and lengths with and without a tail.
func TestReLUMatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	special := []float32{float32(math.NaN()), float32(math.Copysign(0, -1)), 0, float32(math.Inf(1)), float32(math.Inf(-1)), 1e-45, -1e-45}
	for _, n := range []int{1, 7, 8, 9, 100, 1001} {
		x, dy := make([]float32, n), make([]float32, n)
		for i := range x {
			x[i], dy[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			if i%3 == 0 {
				x[i] = special[rng.IntN(len(special))]
			}
		}
		y1, y2 := make([]float32, n), make([]float32, n)
		ReLU(x, y1)
		reluGo(x, y2)
		dx1, dx2 := make([]float32, n), make([]float32, n)
		for i := range dx1 {
			dx1[i], dx2[i] = 7, 7 // every element must be written
		}
		ReLUBackward(x, dy, dx1)
		reluBackwardGo(x, dy, dx2)
		for i := range x {
			if math.Float32bits(y1[i]) != math.Float32bits(y2[i]) {
				t.Fatalf("n=%d: relu(%v) = %v (%#x), Go %v (%#x)", n, x[i], y1[i], math.Float32bits(y1[i]), y2[i], math.Float32bits(y2[i]))
			}
			if math.Float32bits(dx1[i]) != math.Float32bits(dx2[i]) {
				t.Fatalf("n=%d: relu'(%v)·%v = %v, Go %v", n, x[i], dy[i], dx1[i], dx2[i])
			}
		}
		if n > 0 && !math.IsNaN(float64(y1[0])) && x[0] != x[0] {
			t.Fatal("NaN input did not stay NaN")
		}
	}
}

func BenchmarkReLU(b *testing.B) {
	n := 64 * 16 * 28 * 28 // LeNet's first activation, batch 64
	rng := rand.New(rand.NewPCG(1, 2))
	x, dy, y := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range x {
		x[i], dy[i] = float32(rng.NormFloat64()), 1
	}
	b.Run("forward", func(b *testing.B) {
		for b.Loop() {
			ReLU(x, y)
		}
	})
	b.Run("backward", func(b *testing.B) {
		for b.Loop() {
			ReLUBackward(x, dy, y)
		}
	})
	b.Run("backward-go", func(b *testing.B) {
		for b.Loop() {
			reluBackwardGo(x, dy, y)
		}
	})
}
