package onnx

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/hpcml/hpcml/internal/nn"
)

// Hand-built graphs for the checks that exported models never trip.

func handModel(nodes []*nodeProto, inits []*tensorProto, inputs, outputs []*valueInfoProto) []byte {
	return (&modelProto{
		IRVersion:   7,
		OpsetImport: []opsetID{{Version: 13}},
		Graph:       &graphProto{Name: "t", Nodes: nodes, Initializers: inits, Inputs: inputs, Outputs: outputs},
	}).marshal()
}

// info declares a tensor; a string dimension is symbolic.
func info(name string, elem int32, dims ...any) *valueInfoProto {
	t := &typeProto{ElemType: elem, HasShape: true}
	for _, d := range dims {
		switch d := d.(type) {
		case string:
			t.Shape = append(t.Shape, dimension{Param: d})
		case int:
			t.Shape = append(t.Shape, dimension{Value: int64(d), HasValue: true})
		}
	}
	return &valueInfoProto{Name: name, Type: t}
}

func node(op, name string, in, out []string, attrs ...*attributeProto) *nodeProto {
	return &nodeProto{OpType: op, Name: name, Inputs: in, Outputs: out, Attributes: attrs}
}

func floatInit(name string, dims []int64, data []float32) *tensorProto {
	return &tensorProto{Name: name, Dims: dims, DataType: dtFloat, FloatData: data}
}

func int64Init(name string, data ...int64) *tensorProto {
	return &tensorProto{Name: name, Dims: []int64{int64(len(data))}, DataType: dtInt64, Int64Data: data}
}

// reluModel is x[N,6] → Relu → y.
func reluModel() []byte {
	return handModel([]*nodeProto{node("Relu", "relu", []string{"x"}, []string{"y"})}, nil,
		[]*valueInfoProto{info("x", dtFloat, "N", 6)}, []*valueInfoProto{info("y", dtFloat, "N", 6)})
}

func wantErr(t *testing.T, what string, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want one containing %q", what, parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("%s: error %q does not contain %q", what, err, p)
		}
	}
}

func TestLoadRejects(t *testing.T) {
	x := []*valueInfoProto{info("x", dtFloat, "N", 6)}
	y := []*valueInfoProto{info("y", dtFloat, "N", 6)}
	for _, tc := range []struct {
		name  string
		model []byte
		want  []string
	}{
		{"empty", nil, []string{"the model is empty"}},
		{"not protobuf", []byte("\x89PNG\r\n\x1a\n not a model at all"), []string{"not a valid ONNX protobuf"}},
		{"no graph", (&modelProto{IRVersion: 7, OpsetImport: []opsetID{{Version: 13}}}).marshal(), []string{"has no graph"}},
		{"unsupported ops", handModel([]*nodeProto{
			node("Relu", "r0", []string{"x"}, []string{"a"}),
			node("Relu", "r1", []string{"a"}, []string{"b"}),
			node("Relu", "r2", []string{"b"}, []string{"c"}),
			node("LSTM", "lstm_1", []string{"c"}, []string{"d"}),
			node("FusedConv", "fc", []string{"d"}, []string{"y"}),
		}, nil, x, y), []string{"unsupported ONNX operators: LSTM (node 3 'lstm_1'), FusedConv (node 4 'fc')"}},
		{"custom domain", handModel([]*nodeProto{{OpType: "Relu", Name: "r", Domain: "com.example", Inputs: []string{"x"}, Outputs: []string{"y"}}}, nil, x, y),
			[]string{"unsupported ONNX operators: com.example.Relu (node 0 'r')"}},
		{"int64 input", handModel([]*nodeProto{node("Identity", "id", []string{"ids"}, []string{"y"})}, nil,
			[]*valueInfoProto{info("ids", dtInt64, "N", 6)}, y), []string{`input "ids" has element type INT64`, "only FLOAT"}},
		{"double initializer", handModel([]*nodeProto{node("Add", "add", []string{"x", "w"}, []string{"y"})},
			[]*tensorProto{{Name: "w", Dims: []int64{6}, DataType: dtDouble, DoubleData: make([]float64, 6)}}, x, y),
			[]string{`tensor "w" has element type DOUBLE`}},
		{"short initializer", handModel([]*nodeProto{node("Add", "add", []string{"x", "w"}, []string{"y"})},
			[]*tensorProto{floatInit("w", []int64{6}, []float32{1, 2})}, x, y), []string{`tensor "w" holds 2 values for shape [6]`}},
		{"undefined input", handModel([]*nodeProto{node("Add", "add", []string{"x", "nowhere"}, []string{"y"})}, nil, x, y),
			[]string{"node 0 'add' (Add) reads \"nowhere\", which no input, initializer or earlier node defines"}},
		{"not topological", handModel([]*nodeProto{
			node("Relu", "second", []string{"a"}, []string{"y"}),
			node("Relu", "first", []string{"x"}, []string{"a"}),
		}, nil, x, y), []string{"node 0 'second' (Relu) reads \"a\" before node 1 'first' (Relu) defines it", "topological order"}},
		{"output undefined", handModel([]*nodeProto{node("Relu", "r", []string{"x"}, []string{"z"})}, nil, x, y),
			[]string{`output "y" is not defined`}},
		{"reshape impossible", handModel([]*nodeProto{node("Reshape", "rs", []string{"x", "shape"}, []string{"y"})},
			[]*tensorProto{int64Init("shape", -1, 4)}, x, []*valueInfoProto{info("y", dtFloat, "N", 4)}),
			[]string{"node 0 'rs' (Reshape)", "cannot reshape [1 6] (6 values) to [-1 4]"}},
		{"reshape two -1", handModel([]*nodeProto{node("Reshape", "rs", []string{"x", "shape"}, []string{"y"})},
			[]*tensorProto{int64Init("shape", -1, -1)}, x, y), []string{"more than one -1"}},
		{"conv group", handModel([]*nodeProto{node("Conv", "conv1", []string{"img", "w"}, []string{"y"}, intAttr("group", 2))},
			[]*tensorProto{floatInit("w", []int64{2, 1, 3, 3}, make([]float32, 18))},
			[]*valueInfoProto{info("img", dtFloat, "N", 2, 5, 5)}, y), []string{"node 0 'conv1' (Conv)", "attribute group=2"}},
		{"conv dilation", handModel([]*nodeProto{node("Conv", "conv1", []string{"img", "w"}, []string{"y"}, intsAttr("dilations", 2, 2))},
			[]*tensorProto{floatInit("w", []int64{2, 1, 3, 3}, make([]float32, 18))},
			[]*valueInfoProto{info("img", dtFloat, "N", 1, 5, 5)}, y), []string{"node 0 'conv1' (Conv)", "attribute dilations=[2 2]"}},
		{"conv asymmetric pads", handModel([]*nodeProto{node("Conv", "conv1", []string{"img", "w"}, []string{"y"}, intsAttr("pads", 1, 0, 1, 0))},
			[]*tensorProto{floatInit("w", []int64{2, 1, 3, 3}, make([]float32, 18))},
			[]*valueInfoProto{info("img", dtFloat, "N", 1, 5, 5)}, y), []string{"attribute pads=[1 0 1 0]"}},
		{"conv rectangular", handModel([]*nodeProto{node("Conv", "conv1", []string{"img", "w"}, []string{"y"})},
			[]*tensorProto{floatInit("w", []int64{2, 1, 3, 1}, make([]float32, 6))},
			[]*valueInfoProto{info("img", dtFloat, "N", 1, 5, 5)}, y), []string{"only square kernels"}},
		{"conv channels", handModel([]*nodeProto{node("Conv", "conv1", []string{"img", "w"}, []string{"y"})},
			[]*tensorProto{floatInit("w", []int64{2, 3, 3, 3}, make([]float32, 54))},
			[]*valueInfoProto{info("img", dtFloat, "N", 1, 5, 5)}, y), []string{"the weights take 3 channels"}},
		{"gemm shapes", handModel([]*nodeProto{node("Gemm", "fc", []string{"x", "w"}, []string{"y"}, intAttr("transB", 1))},
			[]*tensorProto{floatInit("w", []int64{2, 5}, make([]float32, 10))}, x, y), []string{"node 0 'fc' (Gemm)", "take 5 features"}},
		{"dropout training", handModel([]*nodeProto{node("Dropout", "d", []string{"x", "", "train"}, []string{"y"})},
			[]*tensorProto{{Name: "train", DataType: dtBool, RawData: []byte{1}, HasRaw: true}}, x, y), []string{"training_mode is true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := Load(tc.model)
			if g != nil {
				t.Fatal("Load returned a graph with its error")
			}
			wantErr(t, tc.name, err, tc.want...)
		})
	}
}

func TestLoadTruncated(t *testing.T) {
	m, err := nn.Build(cnnSpec(), 1)
	if err != nil {
		t.Fatal(err)
	}
	data, err := Export(m, ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Every strict prefix must fail cleanly: the graph comes before the
	// opset import, and without metadata the opset import is last.
	for cut := 0; cut < len(data); cut += 1 + cut/64 {
		if _, err := Load(data[:cut]); err == nil {
			t.Fatalf("Load of the first %d of %d bytes succeeded", cut, len(data))
		}
	}
}

func TestLoadCorrupt(t *testing.T) {
	_, data := exportCases()[0].build(t)
	rng := rand.New(rand.NewPCG(5, 5))
	for range 300 {
		bad := append([]byte(nil), data...)
		for range 1 + rng.IntN(4) {
			bad[rng.IntN(len(bad))] = byte(rng.Uint32())
		}
		// Any outcome but a panic; a model that still loads must run.
		g, err := Load(bad)
		if err == nil {
			in := g.Inputs()[0]
			shape := []int{2}
			for _, d := range in.Shape[1:] {
				shape = append(shape, int(d))
			}
			_, _ = g.Run(context.Background(), map[string]*nn.Tensor{in.Name: nn.NewTensor(shape...)})
		}
	}
}

// TestLoadSkipsUnknownFields: fields a newer ONNX adds are skipped.
func TestLoadSkipsUnknownFields(t *testing.T) {
	data := reluModel()
	data = protowire.AppendTag(data, 999, protowire.VarintType)
	data = protowire.AppendVarint(data, 12345)
	data = protowire.AppendTag(data, 1000, protowire.BytesType)
	data = protowire.AppendString(data, "from the future")
	data = protowire.AppendTag(data, 1001, protowire.Fixed64Type)
	data = protowire.AppendFixed64(data, 1)
	g, err := Load(data)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	y := runOne(t, g, "x", &nn.Tensor{Shape: []int{1, 6}, Data: []float32{-1, 2, -3, 4, -5, 6}})
	if y.Data[0] != 0 || y.Data[1] != 2 {
		t.Fatalf("Relu gave %v", y.Data)
	}
}

func TestRunRejects(t *testing.T) {
	g, err := Load(reluModel())
	if err != nil {
		t.Fatal(err)
	}
	ok := nn.NewTensor(2, 6)
	for _, tc := range []struct {
		name   string
		inputs map[string]*nn.Tensor
		want   []string
	}{
		{"wrong name", map[string]*nn.Tensor{"input": ok}, []string{`unknown input "input"`, "the model's inputs: x"}},
		{"extra name", map[string]*nn.Tensor{"x": ok, "mask": ok}, []string{`unknown input "mask"`}},
		{"missing", map[string]*nn.Tensor{}, []string{`input "x" is missing`}},
		{"nil tensor", map[string]*nn.Tensor{"x": nil}, []string{`input "x" is missing`}},
		{"wrong shape", map[string]*nn.Tensor{"x": nn.NewTensor(2, 5)}, []string{`input "x": expected shape [N 6], got [2 5]`}},
		{"wrong rank", map[string]*nn.Tensor{"x": nn.NewTensor(12)}, []string{`input "x": expected shape [N 6], got [12]`}},
		{"empty batch", map[string]*nn.Tensor{"x": nn.NewTensor(0, 6)}, []string{`expected shape [N 6], got [0 6]`}},
		{"short data", map[string]*nn.Tensor{"x": {Shape: []int{2, 6}, Data: make([]float32, 7)}}, []string{"7 values do not fill shape [2 6]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := g.Run(context.Background(), tc.inputs)
			wantErr(t, tc.name, err, tc.want...)
		})
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = g.Run(ctx, map[string]*nn.Tensor{"x": ok})
	wantErr(t, "cancelled", err, "interrupted", "context canceled")
}

// TestReshapeFailsAtRun: a Reshape to a fixed shape fits a batch of one —
// so Load accepts it — but no other batch; Run says which node and why.
func TestReshapeFailsAtRun(t *testing.T) {
	g, err := Load(handModel([]*nodeProto{node("Reshape", "to_2x3", []string{"x", "shape"}, []string{"y"})},
		[]*tensorProto{int64Init("shape", 2, 3)},
		[]*valueInfoProto{info("x", dtFloat, "N", 6)}, []*valueInfoProto{info("y", dtFloat, 2, 3)}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	_, err = g.Run(context.Background(), map[string]*nn.Tensor{"x": nn.NewTensor(2, 6)})
	wantErr(t, "reshape", err, "node 0 'to_2x3' (Reshape)", "cannot reshape [2 6] (12 values) to [2 3]")
}

// TestSymbolsAgree: inputs sharing a symbolic dimension must agree on it.
func TestSymbolsAgree(t *testing.T) {
	g, err := Load(handModel([]*nodeProto{node("Add", "add", []string{"a", "b"}, []string{"y"})}, nil,
		[]*valueInfoProto{info("a", dtFloat, "N", 3), info("b", dtFloat, "N", 3)}, []*valueInfoProto{info("y", dtFloat, "N", 3)}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Run(context.Background(), map[string]*nn.Tensor{"a": nn.NewTensor(2, 3), "b": nn.NewTensor(4, 3)})
	wantErr(t, "symbols", err, `"N" is 2 in another input`)
}

// FuzzLoad feeds Load mutations of real models: it must never panic.
func FuzzLoad(f *testing.F) {
	f.Add(reluModel())
	for _, name := range []string{"mlp", "lenet"} {
		if data, err := os.ReadFile(filepath.Join("testdata", "torch", name+".onnx")); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Load(data)
	})
}
