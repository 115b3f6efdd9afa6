package collective

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The CPU's reducers must give the Go loops' exact bits, on every length
// (the assembly does multiples of 8, the Go loop the rest), and must not
// touch dst past its length.
func TestReducersMatchGo(t *testing.T) {
	best := bestReducers()
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		src := make([]float32, n+5)
		dst := make([]float32, n+5)
		for i := range dst {
			dst[i] = float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(40)-20)))
			src[i] = float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(40)-20)))
		}
		want, got := slices.Clone(dst), slices.Clone(dst)
		addTo(want[:n], src)
		best.add(got[:n], src)
		if !slices.Equal(bits(want), bits(got)) {
			t.Fatalf("add, n=%d: differs", n)
		}
		want, got = slices.Clone(dst), slices.Clone(dst)
		addDivTo(want[:n], src, 3)
		best.addDiv(got[:n], src, 3)
		if !slices.Equal(bits(want), bits(got)) {
			t.Fatalf("addDiv, n=%d: differs", n)
		}
	}
}
