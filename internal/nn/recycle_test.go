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
