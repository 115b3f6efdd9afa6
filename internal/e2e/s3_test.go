package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
)

// versitygw finds the S3 server the tests use (installed by
// scripts/test-deps.sh). Its absence fails the test: a skipped S3 test
// would pass CI without ever touching S3.
func versitygw(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "versitygw")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("versitygw not found on PATH or in %s: run scripts/test-deps.sh", p)
	}
	return p
}

// startS3 starts versitygw on a loopback port over a temp dir, creates
// bucket, and stops the server by PID when the test ends. It returns the
// endpoint URL.
func startS3(t *testing.T, access, secret, bucket string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cmd := exec.Command(versitygw(t), "--access", access, "--secret", secret, "--port", addr, "posix", dir)
	logf, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	endpoint := "http://" + addr
	waitUntil(t, 10*time.Second, "versitygw up", func() bool {
		resp, err := http.Get(endpoint)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	s3c := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(access, secret, ""),
	})
	if _, err := s3c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return endpoint
}

// TestS3Storage runs the server on an S3-compatible store (a real
// versitygw on loopback): job inputs are read from it, outputs and logs
// are written to it by the executor with the server's credentials, and
// logs are still served once the job's local dir is gone.
func TestS3Storage(t *testing.T) {
	const access, secret, bucket = "hpcmltest", "hpcmltestsecret", "hpcml-e2e"
	endpoint := startS3(t, access, secret, bucket)
	storage := fmt.Sprintf("s3://%s?endpoint=%s&use_path_style=true&region=us-east-1", bucket, endpoint)
	env := []string{"AWS_ACCESS_KEY_ID=" + access, "AWS_SECRET_ACCESS_KEY=" + secret}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v) // for this process's own blob.Open below
	}
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
