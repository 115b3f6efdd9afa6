package onnx

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/hpcml/hpcml/internal/nn"
)

// The operators with weights run on the engine's own layers (nn.Dense,
// nn.Conv2D, nn.Pool2D, nn.GlobalAvgPool, nn.BatchNorm), built at load
// with the imported weights: the same code trains and serves, and an
// exported model computes the same numbers after import. What those
// layers cannot express is refused at load with the attribute named.

// keepWeights is the Init for layers whose weights are copied in at once.
func keepWeights([]float32, int, int, *rand.Rand) {}

// compileGemm is Y = alpha·A'·B' + beta·C. With B an initializer — every
// fully connected layer — it becomes an nn.Dense with alpha folded into W
// and beta·C into the bias; otherwise a plain matrix product.
func compileGemm(c *nodeCtx) (kernel, error) {
	if err := c.arity(2, 3); err != nil {
		return nil, err
	}
	alpha, err := c.attrFloat("alpha", 1)
	if err != nil {
		return nil, err
	}
	beta, err := c.attrFloat("beta", 1)
	if err != nil {
		return nil, err
	}
	transA, err := c.attrInt("transA", 0)
	if err != nil {
		return nil, err
	}
	transB, err := c.attrInt("transB", 0)
	if err != nil {
		return nil, err
	}
	if transA != 0 && transA != 1 || transB != 0 && transB != 1 {
		return nil, fmt.Errorf("attributes transA=%d, transB=%d must be 0 or 1", transA, transB)
	}
	if b := c.consts[1]; b != nil && !b.isInt && len(b.shape) == 2 {
		var bias *value
		if c.has(2) {
			bias = c.consts[2]
		}
		if d, err := denseFor(c.node.Name, b, transB == 1, alpha, bias, beta, !c.has(2)); err != nil {
			return nil, err
		} else if d != nil {
			c.holds(d.Params(), d.PackedBytes())
			c.recycler = d
			return denseKernel(d, transA == 1), nil
		}
	}
	return single(func(in []*value) (*value, error) {
		a, b := in[0], in[1]
		if err := wantFloat(a, "A"); err != nil {
			return nil, err
		}
		if err := wantFloat(b, "B"); err != nil {
			return nil, err
		}
		y, err := matmul(a, b, transA == 1, transB == 1, alpha)
		if err != nil {
			return nil, err
		}
		if len(in) < 3 || in[2] == nil || beta == 0 {
			return y, nil
		}
		cv := in[2]
		if err := wantFloat(cv, "C"); err != nil {
			return nil, err
		}
		shape, err := broadcastShape(y.shape, cv.shape)
		if err != nil || len(shape) != 2 || shape[0] != y.shape[0] || shape[1] != y.shape[1] {
			return nil, fmt.Errorf("C of shape %v does not broadcast to the product's %v", cv.shape, y.shape)
		}
		y.f = broadcast(y.f, cv.f, y.shape, cv.shape, y.shape, func(p, q float32) float32 { return p + beta*q })
		return y, nil
	}), nil
}

// denseFor builds the nn.Dense for a constant B (K×N, or N×K when
// transposed) and bias beta·C, or returns nil when C's shape is not one
// Dense can hold (a per-row bias, or one computed at run time).
func denseFor(name string, b *value, transposed bool, alpha float32, c *value, beta float32, noC bool) (*nn.Dense, error) {
	k, n := b.shape[0], b.shape[1]
	if transposed {
		k, n = n, k
	}
	if !noC {
		if c == nil || c.isInt || (nn.Volume(c.shape) != n && nn.Volume(c.shape) != 1) ||
			len(c.shape) > 2 || (len(c.shape) == 2 && c.shape[0] != 1) {
			return nil, nil
		}
	}
	d := nn.NewDense(name, k, n, keepWeights, nil)
	w := d.W.Value.Data // n×k
	for i := 0; i < n; i++ {
		for j := 0; j < k; j++ {
			if transposed {
				w[i*k+j] = alpha * b.f[i*k+j]
			} else {
				w[i*k+j] = alpha * b.f[j*n+i]
			}
		}
	}
	if !noC {
		for i := range d.B.Value.Data {
			d.B.Value.Data[i] = beta * c.f[i%len(c.f)]
		}
	}
	// A loaded graph's weights never change: packed once here, not on
	// every call.
	d.Freeze()
	return d, nil
}

func denseKernel(d *nn.Dense, transA bool) kernel {
	return single(func(in []*value) (*value, error) {
		a := in[0]
		if err := wantFloat(a, "the input"); err != nil {
			return nil, err
		}
		if len(a.shape) != 2 {
			return nil, fmt.Errorf("the input has shape %v; Gemm and MatMul take a 2-D one", a.shape)
		}
		if transA {
			a = transpose(a)
		}
		if a.shape[1] != d.In {
			return nil, fmt.Errorf("the input has shape %v, but the weights take %d features", a.shape, d.In)
		}
		y, _ := d.Forward(nn.Infer(), a.tensor())
		return floatValue(y), nil
	})
}

func transpose(a *value) *value {
	r, c := a.shape[0], a.shape[1]
	t := newFloat(c, r)
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			t.f[j*r+i] = a.f[i*c+j]
		}
	}
	return t
}

// matmul is alpha·op(a)·op(b) for 2-D values, on gonum's BLAS: the
// path for products of two computed tensors, which exported networks
// rarely have.
func matmul(a, b *value, ta, tb bool, alpha float32) (*value, error) {
	if len(a.shape) != 2 || len(b.shape) != 2 {
		return nil, fmt.Errorf("inputs of shape %v and %v: only 2-D products are supported", a.shape, b.shape)
	}
	m, k := a.shape[0], a.shape[1]
	if ta {
		m, k = k, m
	}
	kb, n := b.shape[0], b.shape[1]
	if tb {
		kb, n = n, kb
	}
	if k != kb {
		return nil, fmt.Errorf("inputs of shape %v and %v do not multiply", a.shape, b.shape)
	}
	y := newFloat(m, n)
	if m == 0 || n == 0 || k == 0 {
		return y, nil
	}
	opA, opB := blas.NoTrans, blas.NoTrans
	if ta {
		opA = blas.Trans
	}
	if tb {
		opB = blas.Trans
	}
	gonum.Implementation{}.Sgemm(opA, opB, m, n, k, alpha, a.f, a.shape[1], b.f, b.shape[1], 0, y.f, n)
	return y, nil
}

func compileMatMul(c *nodeCtx) (kernel, error) {
	if err := c.arity(2, 2); err != nil {
		return nil, err
	}
	if b := c.consts[1]; b != nil && !b.isInt && len(b.shape) == 2 {
		d, err := denseFor(c.node.Name, b, false, 1, nil, 0, true)
		if err != nil {
			return nil, err
		}
		c.holds(d.Params(), d.PackedBytes())
		c.recycler = d
		return denseKernel(d, false), nil
	}
	return single(func(in []*value) (*value, error) {
		if err := wantFloat(in[0], "A"); err != nil {
			return nil, err
		}
		if err := wantFloat(in[1], "B"); err != nil {
			return nil, err
		}
		return matmul(in[0], in[1], false, false, 1)
	}), nil
}

// window2D reads the attributes a 2-D convolution or pooling shares and
// checks that the engine's square-kernel, equal-stride, symmetric-padding
// layers express them. kernel is W's when the attribute is absent.
func window2D(c *nodeCtx, kernel []int64) (k, stride, pad int, err error) {
	ks, hasK, err := c.attrInts("kernel_shape")
	if err != nil {
		return 0, 0, 0, err
	}
	if !hasK {
		if kernel == nil {
			return 0, 0, 0, errors.New("attribute kernel_shape is required")
		}
		ks = kernel
	}
	if len(ks) != 2 {
		return 0, 0, 0, fmt.Errorf("attribute kernel_shape=%v: only 2-D windows are supported", ks)
	}
	if kernel != nil && (ks[0] != kernel[0] || ks[1] != kernel[1]) {
		return 0, 0, 0, fmt.Errorf("attribute kernel_shape=%v does not match the weights' %v", ks, kernel)
	}
	if ks[0] != ks[1] || ks[0] <= 0 {
		return 0, 0, 0, fmt.Errorf("attribute kernel_shape=%v: only square kernels are supported", ks)
	}
	strides, hasS, err := c.attrInts("strides")
	if err != nil {
		return 0, 0, 0, err
	}
	if !hasS {
		strides = []int64{1, 1}
	}
	if len(strides) != 2 || !allEqual(strides) || strides[0] <= 0 {
		return 0, 0, 0, fmt.Errorf("attribute strides=%v: only equal positive strides on both axes are supported", strides)
	}
	dil, hasD, err := c.attrInts("dilations")
	if err != nil {
		return 0, 0, 0, err
	}
	if hasD && (len(dil) != 2 || dil[0] != 1 || dil[1] != 1) {
		return 0, 0, 0, fmt.Errorf("attribute dilations=%v: only dilation 1 is supported", dil)
	}
	pads, hasP, err := c.attrInts("pads")
	if err != nil {
		return 0, 0, 0, err
	}
	autoPad, err := c.attrString("auto_pad", "NOTSET")
	if err != nil {
		return 0, 0, 0, err
	}
	switch autoPad {
	case "NOTSET", "":
	case "VALID":
		pads, hasP = nil, false
	case "SAME_UPPER", "SAME_LOWER":
		// Symmetric only when the window is odd and the stride 1; other
		// cases pad each side differently, depending on the input size.
		if strides[0] != 1 || ks[0]%2 == 0 {
			return 0, 0, 0, fmt.Errorf("attribute auto_pad=%s with kernel %d and stride %d pads asymmetrically, which is not supported", autoPad, ks[0], strides[0])
		}
		pads, hasP = []int64{(ks[0] - 1) / 2, (ks[0] - 1) / 2, (ks[0] - 1) / 2, (ks[0] - 1) / 2}, true
	default:
		return 0, 0, 0, fmt.Errorf("attribute auto_pad=%q is not supported", autoPad)
	}
	if !hasP {
		pads = []int64{0, 0, 0, 0}
	}
	if len(pads) != 4 || !allEqual(pads) || pads[0] < 0 {
		return 0, 0, 0, fmt.Errorf("attribute pads=%v: only the same padding on every side is supported", pads)
	}
	return int(ks[0]), int(strides[0]), int(pads[0]), nil
}

// checkImage checks a 4-D N×C×H×W float input before an nn layer sees it:
// the layers panic on shapes they were not built for.
func checkImage(x *value, channels, k, pad int) error {
	if err := wantFloat(x, "the input"); err != nil {
		return err
	}
	if len(x.shape) != 4 {
		return fmt.Errorf("the input has shape %v; only 2-D images (N×C×H×W) are supported", x.shape)
	}
	if channels > 0 && x.shape[1] != channels {
		return fmt.Errorf("the input has shape %v, but the weights take %d channels", x.shape, channels)
	}
	if x.shape[2]+2*pad < k || x.shape[3]+2*pad < k {
		return fmt.Errorf("the %d×%d window does not fit the input of shape %v with padding %d", k, k, x.shape, pad)
	}
	return nil
}

func compileConv(c *nodeCtx) (kernel, error) {
	if err := c.arity(2, 3); err != nil {
		return nil, err
	}
	w, err := c.constFloat(1, "weight")
	if err != nil {
		return nil, err
	}
	if len(w.shape) != 4 {
		return nil, fmt.Errorf("the weight has shape %v; only 2-D convolutions (a 4-D weight) are supported", w.shape)
	}
	group, err := c.attrInt("group", 1)
	if err != nil {
		return nil, err
	}
	if group != 1 {
		return nil, fmt.Errorf("attribute group=%d is not supported (grouped and depthwise convolutions are not; group must be 1)", group)
	}
	k, stride, pad, err := window2D(c, []int64{int64(w.shape[2]), int64(w.shape[3])})
	if err != nil {
		return nil, err
	}
	outC, inC := w.shape[0], w.shape[1]
	conv := nn.NewConv2D(c.node.Name, inC, outC, k, stride, pad, keepWeights, nil)
	copy(conv.W.Value.Data, w.f)
	c.holds(conv.Params(), 0)
	c.recycler = conv
	if c.has(2) {
		b, err := c.constFloat(2, "bias")
		if err != nil {
			return nil, err
		}
		if len(b.f) != outC {
			return nil, fmt.Errorf("the bias has %d values for %d output channels", len(b.f), outC)
		}
		copy(conv.B.Value.Data, b.f)
	}
	return single(func(in []*value) (*value, error) {
		if err := checkImage(in[0], inC, k, pad); err != nil {
			return nil, err
		}
		y, _ := conv.Forward(nn.Infer(), in[0].tensor())
		return floatValue(y), nil
	}), nil
}

func compilePool(c *nodeCtx, isMax bool) (kernel, error) {
	if err := c.arity(1, 1); err != nil {
		return nil, err
	}
	k, stride, pad, err := window2D(c, nil)
	if err != nil {
		return nil, err
	}
	if isMax {
		order, err := c.attrInt("storage_order", 0)
		if err != nil {
			return nil, err
		}
		if order != 0 {
			return nil, fmt.Errorf("attribute storage_order=%d is not supported", order)
		}
	}
	if 2*pad > k {
		return nil, fmt.Errorf("attribute pads=%d is more than half the kernel %d", pad, k)
	}
	ceil, err := c.attrInt("ceil_mode", 0)
	if err != nil {
		return nil, err
	}
	// The engine's average leaves padding out of the count
	// (count_include_pad=0); with it counted — PyTorch's default — the
	// input is zero-padded first and pooled without padding.
	includePad := false
	if !isMax {
		cip, err := c.attrInt("count_include_pad", 0)
		if err != nil {
			return nil, err
		}
		includePad = cip != 0 && pad > 0
	}
	pool := nn.NewPool2D(isMax, k, stride, pad)
	if includePad {
		pool = nn.NewPool2D(false, k, stride, 0)
	}
	c.recycler = pool // the pool Forward draws from
	return single(func(in []*value) (*value, error) {
		x := in[0]
		if err := checkImage(x, 0, k, pad); err != nil {
			return nil, err
		}
		if ceil != 0 {
			for _, d := range x.shape[2:] {
				span := d + 2*pad - k
				if span%stride != 0 {
					return nil, fmt.Errorf("attribute ceil_mode=1 adds a partial window on a %d×%d input, which is not supported", x.shape[2], x.shape[3])
				}
			}
		}
		if includePad {
			x = zeroPad(x, pad)
		}
		y, _ := pool.Forward(nn.Infer(), x.tensor())
		return floatValue(y), nil
	}), nil
}

// zeroPad surrounds each N×C plane with pad zeros on every side.
func zeroPad(x *value, pad int) *value {
	n, ch, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	ph, pw := h+2*pad, w+2*pad
	y := newFloat(n, ch, ph, pw)
	for p := 0; p < n*ch; p++ {
		for r := 0; r < h; r++ {
			copy(y.f[p*ph*pw+(r+pad)*pw+pad:], x.f[p*h*w+r*w:p*h*w+(r+1)*w])
		}
	}
	return y
}

func compileGlobalAvgPool(c *nodeCtx) (kernel, error) {
	if err := c.arity(1, 1); err != nil {
		return nil, err
	}
	gap := nn.NewGlobalAvgPool()
	return single(func(in []*value) (*value, error) {
		x := in[0]
		if err := checkImage(x, 0, 1, 0); err != nil {
			return nil, err
		}
		y, _ := gap.Forward(nn.Infer(), x.tensor())
		// ONNX keeps the spatial axes as 1×1; the engine drops them.
		return floatValue(y).reshaped([]int{x.shape[0], x.shape[1], 1, 1}), nil
	}), nil
}

func compileBatchNorm(c *nodeCtx) (kernel, error) {
	if err := c.arity(5, 5); err != nil {
		return nil, err
	}
	eps, err := c.attrFloat("epsilon", 1e-5)
	if err != nil {
		return nil, err
	}
	if tm, err := c.attrInt("training_mode", 0); err != nil {
		return nil, err
	} else if tm != 0 {
		return nil, errors.New("attribute training_mode=1 is not supported; export the model for inference")
	}
	if sp, err := c.attrInt("spatial", 1); err != nil {
		return nil, err
	} else if sp != 1 {
		return nil, fmt.Errorf("attribute spatial=%d is not supported", sp)
	}
	var ps [4]*value
	for i, what := range []string{"scale", "bias", "mean", "variance"} {
		if ps[i], err = c.constFloat(i+1, what); err != nil {
			return nil, err
		}
	}
	ch := len(ps[0].f)
	for i, what := range []string{"scale", "bias", "mean", "variance"} {
		if len(ps[i].f) != ch {
			return nil, fmt.Errorf("the %s has %d values, the scale %d", what, len(ps[i].f), ch)
		}
	}
	bn := nn.NewBatchNorm(c.node.Name, ch, 0.1, float64(eps))
	copy(bn.Gamma.Value.Data, ps[0].f)
	copy(bn.Beta.Value.Data, ps[1].f)
	copy(bn.Mean.Value.Data, ps[2].f)
	copy(bn.Var.Value.Data, ps[3].f)
	c.holds(bn.Params(), 4*int64(len(bn.Mean.Value.Data)+len(bn.Var.Value.Data)))
	return single(func(in []*value) (*value, error) {
		x := in[0]
		if err := wantFloat(x, "the input"); err != nil {
			return nil, err
		}
		if len(x.shape) < 2 || x.shape[1] != ch {
			return nil, fmt.Errorf("the input has shape %v, but the statistics are for %d channels", x.shape, ch)
		}
		t := x.tensor()
		switch len(x.shape) {
		case 2, 4:
		case 3: // N×C×L: a 1-D signal, normalised as an L×1 image
			t = t.Reshape(x.shape[0], ch, x.shape[2], 1)
		default:
			return nil, fmt.Errorf("the input has shape %v; ranks 2 to 4 are supported", x.shape)
		}
		y, _ := bn.Forward(nn.Infer(), t)
		return floatValue(y).reshaped(x.shape), nil
	}), nil
}
