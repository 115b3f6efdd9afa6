package nn

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Spec describes a sequential network: the per-sample input shape and the
// layers in order. It is what a job spec, a checkpoint and the model
// metadata carry; Build turns it into a Model.
type Spec struct {
	Input  []int       `json:"input"`
	Layers []LayerSpec `json:"layers"`
}

// LayerSpec is one layer. Which fields apply depends on Type:
//
//	dense      units, init
//	conv2d     filters, kernel, stride (1), padding (0), init
//	maxpool2d  kernel, stride (= kernel), padding (0)
//	avgpool2d  kernel, stride (= kernel), padding (0)
//	batchnorm  momentum (0.1), epsilon (1e-5); per channel of a C×H×W input,
//	           per feature of a flat one
//	dropout    rate
//	residual   layers: y = relu(x + body(x)), with a 1×1 strided conv on the
//	           shortcut when the body changes the shape
//	relu, gelu, tanh, sigmoid, flatten, globalavgpool
type LayerSpec struct {
	Type     string      `json:"type"`
	Units    int         `json:"units,omitempty"`
	Filters  int         `json:"filters,omitempty"`
	Kernel   int         `json:"kernel,omitempty"`
	Stride   int         `json:"stride,omitempty"`
	Padding  int         `json:"padding,omitempty"`
	Rate     float64     `json:"rate,omitempty"`
	Momentum float64     `json:"momentum,omitempty"`
	Epsilon  float64     `json:"epsilon,omitempty"`
	Init     string      `json:"init,omitempty"`
	Layers   []LayerSpec `json:"layers,omitempty"`
}

// Build makes the layers of spec, checks that each layer's output shape
// fits the next, and initialises the weights from seed.
func Build(spec Spec, seed uint64) (*Model, error) {
	if len(spec.Input) == 0 {
		return nil, fmt.Errorf("nn: the spec has no input shape")
	}
	for _, d := range spec.Input {
		if d <= 0 {
			return nil, fmt.Errorf("nn: input shape %v has a dimension ≤ 0", spec.Input)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	layers, out, err := buildLayers(spec.Layers, spec.Input, "", rng)
	if err != nil {
		return nil, err
	}
	if len(layers) == 0 {
		return nil, fmt.Errorf("nn: the spec has no layers")
	}
	return &Model{Spec: spec, Layers: layers, outShape: out}, nil
}

func buildLayers(specs []LayerSpec, in []int, prefix string, rng *rand.Rand) ([]Layer, []int, error) {
	shape := slices.Clone(in)
	layers := make([]Layer, 0, len(specs))
	for i, ls := range specs {
		name := fmt.Sprintf("%s%d", prefix, i)
		l, err := buildLayer(ls, shape, name, rng)
		if err != nil {
			return nil, nil, fmt.Errorf("layer %s (%s): %w", name, ls.Type, err)
		}
		out, err := l.OutShape(shape)
		if err != nil {
			return nil, nil, fmt.Errorf("layer %s (%s): %w", name, ls.Type, err)
		}
		layers = append(layers, l)
		shape = out
	}
	return layers, shape, nil
}

func buildLayer(ls LayerSpec, in []int, name string, rng *rand.Rand) (Layer, error) {
	switch ls.Type {
	case "dense":
		if len(in) != 1 {
			return nil, fmt.Errorf("dense needs a flat input, got shape %v (add a flatten layer)", in)
		}
		if ls.Units <= 0 {
			return nil, fmt.Errorf("units must be > 0")
		}
		init, err := initializer(ls.Init)
		if err != nil {
			return nil, err
		}
		return NewDense(name, in[0], ls.Units, init, rng), nil
	case "conv2d":
		if len(in) != 3 {
			return nil, fmt.Errorf("conv2d needs a C×H×W input, got shape %v", in)
		}
		if ls.Filters <= 0 || ls.Kernel <= 0 {
			return nil, fmt.Errorf("filters and kernel must be > 0")
		}
		init, err := initializer(ls.Init)
		if err != nil {
			return nil, err
		}
		return NewConv2D(name, in[0], ls.Filters, ls.Kernel, orDefault(ls.Stride, 1), ls.Padding, init, rng), nil
	case "maxpool2d", "avgpool2d":
		if ls.Kernel <= 0 {
			return nil, fmt.Errorf("kernel must be > 0")
		}
		return NewPool2D(ls.Type == "maxpool2d", ls.Kernel, orDefault(ls.Stride, ls.Kernel), ls.Padding), nil
	case "globalavgpool":
		return NewGlobalAvgPool(), nil
	case "batchnorm":
		if len(in) != 1 && len(in) != 3 {
			return nil, fmt.Errorf("batchnorm needs a [C] or C×H×W input, got shape %v", in)
		}
		momentum, eps := orDefaultF(ls.Momentum, 0.1), orDefaultF(ls.Epsilon, 1e-5)
		if !(momentum >= 0 && momentum <= 1) { // NaN too
			return nil, fmt.Errorf("momentum %g is outside [0, 1]", momentum)
		}
		if !(eps > 0) {
			return nil, fmt.Errorf("epsilon %g must be > 0", eps)
		}
		return NewBatchNorm(name, in[0], momentum, eps), nil
	case "dropout":
		if ls.Rate < 0 || ls.Rate >= 1 {
			return nil, fmt.Errorf("rate %g is outside [0, 1)", ls.Rate)
		}
		return NewDropout(ls.Rate), nil
	case "relu", "gelu", "tanh", "sigmoid":
		return NewActivation(ls.Type), nil
	case "flatten":
		return NewFlatten(), nil
	case "residual":
		body, out, err := buildLayers(ls.Layers, in, name+".body.", rng)
		if err != nil {
			return nil, err
		}
		r, err := NewResidual(name, in, out, body, rng)
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	return nil, fmt.Errorf("unknown layer type %q", ls.Type)
}

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

func orDefaultF(v, d float64) float64 {
	if v == 0 {
		return d
	}
	return v
}
