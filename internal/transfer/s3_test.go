package transfer

import (
	"context"
	"io"
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
	"gocloud.dev/blob"

	hblob "github.com/hpcml/hpcml/internal/blob"
)

// The same as internal/e2e's helpers (which a package test cannot
// import): a real versitygw on loopback, over a temp dir.

const (
	testAccess = "transfertest"
	testSecret = "transfertestsecret"
)

// versitygwPath finds the S3 server the tests use (installed by
// scripts/test-deps.sh). Its absence fails the test: a skipped S3 test
// would pass CI without ever touching S3.
func versitygwPath(t testing.TB) string {
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

// s3Server is a running versitygw.
type s3Server struct {
	endpoint string // http://127.0.0.1:PORT
	client   *s3.Client
}

// startS3 starts versitygw with the test credentials, creates buckets,
// puts the credentials in the environment (where gocloud's s3blob reads
// them) and kills the server by PID when the test ends.
func startS3(t *testing.T, buckets ...string) *s3Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "versitygw.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(versitygwPath(t), "--access", testAccess, "--secret", testSecret, "--port", addr, "posix", dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		logf.Close()
	})
	endpoint := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(endpoint)
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("versitygw exited: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw not up after 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", testAccess)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecret)
	// As `hpcml data` sets them (internal/cli/data.go): hpcml's own
	// SHA-256 instead of the SDK's CRCs.
	t.Setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
	t.Setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
	s := &s3Server{endpoint: endpoint, client: s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(testAccess, testSecret, ""),
	})}
	for _, b := range buckets {
		if _, err := s.client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatalf("create bucket %s: %v", b, err)
		}
	}
	return s
}

func (s *s3Server) query() string {
	// As users write it: the endpoint unescaped.
	return "?endpoint=" + s.endpoint + "&region=us-east-1&use_path_style=true"
}

// url is the location of key (a prefix if it ends in "/") in bucket.
func (s *s3Server) url(bucket, key string) string {
	return "s3://" + bucket + "/" + key + s.query()
}

// open opens bucket with gocloud, as a user's program would.
func (s *s3Server) open(t testing.TB, bucket string) *blob.Bucket {
	t.Helper()
	b, err := hblob.Open(context.Background(), "s3://"+bucket+s.query())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// readPrefix reads every object under prefix, keyed relative to it.
func readPrefix(t testing.TB, b *blob.Bucket, prefix string) tree {
	t.Helper()
	ctx := context.Background()
	tr := tree{}
	it := b.List(&blob.ListOptions{Prefix: prefix})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			return tr
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := b.ReadAll(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		tr[strings.TrimPrefix(o.Key, prefix)] = data
	}
}
