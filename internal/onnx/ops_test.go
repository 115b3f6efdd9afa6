package onnx

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hpcml/hpcml/internal/nn"
)

// Single-operator graphs for the import paths that exported and PyTorch
// models do not reach: general Gemm and MatMul, n-d broadcasting, the
// older opsets' forms, Gelu (opset 20), ceil_mode, auto_pad, ... Each runs
// on the engine with its output shape checked; TestOpsOnnxruntime then
// compares every output with onnxruntime's.

type opCase struct {
	name      string
	opset     int64
	nodes     []*nodeProto
	inits     []*tensorProto
	inputs    []*valueInfoProto
	output    *valueInfoProto
	wantShape []int
}

func (c opCase) model() []byte {
	ir := int64(7)
	switch {
	case c.opset >= 20:
		ir = 9 // opset 20 needs IR 9
	case c.opset <= 10:
		ir = 5
	}
	return (&modelProto{
		IRVersion:   ir,
		OpsetImport: []opsetID{{Version: c.opset}},
		Graph:       &graphProto{Name: c.name, Nodes: c.nodes, Initializers: c.inits, Inputs: c.inputs, Outputs: []*valueInfoProto{c.output}},
	}).marshal()
}

// feeds gives each input seeded random values, symbolic dimensions as 2.
func (c opCase) feeds() map[string]*nn.Tensor {
	in := map[string]*nn.Tensor{}
	for i, vi := range c.inputs {
		var shape []int
		for _, d := range vi.Type.Shape {
			if d.HasValue {
				shape = append(shape, int(d.Value))
			} else {
				shape = append(shape, 2)
			}
		}
		in[vi.Name] = randomTensor(uint64(100+i), shape...)
	}
	return in
}

func f32(n int, start, step float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = start + step*float32(i)
	}
	return v
}

func strAttr(name, v string) *attributeProto {
	return &attributeProto{Name: name, Type: attrString, S: []byte(v)}
}

func opCases() []opCase {
	y := func(dims ...any) *valueInfoProto { return info("y", dtFloat, dims...) }
	return []opCase{
		{name: "gemm_general", opset: 13,
			nodes:  []*nodeProto{node("Gemm", "g", []string{"a", "b", "c"}, []string{"y"}, floatAttr("alpha", 0.5), floatAttr("beta", 2), intAttr("transB", 1))},
			inits:  []*tensorProto{floatInit("c", []int64{4}, f32(4, -1, 0.5))},
			inputs: []*valueInfoProto{info("a", dtFloat, "N", 3), info("b", dtFloat, 4, 3)}, output: y("N", 4), wantShape: []int{2, 4}},
		{name: "gemm_transA_constB", opset: 13,
			nodes:  []*nodeProto{node("Gemm", "g", []string{"a", "b", "c"}, []string{"y"}, floatAttr("alpha", 1.5), floatAttr("beta", 0.5), intAttr("transA", 1))},
			inits:  []*tensorProto{floatInit("b", []int64{3, 4}, f32(12, -0.6, 0.1)), floatInit("c", []int64{1, 4}, f32(4, 1, 1))},
			inputs: []*valueInfoProto{info("a", dtFloat, 3, 5)}, output: y(5, 4), wantShape: []int{5, 4}},
		{name: "gemm_row_bias", opset: 13,
			nodes:  []*nodeProto{node("Gemm", "g", []string{"a", "b", "c"}, []string{"y"})},
			inits:  []*tensorProto{floatInit("b", []int64{3, 4}, f32(12, 0.3, -0.05)), floatInit("c", []int64{2, 1}, []float32{10, -10})},
			inputs: []*valueInfoProto{info("a", dtFloat, 2, 3)}, output: y(2, 4), wantShape: []int{2, 4}},
		{name: "matmul_inputs", opset: 13,
			nodes:  []*nodeProto{node("MatMul", "m", []string{"a", "b"}, []string{"y"})},
			inputs: []*valueInfoProto{info("a", dtFloat, "N", 3), info("b", dtFloat, 3, 5)}, output: y("N", 5), wantShape: []int{2, 5}},
		{name: "matmul_const", opset: 13,
			nodes:  []*nodeProto{node("MatMul", "m", []string{"a", "b"}, []string{"y"})},
			inits:  []*tensorProto{floatInit("b", []int64{3, 5}, f32(15, -1, 0.13))},
			inputs: []*valueInfoProto{info("a", dtFloat, "N", 3)}, output: y("N", 5), wantShape: []int{2, 5}},
		{name: "broadcast_nd", opset: 13,
			nodes: []*nodeProto{
				node("Add", "add", []string{"x", "c"}, []string{"s"}),
				node("Mul", "mul", []string{"s", "u"}, []string{"m"}),
				node("Sub", "sub", []string{"m", "half"}, []string{"d"}),
				node("Div", "div", []string{"d", "u"}, []string{"y"}),
			},
			inits:  []*tensorProto{floatInit("c", []int64{3, 1, 5}, f32(15, -2, 0.3)), floatInit("half", nil, []float32{0.5})},
			inputs: []*valueInfoProto{info("x", dtFloat, "N", 3, 4, 5), info("u", dtFloat, 4, 1)}, output: y("N", 3, 4, 5), wantShape: []int{2, 3, 4, 5}},
		{name: "softmax_opset11", opset: 11,
			nodes:  []*nodeProto{node("Softmax", "s", []string{"x"}, []string{"y"}, intAttr("axis", 1))},
			inputs: []*valueInfoProto{info("x", dtFloat, "N", 2, 3)}, output: y("N", 2, 3), wantShape: []int{2, 2, 3}},
		{name: "softmax_axis1", opset: 13,
			nodes:  []*nodeProto{node("Softmax", "s", []string{"x"}, []string{"y"}, intAttr("axis", 1))},
			inputs: []*valueInfoProto{info("x", dtFloat, "N", 2, 3)}, output: y("N", 2, 3), wantShape: []int{2, 2, 3}},
		{name: "logsoftmax_default", opset: 13,
			nodes:  []*nodeProto{node("LogSoftmax", "s", []string{"x"}, []string{"y"})},
			inputs: []*valueInfoProto{info("x", dtFloat, "N", 2, 3)}, output: y("N", 2, 3), wantShape: []int{2, 2, 3}},
		{name: "gelu_opset20", opset: 20,
			nodes: []*nodeProto{
				node("Gelu", "exact", []string{"x"}, []string{"a"}),
				node("Gelu", "tanh", []string{"x"}, []string{"b"}, strAttr("approximate", "tanh")),
				node("Add", "add", []string{"a", "b"}, []string{"y"}),
			},
			inputs: []*valueInfoProto{info("x", dtFloat, "N", 7)}, output: y("N", 7), wantShape: []int{2, 7}},
		{name: "activations", opset: 13,
			nodes: []*nodeProto{
				node("Erf", "erf", []string{"x"}, []string{"a"}),
				node("Tanh", "tanh", []string{"a"}, []string{"b"}),
				node("Sigmoid", "sig", []string{"b"}, []string{"c"}),
				node("Relu", "relu", []string{"x"}, []string{"d"}),
				node("Add", "add", []string{"c", "d"}, []string{"y"}),
			},
			inputs: []*valueInfoProto{info("x", dtFloat, "N", 7)}, output: y("N", 7), wantShape: []int{2, 7}},
		{name: "unsqueeze_squeeze_opset11", opset: 11,
			nodes: []*nodeProto{
				node("Unsqueeze", "u", []string{"x"}, []string{"a"}, intsAttr("axes", 0, 3)),
				node("Squeeze", "s", []string{"a"}, []string{"y"}, intsAttr("axes", 0)),
			},
			inputs: []*valueInfoProto{info("x", dtFloat, "N", 3)}, output: y("N", 3, 1), wantShape: []int{2, 3, 1}},
		{name: "unsqueeze_squeeze_opset13", opset: 13,
			nodes: []*nodeProto{
				node("Unsqueeze", "u", []string{"x", "axes"}, []string{"a"}),
				node("Squeeze", "s", []string{"a"}, []string{"y"}),
			},
			inits:  []*tensorProto{int64Init("axes", 1, -1)},
			inputs: []*valueInfoProto{info("x", dtFloat, "N", 3)}, output: y("N", 3), wantShape: []int{2, 3}},
		{name: "reshape_zero_and_infer", opset: 13,
			nodes:  []*nodeProto{node("Reshape", "r", []string{"x", "shape"}, []string{"y"})},
			inits:  []*tensorProto{int64Init("shape", 0, 3, -1)},
			inputs: []*valueInfoProto{info("x", dtFloat, "N", 2, 6)}, output: y("N", 3, 4), wantShape: []int{2, 3, 4}},
		{name: "shape_slice_opset15", opset: 15,
			nodes: []*nodeProto{
				node("Shape", "shape", []string{"x"}, []string{"tail"}, intAttr("start", 2)),
				node("Concat", "cat", []string{"minus1", "tail"}, []string{"target"}, intAttr("axis", 0)),
				node("Reshape", "r", []string{"x", "target"}, []string{"y"}),
			},
			inits:  []*tensorProto{int64Init("minus1", -1)},
			inputs: []*valueInfoProto{info("x", dtFloat, "N", 2, 6)}, output: y("M", 6), wantShape: []int{4, 6}},
		{name: "maxpool_ceil_same_conv", opset: 13,
			nodes: []*nodeProto{
				node("Conv", "c", []string{"x", "w"}, []string{"a"}, strAttr("auto_pad", "SAME_UPPER")),
				node("MaxPool", "p", []string{"a"}, []string{"y"}, intsAttr("kernel_shape", 3, 3), intsAttr("strides", 2, 2), intAttr("ceil_mode", 1)),
			},
			inits:  []*tensorProto{floatInit("w", []int64{2, 1, 3, 3}, f32(18, -0.5, 0.07))},
			inputs: []*valueInfoProto{info("x", dtFloat, "N", 1, 7, 7)}, output: y("N", 2, 3, 3), wantShape: []int{2, 2, 3, 3}},
		{name: "avgpool_count_pad", opset: 13,
			nodes: []*nodeProto{node("AveragePool", "p", []string{"x"}, []string{"y"},
				intsAttr("kernel_shape", 3, 3), intsAttr("pads", 1, 1, 1, 1), intsAttr("strides", 2, 2), intAttr("count_include_pad", 1))},
			inputs: []*valueInfoProto{info("x", dtFloat, "N", 2, 6, 6)}, output: y("N", 2, 3, 3), wantShape: []int{2, 2, 3, 3}},
		{name: "global_avgpool", opset: 13,
			nodes:  []*nodeProto{node("GlobalAveragePool", "p", []string{"x"}, []string{"y"})},
			inputs: []*valueInfoProto{info("x", dtFloat, "N", 3, 4, 5)}, output: y("N", 3, 1, 1), wantShape: []int{2, 3, 1, 1}},
		{name: "batchnorm_ncl", opset: 13,
			nodes: []*nodeProto{node("BatchNormalization", "bn", []string{"x", "s", "b", "m", "v"}, []string{"y"}, floatAttr("epsilon", 1e-3))},
			inits: []*tensorProto{floatInit("s", []int64{3}, []float32{1.5, 0.5, -1}), floatInit("b", []int64{3}, []float32{0.1, 0.2, 0.3}),
				floatInit("m", []int64{3}, []float32{-0.2, 0, 0.4}), floatInit("v", []int64{3}, []float32{0.5, 1, 2})},
			inputs: []*valueInfoProto{info("x", dtFloat, "N", 3, 5)}, output: y("N", 3, 5), wantShape: []int{2, 3, 5}},
		{name: "pad_opset11_value", opset: 13,
			nodes:  []*nodeProto{node("Pad", "p", []string{"x", "pads", "v"}, []string{"y"})},
			inits:  []*tensorProto{int64Init("pads", 0, 1, 0, 0, 0, 2), floatInit("v", nil, []float32{1.5})},
			inputs: []*valueInfoProto{info("x", dtFloat, "N", 2, 3)}, output: y("N", 3, 5), wantShape: []int{2, 3, 5}},
		{name: "pad_opset10_attr", opset: 10,
			nodes:  []*nodeProto{node("Pad", "p", []string{"x"}, []string{"y"}, intsAttr("pads", 0, 0, 1, 1, 0, 0, 1, 1), floatAttr("value", -2))},
			inputs: []*valueInfoProto{info("x", dtFloat, "N", 1, 2, 2)}, output: y("N", 1, 4, 4), wantShape: []int{2, 1, 4, 4}},
		{name: "gather_concat_flatten", opset: 13,
			nodes: []*nodeProto{
				node("Gather", "g", []string{"x", "idx"}, []string{"a"}, intAttr("axis", 1)),
				node("Concat", "c", []string{"a", "x"}, []string{"b"}, intAttr("axis", 1)),
				node("Flatten", "f", []string{"b"}, []string{"y"}, intAttr("axis", 2)),
			},
			inits:  []*tensorProto{int64Init("idx", 2, 0, -1)},
			inputs: []*valueInfoProto{info("x", dtFloat, "N", 4, 2, 3)}, output: y("M", 6), wantShape: []int{14, 6}},
		{name: "constants_dropout_identity", opset: 13,
			nodes: []*nodeProto{
				{OpType: "Constant", Name: "k", Outputs: []string{"k"}, Attributes: []*attributeProto{{Name: "value_floats", Type: attrFloats, Floats: []float32{1, 2, 3}}}},
				node("Dropout", "d", []string{"x", "ratio"}, []string{"a"}),
				node("Identity", "i", []string{"a"}, []string{"b"}),
				node("Add", "add", []string{"b", "k"}, []string{"y"}),
			},
			inits:  []*tensorProto{floatInit("ratio", nil, []float32{0.7})},
			inputs: []*valueInfoProto{info("x", dtFloat, "N", 3)}, output: y("N", 3), wantShape: []int{2, 3}},
	}
}

func TestOps(t *testing.T) {
	for _, c := range opCases() {
		t.Run(c.name, func(t *testing.T) {
			g, err := Load(c.model())
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			outs, err := g.Run(t.Context(), c.feeds())
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := outs["y"].Shape; fmt.Sprint(got) != fmt.Sprint(c.wantShape) {
				t.Fatalf("output shape %v, want %v", got, c.wantShape)
			}
		})
	}
}

// TestOpsValues spot-checks a few outputs by hand, independent of any peer.
func TestOpsValues(t *testing.T) {
	byName := map[string]opCase{}
	for _, c := range opCases() {
		byName[c.name] = c
	}
	run := func(name string, in map[string]*nn.Tensor) *nn.Tensor {
		t.Helper()
		g, err := Load(byName[name].model())
		if err != nil {
			t.Fatal(err)
		}
		outs, err := g.Run(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		return outs["y"]
	}
	tensor := func(data []float32, shape ...int) *nn.Tensor {
		x, err := nn.FromData(data, shape...)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	// Pad: [[1 2 3] [4 5 6]] gets a row of 1.5 above and two columns right.
	got := run("pad_opset11_value", map[string]*nn.Tensor{"x": tensor([]float32{1, 2, 3, 4, 5, 6}, 1, 2, 3)})
	assertClose(t, "pad", got, tensor([]float32{1.5, 1.5, 1.5, 1.5, 1.5, 1, 2, 3, 1.5, 1.5, 4, 5, 6, 1.5, 1.5}, 1, 3, 5), 0)
	// Gemm with a per-row C: rows of a·b plus 10 and −10.
	got = run("gemm_row_bias", map[string]*nn.Tensor{"a": tensor([]float32{1, 0, 0, 0, 0, 0}, 2, 3)})
	assertClose(t, "gemm", got, tensor([]float32{10.3, 10.25, 10.2, 10.15, -10, -10, -10, -10}, 2, 4), 1e-6)
	// Average pool counting padding: the corner window holds 4 of 9 ones.
	ones := nn.NewTensor(1, 2, 6, 6)
	for i := range ones.Data {
		ones.Data[i] = 1
	}
	got = run("avgpool_count_pad", map[string]*nn.Tensor{"x": ones})
	if got.Data[0] != 4.0/9 || got.Data[4] != 1 {
		t.Errorf("avgpool with count_include_pad: corner %g, centre %g, want 4/9 and 1", got.Data[0], got.Data[4])
	}
	// Gather [2 0 -1] on axis 1, then the input itself: 3+4 rows per sample.
	x := randomTensor(9, 1, 4, 2, 3)
	got = run("gather_concat_flatten", map[string]*nn.Tensor{"x": x})
	if fmt.Sprint(got.Data[0:6]) != fmt.Sprint(x.Data[12:18]) || fmt.Sprint(got.Data[12:18]) != fmt.Sprint(x.Data[18:24]) {
		t.Errorf("gather: rows %v and %v, want %v and %v", got.Data[0:6], got.Data[12:18], x.Data[12:18], x.Data[18:24])
	}
}

// TestOpsOnnxruntime compares every single-operator graph with onnxruntime.
func TestOpsOnnxruntime(t *testing.T) {
	needOnnxruntime(t)
	dir := t.TempDir()
	var jobs []ortJob
	var want []*nn.Tensor
	cases := opCases()
	for _, c := range cases {
		path := filepath.Join(dir, c.name+".onnx")
		if err := os.WriteFile(path, c.model(), 0o644); err != nil {
			t.Fatal(err)
		}
		g, err := Load(c.model())
		if err != nil {
			t.Fatalf("%s: Load: %v", c.name, err)
		}
		feeds := c.feeds()
		outs, err := g.Run(t.Context(), feeds)
		if err != nil {
			t.Fatalf("%s: Run: %v", c.name, err)
		}
		want = append(want, outs["y"])
		job := ortJob{Model: path, Inputs: map[string]ortTensor{}}
		for name, x := range feeds {
			job.Inputs[name] = ortTensor{Shape: x.Shape, Data: x.Data}
		}
		jobs = append(jobs, job)
	}
	_, results := runOnnxruntime(t, jobs)
	for i, c := range cases {
		got, ok := results[i]["y"]
		if !ok {
			t.Errorf("%s: onnxruntime gave no output y", c.name)
			continue
		}
		assertClose(t, c.name+" (engine vs onnxruntime)", want[i], &nn.Tensor{Shape: got.Shape, Data: got.Data}, 1e-5)
	}
}
