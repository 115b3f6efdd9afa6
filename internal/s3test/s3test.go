// Package s3test starts a real S3 server for tests: versitygw (installed
// by scripts/test-deps.sh) on a loopback port over a temp dir, stopped by
// PID when the test ends. Tests of several packages use it; it is not
// part of the product.
package s3test

import (
	"context"
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
)

// Server is a running versitygw.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	Client   *s3.Client

	access, secret string
}

// URLEnv makes hpcml's s3:// URLs reach the server: it sets the
// credentials (and no checks of response checksums, as `hpcml data`
// does) in the test's environment and returns the query an
// s3://bucket/key URL needs (endpoint, region, path-style addressing).
func (s *Server) URLEnv(t testing.TB) string {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", s.access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.secret)
	t.Setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
	return "?endpoint=" + s.Endpoint + "&region=us-east-1&use_path_style=true"
}

// Binary finds versitygw. Its absence fails the test: a skipped S3 test
// would pass CI without ever touching S3.
func Binary(t testing.TB) string {
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

// Start starts versitygw with the given credentials and creates buckets.
func Start(t testing.TB, access, secret string, buckets ...string) *Server {
	t.Helper()
	return start(t, nil, access, secret, buckets)
}

// StartWithIAM is Start with versitygw's own IAM: access and secret are
// its root account's, and AddUser makes accounts that may do only what a
// bucket policy grants them — a real server's AccessDenied.
func StartWithIAM(t testing.TB, access, secret string, buckets ...string) *Server {
	t.Helper()
	return start(t, []string{"--iam-dir", t.TempDir()}, access, secret, buckets)
}

// AddUser creates an account of role "user" (it owns no bucket) through
// versitygw's admin API. The server must have been started with IAM.
func (s *Server) AddUser(t testing.TB, access, secret string) {
	t.Helper()
	cmd := exec.Command(Binary(t), "admin", "--access", s.access, "--secret", s.secret, "--endpoint-url", s.Endpoint,
		"create-user", "--access", access, "--secret", secret, "--role", "user")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("versitygw admin create-user %s: %v: %s", access, err, out)
	}
}

func start(t testing.TB, extraArgs []string, access, secret string, buckets []string) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logPath := filepath.Join(t.TempDir(), "versitygw.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--access", access, "--secret", secret, "--port", addr}, extraArgs...)
	cmd := exec.Command(Binary(t), append(args, "posix", t.TempDir())...)
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
	for deadline := time.Now().Add(10 * time.Second); ; {
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
	s := &Server{Endpoint: endpoint, access: access, secret: secret, Client: s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(access, secret, ""),
	})}
	for _, b := range buckets {
		if _, err := s.Client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatalf("create bucket %s: %v", b, err)
		}
	}
	return s
}

// IsolateAWS clears, for the test, every setting through which the AWS
// SDK could find credentials, a profile, a region or an endpoint other
// than what the test then sets, and points the AWS config files at an
// empty file: nothing of this machine's AWS configuration applies.
func IsolateAWS(t testing.TB) {
	t.Helper()
	for _, k := range []string{
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_SESSION_TOKEN",
		"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
		"AWS_USE_DUALSTACK_ENDPOINT", "AWS_USE_FIPS_ENDPOINT", "AWS_S3_US_EAST_1_REGIONAL_ENDPOINT",
	} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}
