package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/onnx"
)

// mlpSpec is a small MLP: 4 features → 3 classes.
func mlpSpec() nn.Spec {
	return nn.Spec{Input: []int{4}, Layers: []nn.LayerSpec{
		{Type: "dense", Units: 16}, {Type: "relu"}, {Type: "dense", Units: 3},
	}}
}

// cnnSpec is a small CNN on 1×8×8 images → 5 classes.
func cnnSpec() nn.Spec {
	return nn.Spec{Input: []int{1, 8, 8}, Layers: []nn.LayerSpec{
		{Type: "conv2d", Filters: 4, Kernel: 3, Padding: 1}, {Type: "relu"},
		{Type: "maxpool2d", Kernel: 2}, {Type: "flatten"}, {Type: "dense", Units: 5},
	}}
}

// exportModel builds spec with seeded random weights (biases too, so that
// a mistake in carrying them shows) and exports it as ONNX.
func exportModel(t testing.TB, spec nn.Spec, head string) []byte {
	t.Helper()
	m, err := nn.Build(spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 7))
	for _, p := range m.Params() {
		for i := range p.Value.Data {
			p.Value.Data[i] = float32(rng.NormFloat64() * 0.5)
		}
	}
	data, err := onnx.Export(m, onnx.ExportOptions{Head: head})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func loadModel(t testing.TB, spec nn.Spec, name string) *ONNXModel {
	t.Helper()
	m, err := LoadONNX(exportModel(t, spec, "softmax"), name, "1")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// testServer hosts a Server on a loopback listener.
type testServer struct {
	*Server
	URL   string
	token string
}

func startServer(t testing.TB, m Model, o Options) *testServer {
	t.Helper()
	s, err := New(m, o)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { hs.Close(); s.Close() })
	return &testServer{Server: s, URL: hs.URL, token: o.Token}
}

// do sends a request and returns the status and body.
func (ts *testServer) do(t testing.TB, method, path, contentType string, body []byte, header ...string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if ts.token != "" {
		req.Header.Set("Authorization", "Bearer "+ts.token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header
}

func (ts *testServer) get(t testing.TB, path string) (int, []byte) {
	t.Helper()
	code, b, _ := ts.do(t, http.MethodGet, path, "", nil)
	return code, b
}

func (ts *testServer) post(t testing.TB, path string, body any) (int, []byte) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	code, out, _ := ts.do(t, http.MethodPost, path, "application/json", b)
	return code, out
}

// inferResponse is the OIP response, decoded with encoding/json as a
// client would.
type inferResponse struct {
	ModelName    string `json:"model_name"`
	ModelVersion string `json:"model_version"`
	ID           string `json:"id"`
	Outputs      []struct {
		Name     string    `json:"name"`
		DataType string    `json:"datatype"`
		Shape    []int     `json:"shape"`
		Data     []float32 `json:"data"`
	} `json:"outputs"`
}

func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("response %s: %v", b, err)
	}
	return v
}

// errorMessage checks that b is the protocol's {"error": "..."} and
// returns the message.
func errorMessage(t testing.TB, b []byte) string {
	t.Helper()
	var e map[string]any
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", b, err)
	}
	msg, ok := e["error"].(string)
	if !ok || len(e) != 1 || msg == "" {
		t.Fatalf("error body %s is not {\"error\": \"...\"}", b)
	}
	return msg
}

// direct runs the model without the server: the reference results.
func direct(t testing.TB, m Model, name string, shape []int, data []float32) *nn.Tensor {
	t.Helper()
	outs, err := m.Infer(context.Background(), map[string]*nn.Tensor{name: {Shape: shape, Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	return outs[m.Info().Outputs[0].Name]
}

func randomData(seed uint64, n int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64())
	}
	return out
}

// sameFloats compares as float32: the server writes the shortest decimal
// that reads back to the same float32, so results must be exactly equal.
func sameFloats(t testing.TB, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
			t.Fatalf("%s: value %d is %v, want %v", what, i, got[i], want[i])
		}
	}
}

func contains(t testing.TB, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s: %q does not contain %q", what, s, sub)
		}
	}
}

// recordingModel wraps a Model and records the rows of each execution;
// gate, when set, holds every execution until it is closed.
type recordingModel struct {
	Model
	mu      sync.Mutex
	batches []int
	started chan struct{} // receives once per execution, if not nil
	gate    chan struct{}
	// ignoreCtx makes the gate hold even past the context's end (a model
	// that does not check it).
	ignoreCtx bool
}

func (r *recordingModel) Infer(ctx context.Context, in map[string]*nn.Tensor) (map[string]*nn.Tensor, error) {
	for _, t := range in {
		r.mu.Lock()
		r.batches = append(r.batches, t.Shape[0])
		r.mu.Unlock()
		break
	}
	if r.started != nil {
		r.started <- struct{}{}
	}
	if r.gate != nil && r.ignoreCtx {
		<-r.gate
	} else if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return r.Model.Infer(ctx, in)
}

func (r *recordingModel) recorded() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.batches...)
}

// multiInput is a Model of two inputs, a and b ([N, 1] each), and one
// output, their sum.
type multiInput struct{}

func (*multiInput) Info() ModelInfo {
	return ModelInfo{Name: "multi", Version: "1",
		Inputs:  []TensorInfo{{Name: "a", DataType: "FP32", Shape: []int64{-1, 1}}, {Name: "b", DataType: "FP32", Shape: []int64{-1, 1}}},
		Outputs: []TensorInfo{{Name: "sum", DataType: "FP32", Shape: []int64{-1, 1}}}}
}

func (*multiInput) Infer(_ context.Context, in map[string]*nn.Tensor) (map[string]*nn.Tensor, error) {
	a, b := in["a"], in["b"]
	out := &nn.Tensor{Shape: []int{a.Shape[0], 1}, Data: make([]float32, a.Shape[0])}
	for i := range out.Data {
		out.Data[i] = a.Data[i] + b.Data[i]
	}
	return map[string]*nn.Tensor{"sum": out}, nil
}
