package load

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/onnx"
)

// SmallMLP writes the serving benchmarks' model, an MLP 32 → 64 → 10 with
// a softmax head, as ONNX to dir/mlp.onnx and returns its path.
func SmallMLP(dir string) (string, error) {
	m, err := nn.Build(nn.Spec{Input: []int{32}, Layers: []nn.LayerSpec{{Type: "dense", Units: 64}, {Type: "relu"},
		{Type: "dense", Units: 10}}}, 1)
	if err != nil {
		return "", err
	}
	data, err := onnx.Export(m, onnx.ExportOptions{Head: "softmax"})
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "mlp.onnx")
	return path, os.WriteFile(path, data, 0o644)
}

// CLI returns a function that runs the hpcml binary with args against the
// server at base with token, failing with its output.
func CLI(hpcml, base, token string) func(args ...string) error {
	return func(args ...string) error {
		cmd := exec.Command(hpcml, append(args, "--server", base)...)
		cmd.Env = append(os.Environ(), "HPCML_TOKEN="+token)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("hpcml %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
}
