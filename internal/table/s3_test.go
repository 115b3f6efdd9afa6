package table

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	hblob "github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/s3test"
)

// startS3 runs versitygw with a bucket and returns the query that
// reaches it (as users write s3:// URLs).
func startS3(t *testing.T, bucket string) string {
	t.Helper()
	const access, secret = "tabletest", "tabletestsecret"
	srv := s3test.Start(t, access, secret, bucket)
	return srv.URLEnv(t)
}

func TestS3(t *testing.T) {
	q := startS3(t, "data")
	ctx := context.Background()
	b, err := hblob.Open(ctx, "s3://data"+q)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir := t.TempDir()
	var all strings.Builder
	for i := 0; i < 3; i++ {
		content := csvWithQuotes(200+100*i, i == 1)
		if i > 0 {
			content = content[strings.IndexByte(content, '\n')+1:] // the same header
			content = "id,name,x\n" + content
		}
		if err := b.WriteAll(ctx, fmt.Sprintf("csv/part-%d.csv", i), []byte(content), nil); err != nil {
			t.Fatal(err)
		}
		write(t, dir, fmt.Sprintf("csv/part-%d.csv", i), content)
		all.WriteString(content)
	}
	b.WriteAll(ctx, "csv/_SUCCESS", nil, nil)
	_, want := readURL(t, filepath.Join(dir, "csv"), Options{})
	for _, url := range []string{"s3://data/csv/" + q, "s3://data/csv" + q} {
		s, got := readURL(t, url, Options{})
		eq(t, url+" schema", types(s), "id:int64 name:string x:float64")
		eq(t, url, got, want)
	}
	for _, n := range []int{1, 4, 11} {
		parts, got := readParts(t, "s3://data/csv/"+q, Options{}, n)
		eq(t, fmt.Sprintf("n=%d", n), got, want)
		if !strings.HasPrefix(parts[0].Pieces[0].URL, "s3://data/csv/part-0.csv?endpoint=") {
			t.Fatalf("piece URL %s", parts[0].Pieces[0].URL)
		}
	}
	// Parquet written to S3 (a multipart upload completed only at the
	// end), read back whole and by row groups.
	r, err := Open(ctx, "s3://data/csv/"+q, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteParquet(ctx, "s3://data/pq/all.parquet"+q, r, WriteOptions{RowGroupRows: 100}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	_, got := readURL(t, "s3://data/pq/all.parquet"+q, Options{})
	eq(t, "parquet", got, want)
	parts, got := readParts(t, "s3://data/pq/"+q, Options{}, 5)
	eq(t, "parquet parts", got, want)
	if len(parts) != 5 {
		t.Fatalf("%d partitions of 9 row groups", len(parts))
	}
	// Errors name the object.
	_, err = Open(ctx, "s3://data/nope.csv"+q, Options{})
	wantErr(t, err, "s3://data/nope.csv: not found")
	b.WriteAll(ctx, "bad/x.csv", []byte("a,b\n1,2\n3\n"), nil)
	wantErr(t, readErr(t, "s3://data/bad/x.csv"+q, Options{}), "s3://data/bad/x.csv:line 3: 1 fields, expected 2")
	_, err = Open(ctx, "s3://nobucket/x.csv"+q, Options{})
	wantErr(t, err, "s3://nobucket/x.csv")
}
