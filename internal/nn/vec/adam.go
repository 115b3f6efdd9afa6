// Package vec holds the engine's element-wise kernels that pay for
// assembly: each has a Go reference that the assembly matches bit for bit
// (tests compare them), and runs the Go code where the CPU lacks the
// instructions. It is a package of its own because package nn links cgo
// in its OpenBLAS build, and a cgo package cannot hold Go assembly.
package vec

import "math"

// AdamCoef are one Adam step's per-tensor constants, all float32 so the
// assembly and the Go loop compute the same thing: OneMinusB1 is 1−β1
// rounded to float32 once, as the Go expression (1-fb1) would be. The
// assembly reads the fields at fixed offsets, 4 bytes apart in this order
// (TestAdamCoefLayout holds it to that).
type AdamCoef struct {
	Decay, L2        float32 // decoupled decay factor (1 or 1−lr·wd); L2 coefficient
	B1, OneMinusB1   float32
	B2, OneMinusB2   float32
	StepSize, SqrtC2 float32 // lr/(1−β1ᵗ); √(1−β2ᵗ)
	Eps              float32
}

// adamGo is the Adam update of w, m, v from g, element by element:
//
//	m ← β1·m + (1−β1)·g'   v ← β2·v + (1−β2)·g'·g'   with g' = g + l2·w
//	w ← decay·w − stepSize·m / (√v/√c2 + ε)
//
// Every product is rounded to float32 on its own (the conversions forbid
// the compiler to fuse a multiply and an add), which is what the
// assembly's separate multiply and add instructions do, so the two agree
// bit for bit.
func adamGo(w, g, m, v []float32, k *AdamCoef) {
	g, m, v = g[:len(w)], m[:len(w)], v[:len(w)]
	for i := range w {
		wi := float32(w[i] * k.Decay)
		gi := g[i] + float32(k.L2*w[i])
		mi := float32(k.B1*m[i]) + float32(k.OneMinusB1*gi)
		vi := float32(k.B2*v[i]) + float32(float32(k.OneMinusB2*gi)*gi)
		m[i], v[i] = mi, vi
		// √ in float64 then rounded is the correctly rounded float32 √
		// (VSQRTPS's result).
		d := float32(float32(math.Sqrt(float64(vi)))/k.SqrtC2) + k.Eps
		w[i] = wi - float32(k.StepSize*mi)/d
	}
}
