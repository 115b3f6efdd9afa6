package nn

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// recycleSpec has every kind of layer that recycles, a view (flatten) and
// dropout, so buffers of every size and both kinds (outputs, gradients)
// go round.
var recycleSpec = Spec{Input: []int{1, 12, 12}, Layers: []LayerSpec{
	{Type: "conv2d", Filters: 4, Kernel: 3, Padding: 1}, {Type: "relu"}, {Type: "maxpool2d", Kernel: 2},
	{Type: "conv2d", Filters: 6, Kernel: 3, Padding: 1}, {Type: "tanh"}, {Type: "avgpool2d", Kernel: 2},
	{Type: "flatten"}, {Type: "dense", Units: 16}, {Type: "relu"}, {Type: "dropout", Rate: 0.3},
	{Type: "dense", Units: 3},
}}

// step runs one forward and backward pass of x with a fixed dropout seed
// and returns the output and the parameters' gradients.
func recycleStep(t *testing.T, m *Model, x *Tensor, labels []int) (*Tensor, [][]float32) {
	t.Helper()
	m.ZeroGrad()
	ctx := &Context{Training: true, RNG: rand.New(rand.NewPCG(9, 9))}
	out, pass, err := m.Forward(ctx, x)
	if err != nil {
		t.Fatal(err)
	}
	_, grad, err := SoftmaxCrossEntropy(out, labels, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Backward(pass, grad)
	var grads [][]float32
	for _, p := range m.Params() {
		grads = append(grads, append([]float32(nil), p.Grad.Data...))
	}
	return out, grads
}

// TestRecycledBuffersChangeNothing: a model whose layers hand out buffers
// recycled from earlier passes (dirty with their values) computes the
// same output and gradients, bit for bit, as a fresh model with the same
// weights; and recycling really happens (a warm step allocates a fraction
// of what the first does).
func TestRecycledBuffersChangeNothing(t *testing.T) {
	warm, err := Build(recycleSpec, 7)
	if err != nil {
		t.Fatal(err)
	}
	rng := testRNG()
	x := randTensor(rng, 8, 1, 12, 12)
	labels := []int{0, 1, 2, 0, 1, 2, 0, 1}
	// Dirty the pools with passes over other data.
	for range 3 {
		recycleStep(t, warm, randTensor(rng, 8, 1, 12, 12), labels)
	}
	fresh, err := Build(recycleSpec, 7)
	if err != nil {
		t.Fatal(err)
	}
	wantOut, want := recycleStep(t, fresh, x, labels)
	gotOut, got := recycleStep(t, warm, x, labels)
	for i := range wantOut.Data {
		if math.Float32bits(gotOut.Data[i]) != math.Float32bits(wantOut.Data[i]) {
			t.Fatalf("output %d: %v with recycled buffers, %v fresh", i, gotOut.Data[i], wantOut.Data[i])
		}
	}
	for p := range want {
		for i := range want[p] {
			if math.Float32bits(got[p][i]) != math.Float32bits(want[p][i]) {
				t.Fatalf("gradient of %s[%d]: %v with recycled buffers, %v fresh", warm.Params()[p].Name, i, got[p][i], want[p][i])
			}
		}
	}

	allocated := func(m *Model) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		recycleStep(t, m, x, labels)
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	cold, _ := Build(recycleSpec, 7)
	first := allocated(cold)
	least := first
	for range 5 { // the least of several: a GC may empty the pools once
		least = min(least, allocated(cold))
	}
	if least*2 > first {
		t.Errorf("a warm step allocated %d bytes, the first %d: buffers are not being recycled", least, first)
	}
}

// TestInPlaceMatchesLayerByLayer: Model's forward and backward passes,
// which run a relu over its input's memory where that is safe, give bit
// for bit the output and gradients of calling the layers one by one
// (never in place), leave the caller's batch and loss gradient alone,
// and keep working after a relu at the input or after a tanh (whose
// backward pass reads its output: no overwriting there).
func TestInPlaceMatchesLayerByLayer(t *testing.T) {
	spec := Spec{Input: []int{1, 10, 10}, Layers: []LayerSpec{
		{Type: "relu"},
		{Type: "conv2d", Filters: 3, Kernel: 3, Padding: 1}, {Type: "relu"},
		{Type: "conv2d", Filters: 4, Kernel: 3, Padding: 1}, {Type: "tanh"}, {Type: "relu"},
		{Type: "maxpool2d", Kernel: 2}, {Type: "flatten"},
		{Type: "dense", Units: 12}, {Type: "relu"}, {Type: "dense", Units: 3}, {Type: "relu"},
	}}
	rng := testRNG()
	x := randTensor(rng, 5, 1, 10, 10)
	xCopy := append([]float32(nil), x.Data...)
	labels := []int{0, 1, 2, 1, 0}

	// Layer by layer, with plain Forward and Backward.
	ref, err := Build(spec, 3)
	if err != nil {
		t.Fatal(err)
	}
	ctx := &Context{Training: true, RNG: rand.New(rand.NewPCG(1, 1))}
	caches := make([]any, len(ref.Layers))
	h := x
	for i, l := range ref.Layers {
		h, caches[i] = l.Forward(ctx, h)
	}
	wantOut := append([]float32(nil), h.Data...)
	_, grad, err := SoftmaxCrossEntropy(h, labels, nil)
	if err != nil {
		t.Fatal(err)
	}
	dy := grad
	for i := len(ref.Layers) - 1; i >= 0; i-- {
		dy = ref.Layers[i].Backward(caches[i], dy, i > 0)
	}

	m, err := Build(spec, 3)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second time with recycled buffers
		m.ZeroGrad()
		out, pass, err := m.Forward(&Context{Training: true, RNG: rand.New(rand.NewPCG(1, 1))}, x)
		if err != nil {
			t.Fatal(err)
		}
		for i := range wantOut {
			if math.Float32bits(out.Data[i]) != math.Float32bits(wantOut[i]) {
				t.Fatalf("output %d: %v, layer by layer %v", i, out.Data[i], wantOut[i])
			}
		}
		_, g, err := SoftmaxCrossEntropy(out, labels, nil)
		if err != nil {
			t.Fatal(err)
		}
		gCopy := append([]float32(nil), g.Data...)
		m.Backward(pass, g)
		for i := range gCopy {
			if math.Float32bits(g.Data[i]) != math.Float32bits(gCopy[i]) {
				t.Fatal("the loss gradient passed in was overwritten")
			}
		}
		for p, want := range ref.Params() {
			got := m.Params()[p]
			for i := range want.Grad.Data {
				if math.Float32bits(got.Grad.Data[i]) != math.Float32bits(want.Grad.Data[i]) {
					t.Fatalf("gradient of %s[%d]: %v, layer by layer %v", got.Name, i, got.Grad.Data[i], want.Grad.Data[i])
				}
			}
		}
		for i := range xCopy {
			if math.Float32bits(x.Data[i]) != math.Float32bits(xCopy[i]) {
				t.Fatal("the input batch was overwritten")
			}
		}
	}
}
