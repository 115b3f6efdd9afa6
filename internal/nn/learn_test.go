package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The learning tests train small networks end to end, deterministically
// (seeded weights, data, batches and dropout), and check they learn.

// fit trains m on (x, labels) with Adam, in shuffled mini-batches, and
// returns the last step's loss.
func fit(t *testing.T, m *Model, x *Tensor, labels []int, steps, batch int, lr float64, seed uint64) float64 {
	t.Helper()
	opt, err := NewOptimizer(OptimizerConfig{Name: "adam"})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 17))
	ctx := &Context{Training: true, RNG: rng}
	n, per := x.Batch(), x.SampleLen()
	batch = min(batch, n)
	order := rng.Perm(n)
	xb := NewTensor(append([]int{batch}, x.Shape[1:]...)...)
	yb := make([]int, batch)
	var loss float64
	for step, pos := 0, n; step < steps; step++ {
		if pos+batch > n {
			rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
			pos = 0
		}
		for i := range batch {
			k := order[pos+i]
			copy(xb.Data[i*per:(i+1)*per], x.Data[k*per:(k+1)*per])
			yb[i] = labels[k]
		}
		pos += batch
		m.ZeroGrad()
		out, pass, err := m.Forward(ctx, xb)
		if err != nil {
			t.Fatal(err)
		}
		l, dy, err := SoftmaxCrossEntropy(out, yb, nil)
		if err != nil {
			t.Fatal(err)
		}
		if math.IsNaN(l) {
			t.Fatalf("step %d: loss is NaN", step)
		}
		loss = l
		m.Backward(pass, dy)
		opt.Step(m.Params(), lr)
	}
	return loss
}

func accuracy(t *testing.T, m *Model, x *Tensor, labels []int) float64 {
	t.Helper()
	out, err := m.Predict(x)
	if err != nil {
		t.Fatal(err)
	}
	c := out.SampleLen()
	right := 0
	for i, k := range labels {
		row := out.Data[i*c : (i+1)*c]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		if best == k {
			right++
		}
	}
	return float64(right) / float64(len(labels))
}

func TestLearnXOR(t *testing.T) {
	m, err := Build(Spec{Input: []int{2}, Layers: []LayerSpec{
		{Type: "dense", Units: 8, Init: "xavier"}, {Type: "tanh"}, {Type: "dense", Units: 2},
	}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := FromData([]float32{0, 0, 0, 1, 1, 0, 1, 1}, 4, 2)
	labels := []int{0, 1, 1, 0}
	loss := fit(t, m, x, labels, 300, 4, 0.05, 1)
	acc := accuracy(t, m, x, labels)
	t.Logf("XOR: accuracy %.2f, loss %.4f", acc, loss)
	if acc != 1 || loss > 0.05 {
		t.Fatalf("XOR: accuracy %.2f, loss %.4f", acc, loss)
	}
}

// twoMoons is scikit-learn's make_moons: two interleaved half circles
// with Gaussian noise.
func twoMoons(n int, noise float64, seed uint64) (*Tensor, []int) {
	rng := rand.New(rand.NewPCG(seed, 23))
	x := NewTensor(n, 2)
	labels := make([]int, n)
	for i := range n {
		a := math.Pi * rng.Float64()
		px, py := math.Cos(a), math.Sin(a)
		if i%2 == 1 {
			px, py = 1-px, 0.5-py
			labels[i] = 1
		}
		x.Data[2*i] = float32(px + noise*rng.NormFloat64())
		x.Data[2*i+1] = float32(py + noise*rng.NormFloat64())
	}
	return x, labels
}

func TestLearnTwoMoons(t *testing.T) {
	m, err := Build(Spec{Input: []int{2}, Layers: []LayerSpec{
		{Type: "dense", Units: 32}, {Type: "relu"},
		{Type: "dense", Units: 32}, {Type: "gelu"},
		{Type: "dense", Units: 2},
	}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	x, labels := twoMoons(400, 0.1, 1)
	fit(t, m, x, labels, 600, 32, 0.01, 2)
	xt, lt := twoMoons(400, 0.1, 2)
	train, test := accuracy(t, m, x, labels), accuracy(t, m, xt, lt)
	t.Logf("two moons: accuracy %.3f on the training set, %.3f on a test set", train, test)
	if train < 0.99 || test < 0.98 {
		t.Fatal("two moons not learnt")
	}
}

// bars makes 8×8 images of one vertical (class 0) or horizontal (class
// 1) bar at a random place and of random length ≥ 4, with noise.
func bars(n int, seed uint64) (*Tensor, []int) {
	rng := rand.New(rand.NewPCG(seed, 29))
	x := NewTensor(n, 1, 8, 8)
	labels := make([]int, n)
	for i := range n {
		img := x.Data[i*64 : (i+1)*64]
		for j := range img {
			img[j] = float32(0.3 * rng.NormFloat64())
		}
		pos, length := rng.IntN(8), 4+rng.IntN(5)
		start := rng.IntN(8 - length + 1)
		labels[i] = rng.IntN(2)
		for k := start; k < start+length; k++ {
			if labels[i] == 0 {
				img[k*8+pos] += 1
			} else {
				img[pos*8+k] += 1
			}
		}
	}
	return x, labels
}

func TestLearnBarsCNN(t *testing.T) {
	m, err := Build(Spec{Input: []int{1, 8, 8}, Layers: []LayerSpec{
		{Type: "conv2d", Filters: 6, Kernel: 3, Padding: 1},
		{Type: "batchnorm"},
		{Type: "relu"},
		{Type: "maxpool2d", Kernel: 2},
		{Type: "residual", Layers: []LayerSpec{
			{Type: "conv2d", Filters: 8, Kernel: 3, Padding: 1},
			{Type: "batchnorm"},
		}},
		{Type: "dropout", Rate: 0.1},
		{Type: "globalavgpool"},
		{Type: "dense", Units: 2},
	}}, 3)
	if err != nil {
		t.Fatal(err)
	}
	x, labels := bars(512, 1)
	fit(t, m, x, labels, 250, 32, 0.01, 3)
	xt, lt := bars(512, 2)
	acc := accuracy(t, m, xt, lt)
	t.Logf("bars: test accuracy %.3f", acc)
	if acc < 0.95 {
		t.Fatal("bars not learnt")
	}
}
