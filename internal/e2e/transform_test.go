package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/table"
	"github.com/hpcml/hpcml/internal/transform"
)

// transformTable writes a CSV of n rows with missing values, outliers
// and duplicate rows.
func transformTable(t *testing.T, dir string, n int) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	var b strings.Builder
	b.WriteString("id,g,x,y\n")
	var lines []string
	for i := range n {
		x := fmt.Sprintf("%.3f", rng.NormFloat64()*10)
		if rng.IntN(40) == 0 {
			x = fmt.Sprintf("%.3f", rng.NormFloat64()*400) // an outlier
		}
		y := fmt.Sprint(rng.IntN(100))
		if rng.IntN(10) == 0 {
			y = ""
		}
		l := fmt.Sprintf("%d,%s,%s,%s\n", i%(n-n/8), []string{"a", "b", "c"}[rng.IntN(3)], x, y)
		if i > 0 && i%9 == 0 {
			l = lines[rng.IntN(len(lines))] // a duplicate row
		}
		lines = append(lines, l)
		b.WriteString(l)
	}
	p := filepath.Join(dir, "table.csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// runTransform runs `hpcml data transform -f spec -o json` (against s
// when given) and decodes the report; or returns its error output.
func runTransform(t *testing.T, s *server, spec string, args ...string) (*transform.Report, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"data", "transform", "-f", spec, "-o", "json"}, args...)...)
	if s != nil {
		cmd.Env = append(os.Environ(), "HPCML_SERVER="+s.URL, "HPCML_TOKEN="+s.Token)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil { // say where it stood rather than time the test out
		jobs := ""
		if s != nil {
			jobs = s.cli("job", "list")
		}
		t.Fatalf("transform %v: no end after 2 minutes: %s\n%s", args, stderr.String(), jobs)
	}
	if err != nil {
		return nil, stderr.String()
	}
	var rep transform.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("transform -o json: %v: %s", err, out)
	}
	return &rep, ""
}

func readTable(t *testing.T, url string) []string {
	t.Helper()
	r, err := table.Open(t.Context(), url, table.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []string
	for {
		rec, err := r.Next(t.Context())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for i := range int(rec.NumRows()) {
			var cells []string
			for _, c := range rec.Columns() {
				cells = append(cells, c.ValueStr(i))
			}
			out = append(out, strings.Join(cells, "|"))
		}
		rec.Release()
	}
	slices.Sort(out)
	return out
}

// TestDataTransform runs one spec — filter, IQR outliers, duplicates
// dropped across partitions, a median imputed, a split — here in one
// partition and as jobs in three (statistics passes, a shuffle, a
// commit): the same rows in the same splits, the same counts.
func TestDataTransform(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	data := transformTable(t, dir, 4000)
	spec := func(name string, parts int) string {
		p := filepath.Join(dir, name+".yaml")
		os.WriteFile(p, []byte(fmt.Sprintf(`input:
  url: %s
  partitions: %d
steps:
  - filter: {column: g, op: '!=', value: c}
  - iqr_outliers: {columns: [x]}
  - drop_duplicates: {subset: [id, g]}
  - impute: {y: median}
  - split: {seed: 11, fractions: {train: 0.8, test: 0.2}}
output:
  url: %s
  compression: zstd
`, data, parts, filepath.Join(dir, name))), 0o644)
		return p
	}
	s := startServer(t)
	here, msg := runTransform(t, nil, spec("here", 1))
	if here == nil {
		t.Fatalf("here: %s", msg)
	}
	jobs, msg := runTransform(t, s, spec("jobs", 3), "--submit")
	if jobs == nil {
		t.Fatalf("--submit: %s", msg)
	}
	if jobs.Partitions != 3 || jobs.Passes != 4 || len(jobs.Jobs) != 3+1+3+1+3+1+3+1 {
		t.Fatalf("jobs: %d partitions, %d passes, jobs %v", jobs.Partitions, jobs.Passes, jobs.Jobs)
	}
	if here.RowsIn != 4000 || jobs.RowsIn != 4000 || here.RowsOut != jobs.RowsOut || here.RowsOut == 0 {
		t.Fatalf("rows %d → %d here, %d → %d as jobs", here.RowsIn, here.RowsOut, jobs.RowsIn, jobs.RowsOut)
	}
	for i := range here.Steps {
		a, b := here.Steps[i], jobs.Steps[i]
		if a.RowsIn != b.RowsIn || a.RowsOut != b.RowsOut || a.RowsOut > a.RowsIn {
			t.Fatalf("step %d: %d → %d here, %d → %d as jobs", i, a.RowsIn, a.RowsOut, b.RowsIn, b.RowsOut)
		}
		if a.Op != "split" && a.Op != "impute" && a.RowsOut == a.RowsIn {
			t.Fatalf("step %d (%s) dropped nothing", i, a.Op)
		}
	}
	if *here.Steps[1].Stats.Columns[0].Upper != *jobs.Steps[1].Stats.Columns[0].Upper || !jobs.Steps[1].Stats.Columns[0].Exact {
		t.Fatalf("IQR bounds %+v vs %+v", here.Steps[1].Stats.Columns[0], jobs.Steps[1].Stats.Columns[0])
	}
	for i, name := range []string{"train", "test"} {
		a := readTable(t, filepath.Join(dir, "here", name))
		b := readTable(t, filepath.Join(dir, "jobs", name))
		if !slices.Equal(a, b) || int64(len(a)) != here.Splits[i].Rows || jobs.Splits[i].Rows != here.Splits[i].Rows {
			t.Fatalf("%s: %d rows here, %d as jobs (reported %d, %d)", name, len(a), len(b), here.Splits[i].Rows, jobs.Splits[i].Rows)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "jobs", transform.SuccessFile)); err != nil {
		t.Fatal(err)
	}
}

// TestDataTransformBadInput: a bad value fails a submitted transform
// with its file and line and the job that met it; nothing appears at the
// destination, nothing staged is left beside it.
func TestDataTransformBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("a,b\n")
	for i := range 20000 {
		fmt.Fprintf(&b, "%d,%d\n", i, i)
	}
	b.WriteString("7,seven\n") // line 20002
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte(b.String()), 0o644)
	spec := filepath.Join(dir, "spec.yaml")
	os.WriteFile(spec, []byte(fmt.Sprintf(`input: {url: %s, partitions: 3, types: {b: string}}
steps:
  - cast: {b: int64}
  - split: {fractions: {train: 0.5, test: 0.5}}
output: {url: %s}
`, bad, filepath.Join(dir, "out"))), 0o644)
	s := startServer(t)
	rep, msg := runTransform(t, s, spec, "--submit")
	if rep != nil || !strings.Contains(msg, `bad.csv:line 20002, column "b": steps[0].cast: "seven" is not an int64`) || !strings.Contains(msg, "hpcml job logs") {
		t.Fatalf("bad input: %v %s", rep, msg)
	}
	clean := func() {
		t.Helper()
		if es, _ := os.ReadDir(dir); len(es) != 2 {
			var names []string
			for _, e := range es {
				names = append(names, e.Name())
			}
			t.Fatalf("after the failure: %v", names)
		}
	}
	clean()
	// Failing in the first of three passes: the later passes' jobs are
	// stopped, not left waiting.
	os.WriteFile(spec, []byte(fmt.Sprintf(`input: {url: %s, partitions: 3, types: {b: string}}
steps:
  - cast: {b: int64}
  - drop_duplicates: {subset: [b]}
  - impute: {b: mean}
  - split: {fractions: {train: 0.5, test: 0.5}}
output: {url: %s}
`, bad, filepath.Join(dir, "out"))), 0o644)
	rep, msg = runTransform(t, s, spec, "--submit")
	if rep != nil || !strings.Contains(msg, `bad.csv:line 20002, column "b": steps[0].cast: "seven" is not an int64`) {
		t.Fatalf("bad input, 3 passes: %v %s", rep, msg)
	}
	clean()
	list, err := s.Client.ListJobs(ctxFor(t, 5*time.Second), client.ListOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range list {
		if !j.State.Terminal() {
			t.Fatalf("job %d (%s) left %s", j.ID, j.Spec.Name, j.State)
		}
	}
	// A bad spec fails before any job, naming the field.
	os.WriteFile(spec, []byte(fmt.Sprintf("input: {url: %s}\nsteps:\n  - select: [a, c]\noutput: {url: %s}\n", bad, filepath.Join(dir, "out"))), 0o644)
	if _, msg := runTransform(t, s, spec, "--submit"); !strings.Contains(msg, `spec.yaml:line 3: steps[0].select[1]: no column "c" here`) {
		t.Fatalf("bad spec: %s", msg)
	}
}
