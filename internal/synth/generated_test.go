package synth

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/hpcml/hpcml/internal/table"
)

// writeGenerated writes a CSV of n rows with every column type and a
// known dependence: y = x + noise/2 (Pearson ≈ 0.894), a category and a
// flag that follow x, an int with 10% nulls, a float with 5% NaN and a
// few infinities, a timestamp that is x days from 2024-01-01, a column
// with no values and a constant.
func writeGenerated(t testing.TB, dir string, n int) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	b.WriteString("x,y,cat,flag,k,f,ts,empty,const\n")
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for range n {
		x := rng.NormFloat64()
		y := x + 0.5*rng.NormFloat64()
		cat := "mid"
		if v := x + 0.3*rng.NormFloat64(); v < -0.5 {
			cat = "lo"
		} else if v > 0.8 {
			cat = "hi"
		}
		k := ""
		if rng.Float64() >= 0.1 {
			k = fmt.Sprint(int(math.Round(10 + 3*y)))
		}
		f := fmt.Sprint(math.Exp(x))
		switch u := rng.Float64(); {
		case u < 0.05:
			f = "NaN"
		case u < 0.052:
			f = "inf"
		}
		ts := base.Add(time.Duration(x * 24 * float64(time.Hour))).Truncate(time.Second).Format(time.RFC3339)
		fmt.Fprintf(&b, "%.6f,%.6f,%s,%t,%s,%s,%s,,7\n", x, y, cat, y > 0.5, k, f, ts)
	}
	p := filepath.Join(dir, fmt.Sprintf("gen-%d.csv", n))
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// readColumns reads a table's columns as float64s (NaN for null;
// timestamps in microseconds, bools 0 or 1) or, for strings, as
// strings ("<null>" for null).
func readColumns(t testing.TB, url string) (map[string][]float64, map[string][]string) {
	t.Helper()
	r, err := table.Open(context.Background(), url, table.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	nums, strs := map[string][]float64{}, map[string][]string{}
	for {
		rec, err := r.Next(context.Background())
		if err == io.EOF {
			return nums, strs
		}
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range rec.Schema().Fields() {
			col := rec.Column(i)
			for j := 0; j < col.Len(); j++ {
				if a, ok := col.(*array.String); ok {
					s := "<null>"
					if a.IsValid(j) {
						s = a.Value(j)
					}
					strs[f.Name] = append(strs[f.Name], s)
					continue
				}
				v := math.NaN()
				if col.IsValid(j) {
					switch a := col.(type) {
					case *array.Float64:
						v = a.Value(j)
					case *array.Int64:
						v = float64(a.Value(j))
					case *array.Timestamp:
						v = float64(a.Value(j))
					case *array.Boolean:
						v = 0
						if a.Value(j) {
							v = 1
						}
					}
				}
				nums[f.Name] = append(nums[f.Name], v)
			}
		}
		rec.Release()
	}
}

// pearsonOf is the Pearson correlation of x and y over the rows where
// both are finite.
func pearsonOf(x, y []float64) float64 {
	a, b := make([]float32, 0, len(x)), make([]float32, 0, len(x))
	for i := range x {
		if !math.IsNaN(x[i]) && !math.IsInf(x[i], 0) && !math.IsNaN(y[i]) && !math.IsInf(y[i], 0) {
			a, b = append(a, float32(x[i])), append(b, float32(y[i]))
		}
	}
	return pairwise([][]float32{standardize32(a), standardize32(b)})[0][1]
}

// meanBy is the mean of x in each group.
func meanBy(x []float64, group []string) map[string]float64 {
	sum, n := map[string]float64{}, map[string]float64{}
	for i, g := range group {
		sum[g] += x[i]
		n[g]++
	}
	for g := range sum {
		sum[g] /= n[g]
	}
	return sum
}

func shareOf[T comparable](vs []T, pred func(T) bool) float64 {
	var n float64
	for _, v := range vs {
		if pred(v) {
			n++
		}
	}
	return n / float64(len(vs))
}

// TestGeneratedTable fits a table of every type with a known dependence
// and checks what 100,000 sampled rows keep: the schema (an int64 stays
// int64), y ≈ x + noise's Pearson 0.894 (within 0.02 of the source's),
// the association of the category and the flag with the numbers (mean
// of x per category within 0.1 of the source's, x's sd being 1; Pearson
// of flag and y within 0.05), category, true, null and NaN shares
// within 1 percentage point, the timestamps' correlation with x, the
// empty column all null (with a warning), the constant constant.
func TestGeneratedTable(t *testing.T) {
	dir := t.TempDir()
	src := writeGenerated(t, dir, 20000)
	r, err := table.Open(context.Background(), src, table.Options{})
	if err != nil {
		t.Fatal(err)
	}
	schema := r.Schema()
	r.Close()
	m := fitURL(t, src, table.Options{}, FitOptions{})
	if !m.Schema().Equal(schema) {
		t.Fatalf("model schema %s, source %s", m.Schema(), schema)
	}
	if len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0], `"empty" has no values`) {
		t.Errorf("warnings %q", m.Warnings)
	}
	out := filepath.Join(dir, "syn.parquet")
	sampleTo(t, m, 100_000, 5, out, table.WriteOptions{})
	r, err = table.Open(context.Background(), out, table.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Schema().Equal(schema) {
		t.Fatalf("sampled schema %s, source %s", r.Schema(), schema)
	}
	r.Close()
	if got := schema.Field(4).Type; got.ID() != arrow.INT64 {
		t.Fatalf("k is %s", got)
	}

	sn, ss := readColumns(t, src)
	yn, ys := readColumns(t, out)
	if len(yn["x"]) != 100_000 {
		t.Fatalf("%d rows", len(yn["x"]))
	}
	want, got := pearsonOf(sn["x"], sn["y"]), pearsonOf(yn["x"], yn["y"])
	if math.Abs(want-0.894) > 0.02 || math.Abs(got-want) > 0.02 {
		t.Errorf("Pearson x, y: %.3f, source %.3f (≈ 0.894)", got, want)
	}
	t.Logf("Pearson x, y: %.4f, source %.4f", got, want)
	for _, c := range []string{"k", "f", "ts"} {
		want, got := pearsonOf(sn["x"], sn[c]), pearsonOf(yn["x"], yn[c])
		if math.Abs(got-want) > 0.05 {
			t.Errorf("Pearson x, %s: %.3f, source %.3f", c, got, want)
		}
	}
	if want, got := pearsonOf(sn["flag"], sn["y"]), pearsonOf(yn["flag"], yn["y"]); math.Abs(got-want) > 0.05 {
		t.Errorf("Pearson flag, y: %.3f, source %.3f", got, want)
	}
	wm, gm := meanBy(sn["x"], ss["cat"]), meanBy(yn["x"], ys["cat"])
	for _, c := range []string{"lo", "mid", "hi"} {
		if math.Abs(wm[c]-gm[c]) > 0.1 {
			t.Errorf("mean x of %s: %.3f, source %.3f", c, gm[c], wm[c])
		}
		w, g := shareOf(ss["cat"], func(s string) bool { return s == c }), shareOf(ys["cat"], func(s string) bool { return s == c })
		if math.Abs(w-g) > 0.01 {
			t.Errorf("share of %s: %.4f, source %.4f", c, g, w)
		}
	}
	t.Logf("mean x by category: %v, source %v", gm, wm)
	for _, c := range []struct {
		col  string
		pred func(float64) bool
	}{
		{"flag", func(v float64) bool { return v == 1 }},
		{"k", math.IsNaN},
		{"f", math.IsNaN},
		{"f", func(v float64) bool { return math.IsInf(v, 1) }},
	} {
		w, g := shareOf(sn[c.col], c.pred), shareOf(yn[c.col], c.pred)
		if math.Abs(w-g) > 0.01 {
			t.Errorf("%s: share %.4f, source %.4f", c.col, g, w)
		}
	}
	if g := shareOf(ys["empty"], func(s string) bool { return s == "<null>" }); g != 1 {
		t.Errorf("empty: %.4f null", g)
	}
	if g := shareOf(yn["const"], func(v float64) bool { return v == 7 }); g != 1 {
		t.Errorf("const: %.4f are 7", g)
	}
	for _, c := range []string{"x", "k", "ts"} {
		lo, hi := minMax(sn[c])
		glo, ghi := minMax(yn[c])
		if glo < lo || ghi > hi {
			t.Errorf("%s: [%v, %v] outside the source's [%v, %v]", c, glo, ghi, lo, hi)
		}
	}
}

func minMax(vs []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range vs {
		if !math.IsNaN(v) {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	return lo, hi
}

// TestStrongCorrelationEveryMatch: y = x + noise is reproduced whatever
// the correlations are matched to.
func TestStrongCorrelationEveryMatch(t *testing.T) {
	dir := t.TempDir()
	src := writeGenerated(t, dir, 5000)
	sn, _ := readColumns(t, src)
	want := pearsonOf(sn["x"], sn["y"])
	for _, match := range []string{MatchPearson, MatchSpearman, MatchScores} {
		m := fitURL(t, src, table.Options{}, FitOptions{Match: match})
		out := filepath.Join(dir, match+".parquet")
		sampleTo(t, m, 50_000, 1, out, table.WriteOptions{})
		yn, _ := readColumns(t, out)
		if got := pearsonOf(yn["x"], yn["y"]); math.Abs(got-want) > 0.02 {
			t.Errorf("%s: Pearson x, y %.3f, source %.3f", match, got, want)
		}
	}
}

// TestReservoir: a table longer than MaxRows is fitted on a uniform
// sample of MaxRows rows.
func TestReservoir(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("i\n")
	for i := range 50000 {
		fmt.Fprintln(&b, i)
	}
	p := filepath.Join(dir, "seq.csv")
	os.WriteFile(p, []byte(b.String()), 0o644)
	m := fitURL(t, p, table.Options{BatchRows: 1000}, FitOptions{MaxRows: 5000, Seed: 9})
	if m.SourceRows != 50000 || m.FitRows != 5000 || len(m.Warnings) != 1 || !strings.Contains(m.Warnings[0], "5000 of the 50000") {
		t.Fatalf("source %d, fitted %d rows, warnings %q", m.SourceRows, m.FitRows, m.Warnings)
	}
	col := m.Copulas[0].Columns[0]
	var sum float64
	for i, v := range col.Values {
		sum += float64(v * col.Counts[i])
	}
	if mean := sum / 5000; math.Abs(mean-25000) > 1000 || col.Values[len(col.Values)-1] < 49000 || col.Values[0] > 1000 {
		t.Errorf("sample mean %.0f, range [%d, %d]: not uniform over 0..49999", mean, col.Values[0], col.Values[len(col.Values)-1])
	}
}
