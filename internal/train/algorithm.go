package train

import (
	"fmt"
	"slices"

	"github.com/hpcml/hpcml/internal/nn"
)

// Algorithm is a built-in model family: its hyperparameters, their
// defaults and the network it builds for a data set.
type Algorithm struct {
	Name     string
	Doc      string
	hp       []string
	defaults HParams
	network  func(h HParams, in []int, outputs int) ([]nn.LayerSpec, error)
}

// HParamNames are the hyperparameters the algorithm takes.
func (a *Algorithm) HParamNames() []string { return slices.Clone(a.hp) }

// HParamDoc says what a hyperparameter means.
func HParamDoc(name string) string { return hpDoc(name) }

// Defaults are the algorithm's default hyperparameters.
func (a *Algorithm) Defaults() HParams { return a.defaults }

// Parse applies k=v hyperparameters over the algorithm's defaults.
func (a *Algorithm) Parse(kv map[string]string) (HParams, error) {
	return parseHParams(a.defaults, a.hp, kv)
}

// Algorithms are the built-in algorithms, by name.
func Algorithms() []*Algorithm {
	base := HParams{
		BatchSize: 64, Optimizer: "adam", Momentum: 0.9, Schedule: "constant", Gamma: 0.1,
		Patience: 5, Validation: 0.1, ClassWeights: "none", Standardize: true,
		CheckpointEvery: 200, LogEvery: 10, MicroBatches: 4,
	}
	linear := base
	linear.LR = 0.01
	mlp := base
	mlp.LR, mlp.Hidden, mlp.Activation = 1e-3, []int{256, 128}, "relu"
	cnn := base
	cnn.LR, cnn.Arch, cnn.Filters, cnn.Dropout, cnn.Patience = 1e-3, "lenet", 16, 0.25, 3
	return []*Algorithm{
		{Name: "linear", Doc: "linear regression, binary or multiclass logistic regression", hp: commonHP(), defaults: linear, network: linearNet},
		{Name: "mlp", Doc: "multilayer perceptron classifier or regressor", hp: append(commonHP(), "hidden", "activation", "dropout", "batchnorm"), defaults: mlp, network: mlpNet},
		{Name: "cnn", Doc: "convolutional image classifier (LeNet- or ResNet-style)", hp: append(commonHP(), "arch", "filters", "dropout", "shape"), defaults: cnn, network: cnnNet},
	}
}

// LookupAlgorithm finds a built-in algorithm by name.
func LookupAlgorithm(name string) (*Algorithm, error) {
	var names []string
	for _, a := range Algorithms() {
		if a.Name == name {
			return a, nil
		}
		names = append(names, a.Name)
	}
	return nil, fmt.Errorf("unknown algorithm %q (want one of %v)", name, names)
}

func linearNet(_ HParams, in []int, outputs int) ([]nn.LayerSpec, error) {
	var layers []nn.LayerSpec
	if len(in) > 1 {
		layers = append(layers, nn.LayerSpec{Type: "flatten"})
	}
	return append(layers, nn.LayerSpec{Type: "dense", Units: outputs, Init: "xavier"}), nil
}

func mlpNet(h HParams, in []int, outputs int) ([]nn.LayerSpec, error) {
	switch h.Activation {
	case "relu", "gelu", "tanh", "sigmoid":
	default:
		return nil, fmt.Errorf("hyperparameter activation=%q: want relu, gelu, tanh or sigmoid", h.Activation)
	}
	init := "he"
	if h.Activation == "tanh" || h.Activation == "sigmoid" {
		init = "xavier"
	}
	var layers []nn.LayerSpec
	if len(in) > 1 {
		layers = append(layers, nn.LayerSpec{Type: "flatten"})
	}
	for _, n := range h.Hidden {
		layers = append(layers, nn.LayerSpec{Type: "dense", Units: n, Init: init})
		if h.BatchNorm {
			layers = append(layers, nn.LayerSpec{Type: "batchnorm"})
		}
		layers = append(layers, nn.LayerSpec{Type: h.Activation})
		if h.Dropout > 0 {
			layers = append(layers, nn.LayerSpec{Type: "dropout", Rate: h.Dropout})
		}
	}
	return append(layers, nn.LayerSpec{Type: "dense", Units: outputs, Init: "xavier"}), nil
}

func cnnNet(h HParams, in []int, outputs int) ([]nn.LayerSpec, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("cnn needs images (C×H×W); the data's rows have shape %v — give --hp shape=C,H,W for a table of pixels", in)
	}
	f := h.Filters
	switch h.Arch {
	case "lenet":
		// Two 5×5 convolutions (padded, so small images keep their size)
		// each followed by 2×2 max pooling, then two dense layers.
		layers := []nn.LayerSpec{
			{Type: "conv2d", Filters: f, Kernel: 5, Padding: 2}, {Type: "relu"}, {Type: "maxpool2d", Kernel: 2},
			{Type: "conv2d", Filters: 2 * f, Kernel: 5, Padding: 2}, {Type: "relu"}, {Type: "maxpool2d", Kernel: 2},
			{Type: "flatten"}, {Type: "dense", Units: 128}, {Type: "relu"},
		}
		if h.Dropout > 0 {
			layers = append(layers, nn.LayerSpec{Type: "dropout", Rate: h.Dropout})
		}
		return append(layers, nn.LayerSpec{Type: "dense", Units: outputs, Init: "xavier"}), nil
	case "resnet":
		// A stem, an identity residual block and a strided one with a
		// projection shortcut, global average pooling (ResNet-8 style).
		block := func(filters, stride int) nn.LayerSpec {
			return nn.LayerSpec{Type: "residual", Layers: []nn.LayerSpec{
				{Type: "conv2d", Filters: filters, Kernel: 3, Stride: stride, Padding: 1}, {Type: "batchnorm"}, {Type: "relu"},
				{Type: "conv2d", Filters: filters, Kernel: 3, Padding: 1}, {Type: "batchnorm"},
			}}
		}
		layers := []nn.LayerSpec{
			{Type: "conv2d", Filters: f, Kernel: 3, Padding: 1}, {Type: "batchnorm"}, {Type: "relu"},
			block(f, 1), block(2*f, 2), {Type: "globalavgpool"},
		}
		if h.Dropout > 0 {
			layers = append(layers, nn.LayerSpec{Type: "dropout", Rate: h.Dropout})
		}
		return append(layers, nn.LayerSpec{Type: "dense", Units: outputs, Init: "xavier"}), nil
	}
	return nil, fmt.Errorf("hyperparameter arch=%q: want lenet or resnet", h.Arch)
}
