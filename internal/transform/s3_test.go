package transform

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	hblob "github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/s3test"
)

// TestS3Output: an S3 output is staged under _temporary/ID/, copied into
// place with _SUCCESS last; a failed run leaves nothing under the
// prefix; overwrite replaces the old objects.
func TestS3Output(t *testing.T) {
	const access, secret = "transformtest", "transformtestsecret"
	srv := s3test.Start(t, access, secret, "lake")
	q := srv.URLEnv(t)
	ctx := context.Background()
	b, err := hblob.Open(ctx, "s3://lake"+q)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	keys := func() []string {
		ks, err := listKeys(ctx, b, "")
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(ks)
		return ks
	}

	rows := genRows(4000, 5)
	data := writeRows(t, t.TempDir(), rows)
	spec := func(extra, out string) string {
		return fmt.Sprintf(`input: {url: %s, partitions: 3}
steps:%s
  - split: {seed: 3, fractions: {train: 0.75, test: 0.25}}
output: {url: "%s", compression: zstd}
`, data, extra, out)
	}
	out := "s3://lake/ml/ds" + q
	rep := mustRun(t, spec("", out))
	want := []string{"ml/ds/_SUCCESS"}
	for _, s := range []string{"test", "train"} {
		for u := range 3 {
			want = append(want, fmt.Sprintf("ml/ds/%s/part-%05d.parquet", s, u))
		}
	}
	if got := keys(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("objects %v, want %v", got, want)
	}
	_, got := readRows(t, "s3://lake/ml/ds/train/"+q)
	local := filepath.Join(t.TempDir(), "local")
	mustRun(t, spec("", local))
	_, wantRows := readRows(t, filepath.Join(local, "train"))
	sameLines(t, "train on S3 vs here", sorted(got), sorted(wantRows))
	if !strings.HasPrefix(rep.Splits[0].URL, "s3://lake/ml/ds/train") {
		t.Fatalf("split URL %s", rep.Splits[0].URL)
	}

	// Exists: refused, and nothing changes.
	if _, err := runSpec(t, spec("", out), 2); err == nil || !strings.Contains(err.Error(), "holds objects") {
		t.Fatalf("second run: %v", err)
	}
	// A failure after the partitions wrote: nothing staged is left.
	fail := spec("\n  - cast: {g: int64}", "s3://lake/other"+q)
	if _, err := runSpec(t, fail, 2); err == nil || !strings.Contains(err.Error(), `is not an int64`) {
		t.Fatalf("failing run: %v", err)
	}
	if got := keys(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("after a failure: %v", got)
	}
	// Overwrite: the old objects go, the new ones come.
	ow := strings.Replace(spec("\n  - filter: {column: g, op: '==', value: a}", out), "compression: zstd", "compression: zstd, overwrite: true, format: csv", 1)
	ow = strings.Replace(ow, "compression: zstd, ", "", 1)
	mustRun(t, ow)
	got2 := keys()
	if len(got2) != 7 || !strings.HasSuffix(got2[1], ".csv") || got2[0] != "ml/ds/_SUCCESS" {
		t.Fatalf("overwritten: %v", got2)
	}
	_, rs := readRows(t, "s3://lake/ml/ds/"+q)
	for _, r := range rs {
		if r[1] != "a" {
			t.Fatalf("overwritten rows %v", r)
		}
	}
}
