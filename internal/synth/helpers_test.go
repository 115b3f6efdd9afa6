package synth

import (
	"context"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/hpcml/hpcml/internal/analysis"
	"github.com/hpcml/hpcml/internal/profile"
	"github.com/hpcml/hpcml/internal/table"
)

// samples is where scripts/sample-data.sh puts the tables from Debian's
// python3-sklearn. Without them a test fails in CI and is skipped
// elsewhere.
func samples(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HPCML_SAMPLES")
	if dir == "" {
		dir = "/var/cache/hpcml-samples"
	}
	for _, f := range []string{"wine_data.csv", "breast_cancer.csv", "iris.csv"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("no sample table %s in %s: scripts/test-deps.sh runs scripts/sample-data.sh", f, dir)
			}
			t.Skipf("no sample table %s in %s: run scripts/sample-data.sh", f, dir)
		}
	}
	return dir
}

// sklearn is how scikit-learn's bundled CSVs are read: a line of counts,
// no header.
var sklearn = table.Options{SkipRows: 1, NoHeader: true}

func fitURL(t testing.TB, url string, topts table.Options, fopts FitOptions) *Model {
	t.Helper()
	r, err := table.Open(context.Background(), url, topts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m, err := Fit(context.Background(), r, fopts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sampleTo(t testing.TB, m *Model, n int64, seed uint64, url string, wopts table.WriteOptions) {
	t.Helper()
	w, err := table.Create(context.Background(), url, m.Schema(), wopts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sample(context.Background(), n, seed, w); err != nil {
		w.Abort()
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func profileOf(t testing.TB, url string, topts table.Options) *profile.Report {
	t.Helper()
	st, _, err := analysis.ProfileLocal(context.Background(), url, analysis.ProfileOptions{Table: topts})
	if err != nil {
		t.Fatal(err)
	}
	return st.Report()
}

// sortedValues are the finite values of each numeric column of a table,
// sorted.
func sortedValues(t testing.TB, url string, topts table.Options) map[string][]float64 {
	t.Helper()
	r, err := table.Open(context.Background(), url, topts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := map[string][]float64{}
	for {
		rec, err := r.Next(context.Background())
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range rec.Schema().Fields() {
			col := rec.Column(i)
			for j := 0; j < col.Len(); j++ {
				if col.IsNull(j) {
					continue
				}
				var v float64
				switch a := col.(type) {
				case *array.Float64:
					v = a.Value(j)
				case *array.Int64:
					v = float64(a.Value(j))
				default:
					continue
				}
				if !math.IsNaN(v) && !math.IsInf(v, 0) {
					out[f.Name] = append(out[f.Name], v)
				}
			}
		}
		rec.Release()
	}
	for _, vs := range out {
		slices.Sort(vs)
	}
	return out
}

// tolerances of a synthetic table's profile against its source's.
type tolerances struct {
	// quantile: the 5/25/50/75/95% quantiles, as a share of the source
	// column's range, beyond the source's quantile interval (see
	// quantileGap).
	quantile float64
	mean     float64 // share of the source column's range
	pearson  float64 // absolute, every pair
	spearman float64 // absolute, every pair
	share    float64 // category, true and null shares: absolute
}

// Tolerances the tests hold synthetic tables to (docs/analysis.md
// states them).
var defaultTol = tolerances{quantile: 0.01, mean: 0.01, pearson: 0.05, spearman: 0.15, share: 0.01}

// quantileGap is how far x is from the q-quantile of the sorted values
// vs, taken as the interval between the order statistics on either side
// of rank q·n: the sample quantile definitions (inverted CDF, linear
// interpolation, ...) differ by that much on a small table.
func quantileGap(vs []float64, q, x float64) float64 {
	n := len(vs)
	r := int(math.Ceil(q*float64(n))) - 1 // 0-based: the inverted-CDF quantile
	lo, hi := vs[max(r-1, 0)], vs[min(r+1, n-1)]
	return max(lo-x, x-hi, 0)
}

// errs are the largest deviations found.
type errs struct {
	quantile, mean, pearson, share, spearman float64
	qAt, pAt                                 string
}

func counts(vs []float64) map[float64]int {
	c := map[float64]int{}
	for _, v := range vs {
		c[v]++
	}
	return c
}

// invertedCDF is the q-quantile of sorted values as the profile defines
// it: the smallest value whose rank reaches ceil(q·n).
func invertedCDF(vs []float64, q float64) float64 {
	return vs[max(int(math.Ceil(q*float64(len(vs))))-1, 0)]
}

// compare checks syn's profile against src's, column by column. The
// quantiles are computed exactly from the sorted values of both tables
// (the profile's sketch is within ±1.3% of rank on 100,000 rows).
func compare(t *testing.T, src, syn *profile.Report, values, synValues map[string][]float64, tol tolerances) errs {
	t.Helper()
	var e errs
	if len(src.Columns) != len(syn.Columns) {
		t.Fatalf("%d columns, source %d", len(syn.Columns), len(src.Columns))
	}
	for i, a := range src.Columns {
		b := syn.Columns[i]
		if a.Name != b.Name || a.ArrowType != b.ArrowType {
			t.Fatalf("column %d: %s %s, source %s %s", i, b.Name, b.ArrowType, a.Name, a.ArrowType)
		}
		ms := math.Abs(a.MissingShare - b.MissingShare)
		e.share = max(e.share, ms)
		if ms > tol.share {
			t.Errorf("%s: missing share %.4f, source %.4f", a.Name, b.MissingShare, a.MissingShare)
		}
		if a.Numeric != nil && a.Numeric.Min != nil {
			an, bn := a.Numeric, b.Numeric
			rng := *an.Max - *an.Min
			if rng == 0 {
				rng = 1
			}
			if *bn.Min < *an.Min || *bn.Max > *an.Max {
				t.Errorf("%s: range [%v, %v] outside the source's [%v, %v]", a.Name, *bn.Min, *bn.Max, *an.Min, *an.Max)
			}
			for _, q := range []struct {
				name string
				q    float64
				a    *float64
			}{{"5%", 0.05, an.P5}, {"25%", 0.25, an.P25}, {"50%", 0.5, an.P50}, {"75%", 0.75, an.P75}, {"95%", 0.95, an.P95}} {
				b := invertedCDF(synValues[a.Name], q.q)
				d := quantileGap(values[a.Name], q.q, b) / rng
				if d > e.quantile {
					e.quantile, e.qAt = d, a.Name+" "+q.name
				}
				if d > tol.quantile {
					t.Errorf("%s: %s quantile %v, source %v (%.1f%% of the range beyond its interval)", a.Name, q.name, b, *q.a, 100*d)
				}
			}
			d := math.Abs(*an.Mean-*bn.Mean) / rng
			e.mean = max(e.mean, d)
			if d > tol.mean {
				t.Errorf("%s: mean %v, source %v (%.1f%% of the range)", a.Name, *bn.Mean, *an.Mean, 100*d)
			}
		}
		if a.Boolean != nil && a.Boolean.TrueShare != nil {
			d := math.Abs(*a.Boolean.TrueShare - *b.Boolean.TrueShare)
			e.share = max(e.share, d)
			if d > tol.share {
				t.Errorf("%s: true share %.4f, source %.4f", a.Name, *b.Boolean.TrueShare, *a.Boolean.TrueShare)
			}
		}
		if vs := values[a.Name]; a.Numeric != nil && a.DistinctExact && a.Distinct <= 20 && len(vs) > 0 {
			// A column of few values (a class): each value's share.
			src, syn := counts(vs), counts(synValues[a.Name])
			for v, n := range src {
				d := math.Abs(float64(n)/float64(len(vs)) - float64(syn[v])/float64(len(synValues[a.Name])))
				e.share = max(e.share, d)
				if d > tol.share {
					t.Errorf("%s: value %v share off by %.4f", a.Name, v, d)
				}
			}
		}
		if a.String != nil {
			got := map[string]float64{}
			for _, v := range b.TopValues {
				got[v.Value] = v.Share
			}
			for _, v := range a.TopValues {
				d := math.Abs(v.Share - got[v.Value])
				e.share = max(e.share, d)
				if d > tol.share {
					t.Errorf("%s: %q share %.4f, source %.4f", a.Name, v.Value, got[v.Value], v.Share)
				}
			}
		}
	}
	if src.Correlations != nil {
		pa, pb := src.Correlations.Pearson, syn.Correlations.Pearson
		cols := src.Correlations.Columns
		sa, sb := src.Correlations.Spearman, syn.Correlations.Spearman
		for i := range sa {
			for j := i + 1; j < len(sa); j++ {
				if sa[i][j] != nil && sb[i][j] != nil {
					d := math.Abs(*sa[i][j] - *sb[i][j])
					e.spearman = max(e.spearman, d)
					if d > tol.spearman {
						t.Errorf("Spearman %s × %s: %.3f, source %.3f", cols[i], cols[j], *sb[i][j], *sa[i][j])
					}
				}
			}
		}
		for i := range pa {
			for j := i + 1; j < len(pa); j++ {
				if pa[i][j] == nil || pb[i][j] == nil {
					continue
				}
				d := math.Abs(*pa[i][j] - *pb[i][j])
				if d > e.pearson {
					e.pearson, e.pAt = d, cols[i]+"×"+cols[j]
				}
				if d > tol.pearson {
					t.Errorf("Pearson %s × %s: %.3f, source %.3f", cols[i], cols[j], *pb[i][j], *pa[i][j])
				}
			}
		}
	}
	return e
}
