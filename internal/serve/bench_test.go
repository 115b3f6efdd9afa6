package serve

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hpcml/hpcml/internal/nn"
)

// BenchmarkInferHandler is the server's own cost per OIP request for a
// small MLP (32 → 64 → 10), without the network: JSON in, Graph.Run, JSON
// out, metrics.
func BenchmarkInferHandler(b *testing.B) {
	spec := nn.Spec{Input: []int{32}, Layers: []nn.LayerSpec{{Type: "dense", Units: 64}, {Type: "relu"}, {Type: "dense", Units: 10}}}
	m, err := LoadONNX(exportModel(b, spec, "softmax"), "mlp", "1")
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(m, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{
		"name": "input", "shape": []int{1, 32}, "datatype": "FP32", "data": randomData(1, 32)}}})
	h := s.Handler()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v2/models/mlp/infer", bytes.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}
