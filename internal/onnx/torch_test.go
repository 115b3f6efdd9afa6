package onnx

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/hpcml/hpcml/internal/nn"
)

// TestPyTorchModels imports the models testdata/make_torch_models.py
// exported with torch.onnx.export (PyTorch 1.13, opset 13) and checks the
// outputs against PyTorch's own for the same input.
func TestPyTorchModels(t *testing.T) {
	for _, name := range []string{"mlp", "lenet", "resnet"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "torch", name+".onnx"))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(filepath.Join("testdata", "torch", name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var ref struct{ Input, Output ortTensor }
			if err := json.Unmarshal(raw, &ref); err != nil {
				t.Fatalf("%s.json: %v", name, err)
			}
			g, err := Load(data)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			in := g.Inputs()
			if len(in) != 1 || in[0].Name != "input" || in[0].Shape[0] != -1 {
				t.Fatalf("Inputs() = %+v, want one named input with a symbolic batch", in)
			}
			x := &nn.Tensor{Shape: ref.Input.Shape, Data: ref.Input.Data}
			got := runOne(t, g, "input", x)
			assertClose(t, name+" (engine vs PyTorch)", got, &nn.Tensor{Shape: ref.Output.Shape, Data: ref.Output.Data}, 1e-4)

			// The batch is symbolic: one sample alone gives its row.
			one := runOne(t, g, "input", x.Rows(1, 2))
			assertClose(t, name+" (second sample alone)", one, &nn.Tensor{Shape: append([]int{1}, ref.Output.Shape[1:]...), Data: ref.Output.Data[len(ref.Output.Data)/2:]}, 1e-4)
		})
	}
}
