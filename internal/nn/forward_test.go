package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// These tests check forward values against direct, independent
// computations (naive loops, closed forms, hand-computed numbers).

func closeTo(a, b, tol float64) bool { return math.Abs(a-b) <= tol*(1+math.Abs(b)) }

func TestConv2DForwardMatchesDirect(t *testing.T) {
	cases := []struct{ n, inC, outC, h, w, k, s, p int }{
		{2, 3, 4, 7, 9, 3, 1, 1},
		{1, 1, 2, 5, 5, 5, 1, 0},
		{3, 2, 3, 8, 6, 3, 2, 1},
		{2, 2, 2, 6, 7, 2, 3, 2},
		{2, 4, 5, 4, 4, 1, 1, 0},
		{1, 3, 2, 10, 3, 4, 2, 3},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			l := NewConv2D("c", c.inC, c.outC, c.k, c.s, c.p, HeNormal, rng)
			for i := range l.B.Value.Data {
				l.B.Value.Data[i] = float32(rng.NormFloat64())
			}
			x := randTensor(rng, c.n, c.inC, c.h, c.w)
			shape, err := l.OutShape([]int{c.inC, c.h, c.w})
			if err != nil {
				t.Fatal(err)
			}
			for _, ctx := range []*Context{Infer(), newTrainCtx()} {
				y, _ := l.Forward(ctx, x)
				if !slices.Equal(y.Shape, append([]int{c.n}, shape...)) {
					t.Fatalf("output shape %v, OutShape says %v", y.Shape, shape)
				}
				oh, ow := shape[1], shape[2]
				W := l.W.Value.Data
				for n := range c.n {
					for o := range c.outC {
						for i := range oh {
							for j := range ow {
								s := float64(l.B.Value.Data[o])
								for ch := range c.inC {
									for a := range c.k {
										for b := range c.k {
											r, q := i*c.s-c.p+a, j*c.s-c.p+b
											if r < 0 || r >= c.h || q < 0 || q >= c.w {
												continue
											}
											s += float64(W[((o*c.inC+ch)*c.k+a)*c.k+b]) * float64(x.Data[((n*c.inC+ch)*c.h+r)*c.w+q])
										}
									}
								}
								got := float64(y.Data[((n*c.outC+o)*oh+i)*ow+j])
								if !closeTo(got, s, 1e-5) {
									t.Fatalf("y[%d,%d,%d,%d] = %g, direct convolution gives %g", n, o, i, j, got, s)
								}
							}
						}
					}
				}
			}
		})
	}
}

func TestPool2DForwardMatchesDirect(t *testing.T) {
	cases := []struct{ n, c, h, w, k, s, p int }{
		{2, 3, 6, 6, 2, 2, 0},
		{1, 2, 7, 5, 2, 2, 0}, // the 2×2 fast path, with a row and a column no window sees
		{1, 2, 7, 5, 3, 2, 1},
		{2, 1, 5, 8, 3, 1, 1},
		{1, 2, 9, 9, 4, 3, 2},
		{1, 1, 3, 3, 3, 1, 0},
	}
	for _, c := range cases {
		for _, isMax := range []bool{true, false} {
			t.Run(fmt.Sprintf("max=%v/%+v", isMax, c), func(t *testing.T) {
				l := NewPool2D(isMax, c.k, c.s, c.p)
				shape, err := l.OutShape([]int{c.c, c.h, c.w})
				if err != nil {
					t.Fatal(err)
				}
				x := randTensor(rand.New(rand.NewPCG(6, 7)), c.n, c.c, c.h, c.w)
				y, _ := l.Forward(Infer(), x)
				oh, ow := shape[1], shape[2]
				if oh != (c.h+2*c.p-c.k)/c.s+1 || ow != (c.w+2*c.p-c.k)/c.s+1 {
					t.Fatalf("output %dx%d", oh, ow)
				}
				for pl := range c.n * c.c {
					for i := range oh {
						for j := range ow {
							best, sum, count := math.Inf(-1), 0.0, 0
							for a := range c.k {
								for b := range c.k {
									r, q := i*c.s-c.p+a, j*c.s-c.p+b
									if r < 0 || r >= c.h || q < 0 || q >= c.w {
										continue // padding: never a value, never counted
									}
									v := float64(x.Data[(pl*c.h+r)*c.w+q])
									best, sum, count = math.Max(best, v), sum+v, count+1
								}
							}
							want := best
							if !isMax {
								want = sum / float64(count)
							}
							if got := float64(y.Data[(pl*oh+i)*ow+j]); !closeTo(got, want, 1e-6) {
								t.Fatalf("plane %d (%d,%d) = %g, want %g", pl, i, j, got, want)
							}
						}
					}
				}
			})
		}
	}
}

func TestMaxPoolTiesAndNaN(t *testing.T) {
	l := NewPool2D(true, 2, 2, 0)
	x, _ := FromData([]float32{1, 1, 1, 1, float32(math.NaN()), 0, 2, 3}, 1, 2, 2, 2)
	y, cache := l.Forward(newTrainCtx(), x)
	if y.Data[0] != 1 || !math.IsNaN(float64(y.Data[1])) {
		t.Fatalf("max pool of ties and NaN = %v", y.Data)
	}
	dy, _ := FromData([]float32{1, 1}, 1, 2, 1, 1)
	dx := l.Backward(cache, dy, true)
	// A tie sends the whole gradient to the first maximum.
	if want := []float32{1, 0, 0, 0, 1, 0, 0, 0}; !slices.Equal(dx.Data, want) {
		t.Fatalf("dx = %v, want %v", dx.Data, want)
	}
}

func TestGlobalAvgPoolForward(t *testing.T) {
	x := randTensor(testRNG(), 2, 3, 4, 5)
	y, _ := NewGlobalAvgPool().Forward(Infer(), x)
	if !slices.Equal(y.Shape, []int{2, 3}) {
		t.Fatalf("shape %v", y.Shape)
	}
	for i := range 6 {
		var s float64
		for _, v := range x.Data[i*20 : (i+1)*20] {
			s += float64(v)
		}
		if !closeTo(float64(y.Data[i]), s/20, 1e-6) {
			t.Fatalf("y[%d] = %g, want %g", i, y.Data[i], s/20)
		}
	}
}

func TestBatchNormInference(t *testing.T) {
	for _, shape := range [][]int{{3, 2, 4, 5}, {4, 6}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(8, 9))
			c := shape[1]
			b := NewBatchNorm("bn", c, 0.1, 1e-3)
			for i := range c {
				b.Gamma.Value.Data[i] = float32(rng.NormFloat64())
				b.Beta.Value.Data[i] = float32(rng.NormFloat64())
				b.Mean.Value.Data[i] = float32(rng.NormFloat64())
				b.Var.Value.Data[i] = float32(0.1 + rng.Float64())
			}
			x := randTensor(rng, shape...)
			y, cache := b.Forward(Infer(), x)
			if cache != nil {
				t.Fatal("inference returned a cache")
			}
			hw := x.SampleLen() / c
			for i, v := range x.Data {
				ch := (i / hw) % c
				want := float64(b.Gamma.Value.Data[ch])*(float64(v)-float64(b.Mean.Value.Data[ch]))/
					math.Sqrt(float64(b.Var.Value.Data[ch])+1e-3) + float64(b.Beta.Value.Data[ch])
				if !closeTo(float64(y.Data[i]), want, 1e-5) {
					t.Fatalf("y[%d] = %g, want %g", i, y.Data[i], want)
				}
			}
		})
	}
}

func TestBatchNormTrainingStatistics(t *testing.T) {
	for _, shape := range [][]int{{4, 2, 3, 3}, {6, 3}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			c := shape[1]
			b := NewBatchNorm("bn", c, 0.2, 1e-5)
			if b.Gamma.Value.Data[0] != 1 || b.Beta.Value.Data[0] != 0 || b.Mean.Value.Data[0] != 0 || b.Var.Value.Data[0] != 1 {
				t.Fatal("BatchNorm does not start at γ=1, β=0, mean 0, var 1")
			}
			if len(b.Params()) != 2 || len(b.Buffers()) != 2 || b.Buffers()[0].Name != "bn.running_mean" || b.Buffers()[1].Name != "bn.running_var" {
				t.Fatalf("params %v, buffers %v", b.Params(), b.Buffers())
			}
			x := randTensor(testRNG(), shape...)
			for i := range x.Data {
				x.Data[i] = 3 + 2*x.Data[i]
			}
			y, _ := b.Forward(newTrainCtx(), x)
			hw := x.SampleLen() / c
			m := float64(shape[0] * hw)
			for ch := range c {
				var vals, outs []float64
				for i, v := range x.Data {
					if (i/hw)%c == ch {
						vals = append(vals, float64(v))
						outs = append(outs, float64(y.Data[i]))
					}
				}
				mean, vr := meanVar(vals)
				// Running statistics: PyTorch's update, unbiased variance.
				if got, want := float64(b.Mean.Value.Data[ch]), 0.2*mean; !closeTo(got, want, 1e-5) {
					t.Errorf("running mean %g, want %g", got, want)
				}
				if got, want := float64(b.Var.Value.Data[ch]), 0.8+0.2*vr*m/(m-1); !closeTo(got, want, 1e-5) {
					t.Errorf("running var %g, want %g", got, want)
				}
				// The output is normalised with the biased variance.
				om, ov := meanVar(outs)
				if math.Abs(om) > 1e-5 || !closeTo(ov, vr/(vr+1e-5), 1e-4) {
					t.Errorf("channel %d output mean %g, variance %g", ch, om, ov)
				}
			}
		})
	}
}

// TestBatchNormSingleValue checks a batch with one value per feature (a
// last batch of one): the output is β and the running variance is kept.
func TestBatchNormSingleValue(t *testing.T) {
	b := NewBatchNorm("bn", 2, 0.1, 1e-5)
	b.Beta.Value.Data[1] = 0.5
	x, _ := FromData([]float32{4, -2}, 1, 2)
	y, _ := b.Forward(newTrainCtx(), x)
	if y.Data[0] != 0 || y.Data[1] != 0.5 || b.Var.Value.Data[0] != 1 || !closeTo(float64(b.Mean.Value.Data[0]), 0.4, 1e-6) {
		t.Fatalf("y %v, running mean %v, var %v", y.Data, b.Mean.Value.Data, b.Var.Value.Data)
	}
}

func meanVar(v []float64) (mean, variance float64) {
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	for _, x := range v {
		variance += (x - mean) * (x - mean)
	}
	return mean, variance / float64(len(v))
}

func TestGELUValues(t *testing.T) {
	// x·Φ(x) with Φ the standard normal CDF (Φ(1) = 0.8413447460685429).
	known := map[float32]float64{
		-3: -0.00404969409489031, -1: -0.15865525393145707, -0.5: -0.15426876936299344,
		0: 0, 0.5: 0.34573123063700656, 1: 0.8413447460685429, 2: 1.9544997361036416, 3: 2.99595030590511,
	}
	var xs []float32
	for x := range known {
		xs = append(xs, x)
	}
	x, _ := FromData(xs, len(xs), 1)
	y, _ := NewActivation("gelu").Forward(Infer(), x)
	for i, v := range xs {
		if !closeTo(float64(y.Data[i]), known[v], 1e-6) {
			t.Errorf("gelu(%g) = %g, want %g", v, y.Data[i], known[v])
		}
	}
}

func TestActivationValues(t *testing.T) {
	x, _ := FromData([]float32{-2, -0.5, 0, 0.5, 2}, 5, 1)
	for kind, f := range map[string]func(float64) float64{
		"relu":    func(v float64) float64 { return math.Max(v, 0) },
		"tanh":    math.Tanh,
		"sigmoid": func(v float64) float64 { return 1 / (1 + math.Exp(-v)) },
	} {
		y, _ := NewActivation(kind).Forward(Infer(), x)
		for i, v := range x.Data {
			if !closeTo(float64(y.Data[i]), f(float64(v)), 1e-6) {
				t.Errorf("%s(%g) = %g, want %g", kind, v, y.Data[i], f(float64(v)))
			}
		}
	}
}

func TestSoftmaxCrossEntropyByHand(t *testing.T) {
	logits, _ := FromData([]float32{1, 2, 3, 1, 2, 3}, 2, 3)
	// softmax(1,2,3) = (e¹, e², e³)/(e¹+e²+e³); −log p₃ = log(e¹+e²+e³) − 3.
	p := []float64{0.09003057317038046, 0.24472847105479764, 0.6652409557748219}
	l3, l1 := 0.40760596444438013, 2.40760596444438
	loss, grad, err := SoftmaxCrossEntropy(logits, []int{2, 0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !closeTo(loss, (l3+l1)/2, 1e-6) {
		t.Errorf("loss %g, want %g", loss, (l3+l1)/2)
	}
	want := []float64{p[0] / 2, p[1] / 2, (p[2] - 1) / 2, (p[0] - 1) / 2, p[1] / 2, p[2] / 2}
	for i, g := range grad.Data {
		if !closeTo(float64(g), want[i], 1e-6) {
			t.Errorf("grad[%d] = %g, want %g", i, g, want[i])
		}
	}
	// Class weights: the mean is over the samples' weights (PyTorch).
	loss, _, _ = SoftmaxCrossEntropy(logits, []int{2, 0}, []float32{1, 1, 2})
	if want := (2*l3 + l1) / 3; !closeTo(loss, want, 1e-6) {
		t.Errorf("weighted loss %g, want %g", loss, want)
	}
	if _, _, err := SoftmaxCrossEntropy(logits, []int{3, 0}, nil); err == nil {
		t.Error("label 3 of 3 classes accepted")
	}
	if _, _, err := SoftmaxCrossEntropy(logits, []int{0}, nil); err == nil {
		t.Error("1 label for 2 samples accepted")
	}
}

func TestSigmoidCrossEntropyAndMSEByHand(t *testing.T) {
	logits, _ := FromData([]float32{0, 2, -30}, 3, 1)
	loss, _, err := SigmoidCrossEntropy(logits, []int{1, 0, 0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// −log σ(0) = log 2; −log(1−σ(2)) = log(1+e²); −log(1−σ(−30)) = log(1+e⁻³⁰).
	if want := (math.Log(2) + math.Log1p(math.Exp(2)) + math.Log1p(math.Exp(-30))) / 3; !closeTo(loss, want, 1e-6) {
		t.Errorf("loss %g, want %g", loss, want)
	}
	pred, _ := FromData([]float32{1, 2, 3, 4}, 2, 2)
	target, _ := FromData([]float32{1, 0, 3, 2}, 2, 2)
	if loss, _, _ := MSE(pred, target); loss != 2 {
		t.Errorf("mse %g, want (0+4+0+4)/4 = 2", loss)
	}
}

func TestDropoutForward(t *testing.T) {
	d := NewDropout(0.3)
	x := NewTensor(100, 100)
	for i := range x.Data {
		x.Data[i] = 1
	}
	if y, _ := d.Forward(Infer(), x); y != x {
		t.Error("inference dropout is not the identity")
	}
	y, _ := d.Forward(newTrainCtx(), x)
	dropped := 0
	for _, v := range y.Data {
		switch {
		case v == 0:
			dropped++
		case !closeTo(float64(v), 1/0.7, 1e-6):
			t.Fatalf("kept value %g, want 1/(1−0.3)", v)
		}
	}
	if frac := float64(dropped) / 1e4; math.Abs(frac-0.3) > 0.02 {
		t.Errorf("dropped %.3f of the inputs, want 0.3", frac)
	}
	y2, _ := d.Forward(newTrainCtx(), x)
	if !slices.Equal(y.Data, y2.Data) {
		t.Error("the same RNG seed gave another mask")
	}
}

func TestFlattenForward(t *testing.T) {
	x := randTensor(testRNG(), 2, 3, 4)
	y, _ := NewFlatten().Forward(Infer(), x)
	if !slices.Equal(y.Shape, []int{2, 12}) || &y.Data[0] != &x.Data[0] {
		t.Fatalf("flatten gave shape %v (sharing data: %v)", y.Shape, &y.Data[0] == &x.Data[0])
	}
	if s, _ := NewFlatten().OutShape([]int{3, 4, 5}); !slices.Equal(s, []int{60}) {
		t.Fatalf("OutShape %v", s)
	}
}

func TestResidualShortcut(t *testing.T) {
	cases := []struct {
		in, out []int
		stride  int // 0: identity; −1: error
	}{
		{[]int{4, 8, 8}, []int{4, 8, 8}, 0},
		{[]int{4, 8, 8}, []int{8, 4, 4}, 2},
		{[]int{4, 7, 7}, []int{8, 4, 4}, 2},
		{[]int{4, 7, 5}, []int{6, 7, 5}, 1},
		{[]int{4, 9, 9}, []int{4, 3, 3}, 3},
		{[]int{4, 8, 8}, []int{8, 4, 3}, -1},
		{[]int{4, 8, 8}, []int{8, 9, 9}, -1},
		{[]int{10}, []int{12}, -1},
		{[]int{4, 8, 8}, []int{256}, -1},
		{[]int{10}, []int{10}, 0},
	}
	for _, c := range cases {
		r, err := NewResidual("r", c.in, c.out, nil, testRNG())
		switch {
		case c.stride < 0:
			if err == nil {
				t.Errorf("%v → %v: no error", c.in, c.out)
			} else if !containsAll(err.Error(), fmt.Sprint(c.in), fmt.Sprint(c.out)) {
				t.Errorf("%v → %v: error %q does not name the shapes", c.in, c.out, err)
			}
		case err != nil:
			t.Errorf("%v → %v: %v", c.in, c.out, err)
		case c.stride == 0:
			if r.Shortcut != nil {
				t.Errorf("%v → %v: shortcut where none is needed", c.in, c.out)
			}
		default:
			s := r.Shortcut
			if s == nil || s.Kernel != 1 || s.Stride != c.stride || s.Padding != 0 || s.InC != c.in[0] || s.OutC != c.out[0] {
				t.Errorf("%v → %v: shortcut %+v, want 1×1 stride %d", c.in, c.out, s, c.stride)
				continue
			}
			if s.W.Name != "r.shortcut.weight" || s.B.Name != "r.shortcut.bias" {
				t.Errorf("shortcut params named %s, %s", s.W.Name, s.B.Name)
			}
			if got, err := s.OutShape(c.in); err != nil || !slices.Equal(got, c.out) {
				t.Errorf("%v → %v: the shortcut gives %v (%v)", c.in, c.out, got, err)
			}
		}
	}
}

func TestResidualParamsAndBuffers(t *testing.T) {
	m, err := Build(Spec{Input: []int{2, 6, 6}, Layers: []LayerSpec{
		{Type: "residual", Layers: []LayerSpec{
			{Type: "conv2d", Filters: 4, Kernel: 3, Stride: 2, Padding: 1},
			{Type: "batchnorm"},
			{Type: "relu"},
			{Type: "conv2d", Filters: 4, Kernel: 3, Padding: 1},
			{Type: "batchnorm"},
		}},
	}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range m.Params() {
		names = append(names, p.Name)
	}
	want := []string{"0.body.0.weight", "0.body.0.bias", "0.body.1.weight", "0.body.1.bias", "0.body.3.weight", "0.body.3.bias",
		"0.body.4.weight", "0.body.4.bias", "0.shortcut.weight", "0.shortcut.bias"}
	if !slices.Equal(names, want) {
		t.Errorf("params %v, want %v", names, want)
	}
	names = nil
	for _, p := range m.Buffers() {
		names = append(names, p.Name)
	}
	want = []string{"0.body.1.running_mean", "0.body.1.running_var", "0.body.4.running_mean", "0.body.4.running_var"}
	if !slices.Equal(names, want) {
		t.Errorf("buffers %v, want %v", names, want)
	}
	if got := m.OutShape(); !slices.Equal(got, []int{4, 3, 3}) {
		t.Errorf("out shape %v", got)
	}
}

// A frozen Dense computes what it computed before it was frozen, to the
// bit, at every batch size (one row, odd sizes, a product big enough to be
// split among goroutines), and refuses training.
func TestDenseFrozenIdentical(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, sh := range [][2]int{{2048, 512}, {33, 10}, {1, 1}, {512, 2048}} {
		in, out := sh[0], sh[1]
		plain := NewDense("d", in, out, HeNormal, rng)
		for i := range plain.B.Value.Data {
			plain.B.Value.Data[i] = float32(rng.NormFloat64())
		}
		frozen := NewDense("d", in, out, HeNormal, rng)
		copy(frozen.W.Value.Data, plain.W.Value.Data)
		copy(frozen.B.Value.Data, plain.B.Value.Data)
		frozen.Freeze()
		for _, n := range []int{1, 3, 32, 100} {
			x := &Tensor{Shape: []int{n, in}, Data: make([]float32, n*in)}
			for i := range x.Data {
				x.Data[i] = float32(rng.NormFloat64())
			}
			want, _ := plain.Forward(Infer(), x)
			want = want.Clone()
			got, _ := frozen.Forward(Infer(), x)
			if !slices.Equal(got.Data, want.Data) {
				t.Fatalf("%d→%d, batch %d: frozen and plain differ", in, out, n)
			}
		}
	}
	if BLAS != "go-gemm" {
		return // OpenBLAS packs in every call: Freeze keeps nothing
	}
	d := NewDense("d", 4, 3, HeNormal, rng)
	d.Freeze()
	defer func() {
		if recover() == nil {
			t.Fatal("training a frozen layer did not panic")
		}
	}()
	d.Forward(&Context{Training: true}, &Tensor{Shape: []int{1, 4}, Data: make([]float32, 4)})
}
