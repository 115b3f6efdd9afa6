package onnx

import (
	"testing"

	"github.com/hpcml/hpcml/internal/nn"
)

// TensorBytes counts what a loaded graph holds: the initializers, the
// dense layers' own copy of them, and (with the engine's GEMM) the packed
// copy of each weight matrix, padded to panels of 16 columns.
func TestTensorBytesCountsLayerCopies(t *testing.T) {
	m, err := nn.Build(nn.Spec{Input: []int{2}, Layers: []nn.LayerSpec{
		{Type: "dense", Units: 16}, {Type: "relu"}, {Type: "dense", Units: 2}}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	data, err := Export(m, ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	weights := int64(4 * (2*16 + 16 + 16*2 + 2))
	want := 2 * weights
	if nn.BLAS == "go-gemm" {
		want += 4 * (2*16 + 16*16) // 2→16: k 2 × 16 columns; 16→2: k 16 × 2 columns padded to 16
	}
	if got := g.TensorBytes(); got != want {
		t.Fatalf("TensorBytes = %d, want %d", got, want)
	}
}
