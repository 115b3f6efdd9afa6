package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/table"
)

// synthSource writes a small table: two correlated numbers, a category
// and a flag.
func synthSource(t *testing.T, dir string) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	var b strings.Builder
	b.WriteString("x,y,cat,n\n")
	for range 500 {
		x := rng.NormFloat64()
		cat := "a"
		if x > 0.3 {
			cat = "b"
		}
		fmt.Fprintf(&b, "%.3f,%.3f,%s,%d\n", x, x+0.5*rng.NormFloat64(), cat, rng.IntN(5))
	}
	p := filepath.Join(dir, "in.csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func countRows(t *testing.T, url string) (int64, string) {
	t.Helper()
	r, err := table.Open(context.Background(), url, table.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var n int64
	for {
		rec, err := r.Next(context.Background())
		if err == io.EOF {
			return n, r.Schema().String()
		}
		if err != nil {
			t.Fatal(err)
		}
		n += rec.NumRows()
		rec.Release()
	}
}

func TestDataSynth(t *testing.T) {
	dir := t.TempDir()
	in := synthSource(t, dir)
	out := filepath.Join(dir, "out.parquet")
	res := runCLI(t, nil, "data", "synth", "--fit", in, "--rows", "5k", "--out", out, "--seed", "3", "-o", "json")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	var rep synthReport
	if err := json.Unmarshal([]byte(res.stdout), &rep); err != nil {
		t.Fatal(err, res.stdout)
	}
	if rep.Rows != 5000 || rep.FitRows != 500 || rep.Columns != 4 || rep.Copulas != 1 || rep.Match != "pearson" || rep.Out != out {
		t.Errorf("report %+v", rep)
	}
	n, schema := countRows(t, out)
	_, want := countRows(t, in)
	if n != 5000 || schema != want {
		t.Errorf("%d rows of %s, want 5000 of %s", n, schema, want)
	}

	// An existing output is replaced only with --force.
	res = runCLI(t, nil, "data", "synth", "--fit", in, "--rows", "10", "--out", out)
	if res.code != 1 || !strings.Contains(res.stderr, "out.parquet exists: give --force to replace it") {
		t.Errorf("exit %d: %s", res.code, res.stderr)
	}
	first, _ := os.ReadFile(out)

	// Fit once, sample later: the same rows.
	model := filepath.Join(dir, "m.json")
	res = runCLI(t, nil, "data", "synth", "--fit", in, "--seed", "3", "--save-model", model)
	if res.code != 0 || !strings.Contains(res.stdout, "Saved the model to "+model) {
		t.Fatalf("exit %d: %s%s", res.code, res.stdout, res.stderr)
	}
	res = runCLI(t, nil, "data", "synth", "--model", model, "--rows", "5000", "--out", out, "--seed", "3", "--force")
	if res.code != 0 || !strings.Contains(res.stdout, "Wrote 5,000 rows to "+out) {
		t.Fatalf("exit %d: %s%s", res.code, res.stdout, res.stderr)
	}
	if again, _ := os.ReadFile(out); !bytes.Equal(first, again) {
		t.Error("the saved model sampled other rows with the same seed")
	}

	// A directory: part-0 in it; CSV.
	res = runCLI(t, nil, "data", "synth", "--model", model, "--rows", "100", "--out", filepath.Join(dir, "csv")+"/", "--format", "csv", "--by", "cat")
	if res.code != 1 || !strings.Contains(res.stderr, "--by is about fitting (--fit), not a saved --model") {
		t.Errorf("exit %d: %s", res.code, res.stderr)
	}
	res = runCLI(t, nil, "data", "synth", "--fit", in, "--by", "cat", "--rows", "100", "--out", filepath.Join(dir, "csv")+"/", "--format", "csv")
	if res.code != 0 || !strings.Contains(res.stdout, "2 copulas by cat") {
		t.Fatalf("exit %d: %s%s", res.code, res.stdout, res.stderr)
	}
	if n, _ := countRows(t, filepath.Join(dir, "csv", "part-0.csv")); n != 100 {
		t.Errorf("%d rows", n)
	}
}

func TestDataSynthErrors(t *testing.T) {
	dir := t.TempDir()
	in := synthSource(t, dir)
	empty := filepath.Join(dir, "empty.csv")
	os.WriteFile(empty, []byte("a,b\n"), 0o644)
	out := filepath.Join(dir, "o.parquet")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--rows", "5", "--out", out}, "give --fit URL (a table to fit) or --model FILE (a saved model), one of them"},
		{[]string{"--fit", in}, "nothing to do: give --rows N and --out URL to sample, or --save-model FILE to keep the fitted model"},
		{[]string{"--fit", in, "--rows", "5"}, "--rows needs --out: where to write them"},
		{[]string{"--fit", in, "--out", out}, "--rows N: how many rows to write to"},
		{[]string{"--fit", in, "--out", out, "--rows", "-3"}, `--rows "-3": want a number of rows of at least 1`},
		{[]string{"--fit", in, "--out", out, "--rows", "0"}, `--rows "0": want a number of rows of at least 1`},
		{[]string{"--fit", in, "--out", out, "--rows", "5", "--format", "orc"}, `--format "orc": parquet or csv`},
		{[]string{"--fit", in, "--out", out, "--rows", "5", "--fit-format", "orc"}, `--fit-format "orc": one of csv, parquet, jsonl`},
		{[]string{"--fit", in, "--out", out, "--rows", "5", "--compression", "lz5"}, `compression "lz5": snappy, zstd, gzip or none`},
		{[]string{"--fit", in, "--out", filepath.Join(dir, "o.csv"), "--rows", "5", "--compression", "zstd"}, "--compression is Parquet's"},
		{[]string{"--fit", in, "--out", out, "--rows", "5", "--match", "kendall"}, `match "kendall": pearson, spearman or scores`},
		{[]string{"--fit", in, "--out", out, "--rows", "5", "--by", "nope"}, `by column "nope" is not in the table`},
		{[]string{"--fit", empty, "--out", out, "--rows", "5"}, "the table has no rows"},
		{[]string{"--fit", filepath.Join(dir, "nope.csv"), "--out", out, "--rows", "5"}, "nope.csv"},
		{[]string{"--model", filepath.Join(dir, "nope.json"), "--out", out, "--rows", "5"}, "nope.json: no such file"},
		{[]string{"--model", in, "--out", out, "--rows", "5"}, "in.csv: read model:"},
		{[]string{"--model", in, "--save-model", "x.json"}, "--save-model keeps a fitted model: give it with --fit"},
	} {
		res := runCLI(t, nil, append([]string{"data", "synth"}, c.args...)...)
		if res.code == 0 || !strings.Contains(res.stderr, c.want) {
			t.Errorf("%q: exit %d, %q; want %q", c.args, res.code, res.stderr, c.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an output was written")
	}
}

// TestDataSynthInterrupted: an interrupted sample leaves nothing at the
// destination.
func TestDataSynthInterrupted(t *testing.T) {
	dir := t.TempDir()
	in := synthSource(t, dir)
	e := env{getenv: func(string) string { return "" }, lookupEnv: func(string) (string, bool) { return "", false }, now: time.Now}
	root := newRoot(&cobra.Command{Use: "server"}, e)
	var out, errOut bytes.Buffer
	root.SetArgs([]string{"data", "synth", "--fit", in, "--rows", "1G", "--out", filepath.Join(dir, "big.parquet")})
	root.SetOut(&out)
	root.SetErr(&errOut)
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	if code := execute(ctx, root); code == 0 {
		t.Fatalf("exit 0: %s", out.String())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("left behind: %v (%s)", ents, errOut.String())
	}
}

// TestDataSynthSklearn fits scikit-learn's wine table by its class.
func TestDataSynthSklearn(t *testing.T) {
	wine := filepath.Join("/var/cache/hpcml-samples", "wine_data.csv")
	if _, err := os.Stat(wine); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no %s: scripts/test-deps.sh runs scripts/sample-data.sh", wine)
		}
		t.Skipf("no %s: run scripts/sample-data.sh", wine)
	}
	out := filepath.Join(t.TempDir(), "wine.parquet")
	res := runCLI(t, nil, "data", "synth", "--fit", wine, "--skip-rows", "1", "--no-header", "--by", "column_14", "--rows", "20000", "--out", out, "--compression", "zstd")
	if res.code != 0 || !strings.Contains(res.stdout, "178 rows, 14 columns, 3 copulas by column_14") {
		t.Fatalf("exit %d: %s%s", res.code, res.stdout, res.stderr)
	}
	if n, _ := countRows(t, out); n != 20000 {
		t.Errorf("%d rows", n)
	}
}
