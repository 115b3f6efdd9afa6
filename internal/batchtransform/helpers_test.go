package batchtransform

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/serve"
	"github.com/hpcml/hpcml/internal/serve/servetest"
)

// testModel is a small MLP, 4 features → 3 class probabilities, with
// seeded random weights.
func testModel(t testing.TB) *serve.ONNXModel {
	t.Helper()
	data, err := servetest.MLP(3, 0.5, "softmax", 4, 16, 3)
	if err != nil {
		t.Fatal(err)
	}
	sm, err := serve.LoadONNX(data, "iris", "1")
	if err != nil {
		t.Fatal(err)
	}
	return sm
}

// options for the test model and an input and output.
func options(m serve.Model, input, output string) Options {
	info := m.Info()
	return Options{Model: "iris", Version: 1, Inputs: info.Inputs, Outputs: info.Outputs, Input: input, Output: output}
}

// row is one generated input row.
type row struct {
	id    string
	feats [4]float32
}

// writeCSVFiles writes n rows over files CSV files (id,a,b,c,d,note)
// under dir and returns the rows of each file.
func writeCSVFiles(t testing.TB, dir string, files, n int) [][]row {
	t.Helper()
	rng := rand.New(rand.NewPCG(11, 12))
	out := make([][]row, files)
	k := 0
	for f := range files {
		var b strings.Builder
		b.WriteString("id,a,b,c,d,note\n")
		for i := range n / files {
			r := row{id: fmt.Sprintf("f%d-r%d", f, i)}
			for j := range r.feats {
				r.feats[j] = float32(math.Round(rng.NormFloat64()*1000) / 1000)
			}
			note := []string{"plain", `"quoted, with comma"`, ""}[k%3]
			fmt.Fprintf(&b, "%s,%g,%g,%g,%g,%s\n", r.id, r.feats[0], r.feats[1], r.feats[2], r.feats[3], note)
			out[f] = append(out[f], r)
			k++
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("part-%02d.csv", f)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// direct scores rows with the model directly, in one call.
func direct(t testing.TB, m serve.Model, rows []row) []float32 {
	t.Helper()
	x := &nn.Tensor{Shape: []int{len(rows), 4}}
	for _, r := range rows {
		x.Data = append(x.Data, r.feats[:]...)
	}
	outs, err := m.Infer(context.Background(), map[string]*nn.Tensor{m.Info().Inputs[0].Name: x})
	if err != nil {
		t.Fatal(err)
	}
	return outs[m.Info().Outputs[0].Name].Data
}

// readLines reads a file's lines.
func readLines(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// close32 compares a printed float32 with the direct result: the same
// up to float rounding of a differently blocked matrix product.
func close32(t testing.TB, got string, want float32) bool {
	t.Helper()
	v, err := strconv.ParseFloat(got, 32)
	if err != nil {
		t.Fatalf("%q: %v", got, err)
	}
	return math.Abs(v-float64(want)) <= 1e-5*(1+math.Abs(float64(want)))
}

// runAll runs every worker, then the commit.
func runAll(t testing.TB, ctx context.Context, output string, m serve.Model, workers int) *Report {
	t.Helper()
	for w := range workers {
		if _, err := RunWorker(ctx, output, m, WorkerOptions{Worker: w, Workers: workers, Job: strconv.Itoa(100 + w), Attempt: 1}); err != nil {
			t.Fatalf("worker %d: %v", w, err)
		}
	}
	rep, err := Commit(ctx, output, CommitOptions{Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// plan makes and stores a plan.
func plan(t testing.TB, ctx context.Context, o Options) *Plan {
	t.Helper()
	p, err := NewPlan(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Prepare(ctx, p, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.Done || st.Resume {
		t.Fatalf("a fresh output is %+v", st)
	}
	return p
}
