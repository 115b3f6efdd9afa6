//go:build amd64

package vec

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// adamAVX updates 8·blocks elements (adam_amd64.s); the Go loop does the
// rest. AVX's sqrt and divide work on 8 floats at once where the scalar
// loop waits for each in turn: they are most of an Adam step's time.
//
//go:noescape
func adamAVX(blocks int, w, grad, mom, vel *float32, k *AdamCoef)

// Adam is the Adam update of adamGo, 8 lanes at a time where the CPU
// has AVX.
func Adam(w, g, m, v []float32, k *AdamCoef) {
	n := len(w)
	g, m, v = g[:n], m[:n], v[:n]
	blocks := 0
	if cpu.X86.HasAVX {
		blocks = n / 8
	}
	if blocks > 0 {
		adamAVX(blocks, unsafe.SliceData(w), unsafe.SliceData(g), unsafe.SliceData(m), unsafe.SliceData(v), k)
	}
	if rest := blocks * 8; rest < n {
		adamGo(w[rest:], g[rest:], m[rest:], v[rest:], k)
	}
}
