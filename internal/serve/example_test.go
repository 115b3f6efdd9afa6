package serve_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/onnx"
	"github.com/hpcml/hpcml/internal/serve"
)

// A model exported by the engine, served in-process with dynamic batching,
// and one Open Inference Protocol request to it.
func Example() {
	m, err := nn.Build(nn.Spec{Input: []int{2}, Layers: []nn.LayerSpec{{Type: "dense", Units: 1}}}, 1)
	if err != nil {
		panic(err)
	}
	// y = x0 + 2·x1 + 0.5
	copy(m.Params()[0].Value.Data, []float32{1, 2})
	m.Params()[1].Value.Data[0] = 0.5
	data, err := onnx.Export(m, onnx.ExportOptions{})
	if err != nil {
		panic(err)
	}
	model, err := serve.LoadONNX(data, "linear", "1")
	if err != nil {
		panic(err)
	}
	srv, err := serve.New(model, serve.Options{MaxBatch: 16})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	resp, err := http.Post(hs.URL+"/v2/models/linear/infer", "application/json", strings.NewReader(
		`{"id":"1","inputs":[{"name":"input","shape":[2,2],"datatype":"INT32","data":[[1,2],[3,4]]}]}`))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
	// Output:
	// 200 {"model_name":"linear","model_version":"1","id":"1","outputs":[{"name":"output","datatype":"FP32","shape":[2,1],"data":[5.5,11.5]}]}
}
