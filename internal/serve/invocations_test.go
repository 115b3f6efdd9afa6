package serve

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestInvocationsJSON(t *testing.T) {
	m := loadModel(t, mlpSpec(), "iris")
	ts := startServer(t, m, Options{})
	x := randomData(9, 12)
	want := direct(t, m, "input", []int{3, 4}, x).Data
	rows := [][]float32{x[0:4], x[4:8], x[8:12]}
	for _, c := range []struct {
		name, body, key string
	}{
		{"instances", mustJSON(t, map[string]any{"instances": rows}), "predictions"},
		{"bare list", mustJSON(t, rows), "predictions"},
		{"inputs list", mustJSON(t, map[string]any{"inputs": rows}), "outputs"},
		{"inputs by name", mustJSON(t, map[string]any{"inputs": map[string]any{"input": rows}}), "outputs"},
		{"instances as objects", mustJSON(t, map[string]any{"instances": []any{
			map[string]any{"input": rows[0]}, map[string]any{"input": rows[1]}, map[string]any{"input": rows[2]}}}), "predictions"},
	} {
		code, body, h := ts.do(t, http.MethodPost, "/invocations", "application/json", []byte(c.body))
		if code != 200 || h.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %s", c.name, code, body)
		}
		var got map[string][][]float32
		if err := json.Unmarshal(body, &got); err != nil || len(got[c.key]) != 3 {
			t.Fatalf("%s: %s (%v)", c.name, body, err)
		}
		sameFloats(t, c.name, slices.Concat(got[c.key]...), want)
	}

	// Several outputs: each prediction is an object by output name.
	ts2 := startServer(t, twoOutputs{}, Options{})
	code, body, _ := ts2.do(t, http.MethodPost, "/invocations", "", []byte(`{"instances":[[1,2],[3,4]]}`))
	if code != 200 || string(body) != `{"predictions":[{"sum":[3],"double":[2,4]},{"sum":[7],"double":[6,8]}]}` {
		t.Errorf("two outputs: %d %s", code, body)
	}
}

func TestInvocationsCNNNestedRows(t *testing.T) {
	m := loadModel(t, cnnSpec(), "digits")
	ts := startServer(t, m, Options{})
	x := randomData(4, 64)
	want := direct(t, m, "input", []int{1, 1, 8, 8}, x).Data
	var img [][]float32
	for i := range 8 {
		img = append(img, x[i*8:i*8+8])
	}
	for _, row := range []any{x, [][][]float32{img}} {
		code, body, _ := ts.do(t, http.MethodPost, "/invocations", "application/json", []byte(mustJSON(t, map[string]any{"instances": []any{row}})))
		var got map[string][][]float32
		if code != 200 || json.Unmarshal(body, &got) != nil {
			t.Fatalf("%d %s", code, body)
		}
		sameFloats(t, "cnn", got["predictions"][0], want)
	}
}

func TestInvocationsCSV(t *testing.T) {
	m := loadModel(t, mlpSpec(), "iris")
	ts := startServer(t, m, Options{})
	x := []float32{5.1, 3.5, 1.4, 0.2, 6.2, 2.9, 4.3, 1.3}
	want := direct(t, m, "input", []int{2, 4}, x).Data
	csvBody := "5.1,3.5,1.4,0.2\n6.2, 2.9, 4.3, 1.3\n"

	// CSV in, JSON out (the default).
	code, body, _ := ts.do(t, http.MethodPost, "/invocations", "text/csv", []byte(csvBody))
	var got map[string][][]float32
	if code != 200 || json.Unmarshal(body, &got) != nil {
		t.Fatalf("%d %s", code, body)
	}
	sameFloats(t, "csv→json", slices.Concat(got["predictions"]...), want)

	// CSV in and out; JSON in, CSV out.
	for _, c := range []struct{ ct, body string }{
		{"text/csv; charset=utf-8", csvBody},
		{"application/json", `{"instances":[[5.1,3.5,1.4,0.2],[6.2,2.9,4.3,1.3]]}`},
	} {
		code, body, h := ts.do(t, http.MethodPost, "/invocations", c.ct, []byte(c.body), "Accept", "text/csv")
		if code != 200 || h.Get("Content-Type") != "text/csv" {
			t.Fatalf("%s → csv: %d %s", c.ct, code, body)
		}
		lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("csv out: %q", body)
		}
		var vals []float32
		for _, l := range lines {
			for _, f := range strings.Split(l, ",") {
				v, err := strconv.ParseFloat(f, 32)
				if err != nil {
					t.Fatalf("csv out %q: %v", body, err)
				}
				vals = append(vals, float32(v))
			}
		}
		sameFloats(t, c.ct+"→csv", vals, want)
	}
}

func TestInvocationsErrors(t *testing.T) {
	m := loadModel(t, mlpSpec(), "iris")
	ts := startServer(t, m, Options{MaxPayload: 1024})
	for _, c := range []struct {
		name, ct, accept, body string
		code                   int
		msg                    string
	}{
		{"malformed JSON", "application/json", "", `{"instances": [`, 400, "malformed JSON"},
		{"no instances", "application/json", "", `{"rows": []}`, 400, `needs "instances" or "inputs"`},
		{"empty", "application/json", "", `{"instances": []}`, 400, "no rows"},
		{"short row", "application/json", "", `{"instances": [[1,2,3]]}`, 400, `input "input", row 0: 3 values, the model takes 4`},
		{"string value", "application/json", "", `{"instances": [[1,2,3,"x"]]}`, 400, `row 0: values must be numbers`},
		{"unknown input", "application/json", "", `{"inputs": {"pixels": [[1,2,3,4]]}}`, 400, `unknown input "pixels"`},
		{"CSV short row", "text/csv", "", "1,2,3,4\n1,2,3\n", 400, "CSV row 2 has 3 values"},
		{"CSV not a number", "text/csv", "", "1,2,x,4\n", 400, `CSV row 1, column 3: "x" is not a finite number`},
		{"CSV NaN", "text/csv", "", "1,2,3,4\n1,NaN,3,4\n", 400, `CSV row 2, column 2: "NaN" is not a finite number`},
		{"CSV infinity", "text/csv", "", "1,2,3,-Inf\n", 400, `CSV row 1, column 4: "-Inf" is not a finite number`},
		{"CSV wrong width", "text/csv", "", "1,2,3\n", 400, `input "input": CSV rows have 3 values, the model takes 4`},
		{"unsupported type", "application/x-protobuf", "", `x`, 415, "application/x-protobuf is not supported"},
		{"unacceptable", "application/json", "application/xml", `{"instances": [[1,2,3,4]]}`, 406, "accept application/json or text/csv"},
		{"oversize", "text/csv", "", strings.Repeat("1,2,3,4\n", 200), 413, "larger than the limit of 1024 bytes"},
		// 200 rows of 4 values cannot come in 1024 bytes: refused before
		// room for them is made (the 401-byte body would otherwise make
		// the server allocate for rows × the model's values per row).
		{"rows beyond the payload", "application/json", "", "[" + strings.Repeat("0,", 199) + "0]", 400, "are more than a 1024-byte payload can hold"},
	} {
		code, body, _ := ts.do(t, http.MethodPost, "/invocations", c.ct, []byte(c.body), "Accept", c.accept)
		if code != c.code {
			t.Errorf("%s: %d %s, want %d", c.name, code, body, c.code)
			continue
		}
		contains(t, c.name, errorMessage(t, body), c.msg)
	}
	// A model of two inputs takes rows as objects or "inputs" by name only.
	two := &multiInput{}
	ts2 := startServer(t, two, Options{})
	code, body, _ := ts2.do(t, http.MethodPost, "/invocations", "application/json", []byte(`{"instances": [[1,2]]}`))
	if code != 400 {
		t.Fatalf("two inputs, plain rows: %d %s", code, body)
	}
	contains(t, "two inputs", errorMessage(t, body), "the model has 2 inputs (a, b)")
	code, body, _ = ts2.do(t, http.MethodPost, "/invocations", "application/json", []byte(`{"instances": [{"a": [1], "b": [2]}, {"a": [3], "b": [4]}]}`))
	if code != 200 || string(body) != `{"predictions":[[3],[7]]}` {
		t.Errorf("two inputs as objects: %d %s", code, body)
	}
	code, body, _ = ts2.do(t, http.MethodPost, "/invocations", "application/json", []byte(`{"inputs": {"a": [[1]]}}`))
	if code != 400 || !strings.Contains(errorMessage(t, body), `input "b" is missing`) {
		t.Errorf("two inputs, one missing: %d %s", code, body)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
