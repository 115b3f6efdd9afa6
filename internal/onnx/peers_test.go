package onnx

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcml/hpcml/internal/nn"
)

// Peer checks of the exported models: ONNX's reference checker and
// onnxruntime, each run as its own program on the files Export wrote.

// writeExports exports every case into dir and returns the file paths.
func writeExports(t *testing.T, dir string) ([]string, []exportCase) {
	t.Helper()
	cases := exportCases()
	var paths []string
	for _, c := range cases {
		_, data := c.build(t)
		p := filepath.Join(dir, c.name+".onnx")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths, cases
}

func TestONNXChecker(t *testing.T) {
	needPythonONNX(t)
	paths, _ := writeExports(t, t.TempDir())
	script, err := filepath.Abs("testdata/check_model.py")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(systemPython, append([]string{script}, paths...)...).CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(line, "FAIL") {
			t.Error(line)
		}
	}
	if err != nil {
		t.Fatalf("onnx.checker: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "ok "); n != len(paths) {
		t.Fatalf("onnx.checker passed %d of %d models:\n%s", n, len(paths), out)
	}
}

// ortJob and ortResult are the JSON of testdata/ort_run.js.
type ortJob struct {
	Model  string               `json:"model"`
	Inputs map[string]ortTensor `json:"inputs"`
}

type ortTensor struct {
	Shape []int     `json:"shape"`
	Data  []float32 `json:"data"`
}

// runOnnxruntime runs the jobs in one node process.
func runOnnxruntime(t *testing.T, jobs []ortJob) (string, []map[string]ortTensor) {
	t.Helper()
	node := needOnnxruntime(t)
	in, err := json.Marshal(jobs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "testdata/ort_run.js")
	cmd.Stdin = bytes.NewReader(in)
	cmd.Env = append(os.Environ(), "HPCML_TEST_NODE_DIR="+nodeDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("onnxruntime: %v\n%s", err, stderr.Bytes())
	}
	var res struct {
		Version string                 `json:"version"`
		Results []map[string]ortTensor `json:"results"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("onnxruntime printed %q: %v", out, err)
	}
	if len(res.Results) != len(jobs) {
		t.Fatalf("onnxruntime gave %d results for %d models", len(res.Results), len(jobs))
	}
	return res.Version, res.Results
}

// TestOnnxruntime runs every exported model in onnxruntime and compares
// its outputs with the engine's on the imported graph.
func TestOnnxruntime(t *testing.T) {
	needOnnxruntime(t)
	paths, cases := writeExports(t, t.TempDir())
	var jobs []ortJob
	var want []*nn.Tensor
	for i, c := range cases {
		data, err := os.ReadFile(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		g, err := Load(data)
		if err != nil {
			t.Fatalf("%s: Load: %v", c.name, err)
		}
		x := c.input()
		want = append(want, runOne(t, g, InputName, x))
		jobs = append(jobs, ortJob{Model: paths[i], Inputs: map[string]ortTensor{InputName: {Shape: x.Shape, Data: x.Data}}})
	}
	version, results := runOnnxruntime(t, jobs)
	t.Logf("onnxruntime-node %s", version)
	for i, c := range cases {
		got, ok := results[i][OutputName]
		if !ok {
			t.Errorf("%s: onnxruntime gave no %q output", c.name, OutputName)
			continue
		}
		assertClose(t, c.name+" (onnxruntime vs engine)", &nn.Tensor{Shape: got.Shape, Data: got.Data}, want[i], 1e-4)
	}
}
