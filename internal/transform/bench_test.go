package transform

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkBreastCancer is the book's flow (IQR on 30 columns, 80/20
// split, Parquet zstd) on scikit-learn's 569 rows.
func BenchmarkBreastCancer(b *testing.B) {
	if _, err := os.Stat(breastCancer); err != nil {
		b.Skip("no sample data")
	}
	var cols []string
	for j := 1; j <= 30; j++ {
		cols = append(cols, fmt.Sprintf("column_%d", j))
	}
	steps := fmt.Sprintf("  - iqr_outliers: {columns: [%s]}\n  - split: {seed: 42, fractions: {train: 0.8, test: 0.2}}", strings.Join(cols, ", "))
	benchSpec(b, breastCancer+", skip_rows: 1, no_header: true", steps, 569)
}

// BenchmarkLarge runs flows over a generated CSV of HPCML_BENCH_ROWS rows
// (default 1,000,000): id, g (5 labels), x, y (floats), z (int).
func BenchmarkLarge(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("HPCML_BENCH_ROWS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	data := filepath.Join(b.TempDir(), "large.csv")
	f, err := os.Create(data)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("id,g,x,y,z\n")
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		fmt.Fprintf(w, "%d,%c,%.4f,%.4f,%d\n", i, 'a'+rng.IntN(5), rng.NormFloat64(), rng.ExpFloat64(), rng.IntN(1000))
	}
	w.Flush()
	f.Close()
	fi, _ := os.Stat(data)
	b.Logf("%d rows, %d MB", n, fi.Size()>>20)
	for _, c := range []struct{ name, steps string }{
		{"filter-split", "  - filter: {column: x, op: '>', value: -2}\n  - split: {seed: 1, fractions: {train: 0.8, test: 0.2}}"},
		{"iqr-split", "  - iqr_outliers: {columns: [x, y]}\n  - split: {seed: 1, fractions: {train: 0.8, test: 0.2}}"},
		{"impute-mean", "  - impute: {x: mean, y: median}"},
		{"dedup-split", "  - drop_duplicates: {subset: [g, z]}\n  - split: {seed: 1, fractions: {train: 0.8, test: 0.2}}"},
		{"dedup-all", "  - drop_duplicates"},
	} {
		b.Run(c.name, func(b *testing.B) { benchSpec(b, data, c.steps, n) })
	}
}

func benchSpec(b *testing.B, input, steps string, rows int) {
	for i := 0; i < b.N; i++ {
		out := filepath.Join(b.TempDir(), "out")
		spec := fmt.Sprintf("input: {url: %s}\nsteps:\n%s\noutput: {url: %s, compression: zstd}\n", input, steps, out)
		s, err := Parse([]byte(spec), "bench.yaml")
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		p, err := NewPlan(context.Background(), s, spec, PlanOptions{ID: fmt.Sprint(i), Workers: runtime.GOMAXPROCS(0)})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.RunLocal(context.Background(), LocalOptions{TempDir: b.TempDir()}); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
	}
}
