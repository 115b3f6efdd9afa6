package table

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

// files lists the files under dir, relative.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func TestWriteCSVRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src := write(t, dir, "t.csv", csvTable(300))
	s, want := readURL(t, src, Options{})
	for _, name := range []string{"out.csv", "out.csv.gz", "out.csv.zst", "semi.csv"} {
		r, err := Open(context.Background(), src, Options{})
		if err != nil {
			t.Fatal(err)
		}
		opts := WriteOptions{}
		if name == "semi.csv" {
			opts.Delimiter = ';'
		}
		if _, err := WriteCSV(context.Background(), filepath.Join(dir, "w", name), r, opts); err != nil {
			t.Fatal(err)
		}
		r.Close()
		// Read back with the original schema: nulls stay nulls, empty and
		// "NA" strings stay strings.
		sp, err := Infer(context.Background(), src, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if name == "semi.csv" {
			sp.Delimiter = ";"
		}
		s2, got := readURL(t, filepath.Join(dir, "w", name), Options{Spec: sp})
		eq(t, name+" schema", types(s2), types(s))
		eq(t, name, got, want)
		// And inferred again: the same types.
		s3, _ := readURL(t, filepath.Join(dir, "w", name), Options{})
		eq(t, name+" inferred", types(s3), types(s))
	}
	eq(t, "files", files(t, filepath.Join(dir, "w")), []string{"out.csv", "out.csv.gz", "out.csv.zst", "semi.csv"})
}

func TestWritePartitionBy(t *testing.T) {
	dir := t.TempDir()
	src := write(t, dir, "t.csv", "k,name,v\na,x,1\nb/c,y,2\na,z,3\n,w,4\nb/c,\"q\",5\n")
	r, err := Open(context.Background(), src, Options{BatchRows: 2})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	n, err := WriteParquet(context.Background(), out, r, WriteOptions{PartitionBy: []string{"k"}, BaseName: "job-3"})
	r.Close()
	if err != nil || n != 5 {
		t.Fatalf("%d, %v", n, err)
	}
	eq(t, "files", files(t, out), []string{"k=__HIVE_DEFAULT_PARTITION__/job-3.parquet", "k=a/job-3.parquet", "k=b%2Fc/job-3.parquet"})
	s, rows := readURL(t, out, Options{})
	eq(t, "schema", types(s), "k:string name:string v:int64")
	eq(t, "rows", rows, []string{"∅|w|4", "a|x|1", "a|z|3", "b/c|y|2", "b/c|q|5"})
	// As CSV, by two columns.
	r, _ = Open(context.Background(), src, Options{})
	_, err = WriteCSV(context.Background(), filepath.Join(dir, "csv")+"/", r, WriteOptions{PartitionBy: []string{"k", "v"}})
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "csv files", len(files(t, filepath.Join(dir, "csv"))), 5)
	_, err = Create(context.Background(), filepath.Join(dir, "x"), s, WriteOptions{PartitionBy: []string{"nope"}})
	wantErr(t, err, `partition column "nope" is not in the table`)
}

// failing reads some batches, then fails.
type failing struct {
	Reader
	left int
}

func (f *failing) Next(ctx context.Context) (arrow.RecordBatch, error) {
	if f.left == 0 {
		return nil, errors.New("source broke")
	}
	f.left--
	return f.Reader.Next(ctx)
}

func TestWriteNothingPartial(t *testing.T) {
	dir := t.TempDir()
	src := write(t, dir, "t.csv", csvTable(1000))
	for _, c := range []struct {
		url  string
		opts WriteOptions
	}{
		{filepath.Join(dir, "o", "a.parquet"), WriteOptions{}},
		{filepath.Join(dir, "o", "a.csv"), WriteOptions{}},
		{filepath.Join(dir, "o", "p"), WriteOptions{PartitionBy: []string{"g"}}},
	} {
		r, err := Open(context.Background(), src, Options{BatchRows: 100})
		if err != nil {
			t.Fatal(err)
		}
		_, err = WriteParquet(context.Background(), c.url, &failing{Reader: r, left: 3}, c.opts)
		if strings.HasSuffix(c.url, ".csv") {
			_, err = WriteCSV(context.Background(), c.url, &failing{Reader: r, left: 3}, c.opts)
		}
		r.Close()
		wantErr(t, err, "source broke")
		if f := files(t, filepath.Join(dir, "o")); len(f) != 0 {
			t.Fatalf("%s: left %q", c.url, f)
		}
	}
	// Abort after writes.
	s, _ := readURL(t, src, Options{})
	w, err := Create(context.Background(), filepath.Join(dir, "o", "b.parquet"), s, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := Open(context.Background(), src, Options{})
	Copy(context.Background(), w, r)
	r.Close()
	w.Abort()
	if f := files(t, filepath.Join(dir, "o")); len(f) != 0 {
		t.Fatalf("abort left %q", f)
	}
}
