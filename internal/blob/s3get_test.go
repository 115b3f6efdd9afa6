package blob

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	gcblob "gocloud.dev/blob"

	"github.com/hpcml/hpcml/internal/s3test"
)

// TestGetter reads objects of a real S3 server (versitygw) by direct
// GETs: keys that need escaping in a URL, a gzip-encoded object (its
// bytes as stored), and the answers that send a read back to the SDK.
func TestGetter(t *testing.T) {
	srv := s3test.Start(t, "AKGETTER", "getter-secret", "bkt")
	query := srv.URLEnv(t)
	ctx := context.Background()
	b, err := Open(ctx, "s3://bkt"+query)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	g := NewGetter(ctx, b, "bkt")
	if g == nil {
		t.Fatal("no Getter for a path-style bucket with credentials")
	}

	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(bytes.Repeat([]byte("inflate me "), 100))
	zw.Close()
	objects := map[string][]byte{
		"plain":                       []byte("plain"),
		"dir/with space/and+plus":     []byte("space"),
		"ünï/çødé/日本":                 []byte("unicode"),
		"100%/a&b=c;d,e:f@g$h!i'j(k)": []byte("punctuation"),
		"tilde~under_dash-dot.":       []byte("unreserved"),
		"q?x#y":                       []byte("query and fragment characters"),
		"empty":                       nil,
	}
	for key, data := range objects {
		if err := b.WriteAll(ctx, key, data, nil); err != nil {
			t.Fatalf("write %q: %v", key, err)
		}
	}
	if err := b.WriteAll(ctx, "zipped", zipped.Bytes(), &gcblob.WriterOptions{ContentEncoding: "gzip"}); err != nil {
		t.Fatal(err)
	}
	objects["zipped"] = zipped.Bytes()

	for key, want := range objects {
		r, h, err := g.Get(ctx, key)
		if err != nil {
			t.Fatalf("get %q: %v", key, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("get %q: %d bytes (%v), want the %d stored", key, len(got), err, len(want))
		}
		// Checksum mode is asked for: the CRC32 these bodies were sent
		// with (loopback writes) comes back.
		if crc := h.Get("X-Amz-Checksum-Crc32"); crc != crc32Of(want) {
			t.Fatalf("get %q: x-amz-checksum-crc32 %q, want %q", key, crc, crc32Of(want))
		}
	}

	// A missing object and a key gocloud escapes are left to the SDK,
	// which reports or escapes them as everywhere else.
	for _, key := range []string{"missing", "ctl\x01char", "up/../key", "looks__0x41__escaped", "bad\xffutf8"} {
		if _, _, err := g.Get(ctx, key); !errors.Is(err, errNoDirectGet) {
			t.Fatalf("get %q: %v, want it left to the SDK", key, err)
		}
	}
	if g.off.Load() {
		t.Fatal("a missing object turned direct GETs off")
	}

	// A signature the server refuses turns direct GETs off for the bucket:
	// the SDK then reports the refusal, and no read pays for two requests.
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	wrong, err := Open(ctx, "s3://bkt"+query)
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	gw := NewGetter(ctx, wrong, "bkt")
	if gw == nil {
		t.Fatal("no Getter")
	}
	if _, _, err := gw.Get(ctx, "plain"); !errors.Is(err, errNoDirectGet) || !gw.off.Load() {
		t.Fatalf("wrong secret: %v, off %v: want a refusal that turns direct GETs off", err, gw.off.Load())
	}
	if _, err := wrong.ReadAll(ctx, "plain"); err == nil || !Refused(err) {
		t.Fatalf("wrong secret through the SDK: %v, want refused", err)
	}
}

func crc32Of(b []byte) string {
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.ChecksumIEEE(b))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// TestGetterServerErrors: a 5xx sends reads to the SDK (whose retries
// back off) for a while, without turning direct GETs off; a refusal
// that is about one object (AccessDenied) changes nothing for the rest.
func TestGetterServerErrors(t *testing.T) {
	var mu sync.Mutex
	var requests int
	answer := http.StatusServiceUnavailable
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		status := answer
		mu.Unlock()
		w.WriteHeader(status)
		code := map[int]string{http.StatusServiceUnavailable: "SlowDown", http.StatusForbidden: "AccessDenied"}[status]
		fmt.Fprintf(w, "<Error><Code>%s</Code></Error>", code)
	}))
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKERR")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "err-secret")
	ctx := context.Background()
	b, err := Open(ctx, "s3://bkt?endpoint="+srv.URL+"&region=us-east-1&use_path_style=true")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	g := NewGetter(ctx, b, "bkt")
	count := func() int { mu.Lock(); defer mu.Unlock(); return requests }

	if _, _, err := g.Get(ctx, "a"); !errors.Is(err, errNoDirectGet) || !strings.Contains(err.Error(), "SlowDown") {
		t.Fatalf("503: %v, want it left to the SDK", err)
	}
	if _, _, err := g.Get(ctx, "b"); !errors.Is(err, errNoDirectGet) || count() != 1 {
		t.Fatalf("right after a 503: %v after %d requests, want the read left to the SDK unsent", err, count())
	}
	if g.off.Load() {
		t.Fatal("a 503 turned direct GETs off")
	}
	g.pausedUntil.Store(0) // the pause over
	mu.Lock()
	answer = http.StatusForbidden
	mu.Unlock()
	for _, key := range []string{"c", "d"} {
		if _, _, err := g.Get(ctx, key); !errors.Is(err, errNoDirectGet) {
			t.Fatalf("403: %v", err)
		}
	}
	if n := count(); n != 3 || g.off.Load() {
		t.Fatalf("AccessDenied: %d requests, off %v: want each object tried, direct GETs on", n, g.off.Load())
	}
}

// TestGetterBase checks where direct GETs go, as the SDK itself resolves
// it (no request is sent): the bucket in the host name for AWS, in the
// path for path-style endpoints; no Getter where requests go unsigned
// or the bucket is not S3.
func TestGetterBase(t *testing.T) {
	s3test.IsolateAWS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKBASE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "base-secret")
	ctx := context.Background()
	for _, c := range []struct {
		url, want, region string
	}{
		{"s3://my-bucket?region=eu-west-1", "https://my-bucket.s3.eu-west-1.amazonaws.com/", "eu-west-1"},
		{"s3://my-bucket?region=us-east-1&use_path_style=true", "https://s3.us-east-1.amazonaws.com/my-bucket/", "us-east-1"},
		{"s3://my-bucket?endpoint=http://127.0.0.1:9000&region=us-west-2&use_path_style=true", "http://127.0.0.1:9000/my-bucket/", "us-west-2"},
		{"s3://my-bucket?endpoint=https://objects.example.com&region=auto", "https://my-bucket.objects.example.com/", "auto"},
		{"s3://my-bucket?endpoint=http://127.0.0.1:9000/under/a/path&region=us-east-1&use_path_style=true", "http://127.0.0.1:9000/under/a/path/my-bucket/", "us-east-1"},
		{"s3://my-bucket?region=eu-west-1&anonymous=true", "", ""},
		{"s3://my-bucket?region=eu-west-1&dualstack=true", "https://my-bucket.s3.dualstack.eu-west-1.amazonaws.com/", "eu-west-1"},
		{"file://" + t.TempDir(), "", ""},
	} {
		b, err := Open(ctx, c.url)
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		g := NewGetter(ctx, b, "my-bucket")
		b.Close()
		switch {
		case c.want == "" && g != nil:
			t.Errorf("%s: a Getter for %s, want none", c.url, g.base.String())
		case c.want != "" && g == nil:
			t.Errorf("%s: no Getter, want one for %s", c.url, c.want)
		case g != nil && (g.base.String() != c.want || g.region != c.region):
			t.Errorf("%s: Getter for %s in %s, want %s in %s", c.url, g.base.String(), g.region, c.want, c.region)
		}
	}
}
