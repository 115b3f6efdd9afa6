package batchtransform

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestCommitRemovesStaleTemps: what a commit killed mid-write left beside
// the outputs (fileblob's "<name>.<hex>.tmp") is gone after the commit
// runs again; other files that only look alike stay.
func TestCommitRemovesStaleTemps(t *testing.T) {
	ctx := context.Background()
	in, out := t.TempDir(), t.TempDir()
	writeCSVFiles(t, in, 2, 1_000)
	m := testModel(t)
	o := options(m, in, out)
	o.Features = []string{"a", "b", "c", "d"}
	plan(t, ctx, o)
	stale := []string{"part-00.csv.out.18a2b3c4d5e6f708.tmp", ErrorsFile + ".1f.tmp"}
	keep := []string{"part-00.csv.out.notes.tmp", "mine.18a2b3c4d5e6f708.tmp"}
	for _, n := range append(append([]string(nil), stale...), keep...) {
		if err := os.WriteFile(filepath.Join(out, n), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if rep := runAll(t, ctx, out, m, 1); rep.Records != 1_000 {
		t.Fatalf("report: %+v", rep)
	}
	for _, n := range stale {
		if _, err := os.Stat(filepath.Join(out, n)); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", n, err)
		}
	}
	for _, n := range keep {
		if _, err := os.Stat(filepath.Join(out, n)); err != nil {
			t.Errorf("%s was removed: %v", n, err)
		}
	}
}
