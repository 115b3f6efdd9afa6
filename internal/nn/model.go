package nn

import (
	"fmt"
	"slices"
)

// Model is a built Spec: layers applied in order.
type Model struct {
	Spec     Spec
	Layers   []Layer
	outShape []int
}

// OutShape is the per-sample output shape.
func (m *Model) OutShape() []int { return slices.Clone(m.outShape) }

// Params are all trainable parameters, in layer order.
func (m *Model) Params() []*Param {
	var ps []*Param
	for _, l := range m.Layers {
		ps = append(ps, l.Params()...)
	}
	return ps
}

// Buffers are the non-trainable state tensors (BatchNorm running statistics).
func (m *Model) Buffers() []*Param {
	var bs []*Param
	for _, l := range m.Layers {
		if s, ok := l.(Stateful); ok {
			bs = append(bs, s.Buffers()...)
		}
	}
	return bs
}

// ZeroGrad clears every parameter's gradient.
func (m *Model) ZeroGrad() {
	for _, p := range m.Params() {
		p.Grad.Zero()
	}
}

// Pass holds the caches of one training forward pass for Backward, and
// the tensors the pass made, to recycle once it is backpropagated.
type Pass struct {
	caches []any
	input  *Tensor
	outs   []*Tensor // outs[i]: layer i's output
	grads  []*Tensor // grads[i]: layer i's input gradient
}

// Forward runs the batch x through every layer. x's per-sample shape must
// be the spec's input shape.
func (m *Model) Forward(ctx *Context, x *Tensor) (*Tensor, *Pass, error) {
	if !sameShape(x.Shape[1:], m.Spec.Input) {
		return nil, nil, fmt.Errorf("nn: input shape %v does not match the model's %v", x.Shape[1:], m.Spec.Input)
	}
	pass := &Pass{caches: make([]any, len(m.Layers)), input: x, outs: make([]*Tensor, len(m.Layers))}
	in := x // the previous layer's input
	for i, l := range m.Layers {
		// A layer may overwrite its input when the previous layer made it
		// (not a view of its own input, not the caller's batch) and keeps
		// no reference to it.
		done := false
		if ip, ok := l.(inPlacer); ok && i > 0 && !sameData(x, in) {
			if _, free := m.Layers[i-1].(outputFree); free {
				var y *Tensor
				if y, pass.caches[i], done = ip.forwardInPlace(ctx, x); done {
					in, x = x, y
				}
			}
		}
		if !done {
			in = x
			x, pass.caches[i] = l.Forward(ctx, x)
		}
		pass.outs[i] = x
	}
	return x, pass, nil
}

// Predict runs the batch in inference mode.
func (m *Model) Predict(x *Tensor) (*Tensor, error) {
	y, _, err := m.Forward(Infer(), x)
	return y, err
}

// Backward propagates dL/dy of the output through the layers, adding into
// the parameters' gradients.
func (m *Model) Backward(pass *Pass, dy *Tensor) { m.BackwardNotify(pass, dy, nil) }

// BackwardNotify is Backward that calls done(i) as soon as layer i's
// parameter gradients are final (last layer first), so that a
// data-parallel trainer can start averaging them while the earlier
// layers are still being computed.
//
// A pass can be backpropagated once: its caches are dropped and its
// tensors go back to the layers that made them.
func (m *Model) BackwardNotify(pass *Pass, dy *Tensor, done func(layer int)) {
	lossGrad := dy
	pass.grads = make([]*Tensor, len(m.Layers))
	for i := len(m.Layers) - 1; i >= 0; i-- {
		// dy may be overwritten unless it is the caller's: gradients are
		// read only by the layer they are passed to.
		inPlace := false
		if ip, ok := m.Layers[i].(inPlacer); ok && i > 0 && !sameData(dy, lossGrad) {
			var dx *Tensor
			if dx, inPlace = ip.backwardInPlace(pass.caches[i], dy); inPlace {
				dy = dx
			}
		}
		if !inPlace {
			dy = m.Layers[i].Backward(pass.caches[i], dy, i > 0)
		}
		pass.grads[i] = dy
		pass.caches[i] = nil // a pass is backpropagated once
		if done != nil {
			done(i)
		}
	}
	m.recycle(pass, lossGrad)
}

// recycle gives a backpropagated pass's tensors back to the layers that
// made them (Recycler). Tensors may share memory — Flatten returns a view
// of its input, Dropout at rate 0 its input itself — so each buffer goes
// back once, to the first layer that returned it (outputs in forward
// order, gradients in backward order: the producer comes first), and
// never when the caller holds it: the model's input and output, and the
// loss gradient passed in. Views here always start at their buffer's
// first element, which is what identifies a buffer.
func (m *Model) recycle(pass *Pass, lossGrad *Tensor) {
	if len(pass.outs) == 0 {
		return
	}
	seen := make(map[*float32]bool, 2*len(m.Layers)+3)
	mark := func(t *Tensor) bool {
		if t == nil || len(t.Data) == 0 || seen[&t.Data[0]] {
			return false
		}
		seen[&t.Data[0]] = true
		return true
	}
	mark(pass.input)
	mark(pass.outs[len(pass.outs)-1])
	mark(lossGrad)
	give := func(i int, t *Tensor, grad bool) {
		if mark(t) {
			if r, ok := m.Layers[i].(Recycler); ok {
				r.Recycle(t, grad)
			}
		}
	}
	for i, t := range pass.outs {
		give(i, t, false)
	}
	for i := len(pass.grads) - 1; i >= 0; i-- {
		give(i, pass.grads[i], true)
	}
	pass.outs, pass.grads, pass.input = nil, nil, nil
}

// sameData says whether a and b share their first element's memory (how
// a view of a tensor shows).
func sameData(a, b *Tensor) bool {
	return a != nil && b != nil && len(a.Data) > 0 && len(b.Data) > 0 && &a.Data[0] == &b.Data[0]
}
