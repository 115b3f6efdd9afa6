package nn

import "math/rand/v2"

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

// Stateful layers hold non-trainable state that a checkpoint and an export
// must carry (BatchNorm's running mean and variance).
type Stateful interface {
	Buffers() []*Param
}
