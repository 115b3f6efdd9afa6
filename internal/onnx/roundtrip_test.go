package onnx

import (
	"bytes"
	"context"
	"math"
	"sync"
	"testing"

	"github.com/hpcml/hpcml/internal/nn"
)

// exportCase is a model built with nn.Build, the options it is exported
// with, and the batch it is checked on.
type exportCase struct {
	name  string
	spec  nn.Spec
	opts  ExportOptions
	batch int
}

func mlpSpec() nn.Spec {
	return nn.Spec{Input: []int{6}, Layers: []nn.LayerSpec{
		{Type: "dense", Units: 16},
		{Type: "batchnorm"},
		{Type: "gelu"},
		{Type: "dense", Units: 12},
		{Type: "tanh"},
		{Type: "dropout", Rate: 0.3},
		{Type: "dense", Units: 8},
		{Type: "sigmoid"},
		{Type: "dense", Units: 3},
	}}
}

func cnnSpec() nn.Spec {
	return nn.Spec{Input: []int{3, 12, 12}, Layers: []nn.LayerSpec{
		{Type: "conv2d", Filters: 8, Kernel: 3, Padding: 1},
		{Type: "batchnorm"},
		{Type: "relu"},
		{Type: "maxpool2d", Kernel: 2},
		{Type: "residual", Layers: []nn.LayerSpec{ // identity shortcut
			{Type: "conv2d", Filters: 8, Kernel: 3, Padding: 1},
			{Type: "batchnorm"},
			{Type: "relu"},
			{Type: "conv2d", Filters: 8, Kernel: 3, Padding: 1},
			{Type: "batchnorm"},
		}},
		{Type: "avgpool2d", Kernel: 3, Stride: 1, Padding: 1},
		{Type: "residual", Layers: []nn.LayerSpec{ // 1×1 strided projection
			{Type: "conv2d", Filters: 16, Kernel: 3, Stride: 2, Padding: 1},
			{Type: "batchnorm"},
			{Type: "relu"},
			{Type: "conv2d", Filters: 16, Kernel: 3, Padding: 1},
		}},
		{Type: "globalavgpool"},
		{Type: "dense", Units: 5},
	}}
}

// flatCNNSpec covers padded max pooling, strided convolution and Flatten.
func flatCNNSpec() nn.Spec {
	return nn.Spec{Input: []int{1, 9, 9}, Layers: []nn.LayerSpec{
		{Type: "conv2d", Filters: 4, Kernel: 3, Stride: 2},
		{Type: "tanh"},
		{Type: "maxpool2d", Kernel: 3, Stride: 2, Padding: 1},
		{Type: "avgpool2d", Kernel: 2, Stride: 1, Padding: 1},
		{Type: "flatten"},
		{Type: "batchnorm"},
		{Type: "dense", Units: 1},
	}}
}

func exportCases() []exportCase {
	return []exportCase{
		{name: "mlp", spec: mlpSpec(), batch: 5},
		{name: "mlp_softmax_normalized", spec: mlpSpec(), batch: 3, opts: ExportOptions{
			Head:      "softmax",
			Normalize: &Normalization{Mean: []float32{1, -2, 0.5, 3, 0, 10}, Scale: []float32{0.5, 2, 1, 0.25, 1, 0.1}},
			Metadata:  map[string]string{"labels": `["a","b","c"]`, "preprocessing": "standardize"},
			DocString: "an MLP for the tests",
		}},
		{name: "cnn", spec: cnnSpec(), batch: 2},
		{name: "cnn_channel_norm", spec: cnnSpec(), batch: 1, opts: ExportOptions{
			Normalize: &Normalization{Mean: []float32{0.4, 0.5, 0.6}, Scale: []float32{4, 5, 6}},
		}},
		{name: "flat_cnn_sigmoid", spec: flatCNNSpec(), batch: 4, opts: ExportOptions{Head: "sigmoid"}},
	}
}

// build makes the case's model with random weights and exports it.
func (c exportCase) build(t *testing.T) (*nn.Model, []byte) {
	t.Helper()
	m, err := nn.Build(c.spec, 42)
	if err != nil {
		t.Fatalf("%s: Build: %v", c.name, err)
	}
	randomize(m, 43)
	data, err := Export(m, c.opts)
	if err != nil {
		t.Fatalf("%s: Export: %v", c.name, err)
	}
	return m, data
}

func (c exportCase) input() *nn.Tensor {
	return randomTensor(uint64(len(c.name)), append([]int{c.batch}, c.spec.Input...)...)
}

// expected is what the exported model must compute: the engine's own
// prediction with the normalisation in front and the head behind.
func (c exportCase) expected(t *testing.T, m *nn.Model, x *nn.Tensor) *nn.Tensor {
	t.Helper()
	if n := c.opts.Normalize; n != nil {
		x = x.Clone()
		per := x.SampleLen()
		// pick is the value of v for element j of a sample: one per
		// element, one per channel, or one for all.
		pick := func(v []float32, j int) float32 {
			switch len(v) {
			case per:
				return v[j]
			case 1:
				return v[0]
			}
			return v[j/(per/c.spec.Input[0])]
		}
		for i := range x.Data {
			j := i % per
			x.Data[i] = (x.Data[i] - pick(n.Mean, j)) * pick(n.Scale, j)
		}
	}
	y, err := m.Predict(x)
	if err != nil {
		t.Fatalf("Predict: %v", err)
	}
	switch c.opts.Head {
	case "softmax":
		k := y.SampleLen()
		for r := 0; r < y.Batch(); r++ {
			row := y.Data[r*k : (r+1)*k]
			mx := row[0]
			for _, v := range row {
				mx = max(mx, v)
			}
			var s float64
			for _, v := range row {
				s += math.Exp(float64(v - mx))
			}
			for i, v := range row {
				row[i] = float32(math.Exp(float64(v-mx)) / s)
			}
		}
	case "sigmoid":
		for i, v := range y.Data {
			y.Data[i] = float32(1 / (1 + math.Exp(-float64(v))))
		}
	}
	return y
}

func TestRoundTrip(t *testing.T) {
	for _, c := range exportCases() {
		t.Run(c.name, func(t *testing.T) {
			m, data := c.build(t)
			g, err := Load(data)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			x := c.input()
			got := runOne(t, g, InputName, x)
			assertClose(t, c.name, got, c.expected(t, m, x), 1e-5)

			in, out := g.Inputs(), g.Outputs()
			wantIn := append([]int64{-1}, ints64(c.spec.Input)...)
			if len(in) != 1 || in[0].Name != InputName || !equal64(in[0].Shape, wantIn) || in[0].DataType != "FP32" {
				t.Errorf("Inputs() = %+v, want %s %v FP32", in, InputName, wantIn)
			}
			wantOut := append([]int64{-1}, ints64(m.OutShape())...)
			if len(out) != 1 || out[0].Name != OutputName || !equal64(out[0].Shape, wantOut) {
				t.Errorf("Outputs() = %+v, want %s %v", out, OutputName, wantOut)
			}
			md := g.Metadata()
			for k, v := range c.opts.Metadata {
				if md[k] != v {
					t.Errorf("Metadata()[%q] = %q, want %q", k, md[k], v)
				}
			}
		})
	}
}

// TestExportDeterministic: the same model exports to the same bytes, so a
// registry can address models by content.
func TestExportDeterministic(t *testing.T) {
	c := exportCases()[1]
	_, a := c.build(t)
	_, b := c.build(t)
	if !bytes.Equal(a, b) {
		t.Fatal("two exports of the same model differ")
	}
}

// TestRunConcurrent runs one graph from many goroutines, as serving does;
// with -race it also checks that Run shares nothing mutable.
func TestRunConcurrent(t *testing.T) {
	c := exportCases()[2]
	m, data := c.build(t)
	g, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := randomTensor(uint64(100+i), append([]int{1 + i%3}, c.spec.Input...)...)
			want, _ := m.Predict(x)
			for range 5 {
				outs, err := g.Run(context.Background(), map[string]*nn.Tensor{InputName: x})
				if err != nil {
					errs <- err
					return
				}
				for j, v := range outs[OutputName].Data {
					if math.Abs(float64(v-want.Data[j])) > 1e-4 {
						errs <- errorf("goroutine %d: element %d is %g, want %g", i, j, v, want.Data[j])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestExportErrors(t *testing.T) {
	m, err := nn.Build(mlpSpec(), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts ExportOptions
		want string
	}{
		{"head", ExportOptions{Head: "argmax"}, `unknown head "argmax"`},
		{"normalize", ExportOptions{Normalize: &Normalization{Mean: []float32{1, 2}}}, "normalisation mean has 2 values"},
	} {
		if _, err := Export(m, tc.opts); err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("%s: Export error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	odd := &nn.Model{Spec: nn.Spec{Input: []int{2}}, Layers: []nn.Layer{&oddLayer{}}}
	if _, err := Export(odd, ExportOptions{}); err == nil || !contains(err.Error(), `layer kind "odd" cannot be exported`) {
		t.Errorf("unknown layer: Export error %v", err)
	}
}

// oddLayer is a layer kind the exporter does not know.
type oddLayer struct{ nn.Flatten }

func (*oddLayer) Kind() string { return "odd" }
