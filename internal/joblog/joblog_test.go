package joblog

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/job"
)

// A log is read from the node while its file is there, and from object
// storage once the file is gone (the job dir was cleaned up).
func TestOpenAndTailPreferTheNodeThenStorage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bucket, err := blob.Open(ctx, blob.WithCreateDir("file://"+filepath.Join(dir, "objects")))
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	if err := bucket.WriteAll(ctx, "jobs/7/1/stdout.log", []byte("stored: 0123456789"), nil); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(dir, "stdout.log")
	src := &Source{Bucket: bucket, LocalPath: func(id int64, attempt int, stream string) string {
		if stream == Stdout {
			return local
		}
		return ""
	}}
	j := &job.Job{ID: 7, Attempt: 1, Attempts: []job.Attempt{{Number: 1, StdoutURL: "jobs/7/1/stdout.log"}}}

	if err := os.WriteFile(local, []byte("live: abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	read := func() (string, bool) {
		rc, live, err := src.Open(ctx, j, 1, Stdout)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return string(b), live
	}
	if got, live := read(); got != "live: abc" || !live {
		t.Errorf("with the node's file: %q live=%v", got, live)
	}
	os.Remove(local)
	if got, live := read(); got != "stored: 0123456789" || live {
		t.Errorf("from storage: %q live=%v", got, live)
	}
	tail, err := src.Tail(ctx, j, 1, Stdout, 4)
	if err != nil || string(tail) != "6789" {
		t.Errorf("tail %q, %v; want 6789", tail, err)
	}
	// stderr was empty, so never shipped: no log, not an internal error.
	if _, _, err := src.Open(ctx, j, 1, Stderr); !errors.Is(err, ErrNoLog) {
		t.Errorf("stderr: %v, want ErrNoLog", err)
	}
	if b, err := src.Tail(ctx, j, 1, Stderr, 10); err != nil || len(b) != 0 {
		t.Errorf("stderr tail %q, %v", b, err)
	}
}
