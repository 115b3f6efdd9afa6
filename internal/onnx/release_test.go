package onnx

import (
	"context"
	"math"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/hpcml/hpcml/internal/nn"
)

// poison fills a tensor with NaN as it is handed back: a step that reads a
// value after its release then computes NaN, in one goroutine, every time.
type poison struct{ next nn.Recycler }

func (p poison) Recycle(t *nn.Tensor, grad bool) {
	for i := range t.Data {
		t.Data[i] = float32(math.NaN())
	}
	p.next.Recycle(t, grad)
}

// poisoned makes every release of g poison what it hands back.
func poisoned(g *Graph) *Graph {
	for i := range g.steps {
		for j := range g.steps[i].release {
			r := &g.steps[i].release[j]
			r.to = poison{r.to}
		}
	}
	return g
}

// Runs that reuse the intermediate tensors of earlier runs (handed back to
// their layers' pools, poisoned with NaN on the way) compute exactly what
// a fresh graph computes — one run after another, and from many goroutines
// at once while the GC empties the pools — for every export case: values
// read by views (Flatten), by two readers (a residual's shortcut) and
// graph outputs are never handed back while still read.
func TestRecycledRunsAreExact(t *testing.T) {
	for _, c := range exportCases() {
		t.Run(c.name, func(t *testing.T) {
			_, data := c.build(t)
			var inputs, want []*nn.Tensor
			for i, n := range []int{1, 3, 7} {
				x := randomTensor(uint64(200+i), append([]int{n}, c.spec.Input...)...)
				fresh, err := Load(data)
				if err != nil {
					t.Fatal(err)
				}
				inputs, want = append(inputs, x), append(want, runOne(t, fresh, InputName, x))
			}
			g, err := Load(data)
			if err != nil {
				t.Fatal(err)
			}
			poisoned(g)
			for k, x := range inputs {
				if got := runOne(t, g, InputName, x); !slices.Equal(got.Data, want[k].Data) {
					t.Fatalf("batch %d: the output differs from a fresh graph's", x.Shape[0])
				}
			}
			stopGC := collectBackToBack()
			var wg sync.WaitGroup
			for w := range 6 {
				wg.Go(func() {
					for i := range 30 {
						k := (w + i) % len(inputs)
						outs, err := g.Run(context.Background(), map[string]*nn.Tensor{InputName: inputs[k]})
						if err != nil {
							t.Error(err)
							return
						}
						if got := outs[OutputName]; !slices.Equal(got.Data, want[k].Data) {
							t.Errorf("goroutine %d, run %d, batch %d: the output differs from a fresh graph's", w, i, inputs[k].Shape[0])
							return
						}
					}
				})
			}
			wg.Wait()
			stopGC()
		})
	}
}

// A run hands its intermediate tensors back: a warm graph allocates a
// small fraction of them per run (here 4 × 64 KB of layer outputs at
// batch 256, against a few KB for the output and bookkeeping).
func TestRunRecyclesIntermediates(t *testing.T) {
	if raceDetector {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	m, err := nn.Build(nn.Spec{Input: []int{8}, Layers: []nn.LayerSpec{
		{Type: "dense", Units: 64}, {Type: "relu"}, {Type: "dense", Units: 64}, {Type: "relu"}, {Type: "dense", Units: 3}}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	data, err := Export(m, ExportOptions{Head: "softmax"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := Load(data)
	if err != nil {
		t.Fatal(err)
	}
	x := randomTensor(5, 256, 8)
	for range 5 {
		runOne(t, g, InputName, x)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 50
	for range runs {
		runOne(t, g, InputName, x)
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 32<<10 {
		t.Fatalf("a warm run allocates %d bytes; its intermediates alone are 256 KB, so they are not reused", per)
	}
}

// The release plan of every export case: each released value is read by
// no step after the one that releases it, only by steps whose output is
// new memory (never by a view such as Flatten), and is no graph output;
// and the plan is not empty (the layers' outputs are released).
func TestReleasePlan(t *testing.T) {
	for _, c := range exportCases() {
		_, data := c.build(t)
		g, err := Load(data)
		if err != nil {
			t.Fatal(err)
		}
		released := 0
		for i, st := range g.steps {
			for _, r := range st.release {
				released++
				if slices.Contains(g.outSlots, r.slot) {
					t.Errorf("%s: %s releases a graph output", c.name, st.label)
				}
				for j, reader := range g.steps {
					if !slices.Contains(reader.in, r.slot) {
						continue
					}
					if j > i {
						t.Errorf("%s: %s releases a value %s reads later", c.name, st.label, reader.label)
					}
					if !reader.fresh {
						t.Errorf("%s: %s releases a value %s may keep a view of", c.name, st.label, reader.label)
					}
				}
			}
		}
		if released == 0 {
			t.Errorf("%s: nothing is released", c.name)
		}
	}
}

// A layer's output that is also a graph output is never handed back, even
// when a later step reads it too; a value read twice by one step goes
// after that step. (Gemm → logits, an output; Relu(logits) → r;
// Add(r, r) → s; Softmax(s) → y, an output.)
func TestReleaseKeepsGraphOutputs(t *testing.T) {
	model := (&modelProto{
		IRVersion:   7,
		OpsetImport: []opsetID{{Version: 13}},
		Graph: &graphProto{Name: "outputs",
			Nodes: []*nodeProto{
				node("Gemm", "g", []string{"x", "w", "b"}, []string{"logits"}, intAttr("transB", 1)),
				node("Relu", "r", []string{"logits"}, []string{"r"}),
				node("Add", "a", []string{"r", "r"}, []string{"s"}),
				node("Softmax", "sm", []string{"s"}, []string{"y"}),
			},
			Initializers: []*tensorProto{floatInit("w", []int64{4, 3}, f32(12, -0.6, 0.1)), floatInit("b", []int64{4}, f32(4, -1, 0.5))},
			Inputs:       []*valueInfoProto{info("x", dtFloat, "N", 3)},
			Outputs:      []*valueInfoProto{info("logits", dtFloat, "N", 4), info("y", dtFloat, "N", 4)},
		},
	}).marshal()
	fresh, err := Load(model)
	if err != nil {
		t.Fatal(err)
	}
	x := randomTensor(9, 5, 3)
	want, err := fresh.Run(context.Background(), map[string]*nn.Tensor{"x": x})
	if err != nil {
		t.Fatal(err)
	}
	g, err := Load(model)
	if err != nil {
		t.Fatal(err)
	}
	released := 0
	for _, st := range poisoned(g).steps {
		released += len(st.release)
	}
	if released != 1 {
		t.Fatalf("%d values released; want 1 (r, after the Add)", released)
	}
	for run := range 3 {
		got, err := g.Run(context.Background(), map[string]*nn.Tensor{"x": x})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"logits", "y"} {
			if !slices.Equal(got[name].Data, want[name].Data) {
				t.Fatalf("run %d: %s differs from a fresh graph's: %v, want %v", run, name, got[name].Data, want[name].Data)
			}
		}
	}
}
