package transfer

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"

	hblob "github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/s3test"
)

const (
	testAccess = "transfertest"
	testSecret = "transfertestsecret"
)

// s3Server is a running versitygw (internal/s3test).
type s3Server struct {
	endpoint string // http://127.0.0.1:PORT
	client   *s3.Client
}

// startS3 starts versitygw with the test credentials, creates buckets and
// puts the credentials in the environment (where gocloud's s3blob reads
// them).
func startS3(t *testing.T, buckets ...string) *s3Server {
	t.Helper()
	srv := s3test.Start(t, testAccess, testSecret, buckets...)
	t.Setenv("AWS_ACCESS_KEY_ID", testAccess)
	t.Setenv("AWS_SECRET_ACCESS_KEY", testSecret)
	// As `hpcml data` sets it (internal/cli/data.go): hpcml's own
	// SHA-256 instead of the SDK's CRCs of what it reads.
	t.Setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
	return &s3Server{endpoint: srv.Endpoint, client: srv.Client}
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
