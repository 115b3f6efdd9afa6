package synth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/hpcml/hpcml/internal/table"
)

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDeterministic: the same model and seed give the same bytes, in
// Parquet and CSV, however many workers make the batches; another seed
// gives other rows.
func TestDeterministic(t *testing.T) {
	dir := t.TempDir()
	m := fitURL(t, writeGenerated(t, dir, 3000), table.Options{}, FitOptions{By: "cat"})
	write := func(name string, seed uint64, workers int) []byte {
		p := filepath.Join(dir, name)
		w, err := table.Create(context.Background(), p, m.Schema(), table.WriteOptions{Compression: "zstd"})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SampleWith(context.Background(), 150_000, seed, w, SampleOptions{Workers: workers}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return readFile(t, p)
	}
	// Parquet is compared by its rows: the files' bytes were seen to
	// differ between writes in one process (the same values; not found
	// why: likely the Parquet writer's buffers), the rows never.
	asCSV := func(name string) []byte {
		r, err := table.Open(context.Background(), filepath.Join(dir, name), table.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		out := filepath.Join(dir, name+".csv")
		if _, err := table.WriteCSV(context.Background(), out, r, table.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		return readFile(t, out)
	}
	write("a.parquet", 7, 1)
	write("b.parquet", 7, 4)
	write("c.parquet", 8, 2)
	a := asCSV("a.parquet")
	if b := asCSV("b.parquet"); !bytes.Equal(a, b) {
		t.Error("the same seed gave other Parquet rows (1 and 4 workers)")
	}
	if c := asCSV("c.parquet"); bytes.Equal(a, c) {
		t.Error("another seed gave the same rows")
	}
	if a, b := write("a.csv", 7, 2), write("b.csv", 7, 3); !bytes.Equal(a, b) || len(a) == 0 {
		t.Error("the same seed gave other CSV bytes")
	}
}

// TestSaveLoad: a saved model (infinities, NaN, nulls, strings, bools,
// timestamps, copulas by a column) samples the same bytes once loaded.
func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	m := fitURL(t, writeGenerated(t, dir, 3000), table.Options{}, FitOptions{By: "flag", Source: "gen.csv"})
	var buf bytes.Buffer
	if err := m.Save(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"+Inf"`) {
		t.Error("no infinity in the saved model")
	}
	m2, err := Load(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var buf2 bytes.Buffer
	m2.Save(&buf2)
	if !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
		t.Error("saving a loaded model changes it")
	}
	a, b := filepath.Join(dir, "a.parquet"), filepath.Join(dir, "b.parquet")
	sampleTo(t, m, 20000, 3, a, table.WriteOptions{})
	sampleTo(t, m2, 20000, 3, b, table.WriteOptions{})
	if !bytes.Equal(readFile(t, a), readFile(t, b)) {
		t.Error("a loaded model samples other rows")
	}
}

// emptyReader is a table of no columns.
type emptyReader struct{}

func (emptyReader) Schema() *arrow.Schema                           { return arrow.NewSchema(nil, nil) }
func (emptyReader) Next(context.Context) (arrow.RecordBatch, error) { return nil, io.EOF }
func (emptyReader) Close() error                                    { return nil }

func TestBadInputs(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := Fit(ctx, emptyReader{}, FitOptions{}); err == nil || err.Error() != "the table has no columns" {
		t.Errorf("no columns: %v", err)
	}
	header := filepath.Join(dir, "h.csv")
	os.WriteFile(header, []byte("a,b\n"), 0o644)
	fit := func(p string, o FitOptions) error {
		r, err := table.Open(ctx, p, table.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		_, err = Fit(ctx, r, o)
		return err
	}
	for _, c := range []struct {
		path string
		opts FitOptions
		want string
	}{
		{header, FitOptions{}, "the table has no rows"},
		{writeGenerated(t, dir, 100), FitOptions{By: "nope"}, `by column "nope" is not in the table`},
		{writeGenerated(t, dir, 1500), FitOptions{By: "x"}, `column "x" has 1500 distinct values: a copula each is at most 1000`},
		{writeGenerated(t, dir, 100), FitOptions{Match: "kendall"}, `match "kendall": pearson, spearman or scores`},
		{writeGenerated(t, dir, 100), FitOptions{MaxRows: -1}, "MaxRows -1: want 1 to 1073741824"},
	} {
		if err := fit(c.path, c.opts); err == nil || err.Error() != c.want {
			t.Errorf("%+v: %v, want %q", c.opts, err, c.want)
		}
	}
	ctxc, cancel := context.WithCancel(ctx)
	cancel()
	if err := fit(writeGenerated(t, dir, 100), FitOptions{}); err != nil {
		t.Fatal(err)
	}
	r, _ := table.Open(ctx, writeGenerated(t, dir, 100), table.Options{})
	if _, err := Fit(ctxc, r, FitOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled fit: %v", err)
	}
	r.Close()

	m := fitURL(t, writeGenerated(t, dir, 500), table.Options{}, FitOptions{})
	out := filepath.Join(dir, "out.parquet")
	w, err := table.Create(ctx, out, m.Schema(), table.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sample(ctx, 0, 1, w); err == nil || err.Error() != "rows to sample: 0, want at least 1" {
		t.Errorf("0 rows: %v", err)
	}
	if err := m.Sample(ctxc, 1_000_000, 1, w); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled sample: %v", err)
	}
	w.Abort()
	if ents, _ := os.ReadDir(dir); slices.ContainsFunc(ents, func(e os.DirEntry) bool { return !strings.HasSuffix(e.Name(), ".csv") }) {
		t.Errorf("files left: %v", ents)
	}

	// Models that are not.
	var good bytes.Buffer
	m.Save(&good)
	edit := func(f func(map[string]any)) string {
		var v map[string]any
		json.Unmarshal(good.Bytes(), &v)
		f(v)
		b, _ := json.Marshal(v)
		return string(b)
	}
	cop := func(v map[string]any) map[string]any { return v["copulas"].([]any)[0].(map[string]any) }
	for _, c := range []struct{ json, want string }{
		{"{", "read model: unexpected EOF"},
		{edit(func(v map[string]any) { v["version"] = 9 }), "model version 9: this hpcml reads version 1"},
		{edit(func(v map[string]any) { v["columns"] = []any{} }), "model: no columns"},
		{edit(func(v map[string]any) { v["fit_rows"] = 3 }), "model: copulas of 500 rows, fitted on 3"},
		{edit(func(v map[string]any) {
			cop(v)["correlation"].([]any)[0].([]any)[1] = 0.99
			cop(v)["correlation"].([]any)[1].([]any)[0] = 0.99
			cop(v)["correlation"].([]any)[0].([]any)[2] = -0.99
			cop(v)["correlation"].([]any)[2].([]any)[0] = -0.99
			cop(v)["correlation"].([]any)[1].([]any)[2] = 0.99
			cop(v)["correlation"].([]any)[2].([]any)[1] = 0.99
		}), "model: copula 0: correlation matrix is not positive definite"},
		{edit(func(v map[string]any) { cop(v)["correlation"].([]any)[0].([]any)[1] = 0.5 }), "model: copula 0: correlation matrix: entry (0, 1) = 0.5: want a symmetric matrix in [-1, 1] with a unit diagonal"},
		{edit(func(v map[string]any) { cop(v)["columns"].([]any)[2].(map[string]any)["counts"] = []any{1} }), `model: copula 0: column "cat": 1 counts for 3 values`},
		{edit(func(v map[string]any) { cop(v)["columns"].([]any)[0].(map[string]any)["sorted"] = []any{2, 1} }), `model: copula 0: column "x": sorted values are not sorted`},
		{edit(func(v map[string]any) { cop(v)["columns"].([]any)[0].(map[string]any)["marginal"] = "discrete" }), `model: copula 0: column "x": a float64 column with a "discrete" marginal (want "continuous")`},
	} {
		if _, err := Load(strings.NewReader(c.json)); err == nil || err.Error() != c.want {
			t.Errorf("%v, want %q", err, c.want)
		}
	}
}
