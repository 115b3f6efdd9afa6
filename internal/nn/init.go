package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Init fills a weight tensor given its fan-in and fan-out.
type Init func(w []float32, fanIn, fanOut int, rng *rand.Rand)

// initializer maps a spec's init name to an Init; "" is He (Kaiming)
// normal, the standard for ReLU networks.
func initializer(name string) (Init, error) {
	switch name {
	case "", "he":
		return HeNormal, nil
	case "xavier", "glorot":
		return XavierUniform, nil
	case "lecun":
		return LeCunNormal, nil
	}
	return nil, fmt.Errorf("unknown init %q (want he, xavier or lecun)", name)
}

// HeNormal draws N(0, 2/fanIn) (He et al. 2015).
func HeNormal(w []float32, fanIn, _ int, rng *rand.Rand) {
	normal(w, math.Sqrt(2/float64(fanIn)), rng)
}

// LeCunNormal draws N(0, 1/fanIn).
func LeCunNormal(w []float32, fanIn, _ int, rng *rand.Rand) {
	normal(w, math.Sqrt(1/float64(fanIn)), rng)
}

// XavierUniform draws U(±sqrt(6/(fanIn+fanOut))) (Glorot & Bengio 2010).
func XavierUniform(w []float32, fanIn, fanOut int, rng *rand.Rand) {
	a := math.Sqrt(6 / float64(fanIn+fanOut))
	for i := range w {
		w[i] = float32((2*rng.Float64() - 1) * a)
	}
}

func normal(w []float32, std float64, rng *rand.Rand) {
	for i := range w {
		w[i] = float32(rng.NormFloat64() * std)
	}
}
