package collective

import (
	"fmt"
	"testing"
)

func BenchmarkReduce(b *testing.B) {
	best := bestReducers()
	for _, n := range []int{1 << 16, 1 << 20} {
		dst, src := make([]float32, n), make([]float32, n)
		for _, f := range []struct {
			name string
			add  func(dst, src []float32)
		}{{"go", addTo}, {"best", best.add}} {
			b.Run(fmt.Sprintf("%s/%dKiB", f.name, 4*n>>10), func(b *testing.B) {
				b.SetBytes(int64(4 * n))
				for b.Loop() {
					f.add(dst, src)
				}
			})
		}
	}
}
