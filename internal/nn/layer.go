package nn

import (
	"math/rand/v2"
	"slices"
)

// Layer is one step of a network. Implementations keep only their
// parameters (and, for BatchNorm, running statistics); everything a
// backward pass needs travels in the cache Forward returns.
type Layer interface {
	// Kind is the layer's type name as written in a Spec ("dense", "conv2d", ...).
	Kind() string
	// OutShape is the per-sample output shape for a per-sample input shape,
	// or an error naming the mismatch.
	OutShape(in []int) ([]int, error)
	// Params are the trainable parameters, in a fixed order.
	Params() []*Param
	// Forward computes the layer on a batch. The cache is nil unless
	// ctx.Training.
	Forward(ctx *Context, x *Tensor) (y *Tensor, cache any)
	// Backward takes dL/dy and the cache of the matching Forward, adds the
	// parameter gradients into Param.Grad and returns dL/dx (nil when
	// needInput is false: the first layer's input gradient is never used).
	Backward(cache any, dy *Tensor, needInput bool) *Tensor
}

// Param is a trainable tensor and its accumulated gradient.
type Param struct {
	Name  string
	Value *Tensor
	Grad  *Tensor
	// NoDecay marks biases and normalisation scales, which AdamW's weight
	// decay leaves alone.
	NoDecay bool
}

func newParam(name string, noDecay bool, shape ...int) *Param {
	return &Param{Name: name, Value: NewTensor(shape...), Grad: NewTensor(shape...), NoDecay: noDecay}
}

// Context is what a forward pass may depend on besides its input.
type Context struct {
	// Training switches on dropout and batch statistics, and makes
	// Forward return caches for Backward.
	Training bool
	// RNG draws dropout masks; required when Training.
	RNG *rand.Rand
}

// Infer is the context for prediction: no dropout, running statistics, no caches.
func Infer() *Context { return &Context{} }

// Recycler layers take back a tensor they returned — an output of Forward
// (grad false) or an input gradient of Backward (grad true) — once nothing
// reads it any more, and hand its memory out again on a later call. A
// training step then reuses the previous step's activations and gradients
// instead of allocating and zeroing fresh ones (~22 MB a step for LeNet
// on 64 images): they stay warm in the caches, and two training
// processes on one machine do not stream them through the memory bus.
// Model.BackwardNotify recycles a pass's tensors when the pass is done.
type Recycler interface {
	Recycle(t *Tensor, grad bool)
}

// recycling is the Recycler layers embed: one pool for outputs and one for
// input gradients, whose sizes differ (one pool would keep handing out
// buffers of the wrong size). The zero value allocates every time.
type recycling struct{ outs, grads *scratch }

func newRecycling() recycling { return recycling{outs: &scratch{}, grads: &scratch{}} }

func (r recycling) Recycle(t *Tensor, grad bool) {
	if grad {
		r.grads.put(t.Data)
	} else {
		r.outs.put(t.Data)
	}
}

// output is a tensor for Forward's result, from the pool when it has one.
// A recycled buffer holds old values: zero says to clear it; callers that
// write every element pass false.
func (r recycling) output(zero bool, shape ...int) *Tensor {
	return pooledTensor(r.outs, zero, shape)
}

// inputGrad is output's counterpart for Backward's input gradient.
func (r recycling) inputGrad(zero bool, shape ...int) *Tensor {
	return pooledTensor(r.grads, zero, shape)
}

func pooledTensor(s *scratch, zero bool, shape []int) *Tensor {
	if s == nil {
		return NewTensor(shape...)
	}
	data := s.get(Volume(shape))
	if zero {
		clear(data)
	}
	return &Tensor{Shape: slices.Clone(shape), Data: data}
}

// outputFree layers never keep their output in a cache, so once Forward
// has returned, the next layer may overwrite it.
type outputFree interface{ keepsNoOutput() }

func (*Conv2D) keepsNoOutput()    {}
func (*Dense) keepsNoOutput()     {}
func (*Pool2D) keepsNoOutput()    {}
func (*BatchNorm) keepsNoOutput() {}

// inPlacer layers can write their output over their input, and their
// input gradient over dy, when Model says nothing else reads them (ReLU
// after a convolution: one activation and one gradient of the batch less
// to stream through memory each step). ok false: not for this layer.
type inPlacer interface {
	forwardInPlace(ctx *Context, x *Tensor) (y *Tensor, cache any, ok bool)
	backwardInPlace(cache any, dy *Tensor) (dx *Tensor, ok bool)
}

// Stateful layers hold non-trainable state that a checkpoint and an export
// must carry (BatchNorm's running mean and variance).
type Stateful interface {
	Buffers() []*Param
}
