package table

import (
	"context"
	"errors"
	"testing"
)

func TestDatasetNames(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "iris/v2/data.csv", "a,b\n1,2\n")
	var got string
	opts := Options{ResolveDataset: func(ctx context.Context, name, version string) (string, error) {
		got = name + "@" + version
		if name == "gone" {
			return "", errors.New("no such dataset")
		}
		return dir + "/" + name + "/" + version + "/", nil
	}}
	s, rows := readURL(t, "dataset://iris@v2", opts)
	eq(t, "resolved", got, "iris@v2")
	eq(t, "read", types(s)+" "+rows[0], "a:int64 b:int64 1|2")
	parts, err := Split(context.Background(), "dataset://iris@v2", opts, 1)
	if err != nil || parts[0].Pieces[0].URL != p {
		t.Fatalf("%+v, %v", parts, err)
	}
	_, err = Open(context.Background(), "dataset://gone", opts)
	wantErr(t, err, "dataset://gone: no such dataset")
	_, err = Open(context.Background(), "dataset://iris", Options{})
	wantErr(t, err, "dataset://iris: dataset names cannot be resolved here (no Options.ResolveDataset)")
	_, err = Open(context.Background(), "http://example.com/x.csv", Options{})
	wantErr(t, err, "tables are read from local paths, file:// or s3:// URLs")
	_, err = Open(context.Background(), "file://"+p, Options{})
	if err != nil {
		t.Fatal(err)
	}
}
