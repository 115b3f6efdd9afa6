package transform

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSplitPartitionInvariance: drop_duplicates then a three-way split,
// in 1 partition and in 6 (so 1 and 6 shuffle buckets): the same rows in
// the same splits, the duplicates dropped as a direct computation drops
// them, the splits' sizes as their fractions say.
func TestSplitPartitionInvariance(t *testing.T) {
	rows := genRows(20000, 2)
	dir := t.TempDir()
	data := writeRows(t, dir, rows)
	seen := map[string]bool{}
	var want []string
	for _, l := range lines(rows) {
		if !seen[l] {
			seen[l] = true
			want = append(want, l)
		}
	}
	names := []string{"train", "validation", "test"}
	fractions := []float64{0.7, 0.2, 0.1}
	run := func(parts int, seed int) (string, *Report) {
		out := filepath.Join(t.TempDir(), "out")
		rep := mustRun(t, fmt.Sprintf(`input: {url: %s, partitions: %d}
steps:
  - drop_duplicates
  - split: {seed: %d, fractions: {train: 0.7, validation: 0.2, test: 0.1}}
output: {url: %s, compression: snappy}
`, data, parts, seed, out))
		return out, rep
	}
	one, rep1 := run(1, 7)
	six, rep6 := run(6, 7)
	if rep6.Partitions != 6 {
		t.Fatalf("%d partitions, want 6", rep6.Partitions)
	}
	if rep1.Steps[0].RowsOut != int64(len(want)) || rep6.Steps[0].RowsOut != int64(len(want)) {
		t.Fatalf("drop_duplicates kept %d and %d rows, want %d", rep1.Steps[0].RowsOut, rep6.Steps[0].RowsOut, len(want))
	}
	var all [][]string
	for i, name := range names {
		_, a := readRows(t, filepath.Join(one, name))
		_, b := readRows(t, filepath.Join(six, name))
		sameLines(t, name, sorted(b), sorted(a))
		all = append(all, a...)
		m := float64(len(want))
		if d := math.Abs(float64(len(a)) - fractions[i]*m); d > 4*math.Sqrt(m*fractions[i]*(1-fractions[i])) {
			t.Fatalf("%s: %d of %v rows, want about %v", name, len(a), m, fractions[i]*m)
		}
		if rep1.Splits[i].Name != name || rep1.Splits[i].Rows != int64(len(a)) || rep6.Splits[i].Rows != int64(len(a)) {
			t.Fatalf("report splits %+v / %+v", rep1.Splits, rep6.Splits)
		}
	}
	w := slices.Clone(want)
	slices.Sort(w)
	sameLines(t, "splits together", sorted(all), w)

	// Another seed, another assignment.
	other, _ := run(3, 8)
	_, a := readRows(t, filepath.Join(one, "train"))
	_, b := readRows(t, filepath.Join(other, "train"))
	if strings.Join(sorted(a), "\n") == strings.Join(sorted(b), "\n") {
		t.Fatal("seeds 7 and 8 split alike")
	}
}

// TestSplitBy: rows of one group go to one split.
func TestSplitBy(t *testing.T) {
	rows := genRows(5000, 3)
	data := writeRows(t, t.TempDir(), rows)
	out := filepath.Join(t.TempDir(), "out")
	mustRun(t, fmt.Sprintf(`input: {url: %s, partitions: 3}
steps:
  - split: {seed: 1, by: [g], fractions: {a: 0.5, b: 0.5}}
output: {url: %s, format: csv}
`, data, out))
	where := map[string]string{}
	total := 0
	for _, name := range []string{"a", "b"} {
		cols, got := readRows(t, filepath.Join(out, name))
		if cols[1] != "g:string" {
			t.Fatalf("columns %v", cols)
		}
		total += len(got)
		for _, r := range got {
			if w, ok := where[r[1]]; ok && w != name {
				t.Fatalf("group %s in splits %s and %s", r[1], w, name)
			}
			where[r[1]] = name
		}
	}
	if total != len(rows) || len(where) != 5 {
		t.Fatalf("%d rows in %d groups", total, len(where))
	}
}
