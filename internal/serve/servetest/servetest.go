// Package servetest makes ONNX models for tests and benchmarks of
// serving: small MLPs whose weights come from a seed, so that every model
// of a multi-model repository answers differently and a test can tell
// whose answer it got.
package servetest

import (
	"math/rand/v2"

	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/onnx"
)

// MLP exports an MLP of the given widths (input, hidden..., output;
// dense layers with ReLU between them, head "softmax" or "" for none)
// with weights and biases drawn from a normal distribution of standard
// deviation scale, seeded by seed. Its input is "input" [-1, widths[0]].
func MLP(seed uint64, scale float64, head string, widths ...int) ([]byte, error) {
	spec := nn.Spec{Input: []int{widths[0]}}
	for i, w := range widths[1:] {
		if i > 0 {
			spec.Layers = append(spec.Layers, nn.LayerSpec{Type: "relu"})
		}
		spec.Layers = append(spec.Layers, nn.LayerSpec{Type: "dense", Units: w})
	}
	m, err := nn.Build(spec, 1)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for _, p := range m.Params() {
		for i := range p.Value.Data {
			p.Value.Data[i] = float32(rng.NormFloat64() * scale)
		}
	}
	return onnx.Export(m, onnx.ExportOptions{Head: head})
}
