package batchtransform

import (
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGzipInput: a gzip-compressed CSV is read whole (one part) and
// scored like the plain file.
func TestGzipInput(t *testing.T) {
	ctx := context.Background()
	in, out := t.TempDir(), t.TempDir()
	rows := writeCSVFiles(t, in, 1, 2_000)[0]
	plain := filepath.Join(in, "part-00.csv")
	data, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(plain + ".gz")
	if err != nil {
		t.Fatal(err)
	}
	z := gzip.NewWriter(f)
	z.Write(data)
	z.Close()
	f.Close()
	os.Remove(plain)
	m := testModel(t)
	o := options(m, in, out)
	o.Features = []string{"a", "b", "c", "d"}
	o.IDColumn, o.Join = "id", JoinID
	if p := plan(t, ctx, o); len(p.Parts) != 1 {
		t.Fatalf("a compressed file is one part; got %d", len(p.Parts))
	}
	if rep := runAll(t, ctx, out, m, 1); rep.Records != int64(len(rows)) || rep.Failures != 0 {
		t.Fatalf("report: %+v", rep)
	}
	want := direct(t, m, rows)
	lines := readLines(t, filepath.Join(out, "part-00.csv.gz.out"))
	if len(lines)-1 != len(rows) {
		t.Fatalf("%d output rows, want %d", len(lines)-1, len(rows))
	}
	for i, r := range rows {
		fields := strings.Split(lines[i+1], ",")
		if fields[0] != r.id || !close32(t, fields[1], want[i*3]) {
			t.Fatalf("row %d: %q, want id %s and %v first", i, lines[i+1], r.id, want[i*3])
		}
	}
}
