package onnx

// TensorBytes is the memory the graph holds for its tensors once loaded:
// the initializers (weights) and the constants folded at load time. The
// activations of a run are not counted: they are per request.
func (g *Graph) TensorBytes() int64 {
	var n int64
	for _, v := range g.consts {
		if v != nil {
			n += 4*int64(len(v.f)) + 8*int64(len(v.i))
		}
	}
	return n
}
