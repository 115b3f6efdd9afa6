package onnx

// TensorBytes is the memory the graph holds for its tensors once loaded:
// the initializers (weights), the constants folded at load time, and what
// its layers keep of their own (their copy of the weights, a dense
// layer's packed copy). The activations of a run are not counted: they
// are per request.
func (g *Graph) TensorBytes() int64 {
	n := g.held
	for _, v := range g.consts {
		if v != nil {
			n += 4*int64(len(v.f)) + 8*int64(len(v.i))
		}
	}
	return n
}
