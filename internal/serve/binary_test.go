package serve

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"slices"
	"strconv"
	"testing"
)

// binaryRequest builds a request whose JSON part is head (with the
// inputs' binary_data_size) followed by the blobs.
func binaryRequest(t *testing.T, ts *testServer, head any, blobs ...[]byte) (int, []byte, http.Header) {
	t.Helper()
	j, err := json.Marshal(head)
	if err != nil {
		t.Fatal(err)
	}
	body := slices.Concat(append([][]byte{j}, blobs...)...)
	return ts.do(t, http.MethodPost, "/v2/models/iris/infer", "application/octet-stream", body,
		"Inference-Header-Content-Length", strconv.Itoa(len(j)))
}

// encodeLE writes vals as the little-endian binary form of datatype dt.
func encodeLE(dt string, vals []float32) []byte {
	var b []byte
	for _, v := range vals {
		switch dt {
		case "BOOL", "UINT8":
			b = append(b, byte(v))
		case "INT8":
			b = append(b, byte(int8(v)))
		case "UINT16":
			b = binary.LittleEndian.AppendUint16(b, uint16(v))
		case "INT16":
			b = binary.LittleEndian.AppendUint16(b, uint16(int16(v)))
		case "UINT32":
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		case "INT32":
			b = binary.LittleEndian.AppendUint32(b, uint32(int32(v)))
		case "UINT64":
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		case "INT64":
			b = binary.LittleEndian.AppendUint64(b, uint64(int64(v)))
		case "FP16":
			b = binary.LittleEndian.AppendUint16(b, floatToHalf(v))
		case "FP32":
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		case "FP64":
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(v)))
		}
	}
	return b
}

// floatToHalf is exact for the values the test uses (small integers and
// binary fractions).
func floatToHalf(f float32) uint16 {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	if f == 0 {
		return sign
	}
	exp := int(bits>>23&0xff) - 127 + 15
	return sign | uint16(exp)<<10 | uint16(bits>>13&0x3ff)
}

func TestBinaryTensorData(t *testing.T) {
	m := loadModel(t, mlpSpec(), "iris")
	ts := startServer(t, m, Options{})
	floats := []float32{0.5, -1.25, 3, 0.125, -2, 1.5, 0.75, -0.5}
	ints := []float32{0, 1, 2, 3, 4, 5, 6, 7}
	for _, c := range []struct {
		dt   string
		vals []float32
	}{
		{"BOOL", []float32{1, 0, 0, 1, 1, 1, 0, 0}}, {"UINT8", ints}, {"UINT16", ints}, {"UINT32", ints}, {"UINT64", ints},
		{"INT8", []float32{-8, 7, 0, -1, 2, 3, -4, 5}}, {"INT16", []float32{-300, 7, 0, -1, 2, 3, -4, 5}},
		{"INT32", ints}, {"INT64", []float32{-70000, 1, 2, 3, 4, 5, 6, 7}},
		{"FP16", floats}, {"FP32", floats}, {"FP64", floats},
	} {
		want := direct(t, m, "input", []int{2, 4}, c.vals)
		blob := encodeLE(c.dt, c.vals)
		input := map[string]any{"name": "input", "shape": []int{2, 4}, "datatype": c.dt, "parameters": map[string]any{"binary_data_size": len(blob)}}
		// Binary in, binary out (asked for by the output).
		code, body, h := binaryRequest(t, ts, map[string]any{"id": c.dt, "inputs": []any{input},
			"outputs": []any{map[string]any{"name": "output", "parameters": map[string]any{"binary_data": true}}}}, blob)
		if code != 200 {
			t.Fatalf("%s: %d %s", c.dt, code, body)
		}
		n, err := strconv.Atoi(h.Get("Inference-Header-Content-Length"))
		if err != nil || n > len(body) || h.Get("Content-Type") != "application/octet-stream" {
			t.Fatalf("%s: headers %v", c.dt, h)
		}
		var r struct {
			ID      string `json:"id"`
			Outputs []struct {
				Name       string         `json:"name"`
				Shape      []int          `json:"shape"`
				Parameters map[string]int `json:"parameters"`
				Data       []float32      `json:"data"`
			} `json:"outputs"`
		}
		if err := json.Unmarshal(body[:n], &r); err != nil {
			t.Fatalf("%s: JSON part %q: %v", c.dt, body[:n], err)
		}
		o := r.Outputs[0]
		if r.ID != c.dt || o.Data != nil || o.Parameters["binary_data_size"] != 24 || len(body)-n != 24 || !slices.Equal(o.Shape, []int{2, 3}) {
			t.Fatalf("%s: response %s + %d bytes", c.dt, body[:n], len(body)-n)
		}
		var got []float32
		for i := n; i < len(body); i += 4 {
			got = append(got, math.Float32frombits(binary.LittleEndian.Uint32(body[i:])))
		}
		sameFloats(t, c.dt+" binary", got, want.Data)

		// Binary in, JSON out.
		code, body, _ = binaryRequest(t, ts, map[string]any{"inputs": []any{input}}, blob)
		if code != 200 {
			t.Fatalf("%s → JSON: %d %s", c.dt, code, body)
		}
		sameFloats(t, c.dt+" binary→JSON", decode[inferResponse](t, body).Outputs[0].Data, want.Data)
	}

	// JSON in, every output binary through the request's parameter.
	x := []float32{1, 2, 3, 4}
	want := direct(t, m, "input", []int{1, 4}, x)
	code, body, h := binaryRequest(t, ts, map[string]any{"parameters": map[string]any{"binary_data_output": true},
		"inputs": []any{map[string]any{"name": "input", "shape": []int{1, 4}, "datatype": "FP32", "data": x}}})
	n, _ := strconv.Atoi(h.Get("Inference-Header-Content-Length"))
	if code != 200 || len(body)-n != 12 {
		t.Fatalf("binary_data_output: %d %q", code, body)
	}
	var got []float32
	for i := n; i < len(body); i += 4 {
		got = append(got, math.Float32frombits(binary.LittleEndian.Uint32(body[i:])))
	}
	sameFloats(t, "binary_data_output", got, want.Data)
	// ... unless the output says false.
	code, body, h = binaryRequest(t, ts, map[string]any{"parameters": map[string]any{"binary_data_output": true},
		"inputs":  []any{map[string]any{"name": "input", "shape": []int{1, 4}, "datatype": "FP32", "data": x}},
		"outputs": []any{map[string]any{"name": "output", "parameters": map[string]any{"binary_data": false}}}})
	if code != 200 || h.Get("Inference-Header-Content-Length") != "" {
		t.Fatalf("binary_data false: %d %s", code, body)
	}
	sameFloats(t, "binary_data false", decode[inferResponse](t, body).Outputs[0].Data, want.Data)

	// Errors, each naming the problem.
	fp32 := encodeLE("FP32", x)
	in := func(dt string, size int) map[string]any {
		return map[string]any{"inputs": []any{map[string]any{"name": "input", "shape": []int{1, 4}, "datatype": dt, "parameters": map[string]any{"binary_data_size": size}}}}
	}
	for _, c := range []struct {
		name string
		head any
		blob []byte
		msg  string
	}{
		{"short", in("FP32", 16), fp32[:12], "only 12 bytes of binary data are left"},
		{"extra", in("FP32", 16), append(fp32, 0, 0), "2 bytes of binary data follow the JSON"},
		{"size not of the shape", in("FP32", 12), fp32[:12], "3 values do not fill shape [1 4]"},
		{"partial element", in("FP32", 15), fp32[:15], "not a whole number of FP32 elements"},
		{"BOOL byte", in("BOOL", 4), []byte{0, 1, 2, 1}, "BOOL element 2 is byte 2"},
		{"FP64 range", in("FP64", 32), encodeLE("FP64", []float32{1, 2, 3, 4})[:24], "only 24 bytes"},
		{"BYTES", in("BYTES", 8), []byte{1, 0, 0, 0, 'a', 1, 0, 0}, "BYTES cannot be converted"},
	} {
		code, body, _ := binaryRequest(t, ts, c.head, c.blob)
		if code != 400 {
			t.Errorf("%s: %d %s", c.name, code, body)
			continue
		}
		contains(t, c.name, errorMessage(t, body), c.msg)
	}
	big := encodeLE("FP64", []float32{1, 2, 3, 4})
	binary.LittleEndian.PutUint64(big[24:], math.Float64bits(1e300))
	if code, body, _ := binaryRequest(t, ts, in("FP64", 32), big); code != 400 {
		t.Errorf("FP64 1e300: %d %s", code, body)
	} else {
		contains(t, "FP64 1e300", errorMessage(t, body), "out of range")
	}
	for _, hv := range []string{"0", "-1", "x", "100000"} {
		code, body, _ := ts.do(t, http.MethodPost, "/v2/models/iris/infer", "", []byte(`{"inputs":[]}`), "Inference-Header-Content-Length", hv)
		if code != 400 {
			t.Errorf("header %q: %d %s", hv, code, body)
		} else {
			contains(t, "header "+hv, errorMessage(t, body), "Inference-Header-Content-Length")
		}
	}
}

func TestHalfToFloat(t *testing.T) {
	for h, want := range map[uint16]float32{
		0x0000: 0, 0x3c00: 1, 0xc000: -2, 0x3555: 0.33325195, 0x7bff: 65504, 0x0001: 5.9604645e-08, 0x0400: 6.1035156e-05, 0x03ff: 6.097555e-05,
	} {
		if got := halfToFloat(h); got != want {
			t.Errorf("halfToFloat(%#04x) = %v, want %v", h, got, want)
		}
	}
	if !math.IsInf(float64(halfToFloat(0x7c00)), 1) || !math.IsNaN(float64(halfToFloat(0x7e00))) || math.Signbit(float64(halfToFloat(0x8000))) != true {
		t.Errorf("specials")
	}
}
