package vec

import (
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestAdamKernelMatchesGo checks the vector Adam update (assembly where
// the CPU has AVX) against adamGo bit for bit, on lengths with and
// without a tail, with L2 and with decoupled decay, including zero and
// huge gradients.
func TestAdamKernelMatchesGo(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 7, 8, 9, 64, 1000, 4099} {
		for _, k := range []AdamCoef{
			{Decay: 1, L2: 0.01, B1: 0.9, OneMinusB1: 1 - float32(0.9), B2: 0.999, OneMinusB2: 1 - float32(0.999), StepSize: 1e-3 / 0.1, SqrtC2: float32(math.Sqrt(0.001)), Eps: 1e-8},
			{Decay: 1 - 1e-4, L2: 0, B1: 0.8, OneMinusB1: 1 - float32(0.8), B2: 0.99, OneMinusB2: 1 - float32(0.99), StepSize: 0.05, SqrtC2: 0.5, Eps: 1e-6},
		} {
			w, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
			for i := range w {
				w[i], g[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64()*math.Pow(10, float64(rng.IntN(9)-4)))
				m[i], v[i] = float32(rng.NormFloat64()*0.1), float32(rng.Float64()*0.01)
				if i%5 == 0 {
					g[i] = 0
				}
			}
			w2, m2, v2 := append([]float32(nil), w...), append([]float32(nil), m...), append([]float32(nil), v...)
			Adam(w, g, m, v, &k)
			adamGo(w2, g, m2, v2, &k)
			for i := range w {
				if math.Float32bits(w[i]) != math.Float32bits(w2[i]) || m[i] != m2[i] || v[i] != v2[i] {
					t.Fatalf("n=%d element %d: kernel w,m,v = %v,%v,%v, Go %v,%v,%v", n, i, w[i], m[i], v[i], w2[i], m2[i], v2[i])
				}
			}
		}
	}
}

func BenchmarkAdamUpdate(b *testing.B) {
	n := 235146 // the MLP 784-256-128-10
	w, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range g {
		g[i], v[i] = 0.01, 0.001
	}
	k := &AdamCoef{Decay: 1, B1: 0.9, OneMinusB1: 0.1, B2: 0.999, OneMinusB2: 0.001, StepSize: 1e-3, SqrtC2: 0.03, Eps: 1e-8}
	b.Run("kernel", func(b *testing.B) {
		for b.Loop() {
			Adam(w, g, m, v, k)
		}
	})
	b.Run("go", func(b *testing.B) {
		for b.Loop() {
			adamGo(w, g, m, v, k)
		}
	})
}

// TestAdamCoefLayout pins the field offsets adam_amd64.s reads.
func TestAdamCoefLayout(t *testing.T) {
	var k AdamCoef
	got := []uintptr{unsafe.Offsetof(k.Decay), unsafe.Offsetof(k.L2), unsafe.Offsetof(k.B1), unsafe.Offsetof(k.OneMinusB1),
		unsafe.Offsetof(k.B2), unsafe.Offsetof(k.OneMinusB2), unsafe.Offsetof(k.StepSize), unsafe.Offsetof(k.SqrtC2), unsafe.Offsetof(k.Eps)}
	for i, off := range got {
		if off != uintptr(4*i) {
			t.Fatalf("field %d of AdamCoef at offset %d, the assembly reads it at %d", i, off, 4*i)
		}
	}
}
