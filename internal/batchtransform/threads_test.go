package batchtransform

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestThreadsScoreAsOne: a worker scoring three parts at once writes the
// same outputs, byte for byte, as one scoring them in turn, counts every
// part once, and reports progress for each.
func TestThreadsScoreAsOne(t *testing.T) {
	ctx := context.Background()
	in := t.TempDir()
	writeCSVFiles(t, in, 3, 30_000)
	m := testModel(t)
	outputs := map[int]string{}
	for _, threads := range []int{1, 3} {
		out := t.TempDir()
		o := options(m, in, out)
		o.Features = []string{"a", "b", "c", "d"}
		o.IDColumn, o.Join = "id", JoinID
		o.PartBytes = 64 << 10
		p := plan(t, ctx, o)
		if len(p.Parts) < 9 {
			t.Fatalf("plan: %d parts; want many", len(p.Parts))
		}
		var calls, lastDone int
		res, err := RunWorker(ctx, out, m, WorkerOptions{Workers: 1, Threads: threads, Job: "7", Attempt: 1,
			Progress: func(pr WorkerProgress) { calls++; lastDone = pr.PartsDone }})
		if err != nil {
			t.Fatal(err)
		}
		if res.PartsScored != len(p.Parts) || res.Records != 30_000 || calls != len(p.Parts) || lastDone != len(p.Parts) {
			t.Fatalf("threads %d: %+v, %d progress calls ending at %d, for %d parts", threads, res, calls, lastDone, len(p.Parts))
		}
		if _, err := Commit(ctx, out, CommitOptions{Workers: 1}); err != nil {
			t.Fatal(err)
		}
		var all string
		for f := range 3 {
			data, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("part-%02d.csv.out", f)))
			if err != nil {
				t.Fatal(err)
			}
			all += string(data)
		}
		outputs[threads] = all
	}
	if outputs[1] != outputs[3] || len(outputs[1]) == 0 {
		t.Fatalf("3 threads wrote %d bytes of outputs that differ from 1 thread's %d", len(outputs[3]), len(outputs[1]))
	}
}
