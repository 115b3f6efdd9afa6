package nn

import (
	"slices"
	"strings"
	"testing"
)

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func TestBuildErrors(t *testing.T) {
	conv := LayerSpec{Type: "conv2d", Filters: 4, Kernel: 3}
	cases := []struct {
		name string
		spec Spec
		want []string // parts of the error message
	}{
		{"no input", Spec{Layers: []LayerSpec{{Type: "relu"}}}, []string{"no input shape"}},
		{"zero dim", Spec{Input: []int{3, 0}, Layers: []LayerSpec{{Type: "relu"}}}, []string{"[3 0]"}},
		{"no layers", Spec{Input: []int{3}}, []string{"no layers"}},
		{"unknown type", Spec{Input: []int{3}, Layers: []LayerSpec{{Type: "relu"}, {Type: "lstm"}}}, []string{"layer 1 (lstm)", `unknown layer type "lstm"`}},
		{"conv on flat input", Spec{Input: []int{10}, Layers: []LayerSpec{{Type: "dense", Units: 16}, conv}}, []string{"layer 1 (conv2d)", "[16]"}},
		{"dense after conv", Spec{Input: []int{1, 8, 8}, Layers: []LayerSpec{conv, {Type: "dense", Units: 2}}}, []string{"layer 1 (dense)", "[4 6 6]", "flatten"}},
		{"pool on flat input", Spec{Input: []int{10}, Layers: []LayerSpec{{Type: "maxpool2d", Kernel: 2}}}, []string{"layer 0 (maxpool2d)", "[10]"}},
		{"globalavgpool on flat", Spec{Input: []int{10}, Layers: []LayerSpec{{Type: "globalavgpool"}}}, []string{"layer 0 (globalavgpool)", "[10]"}},
		{"kernel larger than image", Spec{Input: []int{1, 4, 8}, Layers: []LayerSpec{{Type: "conv2d", Filters: 2, Kernel: 5}}}, []string{"layer 0 (conv2d)", "4×8"}},
		{"pool larger than image", Spec{Input: []int{1, 8, 8}, Layers: []LayerSpec{conv, {Type: "avgpool2d", Kernel: 7}}}, []string{"layer 1 (avgpool2d)", "6×6"}},
		{"pool padding", Spec{Input: []int{1, 8, 8}, Layers: []LayerSpec{{Type: "maxpool2d", Kernel: 2, Padding: 2}}}, []string{"layer 0 (maxpool2d)", "padding 2"}},
		{"negative stride", Spec{Input: []int{1, 8, 8}, Layers: []LayerSpec{{Type: "conv2d", Filters: 2, Kernel: 3, Stride: -1}}}, []string{"layer 0 (conv2d)", "stride"}},
		{"negative padding", Spec{Input: []int{1, 8, 8}, Layers: []LayerSpec{{Type: "conv2d", Filters: 2, Kernel: 3, Padding: -1}}}, []string{"layer 0 (conv2d)", "padding"}},
		{"no filters", Spec{Input: []int{1, 8, 8}, Layers: []LayerSpec{{Type: "conv2d", Kernel: 3}}}, []string{"layer 0 (conv2d)", "filters"}},
		{"no units", Spec{Input: []int{8}, Layers: []LayerSpec{{Type: "dense"}}}, []string{"layer 0 (dense)", "units"}},
		{"unknown init", Spec{Input: []int{8}, Layers: []LayerSpec{{Type: "dense", Units: 2, Init: "zeros"}}}, []string{"layer 0 (dense)", `"zeros"`}},
		{"dropout rate", Spec{Input: []int{8}, Layers: []LayerSpec{{Type: "dropout", Rate: 1}}}, []string{"layer 0 (dropout)", "rate 1"}},
		{"batchnorm on 2-D", Spec{Input: []int{3, 5}, Layers: []LayerSpec{{Type: "batchnorm"}}}, []string{"layer 0 (batchnorm)", "[3 5]"}},
		{"batchnorm momentum", Spec{Input: []int{3}, Layers: []LayerSpec{{Type: "batchnorm", Momentum: 1.5}}}, []string{"layer 0 (batchnorm)", "momentum"}},
		{"batchnorm epsilon", Spec{Input: []int{3}, Layers: []LayerSpec{{Type: "batchnorm", Epsilon: -1}}}, []string{"layer 0 (batchnorm)", "epsilon"}},
		{"residual flat resize", Spec{Input: []int{8}, Layers: []LayerSpec{{Type: "residual", Layers: []LayerSpec{{Type: "dense", Units: 4}}}}}, []string{"layer 0 (residual)", "[8]", "[4]"}},
		{"residual unmatched size", Spec{Input: []int{2, 8, 8}, Layers: []LayerSpec{{Type: "residual", Layers: []LayerSpec{{Type: "conv2d", Filters: 2, Kernel: 3}}}}}, []string{"layer 0 (residual)", "[2 8 8]", "[2 6 6]"}},
		{"residual body error", Spec{Input: []int{2, 8, 8}, Layers: []LayerSpec{{Type: "relu"}, {Type: "residual", Layers: []LayerSpec{{Type: "flatten"}, conv}}}}, []string{"layer 1 (residual)", "layer 1.body.1 (conv2d)", "[128]"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Build(c.spec, 1)
			if err == nil {
				t.Fatalf("built %v", m.Layers)
			}
			if !containsAll(err.Error(), c.want...) {
				t.Fatalf("error %q does not name %q", err, c.want)
			}
		})
	}
}

func TestBuildShapesAndKinds(t *testing.T) {
	spec := Spec{Input: []int{3, 16, 12}, Layers: []LayerSpec{
		{Type: "conv2d", Filters: 8, Kernel: 3, Padding: 1},
		{Type: "batchnorm"},
		{Type: "relu"},
		{Type: "maxpool2d", Kernel: 2},
		{Type: "residual", Layers: []LayerSpec{{Type: "conv2d", Filters: 16, Kernel: 3, Stride: 2, Padding: 1}, {Type: "gelu"}}},
		{Type: "avgpool2d", Kernel: 3, Stride: 1, Padding: 1},
		{Type: "dropout", Rate: 0.1},
		{Type: "globalavgpool"},
		{Type: "batchnorm"},
		{Type: "dense", Units: 5, Init: "xavier"},
		{Type: "sigmoid"},
		{Type: "tanh"},
	}}
	m, err := Build(spec, 7)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, l := range m.Layers {
		kinds = append(kinds, l.Kind())
	}
	want := []string{"conv2d", "batchnorm", "relu", "maxpool2d", "residual", "avgpool2d", "dropout", "globalavgpool", "batchnorm", "dense", "sigmoid", "tanh"}
	if !slices.Equal(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}
	if !slices.Equal(m.OutShape(), []int{5}) {
		t.Errorf("out shape %v", m.OutShape())
	}
	x := randTensor(testRNG(), 3, 3, 16, 12)
	for _, ctx := range []*Context{Infer(), newTrainCtx()} {
		y, _, err := m.Forward(ctx, x)
		if err != nil || !slices.Equal(y.Shape, []int{3, 5}) {
			t.Fatalf("forward: %v, shape %v", err, shapeOf(y))
		}
	}
	if _, _, err := m.Forward(Infer(), randTensor(testRNG(), 3, 3, 12, 16)); err == nil || !containsAll(err.Error(), "[3 12 16]", "[3 16 12]") {
		t.Errorf("wrong input shape: %v", err)
	}
	// The residual's shortcut halves 8×6 to 4×3, as its body does.
	if r := m.Layers[4].(*Residual); r.Shortcut == nil || r.Shortcut.Stride != 2 {
		t.Errorf("residual shortcut %+v", r.Shortcut)
	}
}

func TestBuildReproducible(t *testing.T) {
	spec := Spec{Input: []int{1, 8, 8}, Layers: []LayerSpec{
		{Type: "conv2d", Filters: 4, Kernel: 3},
		{Type: "residual", Layers: []LayerSpec{{Type: "conv2d", Filters: 6, Kernel: 3, Stride: 2, Padding: 1}}},
		{Type: "flatten"},
		{Type: "dense", Units: 3},
	}}
	weights := func(seed uint64) [][]float32 {
		m, err := Build(spec, seed)
		if err != nil {
			t.Fatal(err)
		}
		var ws [][]float32
		for _, p := range m.Params() {
			ws = append(ws, p.Value.Data)
		}
		return ws
	}
	a, b, c := weights(42), weights(42), weights(43)
	for i := range a {
		if !slices.Equal(a[i], b[i]) {
			t.Errorf("param %d differs between two builds with seed 42", i)
		}
	}
	// Weights differ for another seed (biases start at 0 in both).
	for i := range a {
		if i%2 == 0 && slices.Equal(a[i], c[i]) {
			t.Errorf("param %d is the same for seeds 42 and 43", i)
		}
	}
}
