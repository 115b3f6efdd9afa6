package onnx

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hpcml/hpcml/internal/nn"
)

// needTool skips a test whose peer tool is missing — or fails it under CI
// (CI=true), where scripts/test-deps.sh must have installed it.
func needTool(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf(format, args...) + "; scripts/test-deps.sh installs it"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

const systemPython = "/usr/bin/python3"

// needPythonONNX makes sure Debian's python3-onnx can be imported.
func needPythonONNX(t *testing.T) {
	t.Helper()
	err := exec.Command(systemPython, "-c", "import onnx").Run()
	needTool(t, err == nil, "python3-onnx is not importable by %s (%v)", systemPython, err)
}

// nodeDir is where scripts/test-deps.sh installs onnxruntime-node.
func nodeDir() string {
	if d := os.Getenv("HPCML_TEST_NODE_DIR"); d != "" {
		return d
	}
	return "/var/cache/hpcml-test-node"
}

// needOnnxruntime returns the node binary once onnxruntime-node is there.
func needOnnxruntime(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	needTool(t, err == nil, "node is not on PATH")
	pkg := filepath.Join(nodeDir(), "node_modules", "onnxruntime-node", "package.json")
	_, err = os.Stat(pkg)
	needTool(t, err == nil, "onnxruntime-node is not installed under %s (HPCML_TEST_NODE_DIR)", nodeDir())
	return node
}

// randomize gives every parameter and buffer of m seeded random values —
// biases and BatchNorm statistics start as 0 and 1, which would hide a
// mistake in how they are carried.
func randomize(m *nn.Model, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	for _, p := range m.Params() {
		for i := range p.Value.Data {
			p.Value.Data[i] = float32(rng.NormFloat64() * 0.4)
		}
	}
	for _, p := range m.Buffers() {
		variance := p.Name[len(p.Name)-3:] == "var"
		for i := range p.Value.Data {
			if variance {
				p.Value.Data[i] = float32(0.5 + rng.Float64())
			} else {
				p.Value.Data[i] = float32(rng.NormFloat64() * 0.3)
			}
		}
	}
}

func randomTensor(seed uint64, shape ...int) *nn.Tensor {
	rng := rand.New(rand.NewPCG(seed, 11))
	t := nn.NewTensor(shape...)
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64())
	}
	return t
}

// assertClose compares element-wise within rel relative to the larger
// magnitude, with rel as the absolute floor for values near zero.
func assertClose(t *testing.T, what string, got, want *nn.Tensor, rel float64) {
	t.Helper()
	if fmt.Sprint(got.Shape) != fmt.Sprint(want.Shape) {
		t.Fatalf("%s: shape %v, want %v", what, got.Shape, want.Shape)
	}
	worst, at := 0.0, -1
	for i := range want.Data {
		g, w := float64(got.Data[i]), float64(want.Data[i])
		d := math.Abs(g-w) / math.Max(1, math.Max(math.Abs(g), math.Abs(w)))
		if math.IsNaN(d) || d > worst {
			worst, at = d, i
		}
	}
	if worst > rel || math.IsNaN(worst) {
		t.Fatalf("%s: element %d is %g, want %g (relative error %.3g > %g)", what, at, got.Data[at], want.Data[at], worst, rel)
	}
}

func runOne(t *testing.T, g *Graph, name string, x *nn.Tensor) *nn.Tensor {
	t.Helper()
	outs, err := g.Run(context.Background(), map[string]*nn.Tensor{name: x})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(outs) != 1 {
		t.Fatalf("Run gave %d outputs, want 1", len(outs))
	}
	for _, o := range outs {
		return o
	}
	return nil
}

func ints64(v []int) []int64 {
	out := make([]int64, len(v))
	for i, d := range v {
		out[i] = int64(d)
	}
	return out
}

func equal64(a, b []int64) bool { return slices.Equal(a, b) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// collectBackToBack runs the garbage collector over and over on a
// goroutine of its own (emptying every sync.Pool between and during what
// a test runs) until the returned stop is called.
func collectBackToBack() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
				runtime.GC()
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
