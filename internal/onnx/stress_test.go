package onnx

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/nn"
)

// TestLoadUnderGC loads and runs, from several goroutines at once while
// the GC runs back to back, the model `hpcml train -a mlp` exports for two
// features: standardisation (Sub, Mul), Gemm 2→32, Relu, Gemm 32→32, Relu,
// Gemm 32→1, Sigmoid, whose trial run in Load once failed with a nil
// pointer dereference in the first Gemm. Its products (1×32×2, 1×32×32,
// 1×1×32 and small batches) are the GEMM's edge cases: one row, a single
// column, k below a packing block; the GC empties the GEMM's buffer pools
// between and during them. Every load must succeed and every run give the
// same bits. It takes about a second.
func TestLoadUnderGC(t *testing.T) {
	spec := nn.Spec{Input: []int{2}, Layers: []nn.LayerSpec{
		{Type: "dense", Units: 32}, {Type: "relu"},
		{Type: "dense", Units: 32}, {Type: "relu"},
		{Type: "dense", Units: 1},
	}}
	m, err := nn.Build(spec, 7)
	if err != nil {
		t.Fatal(err)
	}
	randomize(m, 8) // biases too, so that beta·C matters
	data, err := Export(m, ExportOptions{Head: "sigmoid", Normalize: &Normalization{Mean: []float32{0.5, 0.25}, Scale: []float32{2, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	batches := []int{1, 2, 5, 7}
	want := make([][]float32, len(batches))
	g, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range batches {
		want[i] = runOne(t, g, InputName, randomTensor(uint64(n), n, 2)).Data
		if len(want[i]) != n || math.IsNaN(float64(want[i][0])) {
			t.Fatalf("batch %d: output %v", n, want[i])
		}
	}

	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 2, 8} {
		runtime.GOMAXPROCS(procs)
		stopGC := collectBackToBack()
		var (
			loads  atomic.Int64
			failed atomic.Bool
			wg     sync.WaitGroup
		)
		deadline := time.Now().Add(300 * time.Millisecond)
		for w := 0; w < 4; w++ {
			wg.Go(func() {
				for i := 0; time.Now().Before(deadline) && !failed.Load(); i++ {
					g, err := Load(data)
					if err != nil {
						failed.Store(true)
						t.Errorf("GOMAXPROCS %d: load %d: %v", procs, i, err)
						return
					}
					loads.Add(1)
					b := (w + i) % len(batches)
					n := batches[b]
					out, err := g.Run(context.Background(), map[string]*nn.Tensor{InputName: randomTensor(uint64(n), n, 2)})
					if err == nil {
						err = sameBits(out[OutputName].Data, want[b])
					}
					if err != nil {
						failed.Store(true)
						t.Errorf("GOMAXPROCS %d: run %d on a batch of %d: %v", procs, i, n, err)
						return
					}
				}
			})
		}
		wg.Wait()
		stopGC()
		if loads.Load() == 0 && !failed.Load() {
			t.Errorf("GOMAXPROCS %d: no model loaded", procs)
		}
		t.Logf("GOMAXPROCS %d: %d loads", procs, loads.Load())
	}
}

func sameBits(got, want []float32) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d outputs, want %d", len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			return fmt.Errorf("output %d is %g, want %g", i, got[i], want[i])
		}
	}
	return nil
}
