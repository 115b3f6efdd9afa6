package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The gradient checks compare every layer's Backward with central finite
// differences of the scalar L = Σ y·r for a fixed random r (so dL/dy = r),
// summed in float64. Each perturbed input is rounded to float32 first and
// the difference divides by the step actually taken, so float32 rounding
// of the step does not count as a gradient error.

// gradCheck holds the tolerances of one check: |analytic − numeric| ≤
// tol·(1 + max(|analytic|, |numeric|)), with step h.
type gradCheck struct {
	h, tol float64
	// maxCoords bounds the coordinates perturbed per tensor (evenly spread);
	// 0 checks them all.
	maxCoords int
}

var defaultCheck = gradCheck{h: 1e-2, tol: 2e-3}

// newTrainCtx is a training context whose RNG restarts at the same seed,
// so dropout draws the same mask on every evaluation.
func newTrainCtx() *Context {
	return &Context{Training: true, RNG: rand.New(rand.NewPCG(7, 11))}
}

// checkLayer checks dL/dx and every parameter's gradient of l at x.
func checkLayer(t *testing.T, l Layer, x *Tensor, c gradCheck) {
	t.Helper()
	y, _ := l.Forward(newTrainCtx(), x)
	r := randTensor(rand.New(rand.NewPCG(99, 1)), y.Shape...)
	loss := func() float64 {
		y, _ := l.Forward(newTrainCtx(), x)
		if !slices.Equal(y.Shape, r.Shape) {
			t.Fatalf("output shape changed from %v to %v", r.Shape, y.Shape)
		}
		var s float64
		for i, v := range y.Data {
			s += float64(v) * float64(r.Data[i])
		}
		return s
	}

	// Analytic gradients.
	params := l.Params()
	for _, p := range params {
		p.Grad.Zero()
	}
	yy, cache := l.Forward(newTrainCtx(), x)
	if !slices.Equal(yy.Data, y.Data) {
		t.Fatalf("two training forward passes on the same input differ")
	}
	dx := l.Backward(cache, r, true)
	if dx == nil || !slices.Equal(dx.Shape, x.Shape) {
		t.Fatalf("dx has shape %v, want the input's %v", shapeOf(dx), x.Shape)
	}
	grads := make([][]float32, len(params))
	for i, p := range params {
		grads[i] = slices.Clone(p.Grad.Data)
	}

	// needInput=false must give the same parameter gradients and no dx.
	for _, p := range params {
		p.Grad.Zero()
	}
	_, cache = l.Forward(newTrainCtx(), x)
	if dx2 := l.Backward(cache, r, false); dx2 != nil {
		t.Errorf("Backward with needInput=false returned dx")
	}
	for i, p := range params {
		if !slices.Equal(p.Grad.Data, grads[i]) {
			t.Errorf("%s: gradient with needInput=false differs", p.Name)
		}
	}
	// Gradients accumulate: a second Backward adds the same again.
	_, cache = l.Forward(newTrainCtx(), x)
	l.Backward(cache, r, false)
	for i, p := range params {
		for j, g := range p.Grad.Data {
			if want := 2 * grads[i][j]; math.Abs(float64(g-want)) > 1e-5*(1+math.Abs(float64(want))) {
				t.Fatalf("%s[%d]: two backward passes give %g, want 2×%g", p.Name, j, g, grads[i][j])
			}
		}
	}

	compare(t, "dx", x.Data, dx.Data, loss, c)
	for i, p := range params {
		compare(t, p.Name, p.Value.Data, grads[i], loss, c)
	}
}

// compare perturbs v (an input or a parameter, read by loss) coordinate by
// coordinate and checks the numeric derivative against analytic.
func compare(t *testing.T, what string, v, analytic []float32, loss func() float64, c gradCheck) {
	t.Helper()
	step := 1
	if c.maxCoords > 0 && len(v) > c.maxCoords {
		step = (len(v) + c.maxCoords - 1) / c.maxCoords
	}
	worst, worstAt, worstNum := 0.0, -1, 0.0
	for i := 0; i < len(v); i += step {
		orig := v[i]
		up, down := float32(float64(orig)+c.h), float32(float64(orig)-c.h)
		v[i] = up
		lp := loss()
		v[i] = down
		lm := loss()
		v[i] = orig
		num := (lp - lm) / (float64(up) - float64(down))
		a := float64(analytic[i])
		excess := math.Abs(a-num) / (c.tol * (1 + math.Max(math.Abs(a), math.Abs(num))))
		if excess > worst {
			worst, worstAt, worstNum = excess, i, num
		}
	}
	if worst > 1 {
		t.Errorf("%s[%d]: analytic gradient %g, numeric %g (%.1f× the tolerance)", what, worstAt, analytic[worstAt], worstNum, worst)
	}
}

func shapeOf(t *Tensor) []int {
	if t == nil {
		return nil
	}
	return t.Shape
}

func randTensor(rng *rand.Rand, shape ...int) *Tensor {
	t := NewTensor(shape...)
	for i := range t.Data {
		t.Data[i] = float32(rng.NormFloat64())
	}
	return t
}

// awayFromZero is a random tensor whose entries all have |v| ≥ 0.2, so a
// step of 1e-2 never crosses ReLU's kink.
func awayFromZero(rng *rand.Rand, shape ...int) *Tensor {
	t := randTensor(rng, shape...)
	for i, v := range t.Data {
		t.Data[i] = float32(math.Copysign(0.2+math.Abs(float64(v)), float64(v)))
	}
	return t
}

// distinct is a tensor of the values 0.05·k for k = 0..n−1 in random
// order, shifted to mean about 0: no two are within 0.05, so a step of
// 1e-2 never changes which one a max pool picks.
func distinct(rng *rand.Rand, shape ...int) *Tensor {
	t := NewTensor(shape...)
	for i, k := range rng.Perm(len(t.Data)) {
		t.Data[i] = 0.05 * float32(k-len(t.Data)/2)
	}
	return t
}

// randomize gives every parameter of l random values, so that biases,
// BatchNorm's γ and β and the like are not at their special starting
// values (0, 1) where some mistakes cancel.
func randomize(l Layer, seed uint64) Layer {
	rng := rand.New(rand.NewPCG(seed, 3))
	for _, p := range l.Params() {
		for i := range p.Value.Data {
			p.Value.Data[i] = float32(0.5 * rng.NormFloat64())
		}
	}
	// γ around 1 rather than 0 keeps BatchNorm's output of ordinary size.
	layers := []Layer{l}
	if r, ok := l.(*Residual); ok {
		layers = r.Body
	}
	for _, l := range layers {
		if b, ok := l.(*BatchNorm); ok {
			for i := range b.Gamma.Value.Data {
				b.Gamma.Value.Data[i] += 1
			}
		}
	}
	return l
}

func testRNG() *rand.Rand { return rand.New(rand.NewPCG(1, 1)) }

func TestGradientsDense(t *testing.T) {
	l := randomize(NewDense("d", 5, 4, HeNormal, testRNG()), 1)
	checkLayer(t, l, randTensor(testRNG(), 3, 5), defaultCheck)
}

func TestGradientsActivations(t *testing.T) {
	for _, kind := range []string{"relu", "gelu", "tanh", "sigmoid"} {
		t.Run(kind, func(t *testing.T) {
			x := randTensor(testRNG(), 3, 7)
			if kind == "relu" {
				x = awayFromZero(testRNG(), 3, 7)
			}
			checkLayer(t, NewActivation(kind), x, gradCheck{h: 5e-3, tol: 2e-3})
		})
	}
}

func TestGradientsConv2D(t *testing.T) {
	cases := []struct {
		n, inC, outC, h, w, k, s, p int
	}{
		{2, 2, 3, 5, 6, 3, 1, 1},
		{2, 3, 2, 7, 5, 3, 2, 0},
		{3, 1, 4, 6, 4, 2, 2, 1},
		{2, 3, 2, 4, 3, 1, 1, 0},
		{2, 2, 2, 8, 9, 5, 3, 2},
		{1, 2, 3, 3, 4, 3, 1, 3}, // padding wider than the kernel
		{2, 2, 1, 4, 5, 4, 1, 0}, // kernel as tall as the image
		{2, 1, 2, 9, 7, 3, 4, 1}, // stride larger than the kernel: skipped pixels
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("n%d_c%d-%d_%dx%d_k%d_s%d_p%d", c.n, c.inC, c.outC, c.h, c.w, c.k, c.s, c.p), func(t *testing.T) {
			l := randomize(NewConv2D("conv", c.inC, c.outC, c.k, c.s, c.p, HeNormal, testRNG()), 2)
			if _, err := l.OutShape([]int{c.inC, c.h, c.w}); err != nil {
				t.Fatal(err)
			}
			checkLayer(t, l, randTensor(testRNG(), c.n, c.inC, c.h, c.w), defaultCheck)
		})
	}
}

func TestGradientsPool2D(t *testing.T) {
	cases := []struct {
		max                 bool
		n, c, h, w, k, s, p int
	}{
		{true, 2, 2, 4, 6, 2, 2, 0},
		{true, 2, 2, 7, 5, 3, 2, 1},
		{true, 2, 3, 5, 7, 2, 2, 0}, // the 2×2 fast path on odd sizes
		{true, 1, 2, 5, 5, 3, 1, 1}, // overlapping windows share maxima
		{true, 2, 1, 5, 7, 2, 3, 0}, // stride past the kernel: pixels no window sees
		{false, 2, 2, 4, 6, 2, 2, 0},
		{false, 2, 2, 7, 5, 3, 2, 1},
		{false, 1, 2, 5, 5, 3, 1, 1},
		{false, 2, 3, 6, 5, 4, 2, 2},
	}
	for _, c := range cases {
		kind := map[bool]string{true: "max", false: "avg"}[c.max]
		t.Run(fmt.Sprintf("%s_n%d_c%d_%dx%d_k%d_s%d_p%d", kind, c.n, c.c, c.h, c.w, c.k, c.s, c.p), func(t *testing.T) {
			l := NewPool2D(c.max, c.k, c.s, c.p)
			if _, err := l.OutShape([]int{c.c, c.h, c.w}); err != nil {
				t.Fatal(err)
			}
			checkLayer(t, l, distinct(testRNG(), c.n, c.c, c.h, c.w), defaultCheck)
		})
	}
}

func TestGradientsGlobalAvgPool(t *testing.T) {
	checkLayer(t, NewGlobalAvgPool(), randTensor(testRNG(), 2, 3, 4, 5), defaultCheck)
}

func TestGradientsBatchNorm(t *testing.T) {
	for _, shape := range [][]int{{3, 2, 3, 4}, {5, 4}, {2, 3, 1, 1}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			l := randomize(NewBatchNorm("bn", shape[1], 0.1, 1e-5), 4)
			x := randTensor(testRNG(), shape...)
			checkLayer(t, l, x, gradCheck{h: 5e-3, tol: 3e-3})
		})
	}
}

func TestGradientsDropout(t *testing.T) {
	for _, rate := range []float64{0, 0.4} {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			checkLayer(t, NewDropout(rate), randTensor(testRNG(), 4, 10), defaultCheck)
		})
	}
}

func TestGradientsFlatten(t *testing.T) {
	checkLayer(t, NewFlatten(), randTensor(testRNG(), 2, 3, 2, 2), defaultCheck)
}

func TestGradientsResidual(t *testing.T) {
	cases := []struct {
		name    string
		in      []int
		body    func(rng *rand.Rand) []Layer
		project bool
	}{
		{"identity", []int{2, 4, 4}, func(rng *rand.Rand) []Layer {
			return []Layer{NewConv2D("body.0", 2, 2, 3, 1, 1, HeNormal, rng), NewBatchNorm("body.1", 2, 0.1, 1e-5), NewActivation("tanh")}
		}, false},
		{"projection", []int{2, 5, 6}, func(rng *rand.Rand) []Layer {
			return []Layer{NewConv2D("body.0", 2, 3, 3, 2, 1, HeNormal, rng), NewBatchNorm("body.1", 3, 0.1, 1e-5), NewActivation("gelu")}
		}, true},
		{"empty body", []int{3, 2, 2}, func(*rand.Rand) []Layer { return nil }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Look for a seed where no input to the final ReLU lies within
			// 0.05 of its kink, so the steps below never cross it.
			for seed := uint64(1); seed < 500; seed++ {
				rng := rand.New(rand.NewPCG(seed, 5))
				body := c.body(rng)
				out := c.in
				for _, l := range body {
					var err error
					if out, err = l.OutShape(out); err != nil {
						t.Fatal(err)
					}
				}
				r, err := NewResidual("res", c.in, out, body, rng)
				if err != nil {
					t.Fatal(err)
				}
				if (r.Shortcut != nil) != c.project {
					t.Fatalf("shortcut %v, want a projection: %v", r.Shortcut != nil, c.project)
				}
				randomize(r, seed)
				x := randTensor(rng, append([]int{2}, c.in...)...)
				if residualMargin(r, x) < 0.05 {
					continue
				}
				checkLayer(t, r, x, gradCheck{h: 2e-3, tol: 3e-3})
				return
			}
			t.Fatal("no seed keeps the ReLU inputs away from 0")
		})
	}
}

// residualMargin is the smallest |shortcut(x) + body(x)|, the distance of
// the block's ReLU inputs from the kink.
func residualMargin(r *Residual, x *Tensor) float64 {
	h := x
	for _, l := range r.Body {
		h, _ = l.Forward(newTrainCtx(), h)
	}
	s := x
	if r.Shortcut != nil {
		s, _ = r.Shortcut.Forward(newTrainCtx(), x)
	}
	m := math.Inf(1)
	for i, v := range h.Data {
		m = math.Min(m, math.Abs(float64(v+s.Data[i])))
	}
	return m
}

// modelLayer lets the checker drive a whole Model, to check that
// Model.Backward chains the layers' gradients correctly.
type modelLayer struct{ m *Model }

func (ml modelLayer) Kind() string                     { return "model" }
func (ml modelLayer) OutShape(in []int) ([]int, error) { return ml.m.OutShape(), nil }
func (ml modelLayer) Params() []*Param                 { return ml.m.Params() }
func (ml modelLayer) Forward(ctx *Context, x *Tensor) (*Tensor, any) {
	y, pass, err := ml.m.Forward(ctx, x)
	if err != nil {
		panic(err)
	}
	return y, pass
}
func (ml modelLayer) Backward(cache any, dy *Tensor, needInput bool) *Tensor {
	// Model.Backward never returns dx; run its layers by hand to get it.
	pass := cache.(*Pass)
	for i := len(ml.m.Layers) - 1; i >= 0; i-- {
		dy = ml.m.Layers[i].Backward(pass.caches[i], dy, needInput || i > 0)
	}
	return dy
}

func TestGradientsModel(t *testing.T) {
	spec := Spec{Input: []int{2, 6, 6}, Layers: []LayerSpec{
		{Type: "conv2d", Filters: 3, Kernel: 3, Padding: 1},
		{Type: "batchnorm"},
		{Type: "gelu"},
		{Type: "avgpool2d", Kernel: 2},
		{Type: "dropout", Rate: 0.25},
		{Type: "conv2d", Filters: 2, Kernel: 2, Stride: 1},
		{Type: "sigmoid"},
		{Type: "flatten"},
		{Type: "dense", Units: 3},
		{Type: "tanh"},
		{Type: "dense", Units: 2},
	}}
	m, err := Build(spec, 3)
	if err != nil {
		t.Fatal(err)
	}
	checkLayer(t, modelLayer{m}, randTensor(testRNG(), 3, 2, 6, 6), gradCheck{h: 5e-3, tol: 3e-3})
	// And Model.Backward itself fills the same parameter gradients.
	r := randTensor(rand.New(rand.NewPCG(99, 1)), 3, 2)
	x := randTensor(testRNG(), 3, 2, 6, 6)
	m.ZeroGrad()
	_, pass, _ := m.Forward(newTrainCtx(), x)
	m.Backward(pass, r)
	want := make([][]float32, 0)
	for _, p := range m.Params() {
		want = append(want, slices.Clone(p.Grad.Data))
	}
	m.ZeroGrad()
	_, cache := modelLayer{m}.Forward(newTrainCtx(), x)
	modelLayer{m}.Backward(cache, r, true)
	for i, p := range m.Params() {
		if !slices.Equal(p.Grad.Data, want[i]) {
			t.Errorf("%s: Model.Backward's gradient differs", p.Name)
		}
	}
}

// lossCheck checks a loss's gradient with respect to its input.
func lossCheck(t *testing.T, x *Tensor, f func(*Tensor) (float64, *Tensor, error)) {
	t.Helper()
	_, grad, err := f(x)
	if err != nil {
		t.Fatal(err)
	}
	loss := func() float64 {
		l, _, err := f(x)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	compare(t, "dlogits", x.Data, grad.Data, loss, gradCheck{h: 5e-3, tol: 2e-3})
}

func TestGradientsLosses(t *testing.T) {
	labels := []int{0, 3, 2, 3}
	weights := []float32{0.5, 2, 1, 0.25, 3}
	t.Run("softmax", func(t *testing.T) {
		lossCheck(t, randTensor(testRNG(), 4, 5), func(x *Tensor) (float64, *Tensor, error) {
			return SoftmaxCrossEntropy(x, labels, nil)
		})
	})
	t.Run("softmax weighted", func(t *testing.T) {
		lossCheck(t, randTensor(testRNG(), 4, 5), func(x *Tensor) (float64, *Tensor, error) {
			return SoftmaxCrossEntropy(x, labels, weights)
		})
	})
	bin := []int{0, 1, 1, 0, 1, 0}
	t.Run("sigmoid", func(t *testing.T) {
		lossCheck(t, randTensor(testRNG(), 6, 1), func(x *Tensor) (float64, *Tensor, error) {
			return SigmoidCrossEntropy(x, bin, nil)
		})
	})
	t.Run("sigmoid weighted", func(t *testing.T) {
		lossCheck(t, randTensor(testRNG(), 6, 1), func(x *Tensor) (float64, *Tensor, error) {
			return SigmoidCrossEntropy(x, bin, []float32{0.3, 1.7})
		})
	})
	t.Run("mse", func(t *testing.T) {
		target := randTensor(rand.New(rand.NewPCG(5, 5)), 3, 4)
		lossCheck(t, randTensor(testRNG(), 3, 4), func(x *Tensor) (float64, *Tensor, error) {
			return MSE(x, target)
		})
	})
}
