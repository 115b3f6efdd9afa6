package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/hpcml/hpcml/internal/nn"
)

func TestHealthAndMetadata(t *testing.T) {
	m := loadModel(t, mlpSpec(), "iris")
	ts := startServer(t, m, Options{ServerVersion: "1.2.3"})

	for _, p := range []string{"/v2/health/live", "/v2/health/ready", "/v2/models/iris/ready", "/v2/models/iris/versions/1/ready", "/ping"} {
		if code, body := ts.get(t, p); code != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, code, body)
		}
	}
	code, body := ts.get(t, "/v2/models/iris/ready")
	if r := decode[map[string]any](t, body); code != 200 || r["name"] != "iris" || r["ready"] != true {
		t.Errorf("model ready: %d %s", code, body)
	}

	code, body = ts.get(t, "/v2")
	meta := decode[map[string]any](t, body)
	if code != 200 || meta["name"] != "hpcml" || meta["version"] != "1.2.3" {
		t.Errorf("server metadata: %d %s", code, body)
	}
	if ext, ok := meta["extensions"].([]any); !ok || len(ext) != 1 || ext[0] != "binary_tensor_data" {
		t.Errorf("server metadata extensions: %s", body)
	}

	type tensor struct {
		Name     string  `json:"name"`
		DataType string  `json:"datatype"`
		Shape    []int64 `json:"shape"`
	}
	type modelMeta struct {
		Name     string   `json:"name"`
		Versions []string `json:"versions"`
		Platform string   `json:"platform"`
		Inputs   []tensor `json:"inputs"`
		Outputs  []tensor `json:"outputs"`
	}
	for _, p := range []string{"/v2/models/iris", "/v2/models/iris/versions/1"} {
		code, body := ts.get(t, p)
		mm := decode[modelMeta](t, body)
		if code != 200 || mm.Name != "iris" || !slices.Equal(mm.Versions, []string{"1"}) || mm.Platform != "onnx" ||
			len(mm.Inputs) != 1 || mm.Inputs[0].Name != "input" || mm.Inputs[0].DataType != "FP32" || !slices.Equal(mm.Inputs[0].Shape, []int64{-1, 4}) ||
			len(mm.Outputs) != 1 || mm.Outputs[0].Name != "output" || !slices.Equal(mm.Outputs[0].Shape, []int64{-1, 3}) {
			t.Errorf("GET %s: %d %s", p, code, body)
		}
	}

	// Unknown model, version, route; wrong methods.
	for _, c := range []struct {
		method, path string
		code         int
		msg          string
	}{
		{"GET", "/v2/models/nope", 404, `unknown model "nope"`},
		{"GET", "/v2/models/nope/ready", 404, `unknown model "nope"`},
		{"POST", "/v2/models/nope/infer", 404, `unknown model "nope"`},
		{"GET", "/v2/models/iris/versions/2", 404, `unknown version "2" of model "iris"`},
		{"GET", "/v2/models/iris/versions/2/ready", 404, `unknown version "2"`},
		{"POST", "/v2/models/iris/versions/2/infer", 404, `unknown version "2"`},
		{"GET", "/v2/models/iris/versions/", 404, "no route"},
		{"GET", "/v2/models/iris/explain", 404, "no route"},
		{"GET", "/v1/models/iris", 404, "no route"},
		{"POST", "/v2", 405, "POST is not allowed"},
		{"GET", "/v2/models/iris/infer", 405, "use POST"},
		{"DELETE", "/v2/models/iris", 405, "use GET"},
		{"GET", "/invocations", 405, "use POST"},
		{"POST", "/v2/health/live", 405, "use GET"},
	} {
		code, body, _ := ts.do(t, c.method, c.path, "application/json", []byte(`{}`))
		if code != c.code {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, code, body, c.code)
			continue
		}
		contains(t, c.method+" "+c.path, errorMessage(t, body), c.msg)
	}

	// Draining: the OIP ready routes say 400 (the protocol's 4xx for an
	// unsuccessful health check), /ping 503, live stays 200.
	ts.Drain()
	for p, want := range map[string]int{"/v2/health/ready": 400, "/v2/models/iris/ready": 400, "/ping": 503} {
		if code, body := ts.get(t, p); code != want {
			t.Errorf("GET %s while draining: %d %s, want %d", p, code, body, want)
		}
	}
	if code, _ := ts.get(t, "/v2/health/live"); code != 200 {
		t.Errorf("live while draining: %d", code)
	}
}

// TestInferAllDatatypes sends every OIP datatype, flat and nested, and
// checks the outputs against the model run directly on the same values.
func TestInferAllDatatypes(t *testing.T) {
	m := loadModel(t, mlpSpec(), "iris")
	ts := startServer(t, m, Options{})
	// Values every datatype can hold: small non-negative integers (for the
	// unsigned ones); floats for the float types, 0/1 for BOOL.
	ints := []float32{0, 1, 2, 3, 4, 5, 6, 7}
	floats := []float32{0.5, -1.25, 3, 0.125, -2, 1.5, 0.75, -0.5}
	cases := []struct {
		dt   string
		vals []float32
		json []any
	}{
		{"BOOL", []float32{1, 0, 0, 1, 1, 1, 0, 0}, []any{true, false, false, true, true, true, false, false}},
		{"UINT8", ints, nil}, {"UINT16", ints, nil}, {"UINT32", ints, nil}, {"UINT64", ints, nil},
		{"INT8", []float32{-8, 7, 0, -1, 2, 3, -4, 5}, nil}, {"INT16", ints, nil}, {"INT32", ints, nil}, {"INT64", ints, nil},
		{"FP16", floats, nil}, {"FP32", floats, nil}, {"FP64", floats, nil},
	}
	for _, c := range cases {
		vals := c.json
		if vals == nil {
			for _, v := range c.vals {
				vals = append(vals, v)
			}
		}
		want := direct(t, m, "input", []int{2, 4}, c.vals)
		nested := []any{vals[:4], vals[4:]}
		for _, data := range []any{vals, nested} {
			req := map[string]any{"id": "req-" + c.dt, "inputs": []any{
				map[string]any{"name": "input", "shape": []int{2, 4}, "datatype": c.dt, "data": data},
			}}
			code, body := ts.post(t, "/v2/models/iris/infer", req)
			if code != 200 {
				t.Errorf("%s: %d %s", c.dt, code, body)
				continue
			}
			r := decode[inferResponse](t, body)
			if r.ModelName != "iris" || r.ModelVersion != "1" || r.ID != "req-"+c.dt || len(r.Outputs) != 1 {
				t.Fatalf("%s: response %s", c.dt, body)
			}
			o := r.Outputs[0]
			if o.Name != "output" || o.DataType != "FP32" || !slices.Equal(o.Shape, []int{2, 3}) {
				t.Fatalf("%s: output %s", c.dt, body)
			}
			sameFloats(t, c.dt, o.Data, want.Data)
		}
	}
}

func TestInferCNNNestedAndVersionedPath(t *testing.T) {
	m := loadModel(t, cnnSpec(), "digits")
	ts := startServer(t, m, Options{})
	x := randomData(5, 2*64)
	want := direct(t, m, "input", []int{2, 1, 8, 8}, x)
	// [2][1][8][8] nested, built by hand.
	var nested []any
	for b := range 2 {
		var ch []any
		var rows []any
		for i := range 8 {
			rows = append(rows, x[b*64+i*8:b*64+i*8+8])
		}
		ch = append(ch, rows)
		nested = append(nested, ch)
	}
	for _, data := range []any{x, nested} {
		code, body := ts.post(t, "/v2/models/digits/versions/1/infer", map[string]any{"inputs": []any{
			map[string]any{"name": "input", "shape": []int{2, 1, 8, 8}, "datatype": "FP32", "data": data},
		}})
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		r := decode[inferResponse](t, body)
		if !slices.Equal(r.Outputs[0].Shape, []int{2, 5}) {
			t.Fatalf("shape %v", r.Outputs[0].Shape)
		}
		sameFloats(t, "cnn", r.Outputs[0].Data, want.Data)
		if strings.Contains(string(body), `"id"`) {
			t.Errorf("a request without id got one back: %s", body)
		}
	}
}

// twoOutputs is a Model with two outputs (the exporter writes one), for
// output selection: "sum" and "double" of a [N, 2] input.
type twoOutputs struct{}

func (twoOutputs) Info() ModelInfo {
	return ModelInfo{Name: "two", Version: "7", Platform: "test",
		Inputs: []TensorInfo{{Name: "x", DataType: "FP32", Shape: []int64{-1, 2}}},
		Outputs: []TensorInfo{{Name: "sum", DataType: "FP32", Shape: []int64{-1, 1}},
			{Name: "double", DataType: "FP32", Shape: []int64{-1, 2}}}}
}

func (twoOutputs) Infer(_ context.Context, in map[string]*nn.Tensor) (map[string]*nn.Tensor, error) {
	x := in["x"]
	n := x.Shape[0]
	sum := &nn.Tensor{Shape: []int{n, 1}, Data: make([]float32, n)}
	dbl := &nn.Tensor{Shape: []int{n, 2}, Data: make([]float32, 2*n)}
	for i := range n {
		sum.Data[i] = x.Data[2*i] + x.Data[2*i+1]
		dbl.Data[2*i], dbl.Data[2*i+1] = 2*x.Data[2*i], 2*x.Data[2*i+1]
	}
	return map[string]*nn.Tensor{"sum": sum, "double": dbl}, nil
}

func TestOutputSelection(t *testing.T) {
	ts := startServer(t, twoOutputs{}, Options{})
	input := map[string]any{"name": "x", "shape": []int{2, 2}, "datatype": "FP32", "data": []float32{1, 2, 3, 4}}
	for _, c := range []struct {
		outputs []string
		want    []string
	}{
		{nil, []string{"sum", "double"}},
		{[]string{"double"}, []string{"double"}},
		{[]string{"double", "sum"}, []string{"double", "sum"}},
	} {
		req := map[string]any{"inputs": []any{input}}
		if c.outputs != nil {
			var outs []any
			for _, o := range c.outputs {
				outs = append(outs, map[string]any{"name": o, "parameters": map[string]any{"binary_data": false}})
			}
			req["outputs"] = outs
		}
		code, body := ts.post(t, "/v2/models/two/infer", req)
		if code != 200 {
			t.Fatalf("%v: %d %s", c.outputs, code, body)
		}
		r := decode[inferResponse](t, body)
		var names []string
		for _, o := range r.Outputs {
			names = append(names, o.Name)
			switch o.Name {
			case "sum":
				sameFloats(t, "sum", o.Data, []float32{3, 7})
			case "double":
				sameFloats(t, "double", o.Data, []float32{2, 4, 6, 8})
			}
		}
		if !slices.Equal(names, c.want) || r.ModelVersion != "7" {
			t.Errorf("outputs %v: got %s", c.outputs, body)
		}
	}
	code, body := ts.post(t, "/v2/models/two/infer", map[string]any{"inputs": []any{input}, "outputs": []any{map[string]any{"name": "triple"}}})
	if code != 400 {
		t.Fatalf("unknown output: %d %s", code, body)
	}
	contains(t, "unknown output", errorMessage(t, body), `unknown output "triple"`, "sum, double")
	code, body = ts.post(t, "/v2/models/two/infer", map[string]any{"inputs": []any{input},
		"outputs": []any{map[string]any{"name": "sum"}, map[string]any{"name": "double"}, map[string]any{"name": "sum"}}})
	if code != 400 {
		t.Fatalf("an output requested twice: %d %s", code, body)
	}
	contains(t, "output requested twice", errorMessage(t, body), `output "sum" is requested twice`)
}

func TestInferErrors(t *testing.T) {
	m := loadModel(t, mlpSpec(), "iris")
	ts := startServer(t, m, Options{MaxPayload: 4096})
	in := func(fields string) string {
		return `{"inputs":[{` + fields + `}]}`
	}
	ok := `"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]`
	if code, body := ts.post(t, "/v2/models/iris/infer", in(ok)); code != 200 {
		t.Fatalf("the valid request: %d %s", code, body)
	}
	for _, c := range []struct {
		name, body string
		code       int
		msg        []string
	}{
		{"empty body", ``, 400, []string{"malformed JSON"}},
		{"not JSON", `{"inputs": [`, 400, []string{"malformed JSON"}},
		{"trailing garbage", in(ok) + `x`, 400, []string{"malformed JSON"}},
		{"bad number", in(`"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,01]`), 400, []string{"malformed JSON"}},
		{"inputs not array", `{"inputs": {}}`, 400, []string{`"inputs" must be an array`}},
		{"no inputs", `{}`, 400, []string{`input "input" is missing`}},
		{"unknown input", in(`"name":"pixels","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]`), 400, []string{`unknown input "pixels"`, "input"}},
		{"twice", `{"inputs":[{` + ok + `},{` + ok + `}]}`, 400, []string{`input "input" is given twice`}},
		{"wrong rank", in(`"name":"input","shape":[4],"datatype":"FP32","data":[1,2,3,4]`), 400, []string{`input "input"`, "shape [4] does not match the model's [-1 4]"}},
		{"wrong dim", in(`"name":"input","shape":[1,5],"datatype":"FP32","data":[1,2,3,4,5]`), 400, []string{`input "input"`, "[1 5]"}},
		{"zero batch", in(`"name":"input","shape":[0,4],"datatype":"FP32","data":[]`), 400, []string{`input "input"`, "[0 4]"}},
		{"negative dim", in(`"name":"input","shape":[-1,4],"datatype":"FP32","data":[1,2,3,4]`), 400, []string{"integer ≥ 0"}},
		{"too few values", in(`"name":"input","shape":[2,4],"datatype":"FP32","data":[1,2,3,4]`), 400, []string{`input "input"`, "4 values do not fill shape [2 4]"}},
		{"bad nesting", in(`"name":"input","shape":[2,4],"datatype":"FP32","data":[[1,2],[3,4],[5,6],[7,8]]`), 400, []string{`input "input"`, "nested data does not have the shape [2 4]"}},
		{"mixed nesting", in(`"name":"input","shape":[2,4],"datatype":"FP32","data":[[1,2,3,4],5,6,7,8]`), 400, []string{`input "input"`, "mixes"}},
		{"unknown datatype", in(`"name":"input","shape":[1,4],"datatype":"FP128","data":[1,2,3,4]`), 400, []string{`input "input"`, `unknown datatype "FP128"`}},
		{"BYTES", in(`"name":"input","shape":[1,4],"datatype":"BYTES","data":["a","b","c","d"]`), 400, []string{`input "input"`, "BYTES cannot be converted to the model's FP32"}},
		{"no datatype", in(`"name":"input","shape":[1,4],"data":[1,2,3,4]`), 400, []string{`input "input" has no datatype`}},
		{"no shape", in(`"name":"input","datatype":"FP32","data":[1,2,3,4]`), 400, []string{`input "input" has no shape`}},
		{"no data", in(`"name":"input","shape":[1,4],"datatype":"FP32"`), 400, []string{`input "input" has no data`}},
		{"binary data missing", in(`"name":"input","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}`), 400, []string{`input "input": binary_data_size 16, but only 0 bytes`}},
		{"binary and data", in(`"name":"input","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":0},"data":[1,2,3,4]`), 400, []string{`input "input" has both "data" and binary data`}},
		{"bad binary size", in(`"name":"input","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":"16"}`), 400, []string{`"binary_data_size" must be an integer`}},
		{"bad binary_data", `{"inputs":[{` + ok + `}],"outputs":[{"name":"output","parameters":{"binary_data":1}}]}`, 400, []string{`output "output"`, `"binary_data" must be true or false`}},
		{"string for FP32", in(`"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,"4"]`), 400, []string{`input "input"`, "numbers"}},
		{"fraction for INT32", in(`"name":"input","shape":[1,4],"datatype":"INT32","data":[1,2,3,4.5]`), 400, []string{`input "input"`, "4.5 is not an integer"}},
		{"UINT8 overflow", in(`"name":"input","shape":[1,4],"datatype":"UINT8","data":[1,2,3,256]`), 400, []string{`input "input"`, "256"}},
		{"negative UINT", in(`"name":"input","shape":[1,4],"datatype":"UINT16","data":[1,2,3,-1]`), 400, []string{`input "input"`, "-1"}},
		{"INT8 underflow", in(`"name":"input","shape":[1,4],"datatype":"INT8","data":[1,2,3,-129]`), 400, []string{`input "input"`, "-129"}},
		{"FP16 overflow", in(`"name":"input","shape":[1,4],"datatype":"FP16","data":[1,2,3,70000]`), 400, []string{`input "input"`, "70000"}},
		{"FP32 overflow", in(`"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,1e39]`), 400, []string{`input "input"`, "1e39"}},
		{"FP64 beyond FP32", in(`"name":"input","shape":[1,4],"datatype":"FP64","data":[1,2,3,1e300]`), 400, []string{`input "input"`, "1e300"}},
		{"BOOL not bool", in(`"name":"input","shape":[1,4],"datatype":"BOOL","data":[true,false,true,2]`), 400, []string{`input "input"`, "true or false"}},
		{"id not string", `{"id": 5, "inputs":[{` + ok + `}]}`, 400, []string{`"id" must be a string`}},
		{"output without name", `{"inputs":[{` + ok + `}],"outputs":[{}]}`, 400, []string{`needs a "name"`}},
		{"oversize", in(`"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4` + strings.Repeat(" ", 5000) + `]`), 413, []string{"larger than the limit of 4096 bytes"}},
		{"huge shape", in(`"name":"input","shape":[1000000000000,4],"datatype":"FP32","data":[1]`), 400, []string{"[1000000000000 4]"}},
	} {
		code, body := ts.post(t, "/v2/models/iris/infer", c.body)
		if code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.code)
			continue
		}
		contains(t, c.name, errorMessage(t, body), c.msg...)
	}

	// Oversize without a Content-Length (chunked) is cut off too.
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v2/models/iris/infer", struct{ *strings.Reader }{strings.NewReader(in(ok) + strings.Repeat(" ", 5000))})
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("chunked oversize: %d", resp.StatusCode)
	}
}

func TestToken(t *testing.T) {
	m := loadModel(t, mlpSpec(), "iris")
	ts := startServer(t, m, Options{Token: "s3cret"})
	infer := []byte(`{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`)
	// Without a token (and with a wrong one): 401 everywhere but health and ping.
	for _, auth := range []string{"", "Bearer wrong", "s3cret"} {
		for _, c := range []struct{ method, path string }{
			{"GET", "/v2"}, {"GET", "/v2/models/iris"}, {"GET", "/v2/models/iris/ready"}, {"POST", "/v2/models/iris/infer"},
			{"POST", "/invocations"}, {"GET", "/metrics"}, {"GET", "/nowhere"},
		} {
			code, body, h := ts.do(t, c.method, c.path, "application/json", infer, "Authorization", auth)
			if code != 401 {
				t.Errorf("%s %s with %q: %d %s", c.method, c.path, auth, code, body)
				continue
			}
			errorMessage(t, body)
			if !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without WWW-Authenticate: Bearer")
			}
		}
		for _, p := range []string{"/v2/health/live", "/v2/health/ready", "/ping"} {
			if code, _, _ := ts.do(t, "GET", p, "", nil, "Authorization", auth); code != 200 {
				t.Errorf("GET %s with %q: %d", p, auth, code)
			}
		}
	}
	if code, body := ts.post(t, "/v2/models/iris/infer", infer); code != 200 {
		t.Errorf("with the token: %d %s", code, body)
	}
}

// TestScannerAgreesWithEncodingJSON feeds the hand-written parser the
// same request in several JSON spellings.
func TestScannerAgreesWithEncodingJSON(t *testing.T) {
	m := loadModel(t, mlpSpec(), "iris")
	ts := startServer(t, m, Options{})
	want := direct(t, m, "input", []int{1, 4}, []float32{1e-3, -2.5e2, 0, 1})
	for _, body := range []string{
		`{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1e-3,-2.5E+2,0,1.0]}]}`,
		" \n{ \"id\" : \"a\\\"b\\u00e9\\ud83d\\ude00\" , \"parameters\":{\"x\":[1,{\"y\":null}]}, \"inputs\" : [ { \"data\" : [ [ 0.001 , -250 , 0 , 1 ] ] , \"datatype\" : \"FP32\" , \"shape\" : [ 1 , 4 ] , \"name\" : \"\\u0069nput\" } ] , \"outputs\" : [ ] } \t",
		`{"extra":{"a":[true,false,null,"s"]},"inputs":[{"name":"input","shape":[1,4],"datatype":"FP64","data":[0.001,-250,0,1],"parameters":{}}],"parameters":null}`,
	} {
		code, resp := ts.post(t, "/v2/models/iris/infer", body)
		if code != 200 {
			t.Fatalf("%s: %d %s", body, code, resp)
		}
		r := decode[inferResponse](t, resp)
		sameFloats(t, body, r.Outputs[0].Data, want.Data)
		if strings.Contains(body, `"id"`) && r.ID != "a\"bé😀" {
			t.Errorf("id %q", r.ID)
		}
	}
	// The response is valid JSON even with odd characters in the id.
	code, resp := ts.post(t, "/v2/models/iris/infer", `{"id":"\u0001<\n>","inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`)
	if code != 200 || !json.Valid(resp) || decode[inferResponse](t, resp).ID != "\x01<\n>" {
		t.Errorf("odd id: %d %s", code, resp)
	}
}

func TestMetrics(t *testing.T) {
	m := loadModel(t, mlpSpec(), "iris")
	ts := startServer(t, m, Options{})
	for range 3 {
		ts.post(t, "/v2/models/iris/infer", `{"inputs":[{"name":"input","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}]}`)
	}
	ts.post(t, "/v2/models/iris/infer", `{"inputs":[]}`)
	ts.get(t, "/v2/models/nope")
	code, body := ts.get(t, "/metrics")
	if code != 200 {
		t.Fatal(code)
	}
	text := string(body)
	for _, want := range []string{
		`hpcml_serve_requests_total{code="2xx",route="infer"} 3`,
		`hpcml_serve_requests_total{code="4xx",route="infer"} 1`,
		`hpcml_serve_requests_total{code="4xx",route="metadata"} 1`,
		`hpcml_serve_request_duration_seconds_count{route="infer"} 4`,
		`hpcml_serve_batch_size_sum 6`,
		`hpcml_serve_batch_size_count 3`,
		`hpcml_serve_compute_duration_seconds_count 3`,
		`hpcml_serve_queue_duration_seconds_count 3`,
		`hpcml_serve_inflight_requests 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if bytes.Contains(body, []byte("iris")) {
		t.Errorf("a model name became a label value")
	}
}
