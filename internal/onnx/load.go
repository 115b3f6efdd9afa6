package onnx

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/hpcml/hpcml/internal/nn"
)

// ValueInfo describes a graph input or output. Shape has -1 for a symbolic
// or unknown dimension (the batch, usually); DataType uses the Open
// Inference Protocol's names ("FP32"), which is what serving reports.
type ValueInfo struct {
	Name     string
	Shape    []int64
	DataType string
}

// Graph is an imported ONNX model compiled for the nn engine. It is
// immutable after Load, so Run may be called from many goroutines at once.
type Graph struct {
	inputs   []ValueInfo
	outputs  []ValueInfo
	inDims   [][]dimension // declared input dimensions, for symbolic names
	inSlots  []int
	outSlots []int
	consts   []*value // by slot: the load-time value, nil for computed ones
	steps    []step
	held     int64 // what the steps' kernels keep of their own (nodeCtx.held)
	metadata map[string]string
}

// step is one compiled node.
type step struct {
	label string // "node 3 'conv1' (Conv)", for errors
	in    []int  // value slots; -1 for an omitted optional input
	out   []int
	run   kernel
	// fresh and recycler are the node's nodeCtx facts (freshOps, its
	// layer's pool); release lists the values this step is the last to
	// read, to hand back to the pools they came from once it has run.
	fresh    bool
	recycler nn.Recycler
	release  []release
}

// release is a value to hand back to the layer whose pool it came from.
type release struct {
	slot int
	to   nn.Recycler
}

// kernel computes a node's outputs. It must not modify its inputs.
type kernel func(in []*value) ([]*value, error)

// Inputs are the graph's inputs (initializers listed as inputs excluded).
func (g *Graph) Inputs() []ValueInfo { return cloneInfos(g.inputs) }

// Outputs are the graph's outputs.
func (g *Graph) Outputs() []ValueInfo { return cloneInfos(g.outputs) }

// Metadata is the model's metadata_props.
func (g *Graph) Metadata() map[string]string { return maps.Clone(g.metadata) }

func cloneInfos(vs []ValueInfo) []ValueInfo {
	out := make([]ValueInfo, len(vs))
	for i, v := range vs {
		out[i] = ValueInfo{Name: v.Name, Shape: slices.Clone(v.Shape), DataType: v.DataType}
	}
	return out
}

// defaultDomain reports whether a node or opset domain is ONNX's own.
func defaultDomain(d string) bool { return d == "" || d == "ai.onnx" }

func nodeLabel(i int, n *nodeProto) string {
	op := n.OpType
	if !defaultDomain(n.Domain) {
		op = n.Domain + "." + op
	}
	return fmt.Sprintf("node %d '%s' (%s)", i, n.Name, op)
}

// Load parses an ONNX model, checks it and compiles it for inference.
// Every problem it can find without the caller's data is reported here
// rather than at the first request: a corrupt file, operators this package
// does not implement (all of them in one error), nodes out of topological
// order or reading undefined values, weights of the wrong shape, attribute
// values outside what the engine computes.
func Load(data []byte) (*Graph, error) {
	if len(data) == 0 {
		return nil, errors.New("onnx: the model is empty")
	}
	m, err := decodeModel(data)
	if err != nil {
		return nil, fmt.Errorf("onnx: the model is not a valid ONNX protobuf (truncated or corrupt?): %w", err)
	}
	if m.Graph == nil {
		return nil, errors.New("onnx: the model has no graph (not an ONNX model, or truncated)")
	}
	opset := int64(-1)
	for _, o := range m.OpsetImport {
		if defaultDomain(o.Domain) {
			opset = o.Version
		}
	}
	if opset < 0 {
		if m.IRVersion >= 3 || len(m.OpsetImport) > 0 {
			return nil, errors.New("onnx: the model imports no version of the default ONNX operator set")
		}
		opset = 1 // IR version < 3 had no opset_import; ONNX says 1 then.
	}
	g, err := compileGraph(m.Graph, opset)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	g.metadata = make(map[string]string, len(m.MetadataProps))
	for _, p := range m.MetadataProps {
		g.metadata[p.Key] = p.Value
	}
	if err := g.probe(); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	return g, nil
}

func compileGraph(gp *graphProto, opset int64) (*Graph, error) {
	if gp.HasSparse {
		return nil, errors.New("sparse initializers are not supported")
	}
	if err := checkOps(gp.Nodes); err != nil {
		return nil, err
	}
	g := &Graph{}
	slots := map[string]int{}
	define := func(name string, v *value) int {
		s := len(g.consts)
		slots[name] = s
		g.consts = append(g.consts, v)
		return s
	}
	for _, t := range gp.Initializers {
		if _, dup := slots[t.Name]; dup {
			return nil, fmt.Errorf("initializer %q is defined twice", t.Name)
		}
		v, err := tensorValue(t)
		if err != nil {
			return nil, fmt.Errorf("initializer: %w", err)
		}
		define(t.Name, v)
	}
	for _, vi := range gp.Inputs {
		if _, isInit := slots[vi.Name]; isInit {
			// IR < 4 lists initializers among the inputs; they may be
			// overridden by the caller there, but serving treats them as
			// weights.
			continue
		}
		if vi.Name == "" {
			return nil, errors.New("a graph input has no name")
		}
		info, dims, err := valueInfo(vi, "input")
		if err != nil {
			return nil, err
		}
		g.inputs = append(g.inputs, info)
		g.inDims = append(g.inDims, dims)
		g.inSlots = append(g.inSlots, define(vi.Name, nil))
	}
	if len(g.inputs) == 0 {
		return nil, errors.New("the graph has no inputs")
	}

	// Where each value is produced, to tell an undefined input from one
	// defined too late.
	producer := map[string]int{}
	for i, n := range gp.Nodes {
		for _, o := range n.Outputs {
			if o != "" {
				if _, ok := producer[o]; !ok {
					producer[o] = i
				}
			}
		}
	}
	for i, n := range gp.Nodes {
		label := nodeLabel(i, n)
		st := step{label: label, in: make([]int, len(n.Inputs))}
		consts := make([]*value, len(n.Inputs))
		allConst := true
		for j, name := range n.Inputs {
			if name == "" {
				st.in[j] = -1
				continue
			}
			s, ok := slots[name]
			if !ok {
				if p, later := producer[name]; later && p >= i {
					return nil, fmt.Errorf("%s reads %q before %s defines it: the nodes are not in topological order", label, name, nodeLabel(p, gp.Nodes[p]))
				}
				return nil, fmt.Errorf("%s reads %q, which no input, initializer or earlier node defines", label, name)
			}
			st.in[j] = s
			consts[j] = g.consts[s]
			allConst = allConst && consts[j] != nil
		}
		c := &nodeCtx{node: n, opset: opset, consts: consts}
		run, err := compileNode(c)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		st.run = run
		if allConst {
			// Constant, and the shape arithmetic over constants, fold
			// into values at load: Reshape then sees its shape here.
			outs, err := st.exec(consts)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", label, err)
			}
			for j, name := range n.Outputs {
				if name == "" {
					continue
				}
				if _, dup := slots[name]; dup {
					return nil, fmt.Errorf("%s defines %q, which is already defined", label, name)
				}
				var v *value
				if j < len(outs) {
					v = outs[j]
				}
				if v == nil {
					return nil, fmt.Errorf("%s does not compute its output %d %q", label, j, name)
				}
				define(name, v)
			}
			continue
		}
		for j, name := range n.Outputs {
			if name == "" {
				st.out = append(st.out, -1)
				continue
			}
			if _, dup := slots[name]; dup {
				return nil, fmt.Errorf("%s defines %q, which is already defined", label, name)
			}
			if j >= c.outputs {
				return nil, fmt.Errorf("%s: output %d %q is not supported", label, j, name)
			}
			st.out = append(st.out, define(name, nil))
		}
		st.fresh = freshOps[n.OpType]
		st.recycler = c.recycler
		g.steps = append(g.steps, st)
		g.held += c.held
	}
	if len(gp.Outputs) == 0 {
		return nil, errors.New("the graph has no outputs")
	}
	for _, vi := range gp.Outputs {
		s, ok := slots[vi.Name]
		if !ok {
			return nil, fmt.Errorf("output %q is not defined by any node, input or initializer", vi.Name)
		}
		info, _, err := valueInfo(vi, "output")
		if err != nil {
			return nil, err
		}
		if v := g.consts[s]; v != nil && v.isInt {
			return nil, fmt.Errorf("output %q is an INT64 tensor; only FLOAT outputs are supported", vi.Name)
		}
		g.outputs = append(g.outputs, info)
		g.outSlots = append(g.outSlots, s)
	}
	g.planReleases()
	return g, nil
}

// planReleases finds the values a run can hand back to their layer's pool
// (a layer's output whose every reader makes new memory of its own, and
// which is no graph output) and the step after which each is read no
// more. Without it every run allocates every intermediate tensor afresh:
// for a small MLP at batch 256, a quarter of the CPU went to the garbage
// collector.
func (g *Graph) planReleases() {
	from := map[int]nn.Recycler{}
	for _, st := range g.steps {
		if st.recycler != nil && len(st.out) == 1 && st.out[0] >= 0 {
			from[st.out[0]] = st.recycler
		}
	}
	for _, s := range g.outSlots {
		delete(from, s)
	}
	last := map[int]int{}
	for i, st := range g.steps {
		for _, s := range st.in {
			if _, ok := from[s]; !ok {
				continue
			}
			if !st.fresh {
				delete(from, s) // a view or a kept reference may outlive this step
				continue
			}
			last[s] = i
		}
	}
	for s, r := range from {
		if i, ok := last[s]; ok {
			g.steps[i].release = append(g.steps[i].release, release{slot: s, to: r})
		}
	}
}

// checkOps lists every node whose operator Load cannot compile, in one
// error, so a user learns the whole gap at once.
func checkOps(nodes []*nodeProto) error {
	var missing []string
	seen := map[string]int{}
	for i, n := range nodes {
		if defaultDomain(n.Domain) && supportedOp(n.OpType) {
			continue
		}
		op := n.OpType
		if !defaultDomain(n.Domain) {
			op = n.Domain + "." + op
		}
		if k, ok := seen[op]; ok {
			missing[k] = strings.TrimSuffix(missing[k], ")") + fmt.Sprintf(", %d '%s')", i, n.Name)
			missing[k] = strings.Replace(missing[k], "(node ", "(nodes ", 1)
			continue
		}
		seen[op] = len(missing)
		missing = append(missing, fmt.Sprintf("%s (node %d '%s')", op, i, n.Name))
	}
	if len(missing) > 0 {
		return fmt.Errorf("unsupported ONNX operators: %s", strings.Join(missing, ", "))
	}
	return nil
}

// valueInfo converts a declared graph input or output; only float32
// tensors cross the graph's boundary.
func valueInfo(vi *valueInfoProto, what string) (ValueInfo, []dimension, error) {
	info := ValueInfo{Name: vi.Name, DataType: "FP32"}
	t := vi.Type
	if t == nil {
		return info, nil, nil
	}
	if t.NonTensor {
		return info, nil, fmt.Errorf("%s %q is not a tensor (sequence, map, optional and sparse types are not supported)", what, vi.Name)
	}
	if t.ElemType != dtFloat {
		return info, nil, fmt.Errorf("%s %q has element type %s; only FLOAT (FP32) %ss are supported", what, vi.Name, dataTypeName(t.ElemType), what)
	}
	if !t.HasShape {
		return info, nil, nil
	}
	info.Shape = make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		info.Shape[i] = -1
		if d.HasValue && d.Value >= 0 {
			info.Shape[i] = d.Value
		}
	}
	return info, t.Shape, nil
}

// probeLimit bounds the inputs of Load's trial run: a sample of up to
// 4M values (a 3×1024×1024 image) is cheap to run once; a model declaring
// a larger one is not tried at load.
const probeLimit = 1 << 22

// probe runs the graph once on a zero batch of one sample, so weights
// that do not fit their inputs, or a Reshape that cannot hold the data,
// fail Load rather than the first request. It is skipped when an input has
// a symbolic dimension other than the first (a sequence length, say),
// where 1 may not be a size the model accepts, or past probeLimit.
func (g *Graph) probe() error {
	inputs := make(map[string]*nn.Tensor, len(g.inputs))
	for _, in := range g.inputs {
		if in.Shape == nil {
			return nil
		}
		shape := make([]int, len(in.Shape))
		for i, d := range in.Shape {
			if d < 0 && i > 0 || d > probeLimit {
				return nil
			}
			shape[i] = int(max(d, 1))
		}
		if n, err := checkedVolume(shape); err != nil || n > probeLimit {
			return nil
		}
		inputs[in.Name] = nn.NewTensor(shape...)
	}
	outs, err := g.run(context.Background(), inputs)
	if err != nil {
		return fmt.Errorf("a trial run on a batch of 1: %w", err)
	}
	// Outputs declared without a shape get the one the trial run found,
	// with the batch left open when the inputs' is.
	for i := range g.outputs {
		o := &g.outputs[i]
		if o.Shape != nil {
			continue
		}
		t := outs[o.Name]
		o.Shape = make([]int64, len(t.Shape))
		for j, d := range t.Shape {
			o.Shape[j] = int64(d)
		}
		if len(o.Shape) > 0 && len(g.inputs[0].Shape) > 0 && g.inputs[0].Shape[0] < 0 {
			o.Shape[0] = -1
		}
	}
	return nil
}

// Run computes the graph's outputs for the given inputs, keyed by name.
// Every declared input must be given, with its declared shape (any size
// ≥ 1 where the dimension is symbolic, the same size wherever the same
// symbol appears). The returned tensors are the caller's to keep.
func (g *Graph) Run(ctx context.Context, inputs map[string]*nn.Tensor) (map[string]*nn.Tensor, error) {
	outs, err := g.run(ctx, inputs)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	return outs, nil
}

func (g *Graph) run(ctx context.Context, inputs map[string]*nn.Tensor) (map[string]*nn.Tensor, error) {
	if err := g.checkInputs(inputs); err != nil {
		return nil, err
	}
	vals := slices.Clone(g.consts)
	for i, in := range g.inputs {
		vals[g.inSlots[i]] = floatValue(inputs[in.Name])
	}
	var ins []*value
	for _, st := range g.steps {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("run interrupted before %s: %w", st.label, err)
		}
		ins = ins[:0]
		for _, s := range st.in {
			if s < 0 {
				ins = append(ins, nil)
			} else {
				ins = append(ins, vals[s])
			}
		}
		outs, err := st.exec(ins)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", st.label, err)
		}
		for j, s := range st.out {
			if s >= 0 {
				vals[s] = outs[j]
			}
		}
		for _, r := range st.release {
			if v := vals[r.slot]; v != nil {
				r.to.Recycle(&nn.Tensor{Data: v.f}, false)
				vals[r.slot] = nil
			}
		}
	}
	res := make(map[string]*nn.Tensor, len(g.outputs))
	for i, o := range g.outputs {
		v := vals[g.outSlots[i]]
		if v.isInt {
			return nil, fmt.Errorf("output %q is an INT64 tensor; only FLOAT outputs are supported", o.Name)
		}
		t := &nn.Tensor{Shape: slices.Clone(v.shape), Data: v.f}
		if g.consts[g.outSlots[i]] != nil {
			// A constant output must not hand the graph's own data out.
			t.Data = slices.Clone(v.f)
		}
		res[o.Name] = t
	}
	return res, nil
}

// exec runs the step's kernel. A panic in it (an engine layer meeting a
// shape the checks missed) becomes this run's error rather than the end
// of a server that runs many models; the same holds while Load folds
// constants. The error names where the panic happened, since its stack is
// gone once recovered.
func (st *step) exec(in []*value) (outs []*value, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: %v (at %s)", r, panicSite())
		}
	}()
	outs, err = st.run(in)
	if err == nil && len(outs) < len(st.out) && st.out != nil {
		err = fmt.Errorf("computed %d outputs, want %d", len(outs), len(st.out))
	}
	return outs, err
}

// panicSiteFrames bounds the frames panicSite lists.
const panicSiteFrames = 8

// panicSite lists, innermost first, the frames of the panic being
// recovered by its caller's caller (a deferred function in exec), from
// the code that panicked down to exec: "nn/gemm.kernel6x16
// (kernel_amd64.s:140) < nn/gemm.kernelAVX2 (kernel_amd64.go:36) < …".
// The runtime's own panicking frames are left out. It only runs on a
// panic, so its cost does not matter.
func panicSite() string {
	var pcs [64]uintptr
	// Skip runtime.Callers, panicSite and the deferred function; the
	// panic's frames are still on the stack under it.
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs[:])])
	var parts []string
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, ".(*step).exec") {
			break
		}
		// runtime.gopanic, runtime.panicmem, runtime.sigpanic, … above the
		// code that panicked.
		if len(parts) > 0 || !strings.HasPrefix(f.Function, "runtime.") {
			if len(parts) == panicSiteFrames {
				parts = append(parts, "…")
				break
			}
			name := strings.TrimPrefix(f.Function, "github.com/hpcml/hpcml/internal/")
			parts = append(parts, fmt.Sprintf("%s (%s:%d)", name, filepath.Base(f.File), f.Line))
		}
		if !more {
			break
		}
	}
	if len(parts) == 0 {
		return "an unknown place"
	}
	return strings.Join(parts, " < ")
}

func (g *Graph) checkInputs(inputs map[string]*nn.Tensor) error {
	names := make([]string, len(g.inputs))
	for i, in := range g.inputs {
		names[i] = in.Name
	}
	for name := range inputs {
		if !slices.Contains(names, name) {
			return fmt.Errorf("unknown input %q (the model's inputs: %s)", name, strings.Join(names, ", "))
		}
	}
	symbols := map[string]int{}
	for i, in := range g.inputs {
		t, ok := inputs[in.Name]
		if !ok || t == nil {
			return fmt.Errorf("input %q is missing", in.Name)
		}
		if len(t.Data) != nn.Volume(t.Shape) {
			return fmt.Errorf("input %q: %d values do not fill shape %v", in.Name, len(t.Data), t.Shape)
		}
		if in.Shape == nil {
			continue
		}
		bad := len(t.Shape) != len(in.Shape)
		for j := 0; !bad && j < len(in.Shape); j++ {
			d := t.Shape[j]
			switch {
			case in.Shape[j] >= 0:
				bad = int64(d) != in.Shape[j]
			case d < 1:
				bad = true
			default:
				if sym := g.inDims[i][j].Param; sym != "" {
					if prev, ok := symbols[sym]; ok && prev != d {
						return fmt.Errorf("input %q: dimension %d is %d, but %q is %d in another input", in.Name, j, d, sym, prev)
					}
					symbols[sym] = d
				}
			}
		}
		if bad {
			return fmt.Errorf("input %q: expected shape %s, got %v", in.Name, shapeString(in.Shape, g.inDims[i]), t.Shape)
		}
	}
	return nil
}

// shapeString writes a declared shape with its symbols: [N 1 28 28].
func shapeString(shape []int64, dims []dimension) string {
	parts := make([]string, len(shape))
	for i, d := range shape {
		switch {
		case d >= 0:
			parts[i] = fmt.Sprint(d)
		case i < len(dims) && dims[i].Param != "":
			parts[i] = dims[i].Param
		default:
			parts[i] = "?"
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}
