package onnx

import (
	"fmt"
	"slices"

	"github.com/hpcml/hpcml/internal/nn"
)

// nodeCtx is a node being compiled: its attributes and the inputs whose
// values are known at load (initializers, constants, folded shapes).
type nodeCtx struct {
	node   *nodeProto
	opset  int64
	consts []*value // per input; nil where computed at run time
	// outputs is how many outputs the kernel computes (1 unless the
	// compiler says otherwise); a node naming more is refused.
	outputs int
	// held is the memory the kernel keeps of its own: the weights its
	// layer copied from the initializers, and their packed copy.
	held int64
	// recycler, when set, is the layer whose pool the kernel's output
	// comes from: the run hands the output back to it once nothing reads
	// it any more (see freshOps).
	recycler nn.Recycler
}

// freshOps are the operators whose output is always new memory — never
// their input, a view of it, or anything that keeps a reference to it —
// so that once they have run, an input they were the last to read may be
// handed back to the pool it came from. (Identity, Dropout, Flatten,
// Reshape, Squeeze and Unsqueeze return views, and the rest are not
// audited: a value any of them reads is never recycled.)
var freshOps = map[string]bool{
	"Gemm": true, "MatMul": true, "Add": true, "Sub": true, "Mul": true, "Div": true, "Conv": true,
	"MaxPool": true, "AveragePool": true, "GlobalAveragePool": true, "BatchNormalization": true,
	"Relu": true, "Tanh": true, "Sigmoid": true, "Erf": true, "Gelu": true, "Softmax": true, "LogSoftmax": true,
}

// holds counts a layer built at load toward the graph's TensorBytes (its
// parameters' values and extra bytes it keeps besides) and drops the
// gradients it was made with: a loaded graph only infers.
func (c *nodeCtx) holds(params []*nn.Param, extra int64) {
	for _, p := range params {
		c.held += 4 * int64(len(p.Value.Data))
		p.Grad = nil
	}
	c.held += extra
}

// supportedOp reports whether compileNode knows op (default domain).
func supportedOp(op string) bool {
	switch op {
	case "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Conv", "MaxPool", "AveragePool",
		"GlobalAveragePool", "BatchNormalization", "Relu", "Tanh", "Sigmoid", "Erf", "Gelu",
		"Softmax", "LogSoftmax", "Flatten", "Reshape", "Identity", "Dropout", "Constant",
		"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Pad":
		return true
	}
	return false
}

func compileNode(c *nodeCtx) (kernel, error) {
	c.outputs = 1
	for _, a := range c.node.Attributes {
		if a.RefAttrName != "" {
			return nil, fmt.Errorf("attribute %q refers to a function attribute, which is not supported", a.Name)
		}
	}
	switch op := c.node.OpType; op {
	case "Gemm":
		return compileGemm(c)
	case "MatMul":
		return compileMatMul(c)
	case "Add", "Sub", "Mul", "Div":
		return compileBinary(c, op)
	case "Conv":
		return compileConv(c)
	case "MaxPool", "AveragePool":
		return compilePool(c, op == "MaxPool")
	case "GlobalAveragePool":
		return compileGlobalAvgPool(c)
	case "BatchNormalization":
		return compileBatchNorm(c)
	case "Relu", "Tanh", "Sigmoid", "Erf", "Gelu":
		return compileUnary(c, op)
	case "Softmax", "LogSoftmax":
		return compileSoftmax(c, op == "LogSoftmax")
	case "Identity":
		return compileIdentity(c)
	case "Dropout":
		return compileDropout(c)
	case "Flatten":
		return compileFlatten(c)
	case "Reshape":
		return compileReshape(c)
	case "Constant":
		return compileConstant(c)
	case "Shape":
		return compileShape(c)
	case "Gather":
		return compileGather(c)
	case "Unsqueeze", "Squeeze":
		return compileSqueeze(c, op == "Unsqueeze")
	case "Concat":
		return compileConcat(c)
	case "Pad":
		return compilePad(c)
	}
	return nil, fmt.Errorf("operator %s is not supported", c.node.OpType)
}

// ---- inputs ----

// arity checks the number of inputs, counting trailing omitted ones out.
func (c *nodeCtx) arity(minIn, maxIn int) error {
	n := len(c.node.Inputs)
	for n > 0 && c.node.Inputs[n-1] == "" {
		n--
	}
	if n < minIn || n > maxIn {
		if minIn == maxIn {
			return fmt.Errorf("takes %d inputs, has %d", minIn, n)
		}
		return fmt.Errorf("takes %d to %d inputs, has %d", minIn, maxIn, n)
	}
	for i := 0; i < minIn; i++ {
		if c.node.Inputs[i] == "" {
			return fmt.Errorf("input %d is required", i)
		}
	}
	return nil
}

func (c *nodeCtx) has(i int) bool { return i < len(c.node.Inputs) && c.node.Inputs[i] != "" }

// constInput is input i's load-time value, or an error saying the engine
// needs it constant (weights, shapes).
func (c *nodeCtx) constInput(i int, what string) (*value, error) {
	if !c.has(i) {
		return nil, fmt.Errorf("the %s (input %d) is missing", what, i)
	}
	if v := c.consts[i]; v != nil {
		return v, nil
	}
	return nil, fmt.Errorf("the %s (input %d %q) must be an initializer or a constant", what, i, c.node.Inputs[i])
}

func (c *nodeCtx) constFloat(i int, what string) (*value, error) {
	v, err := c.constInput(i, what)
	if err == nil && v.isInt {
		err = fmt.Errorf("the %s (input %d %q) is INT64, want FLOAT", what, i, c.node.Inputs[i])
	}
	return v, err
}

func (c *nodeCtx) constInts(i int, what string) ([]int64, error) {
	v, err := c.constInput(i, what)
	if err == nil && !v.isInt {
		err = fmt.Errorf("the %s (input %d %q) is FLOAT, want INT64", what, i, c.node.Inputs[i])
	}
	if err != nil {
		return nil, err
	}
	return v.i, nil
}

// ---- attributes ----

func (c *nodeCtx) attr(name string, typ int32) (*attributeProto, error) {
	for _, a := range c.node.Attributes {
		if a.Name != name {
			continue
		}
		// Type is required since IR 3; older files leave it 0.
		if a.Type != 0 && a.Type != typ {
			return nil, fmt.Errorf("attribute %s has type %d, want %d", name, a.Type, typ)
		}
		return a, nil
	}
	return nil, nil
}

func (c *nodeCtx) attrInt(name string, def int64) (int64, error) {
	a, err := c.attr(name, attrInt)
	if a == nil || err != nil {
		return def, err
	}
	return a.I, nil
}

func (c *nodeCtx) attrFloat(name string, def float32) (float32, error) {
	a, err := c.attr(name, attrFloat)
	if a == nil || err != nil {
		return def, err
	}
	return a.F, nil
}

func (c *nodeCtx) attrInts(name string) ([]int64, bool, error) {
	a, err := c.attr(name, attrInts)
	if a == nil || err != nil {
		return nil, false, err
	}
	return a.Ints, true, nil
}

func (c *nodeCtx) attrString(name, def string) (string, error) {
	a, err := c.attr(name, attrString)
	if a == nil || err != nil {
		return def, err
	}
	return string(a.S), nil
}

// ---- helpers shared by the kernels ----

// normAxis maps a possibly negative axis into [0, rank), or says why not.
func normAxis(axis int64, rank int) (int, error) {
	a := axis
	if a < 0 {
		a += int64(rank)
	}
	if a < 0 || a >= int64(rank) {
		return 0, fmt.Errorf("axis %d is out of range for rank %d", axis, rank)
	}
	return int(a), nil
}

func wantFloat(v *value, what string) error {
	if v.isInt {
		return fmt.Errorf("%s is INT64, want FLOAT", what)
	}
	return nil
}

func allEqual(v []int64) bool {
	return len(v) == 0 || slices.IndexFunc(v, func(x int64) bool { return x != v[0] }) < 0
}

// single wraps a one-output kernel body.
func single(f func(in []*value) (*value, error)) kernel {
	return func(in []*value) ([]*value, error) {
		v, err := f(in)
		if err != nil {
			return nil, err
		}
		return []*value{v}, nil
	}
}
