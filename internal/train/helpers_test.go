package train

import (
	"bufio"
	"compress/gzip"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gcblob "gocloud.dev/blob"

	"github.com/hpcml/hpcml/internal/blob"
)

// samples is where scripts/sample-data.sh puts the sklearn tables and
// MNIST. Without them the test fails in CI and is skipped elsewhere.
func samples(t *testing.T, file string) string {
	t.Helper()
	dir := os.Getenv("HPCML_SAMPLES")
	if dir == "" {
		dir = "/var/cache/hpcml-samples"
	}
	if _, err := os.Stat(filepath.Join(dir, file)); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no %s in %s: scripts/test-deps.sh runs scripts/sample-data.sh", file, dir)
		}
		t.Skipf("no %s in %s: run scripts/sample-data.sh", file, dir)
	}
	return filepath.Join(dir, file)
}

// holdOut splits a sample table's data rows (skipping its first `skip`
// lines) into train and test CSVs without a header, a seeded share to
// the test file.
func holdOut(t *testing.T, path string, skip int, share float64) (trainCSV, testCSV string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r = gz
	}
	var rows []string
	sc := bufio.NewScanner(r)
	for i := 0; sc.Scan(); i++ {
		if i >= skip && strings.TrimSpace(sc.Text()) != "" {
			rows = append(rows, sc.Text())
		}
	}
	rng := rand.New(rand.NewPCG(42, 7))
	rng.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	k := int(share * float64(len(rows)))
	dir := t.TempDir()
	trainCSV, testCSV = filepath.Join(dir, "train.csv"), filepath.Join(dir, "test.csv")
	os.WriteFile(testCSV, []byte(strings.Join(rows[:k], "\n")+"\n"), 0o644)
	os.WriteFile(trainCSV, []byte(strings.Join(rows[k:], "\n")+"\n"), 0o644)
	return trainCSV, testCSV
}

// outDir is a fresh file:// bucket for a run's files, and its directory.
func outDir(t *testing.T) (*blob.Bucket, string) {
	t.Helper()
	dir := t.TempDir()
	b, err := blob.Open(context.Background(), "file://"+dir+"?create_dir=true")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return gcblob.PrefixedBucket(b, "run/"), filepath.Join(dir, "run")
}
