package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gcblob "gocloud.dev/blob"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/s3test"
)

// startS3 starts versitygw on a loopback port over a temp dir, creates
// bucket, and stops the server by PID when the test ends. It returns the
// endpoint URL.
func startS3(t *testing.T, access, secret, bucket string) string {
	t.Helper()
	return s3test.Start(t, access, secret, bucket).Endpoint
}

// s3Storage starts versitygw with bucket and returns the bucket as the
// server's --storage, and the environment that gives a server its
// credentials (set in this process too, for its own blob.Open).
func s3Storage(t *testing.T, bucket string) (storage string, env []string) {
	t.Helper()
	const access, secret = "hpcmltest", "hpcmltestsecret"
	endpoint := startS3(t, access, secret, bucket)
	env = []string{"AWS_ACCESS_KEY_ID=" + access, "AWS_SECRET_ACCESS_KEY=" + secret}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return fmt.Sprintf("s3://%s?endpoint=%s&use_path_style=true&region=us-east-1", bucket, endpoint), env
}

// TestS3Storage runs the server on an S3-compatible store (a real
// versitygw on loopback): job inputs are read from it, outputs and logs
// are written to it by the executor with the server's credentials, and
// logs are still served once the job's local dir is gone.
func TestS3Storage(t *testing.T) {
	storage, env := s3Storage(t, "hpcml-e2e")
	ctx := ctxFor(t, 60*time.Second)
	b, err := blob.Open(ctx, storage)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.WriteAll(ctx, "in/data.txt", []byte("hello s3\n"), nil); err != nil {
		t.Fatal(err)
	}

	s := startServerEnv(t, env, "--storage", storage)
	j := s.submit(job.Spec{
		Command: []string{"tr a-z A-Z < data.txt > out.txt; cat out.txt; echo to-stderr >&2"}, Shell: true,
		Inputs:  []job.Input{{URL: "in/data.txt", Path: "data.txt"}},
		Outputs: []job.Output{{Path: "out.txt", URL: "results/out.txt"}},
	})
	done := s.wait(j, 30*time.Second)
	expectState(t, done, job.Succeeded)

	out, err := b.ReadAll(ctx, "results/out.txt")
	if err != nil || string(out) != "HELLO S3\n" {
		t.Fatalf("output object: %q, %v", out, err)
	}
	stdout, err := b.ReadAll(ctx, fmt.Sprintf("jobs/%d/1/stdout.log", j.ID))
	if err != nil || string(stdout) != "HELLO S3\n" {
		t.Fatalf("shipped stdout: %q, %v", stdout, err)
	}
	// With the node's copy gone, the API serves the shipped one.
	if err := os.RemoveAll(filepath.Join(s.jobsDir(), fmt.Sprintf("%d.1", j.ID))); err != nil {
		t.Fatal(err)
	}
	if got := s.logs(id(j), client.LogOptions{Stream: "stderr"}); got != "to-stderr\n" {
		t.Errorf("stderr from storage: %q", got)
	}

	// A missing input object fails the job at stage-in, naming the object.
	bad := s.wait(s.submit(job.Spec{Command: []string{"true"}, Inputs: []job.Input{{URL: "in/missing.txt", Path: "x"}}}), 30*time.Second)
	expectState(t, bad, job.Failed)
	if !strings.Contains(bad.Reason, "stage-in") || !strings.Contains(bad.Reason, "missing.txt") {
		t.Errorf("reason %q should name the stage-in and the object", bad.Reason)
	}
}

// TestURLInputsThroughCache: a job's S3 URL inputs are served from the
// node's object cache, found by URL, ETag and size (and checked against
// a recorded SHA-256 where there is one): the first job fetches
// (misses), the next reads from the cache (hits, in /metrics); an
// object rewritten since is fetched again, and the job reads its new
// bytes; objects larger than the cache are read directly.
func TestURLInputsThroughCache(t *testing.T) {
	storage, env := s3Storage(t, "hpcml-urlcache")
	ctx := ctxFor(t, 60*time.Second)
	b, err := blob.Open(ctx, storage)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	recorded := []byte("with hpcml's checksum\n")
	sum := sha256.Sum256(recorded)
	if err := b.WriteAll(ctx, "in/a.txt", recorded, &gcblob.WriterOptions{Metadata: map[string]string{blob.MetaSHA256: hex.EncodeToString(sum[:])}}); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteAll(ctx, "in/b.txt", []byte("without one\n"), nil); err != nil {
		t.Fatal(err)
	}

	s := startServerEnv(t, env, "--storage", storage)
	spec := sh("cat data/a.txt data/b.txt")
	spec.Inputs = []job.Input{{URL: "in/", Path: "data"}}
	run := func(want string) {
		t.Helper()
		j := s.wait(s.submit(spec), 30*time.Second)
		expectState(t, j, job.Succeeded)
		if got := s.logs(id(j), client.LogOptions{}); got != want {
			t.Fatalf("job read %q, want %q", got, want)
		}
	}
	run("with hpcml's checksum\nwithout one\n")
	if hits, misses := cacheMetrics(t, s); hits != 0 || misses != 2 {
		t.Fatalf("first job: cache hits %d misses %d, want 0 and 2", hits, misses)
	}
	run("with hpcml's checksum\nwithout one\n")
	if hits, misses := cacheMetrics(t, s); hits != 2 || misses != 2 {
		t.Fatalf("second job: cache hits %d misses %d, want 2 and 2", hits, misses)
	}
	if err := b.WriteAll(ctx, "in/b.txt", []byte("rewritten!!\n"), nil); err != nil {
		t.Fatal(err)
	}
	run("with hpcml's checksum\nrewritten!!\n")
	if hits, misses := cacheMetrics(t, s); hits != 3 || misses != 3 {
		t.Fatalf("after a rewrite: cache hits %d misses %d, want 3 and 3", hits, misses)
	}

	// Objects larger than the whole cache are read directly.
	small := startServerEnv(t, env, "--storage", storage, "--cache-size", "8")
	j := small.wait(small.submit(spec), 30*time.Second)
	expectState(t, j, job.Succeeded)
	if got := small.logs(id(j), client.LogOptions{}); got != "with hpcml's checksum\nrewritten!!\n" {
		t.Fatalf("job on a node with an 8-byte cache read %q", got)
	}
	if hits, misses := cacheMetrics(t, small); hits != 0 || misses != 0 {
		t.Fatalf("8-byte cache: hits %d misses %d, want none", hits, misses)
	}
}
