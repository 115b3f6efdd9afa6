package onnx

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"

	"github.com/hpcml/hpcml/internal/nn"
)

// Export format: ONNX IR version 7 with the default operator set 13 — the
// pair PyTorch 1.13 writes, which every runtime of the last years and
// onnx.checker 1.12 accept. (Gelu became an ONNX operator only in opset
// 20, so gelu is written as its erf formula.)
const (
	exportIRVersion = 7
	exportOpset     = 13
	// InputName and OutputName are the exported graph's tensor names.
	InputName  = "input"
	OutputName = "output"
	// BatchDim is the symbolic name of the batch dimension.
	BatchDim = "N"
)

// ExportOptions controls what Export writes around the network itself.
type ExportOptions struct {
	// ProducerName and ProducerVersion fill the model's producer fields;
	// the name defaults to "hpcml".
	ProducerName, ProducerVersion string
	// DocString describes the model.
	DocString string
	// Head is appended to the network's output: "" leaves the logits,
	// "softmax" adds Softmax over axis 1, "sigmoid" adds Sigmoid.
	Head string
	// Normalize, when set, puts the training data's standardisation in
	// front of the network, (x − Mean)·Scale, so that the model takes raw
	// features. Each of Mean and Scale has one value per input element,
	// one per channel of a C×H×W input, or a single value; either may be
	// nil to leave that step out.
	Normalize *Normalization
	// Metadata is written as the model's metadata_props (preprocessing,
	// label names, ...), sorted by key.
	Metadata map[string]string
}

// Normalization is a standardisation learnt from training data.
type Normalization struct {
	Mean, Scale []float32
}

// Export writes the model as an ONNX protobuf with input "input" of shape
// [N, spec input...] and output "output" (both float32, N symbolic). The
// same model and options give the same bytes.
func Export(m *nn.Model, opts ExportOptions) ([]byte, error) {
	if m == nil || len(m.Layers) == 0 {
		return nil, errors.New("onnx: export: the model has no layers")
	}
	if len(m.Spec.Input) == 0 {
		return nil, errors.New("onnx: export: the model's spec has no input shape")
	}
	e := &exporter{g: &graphProto{Name: "hpcml"}, used: map[string]bool{InputName: true, OutputName: true}}
	x := InputName
	var err error
	if opts.Normalize != nil {
		if x, err = e.normalize(x, m.Spec.Input, opts.Normalize); err != nil {
			return nil, fmt.Errorf("onnx: export: %w", err)
		}
	}
	if x, err = e.layers(m.Layers, x, ""); err != nil {
		return nil, fmt.Errorf("onnx: export: %w", err)
	}
	switch opts.Head {
	case "":
	case "softmax":
		x = e.node("Softmax", "head", []string{x}, intAttr("axis", 1))
	case "sigmoid":
		x = e.node("Sigmoid", "head", []string{x})
	default:
		return nil, fmt.Errorf("onnx: export: unknown head %q (want \"\", softmax or sigmoid)", opts.Head)
	}
	// The last node writes the graph output under its public name; a
	// network of dropouts alone has none, and gets an Identity.
	if len(e.g.Nodes) == 0 || e.g.Nodes[len(e.g.Nodes)-1].Outputs[0] != x {
		e.node("Identity", "output", []string{x})
	}
	e.g.Nodes[len(e.g.Nodes)-1].Outputs[0] = OutputName

	// The output shape comes from the layers themselves: a Model put
	// together by hand (not by nn.Build) has no cached one.
	out := m.Spec.Input
	for i, l := range m.Layers {
		if out, err = l.OutShape(out); err != nil {
			return nil, fmt.Errorf("onnx: export: layer %d (%s): %w", i, l.Kind(), err)
		}
	}
	e.g.Inputs = []*valueInfoProto{tensorInfo(InputName, m.Spec.Input)}
	e.g.Outputs = []*valueInfoProto{tensorInfo(OutputName, out)}
	producer := opts.ProducerName
	if producer == "" {
		producer = "hpcml"
	}
	mp := &modelProto{
		IRVersion:       exportIRVersion,
		OpsetImport:     []opsetID{{Domain: "", Version: exportOpset}},
		ProducerName:    producer,
		ProducerVersion: opts.ProducerVersion,
		DocString:       opts.DocString,
		Graph:           e.g,
	}
	for _, k := range slices.Sorted(maps.Keys(opts.Metadata)) {
		mp.MetadataProps = append(mp.MetadataProps, stringPair{Key: k, Value: opts.Metadata[k]})
	}
	return mp.marshal(), nil
}

// exporter accumulates the graph; used keeps value and initializer names
// unique, as ONNX's single-assignment form requires.
type exporter struct {
	g    *graphProto
	used map[string]bool
	// consts are scalar initializers shared by every gelu.
	consts map[float32]string
}

func (e *exporter) unique(name string) string {
	u := name
	for i := 1; e.used[u]; i++ {
		u = fmt.Sprintf("%s_%d", name, i)
	}
	e.used[u] = true
	return u
}

// node appends a node named name/op and returns its (single) output.
func (e *exporter) node(op, name string, inputs []string, attrs ...*attributeProto) string {
	n := e.unique(name + "/" + op)
	out := e.unique(n + "_output")
	e.g.Nodes = append(e.g.Nodes, &nodeProto{Inputs: inputs, Outputs: []string{out}, Name: n, OpType: op, Attributes: attrs})
	return out
}

// initializer adds a float32 initializer and returns its name.
func (e *exporter) initializer(name string, shape []int, data []float32) string {
	n := e.unique(name)
	dims := make([]int64, len(shape))
	for i, d := range shape {
		dims[i] = int64(d)
	}
	e.g.Initializers = append(e.g.Initializers, &tensorProto{Name: n, Dims: dims, DataType: dtFloat, RawData: floatRaw(data), HasRaw: true})
	return n
}

func (e *exporter) param(p *nn.Param, fallback string) string {
	name := p.Name
	if name == "" {
		name = fallback
	}
	return e.initializer(name, p.Value.Shape, p.Value.Data)
}

func (e *exporter) scalar(v float32) string {
	if e.consts == nil {
		e.consts = map[float32]string{}
	}
	if n, ok := e.consts[v]; ok {
		return n
	}
	n := e.initializer(fmt.Sprintf("const_%g", v), nil, []float32{v})
	e.consts[v] = n
	return n
}

func (e *exporter) normalize(x string, input []int, n *Normalization) (string, error) {
	shapeFor := func(what string, v []float32) ([]int, error) {
		switch {
		case len(v) == nn.Volume(input):
			return input, nil
		case len(input) == 3 && len(v) == input[0]:
			return []int{input[0], 1, 1}, nil
		case len(v) == 1:
			return []int{1}, nil
		}
		return nil, fmt.Errorf("normalisation %s has %d values; the input %v needs %d, one per channel, or 1", what, len(v), input, nn.Volume(input))
	}
	if n.Mean != nil {
		shape, err := shapeFor("mean", n.Mean)
		if err != nil {
			return "", err
		}
		x = e.node("Sub", "normalize", []string{x, e.initializer("normalize.mean", shape, n.Mean)})
	}
	if n.Scale != nil {
		shape, err := shapeFor("scale", n.Scale)
		if err != nil {
			return "", err
		}
		x = e.node("Mul", "normalize", []string{x, e.initializer("normalize.scale", shape, n.Scale)})
	}
	return x, nil
}

// layers writes ls applied to x, naming nodes by their place in the
// model ("3.body.0/Conv"), and returns the last value.
func (e *exporter) layers(ls []nn.Layer, x, prefix string) (string, error) {
	for i, l := range ls {
		name := fmt.Sprintf("%s%d", prefix, i)
		var err error
		if x, err = e.layer(l, x, name); err != nil {
			return "", fmt.Errorf("layer %s (%s): %w", name, l.Kind(), err)
		}
	}
	return x, nil
}

func (e *exporter) layer(l nn.Layer, x, name string) (string, error) {
	switch l := l.(type) {
	case *nn.Dense:
		return e.node("Gemm", name, []string{x, e.param(l.W, name+".weight"), e.param(l.B, name+".bias")},
			intAttr("transB", 1)), nil
	case *nn.Activation:
		switch l.Kind() {
		case "relu":
			return e.node("Relu", name, []string{x}), nil
		case "tanh":
			return e.node("Tanh", name, []string{x}), nil
		case "sigmoid":
			return e.node("Sigmoid", name, []string{x}), nil
		case "gelu":
			// 0.5·x·(1 + erf(x/√2)), as PyTorch writes it for opsets < 20.
			d := e.node("Div", name, []string{x, e.scalar(math.Sqrt2)})
			f := e.node("Erf", name, []string{d})
			a := e.node("Add", name, []string{f, e.scalar(1)})
			m := e.node("Mul", name, []string{x, a})
			return e.node("Mul", name, []string{m, e.scalar(0.5)}), nil
		}
		return "", fmt.Errorf("activation %q has no ONNX form here", l.Kind())
	case *nn.Conv2D:
		return e.conv(l, x, name), nil
	case *nn.Pool2D:
		k, s, p := int64(l.Kernel), int64(l.Stride), int64(l.Padding)
		attrs := []*attributeProto{intsAttr("kernel_shape", k, k), intsAttr("pads", p, p, p, p), intsAttr("strides", s, s)}
		if l.Max {
			return e.node("MaxPool", name, []string{x}, attrs...), nil
		}
		// The engine's average leaves padding out of the count.
		attrs = append(attrs, intAttr("count_include_pad", 0))
		return e.node("AveragePool", name, []string{x}, attrs...), nil
	case *nn.GlobalAvgPool:
		// ONNX keeps N×C×1×1; the engine's layer gives N×C.
		g := e.node("GlobalAveragePool", name, []string{x})
		return e.node("Flatten", name, []string{g}, intAttr("axis", 1)), nil
	case *nn.BatchNorm:
		// ONNX's momentum weighs the running value, PyTorch's (and the
		// engine's) the batch: 1 − m. Inference uses neither.
		return e.node("BatchNormalization", name, []string{x,
			e.param(l.Gamma, name+".weight"), e.param(l.Beta, name+".bias"),
			e.param(l.Mean, name+".running_mean"), e.param(l.Var, name+".running_var")},
			floatAttr("epsilon", float32(l.Epsilon)), floatAttr("momentum", float32(1-l.Momentum))), nil
	case *nn.Dropout:
		return x, nil // the identity at inference
	case *nn.Flatten:
		return e.node("Flatten", name, []string{x}, intAttr("axis", 1)), nil
	case *nn.Residual:
		body, err := e.layers(l.Body, x, name+".body.")
		if err != nil {
			return "", err
		}
		short := x
		if l.Shortcut != nil {
			short = e.conv(l.Shortcut, x, name+".shortcut")
		}
		sum := e.node("Add", name, []string{body, short})
		return e.node("Relu", name, []string{sum}), nil
	}
	return "", fmt.Errorf("layer kind %q cannot be exported to ONNX", l.Kind())
}

func (e *exporter) conv(c *nn.Conv2D, x, name string) string {
	k, s, p := int64(c.Kernel), int64(c.Stride), int64(c.Padding)
	return e.node("Conv", name, []string{x, e.param(c.W, name+".weight"), e.param(c.B, name+".bias")},
		intsAttr("dilations", 1, 1), intAttr("group", 1), intsAttr("kernel_shape", k, k),
		intsAttr("pads", p, p, p, p), intsAttr("strides", s, s))
}

func intAttr(name string, v int64) *attributeProto {
	return &attributeProto{Name: name, Type: attrInt, I: v}
}

func intsAttr(name string, v ...int64) *attributeProto {
	return &attributeProto{Name: name, Type: attrInts, Ints: v}
}

func floatAttr(name string, v float32) *attributeProto {
	return &attributeProto{Name: name, Type: attrFloat, F: v}
}

// tensorInfo declares a float32 tensor of shape [N, sample...].
func tensorInfo(name string, sample []int) *valueInfoProto {
	dims := []dimension{{Param: BatchDim}}
	for _, d := range sample {
		dims = append(dims, dimension{Value: int64(d), HasValue: true})
	}
	return &valueInfoProto{Name: name, Type: &typeProto{ElemType: dtFloat, Shape: dims, HasShape: true}}
}
