//go:build !amd64

package vec

// ReLU is y = max(x, 0) (reluGo).
func ReLU(x, y []float32) { reluGo(x, y) }

// ReLUBackward is dx = dy where x > 0, else 0 (reluBackwardGo).
func ReLUBackward(x, dy, dx []float32) { reluBackwardGo(x, dy, dx) }
