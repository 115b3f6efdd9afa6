package table

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// samples is where scripts/sample-data.sh puts the tables from Debian's
// python3-sklearn. Without them the test fails in CI and is skipped
// elsewhere.
func samples(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HPCML_SAMPLES")
	if dir == "" {
		dir = "/var/cache/hpcml-samples"
	}
	if _, err := os.Stat(filepath.Join(dir, "breast_cancer.csv")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no sample tables in %s: scripts/test-deps.sh runs scripts/sample-data.sh", dir)
		}
		t.Skipf("no sample tables in %s: run scripts/sample-data.sh", dir)
	}
	return dir
}

func TestSklearnSamples(t *testing.T) {
	dir := samples(t)
	// The first line is counts and class names, not a header.
	sk := Options{SkipRows: 1, NoHeader: true}
	for _, c := range []struct {
		name       string
		opts       Options
		rows, cols int
		first      string
		last       string // the type of the last column
	}{
		{"breast_cancer.csv", sk, 569, 31, "17.99|10.38|122.8|1001|0.1184", "int64"},
		{"wine_data.csv", sk, 178, 14, "14.23|1.71|2.43|15.6|127", "int64"},
		{"iris.csv", sk, 150, 5, "5.1|3.5|1.4|0.2|0", "int64"},
		{"digits.csv.gz", Options{NoHeader: true}, 1797, 65, "0|0|5|13|9", "int64"},
	} {
		p := filepath.Join(dir, c.name)
		s, rows := readURL(t, p, c.opts)
		if len(rows) != c.rows || s.NumFields() != c.cols {
			t.Fatalf("%s: %d rows × %d columns, want %d × %d", c.name, len(rows), s.NumFields(), c.rows, c.cols)
		}
		if rows[0] != c.first && !strings.HasPrefix(rows[0], c.first+"|") {
			t.Errorf("%s: first row %.60s", c.name, rows[0])
		}
		if got := TypeName(s.Field(c.cols - 1).Type); got != c.last {
			t.Errorf("%s: last column %s", c.name, got)
		}
		if c.name != "digits.csv.gz" && TypeName(s.Field(0).Type) != "float64" {
			t.Errorf("%s: first column %s", c.name, s.Field(0).Type)
		}
		// Partitions read the same rows.
		_, got := readParts(t, p, c.opts, 5)
		eq(t, c.name+" partitions", got, rows)
		// Through Parquet and back.
		r, err := Open(context.Background(), p, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "x.parquet")
		if _, err := WriteParquet(context.Background(), out, r, WriteOptions{Compression: "zstd"}); err != nil {
			t.Fatal(err)
		}
		r.Close()
		_, back := readURL(t, out, Options{})
		eq(t, c.name+" parquet", back, rows)
	}
	// Read as an ordinary CSV, the count line is the header, and the
	// first data row has too many fields.
	err := readErr(t, filepath.Join(dir, "breast_cancer.csv"), Options{})
	wantErr(t, err, "breast_cancer.csv:line 2: 31 fields, expected 4 (the header has 4)")
}
