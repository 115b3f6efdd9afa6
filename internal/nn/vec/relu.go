package vec

// reluGo is y = max(x, 0) element by element as Go's max has it: NaN stays
// NaN (so a diverging run is still seen as one) and −0 becomes +0.
func reluGo(x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] = max(v, 0)
	}
}

// reluBackwardGo is dx = dy where x > 0, else 0 (NaN inputs pass no
// gradient). Every element of dx is written.
func reluBackwardGo(x, dy, dx []float32) {
	dy, dx = dy[:len(x)], dx[:len(x)]
	for i, v := range x {
		if v > 0 {
			dx[i] = dy[i]
		} else {
			dx[i] = 0
		}
	}
}
