package transfer

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Regression tests for bugs found while the transfer tests were written.

func TestRegressionDotDotKey(t *testing.T) {
	if _, err := ParseEndpoint("s3://bkt/.."); err == nil {
		t.Error(`ParseEndpoint("s3://bkt/..") accepted`)
	}
}

func TestRegressionUnknownAccessKey(t *testing.T) {
	s := startS3(t, "bkt")
	t.Setenv("AWS_ACCESS_KEY_ID", "nobody")
	_, err := List(context.Background(), mustEndpoint(t, s.url("bkt", "in/")))
	if err == nil || !strings.Contains(err.Error(), "credentials were refused") {
		t.Errorf("unknown access key: %v", err)
	}
}

func TestRegressionMissingSourceCreatesDest(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "out") + "/"
	_, err := Sync(context.Background(), mustEndpoint(t, filepath.Join(dir, "nope.txt")), mustEndpoint(t, dst), Options{})
	if err == nil {
		t.Fatal("no error")
	}
	if _, err := os.Stat(dst); err == nil {
		t.Errorf("missing source: destination %s was created (%v)", dst, err)
	}
}

func TestRegressionDryRunNewLocalDest(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "src", "a.txt"), []byte("a"))
	rep, err := Sync(context.Background(), mustEndpoint(t, filepath.Join(dir, "src")), mustEndpoint(t, filepath.Join(dir, "new")+"/"), Options{DryRun: true})
	if err != nil {
		t.Fatalf("dry run into a new local dir: %v", err)
	}
	if rep.Totals.FilesTransferred != 1 {
		t.Errorf("%+v", rep.Totals)
	}
}

func TestRegressionSourceInsideDestination(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "data", "a.txt"), []byte("a"))
	_, err := Sync(context.Background(), mustEndpoint(t, filepath.Join(dir, "data")), mustEndpoint(t, dir), Options{Delete: true})
	if _, serr := os.Stat(filepath.Join(dir, "data", "a.txt")); serr != nil {
		t.Errorf("sync --delete of a source into its parent deleted the source: err %v, stat %v", err, serr)
	}
}

func TestRegressionDotDotDirInsideSource(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.txt"), []byte("a"))
	err := checkEndpoints(mustEndpoint(t, dir), mustEndpoint(t, filepath.Join(dir, "..backup")+"/"))
	if err == nil {
		t.Error("destination ..backup inside the source accepted")
	}
}

func TestRegressionParseRateNaN(t *testing.T) {
	for _, s := range []string{"NaN", "inf", "1e30"} {
		v, err := ParseRate(s)
		if err == nil && (v <= 0 || v == math.MaxInt64) {
			t.Errorf("ParseRate(%q) = %d, nil", s, v)
		}
	}
}

func TestRegressionListDeletesUserTmpFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cache.deadbeef.tmp")
	writeFile(t, p, []byte("user data"))
	objs, err := List(context.Background(), mustEndpoint(t, dir))
	if _, serr := os.Stat(p); serr != nil {
		t.Errorf("List of a local dir deleted the user's file %s (%v, listed %v)", p, serr, objs)
	}
	_ = err
}

func TestRegressionProgressETA(t *testing.T) {
	var buf strings.Builder
	p := NewProgress(&buf)
	p.Start(1, 1000)
	p.Add(100)
	time.Sleep(300 * time.Millisecond)
	p.Done()
	if strings.Contains(buf.String(), "ETA 0s") {
		t.Errorf("ETA 0s with 90%% left: %q", buf.String())
	}
}

func TestRegressionProgressOverflowPanics(t *testing.T) {
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("Progress panicked when more bytes moved than planned (a retried file): %v", r)
		}
	}()
	var buf strings.Builder
	p := NewProgress(&buf)
	p.Start(1, 100)
	p.Add(250)
	p.Done()
}
