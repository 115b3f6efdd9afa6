package nn

import (
	"slices"
	"sync"
	"testing"
)

// TestConcurrentInference runs one model's Predict from several goroutines
// at once (as a model server does) and checks each gets the same answer
// as a call on its own; under -race it also checks the layers share no
// mutable state in inference, the convolutions' recycled buffers included.
func TestConcurrentInference(t *testing.T) {
	m, err := Build(Spec{Input: []int{2, 10, 10}, Layers: []LayerSpec{
		{Type: "conv2d", Filters: 4, Kernel: 3, Padding: 1},
		{Type: "batchnorm"},
		{Type: "relu"},
		{Type: "maxpool2d", Kernel: 2},
		{Type: "residual", Layers: []LayerSpec{{Type: "conv2d", Filters: 6, Kernel: 3, Stride: 2, Padding: 1}, {Type: "batchnorm"}}},
		{Type: "dropout", Rate: 0.5},
		{Type: "avgpool2d", Kernel: 2, Padding: 1},
		{Type: "flatten"},
		{Type: "dense", Units: 3},
	}}, 5)
	if err != nil {
		t.Fatal(err)
	}
	const workers = 8
	inputs := make([]*Tensor, workers)
	want := make([][]float32, workers)
	for i := range inputs {
		// Different batch sizes give the recycled buffers different sizes.
		inputs[i] = randTensor(testRNG(), 1+i%3, 2, 10, 10)
		for j := range inputs[i].Data {
			inputs[i].Data[j] += float32(i)
		}
		y, err := m.Predict(inputs[i])
		if err != nil {
			t.Fatal(err)
		}
		want[i] = y.Data
	}
	var wg sync.WaitGroup
	errs := make(chan string, workers)
	for i := range workers {
		wg.Go(func() {
			for range 20 {
				y, err := m.Predict(inputs[i])
				if err != nil || !slices.Equal(y.Data, want[i]) {
					errs <- "concurrent Predict gave another answer"
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
