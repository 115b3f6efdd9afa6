package transfer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Uploads begun and never finished (a killed client's) are listed by a
// dry run, aborted by a cleanup, and only those under the location and
// older than the cutoff; a finished object is untouched.
func TestCleanupUploads(t *testing.T) {
	s := startS3(t, "bkt")
	ctx := context.Background()
	begin := func(key string) string {
		t.Helper()
		out, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("bkt"), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("bkt"), Key: aws.String(key),
			UploadId: out.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("part one")}); err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.UploadId)
	}
	pending := func() map[string]bool {
		t.Helper()
		out, err := s.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("bkt")})
		if err != nil {
			t.Fatal(err)
		}
		keys := map[string]bool{}
		for _, u := range out.Uploads {
			keys[aws.ToString(u.Key)] = true
		}
		return keys
	}
	begin("data/a.bin")
	begin("data/sub/b.bin")
	begin("other/c.bin")
	if _, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("data/done.bin"),
		Body: strings.NewReader("whole")}); err != nil {
		t.Fatal(err)
	}
	ep := mustEndpoint(t, s.url("bkt", "data/"))

	// Younger than the cutoff: possibly still running, kept.
	if got, err := CleanupUploads(ctx, ep, time.Hour, false); err != nil || len(got) != 0 {
		t.Fatalf("uploads begun just now with a 1h cutoff: %+v %v", got, err)
	}
	got, err := CleanupUploads(ctx, ep, 0, true)
	if err != nil || len(got) != 2 || got[0].Aborted || got[0].Key != "data/a.bin" || got[1].Key != "data/sub/b.bin" {
		t.Fatalf("dry run: %+v %v", got, err)
	}
	if p := pending(); len(p) != 3 {
		t.Fatalf("a dry run aborted uploads: %v left", p)
	}
	if got, err = CleanupUploads(ctx, ep, 0, false); err != nil || len(got) != 2 || !got[0].Aborted || !got[1].Aborted {
		t.Fatalf("cleanup: %+v %v", got, err)
	}
	if p := pending(); len(p) != 1 || !p["other/c.bin"] {
		t.Fatalf("after the cleanup of data/: %v pending, want other/c.bin only", p)
	}
	if _, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("bkt"), Key: aws.String("data/done.bin")}); err != nil {
		t.Fatalf("a finished object is gone: %v", err)
	}
	// One object: only its own uploads.
	begin("other/c.bin.more")
	if got, err = CleanupUploads(ctx, mustEndpoint(t, s.url("bkt", "other/c.bin")), 0, false); err != nil || len(got) != 1 || got[0].Key != "other/c.bin" {
		t.Fatalf("cleanup of one object: %+v %v", got, err)
	}
	if _, err := CleanupUploads(ctx, mustEndpoint(t, t.TempDir()), 0, false); err == nil || !strings.Contains(err.Error(), "only S3") {
		t.Fatalf("a local location: %v", err)
	}
}
