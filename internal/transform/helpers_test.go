package transform

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/hpcml/hpcml/internal/table"
)

// runSpec plans and runs a spec here; the report or the error.
func runSpec(t *testing.T, spec string, workers int) (*Report, error) {
	t.Helper()
	s, err := Parse([]byte(spec), "spec.yaml")
	if err != nil {
		return nil, err
	}
	p, err := NewPlan(context.Background(), s, spec, PlanOptions{ID: fmt.Sprintf("t%d", time.Now().UnixNano())})
	if err != nil {
		return nil, err
	}
	return p.RunLocal(context.Background(), LocalOptions{Workers: workers, TempDir: t.TempDir()})
}

func mustRun(t *testing.T, spec string) *Report {
	t.Helper()
	rep, err := runSpec(t, spec, 2)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return rep
}

// readRows reads a table (file or directory) as rows of text values
// (null as "∅"), and its column names.
func readRows(t *testing.T, url string) ([]string, [][]string) {
	t.Helper()
	r, err := table.Open(context.Background(), url, table.Options{})
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	defer r.Close()
	var names []string
	for _, f := range r.Schema().Fields() {
		names = append(names, f.Name+":"+table.TypeName(f.Type))
	}
	var rows [][]string
	for {
		rec, err := r.Next(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", url, err)
		}
		rows = append(rows, recordRows(rec)...)
		rec.Release()
	}
	return names, rows
}

func recordRows(rec arrow.RecordBatch) [][]string {
	n := int(rec.NumRows())
	rows := make([][]string, n)
	for j := 0; j < int(rec.NumCols()); j++ {
		a := rec.Column(j)
		for i := 0; i < n; i++ {
			rows[i] = append(rows[i], cellText(a, i))
		}
	}
	return rows
}

func cellText(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return "∅"
	}
	switch a := a.(type) {
	case *array.Int64:
		return strconv.FormatInt(a.Value(i), 10)
	case *array.Float64:
		return strconv.FormatFloat(a.Value(i), 'g', -1, 64)
	case *array.Boolean:
		return strconv.FormatBool(a.Value(i))
	case *array.String:
		return a.Value(i)
	case *array.Timestamp:
		return time.UnixMicro(int64(a.Value(i))).UTC().Format(time.RFC3339Nano)
	}
	return a.ValueStr(i)
}

// sorted is rows as sorted lines (a multiset).
func sorted(rows [][]string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = strings.Join(r, "|")
	}
	slices.Sort(out)
	return out
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: row %d is %q, want %q", what, i, got[i], want[i])
		}
	}
}

// entries lists a directory's names (nil if it does not exist).
func entries(dir string) []string {
	es, _ := os.ReadDir(dir)
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}
