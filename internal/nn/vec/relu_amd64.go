//go:build amd64

package vec

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// reluAVX and reluBackwardAVX do 8·blocks elements (relu_amd64.s). The
// scalar backward loop branches on each sign, and the branch is as good
// as random on real activations: masks cost a fraction of it.
//
//go:noescape
func reluAVX(blocks int, x, y *float32)

//go:noescape
func reluBackwardAVX(blocks int, x, dy, dx *float32)

// ReLU is y = max(x, 0) (reluGo), 8 lanes at a time where the CPU has AVX.
func ReLU(x, y []float32) {
	y = y[:len(x)]
	blocks := 0
	if cpu.X86.HasAVX {
		blocks = len(x) / 8
	}
	if blocks > 0 {
		reluAVX(blocks, unsafe.SliceData(x), unsafe.SliceData(y))
	}
	if rest := blocks * 8; rest < len(x) {
		reluGo(x[rest:], y[rest:])
	}
}

// ReLUBackward is dx = dy where x > 0, else 0 (reluBackwardGo), 8 lanes
// at a time where the CPU has AVX.
func ReLUBackward(x, dy, dx []float32) {
	dy, dx = dy[:len(x)], dx[:len(x)]
	blocks := 0
	if cpu.X86.HasAVX {
		blocks = len(x) / 8
	}
	if blocks > 0 {
		reluBackwardAVX(blocks, unsafe.SliceData(x), unsafe.SliceData(dy), unsafe.SliceData(dx))
	}
	if rest := blocks * 8; rest < len(x) {
		reluBackwardGo(x[rest:], dy[rest:], dx[rest:])
	}
}
