package transform

import (
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
)

const breastCancer = "/var/cache/hpcml-samples/breast_cancer.csv"

// quantile is the inverted-CDF quantile (the smallest value whose rank
// reaches ⌈q·n⌉), as internal/profile defines it.
func quantile(vs []float64, q float64) float64 {
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	r := int(math.Ceil(q * float64(len(s))))
	return s[max(r, 1)-1]
}

// TestBreastCancer is the book's flow on scikit-learn's breast cancer
// table: outliers removed by the IQR rule on every feature column, then
// a seeded 80/20 split, written as Parquet with zstd. The kept rows are
// checked against a direct computation; the split against the one of
// another partitioning.
func TestBreastCancer(t *testing.T) {
	if _, err := os.Stat(breastCancer); err != nil {
		t.Skip("no sample data (scripts/sample-data.sh)")
	}
	f, _ := os.Open(breastCancer)
	cr := csv.NewReader(f)
	cr.FieldsPerRecord = -1 // the first line holds counts
	recs, err := cr.ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	recs = recs[1:] // the line of counts
	n, features := len(recs), 30
	vals := make([][]float64, features)
	for _, r := range recs {
		for j := range features {
			v, _ := strconv.ParseFloat(r[j], 64)
			vals[j] = append(vals[j], v)
		}
	}
	lo, hi := make([]float64, features), make([]float64, features)
	for j := range features {
		q1, q3 := quantile(vals[j], 0.25), quantile(vals[j], 0.75)
		lo[j], hi[j] = q1-1.5*(q3-q1), q3+1.5*(q3-q1)
	}
	var want [][]string
	for i, r := range recs {
		ok := true
		for j := range features {
			ok = ok && vals[j][i] >= lo[j] && vals[j][i] <= hi[j]
		}
		if ok {
			row := make([]string, 0, features+1)
			for j := range features {
				row = append(row, strconv.FormatFloat(vals[j][i], 'g', -1, 64))
			}
			want = append(want, append(row, r[features]))
		}
	}

	var cols []string
	for j := 1; j <= features; j++ {
		cols = append(cols, fmt.Sprintf("column_%d", j))
	}
	dir := t.TempDir()
	spec := func(out string, parts int) string {
		return fmt.Sprintf(`
input:
  url: %s
  skip_rows: 1
  no_header: true
  partitions: %d
steps:
  - iqr_outliers:
      columns: [%s]
      k: 1.5
  - split:
      seed: 42
      fractions: {train: 0.8, test: 0.2}
output:
  url: %s
  format: parquet
  compression: zstd
`, breastCancer, parts, strings.Join(cols, ", "), out)
	}
	one := filepath.Join(dir, "one")
	rep := mustRun(t, spec(one, 1))
	four := filepath.Join(dir, "four")
	rep4 := mustRun(t, spec(four, 4))
	if rep4.Partitions < 2 {
		t.Fatalf("%d partitions, want several", rep4.Partitions)
	}

	if rep.RowsIn != int64(n) || rep.Steps[0].RowsIn != int64(n) || rep.Steps[0].RowsOut != int64(len(want)) || rep.RowsOut != int64(len(want)) {
		t.Fatalf("report: in %d, iqr %d → %d, out %d; want %d → %d", rep.RowsIn, rep.Steps[0].RowsIn, rep.Steps[0].RowsOut, rep.RowsOut, n, len(want))
	}
	st := rep.Steps[0].Stats
	if st == nil || len(st.Columns) != features {
		t.Fatalf("iqr statistics %+v", st)
	}
	for j, c := range st.Columns {
		if !c.Exact || *c.Lower != lo[j] || *c.Upper != hi[j] {
			t.Fatalf("%s: bounds [%v, %v] (exact %v), want [%v, %v]", c.Column, *c.Lower, *c.Upper, c.Exact, lo[j], hi[j])
		}
	}
	t.Logf("breast cancer: %d rows, %d kept by the IQR rule; train %d, test %d", n, len(want), rep.Splits[0].Rows, rep.Splits[1].Rows)

	var all [][]string
	for i, name := range []string{"train", "test"} {
		_, got := readRows(t, filepath.Join(one, name))
		all = append(all, got...)
		_, got4 := readRows(t, filepath.Join(four, name))
		sameLines(t, name+": 1 vs 4 partitions", sorted(got4), sorted(got))
		if int64(len(got)) != rep.Splits[i].Rows || rep4.Splits[i].Rows != rep.Splits[i].Rows {
			t.Fatalf("%s: %d rows, reported %d and %d", name, len(got), rep.Splits[i].Rows, rep4.Splits[i].Rows)
		}
	}
	sameLines(t, "train ∪ test", sorted(all), sorted(want))
	// A fraction of 0.8 of m rows: Binomial(m, 0.8), within 4σ.
	m := float64(len(want))
	if d := math.Abs(float64(rep.Splits[0].Rows) - 0.8*m); d > 4*math.Sqrt(m*0.8*0.2) {
		t.Fatalf("train has %d of %v rows", rep.Splits[0].Rows, m)
	}
	// Parquet, zstd, a part file per partition.
	pf, err := file.OpenParquetFile(filepath.Join(four, "train", "part-00001.parquet"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if cc, err := pf.MetaData().RowGroup(0).ColumnChunk(0); err != nil {
		t.Fatal(err)
	} else if cc.Compression() != compress.Codecs.Zstd {
		t.Fatalf("compression %v, want zstd", cc.Compression())
	}
	if _, err := os.Stat(filepath.Join(one, SuccessFile)); err != nil {
		t.Fatalf("no %s: %v", SuccessFile, err)
	}
}
