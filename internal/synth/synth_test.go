package synth

import (
	"path/filepath"
	"testing"

	"github.com/hpcml/hpcml/internal/table"
)

// The sklearn tables are labelled: each row is of a class (wine's
// column_14, breast_cancer's column_31, iris's column_5).
var sklearnTables = []struct{ name, class string }{
	{"wine_data.csv", "column_14"},
	{"breast_cancer.csv", "column_31"},
	{"iris.csv", "column_5"},
}

// TestSklearnProfiles fits each sklearn table By its class (Pearson
// matched, the default), samples 100,000 rows and holds the synthetic
// table's profile to the source's (defaultTol): every numeric column's
// 5/25/50/75/95% quantiles within 1% of its range of the source's
// (beyond the interval between the order statistics around it), its
// mean within 1% of its range, its range inside the source's, every
// pairwise Pearson correlation within 0.05 and Spearman within 0.15 of
// the source's, the class shares within 1 percentage point.
func TestSklearnProfiles(t *testing.T) {
	dir := samples(t)
	for _, c := range sklearnTables {
		t.Run(c.name, func(t *testing.T) {
			src := filepath.Join(dir, c.name)
			m := fitURL(t, src, sklearn, FitOptions{By: c.class})
			if len(m.Copulas) < 2 || m.Match != MatchPearson {
				t.Fatalf("%d copulas, match %s", len(m.Copulas), m.Match)
			}
			out := filepath.Join(t.TempDir(), "syn.parquet")
			sampleTo(t, m, 100_000, 1, out, table.WriteOptions{})
			e := compare(t, profileOf(t, src, sklearn), profileOf(t, out, table.Options{}),
				sortedValues(t, src, sklearn), sortedValues(t, out, table.Options{}), defaultTol)
			t.Logf("%s by %s: largest errors: quantile %.2f%% of range (%s), mean %.2f%%, Pearson %.3f (%s), Spearman %.3f, shares %.4f",
				c.name, c.class, 100*e.quantile, e.qAt, 100*e.mean, e.pearson, e.pAt, e.spearman, e.share)
		})
	}
}

// TestSklearnOneCopula fits wine and iris with one copula: Pearson
// correlations are still matched within 0.05, but a mixture of classes
// is no Gaussian copula, and the rank correlations come out within 0.2
// only. (breast_cancer's largest Pearson error is about 0.06 without
// By.)
func TestSklearnOneCopula(t *testing.T) {
	dir := samples(t)
	for _, c := range sklearnTables {
		if c.name == "breast_cancer.csv" {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			src := filepath.Join(dir, c.name)
			m := fitURL(t, src, sklearn, FitOptions{})
			out := filepath.Join(t.TempDir(), "syn.parquet")
			sampleTo(t, m, 100_000, 2, out, table.WriteOptions{})
			tol := defaultTol
			tol.spearman = 0.2
			e := compare(t, profileOf(t, src, sklearn), profileOf(t, out, table.Options{}),
				sortedValues(t, src, sklearn), sortedValues(t, out, table.Options{}), tol)
			t.Logf("%s: largest errors: quantile %.2f%% of range, mean %.2f%%, Pearson %.3f (%s), Spearman %.3f; calibration %+v",
				c.name, 100*e.quantile, 100*e.mean, e.pearson, e.pAt, e.spearman, *m.Copulas[0].Calibration)
		})
	}
}

// TestCopulaReproducesItself: with MatchScores the model is the normal
// scores' correlations; a model fitted to 100,000 rows sampled from it
// has the same ones (within 0.02), marginals and all.
func TestCopulaReproducesItself(t *testing.T) {
	dir := samples(t)
	src := filepath.Join(dir, "wine_data.csv")
	m := fitURL(t, src, sklearn, FitOptions{Match: MatchScores})
	out := filepath.Join(t.TempDir(), "syn.parquet")
	sampleTo(t, m, 100_000, 3, out, table.WriteOptions{})
	m2 := fitURL(t, out, table.Options{}, FitOptions{Match: MatchScores})
	a, b := m.Copulas[0], m2.Copulas[0]
	var worst float64
	for i := range a.Correlation {
		for j := range a.Correlation {
			worst = max(worst, abs(a.Correlation[i][j]-b.Correlation[i][j]))
		}
	}
	if worst > 0.02 {
		t.Errorf("refitted latent correlations differ by up to %.3f", worst)
	}
	// The class column (discrete) is drawn at its frequencies exactly.
	for i, n := range a.Columns[13].Counts {
		share, got := float64(n)/float64(m.FitRows), float64(b.Columns[13].Counts[i])/float64(m2.FitRows)
		if abs(share-got) > 0.01 {
			t.Errorf("class %d: share %.4f, source %.4f", a.Columns[13].Values[i], got, share)
		}
	}
	t.Logf("largest difference of a refitted latent correlation: %.4f", worst)
}

func abs(x float64) float64 { return max(x, -x) }
