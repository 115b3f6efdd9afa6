package blob

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	gcblob "gocloud.dev/blob"

	"github.com/hpcml/hpcml/internal/s3test"
)

func TestLoopbackS3(t *testing.T) {
	for raw, want := range map[string]bool{
		"http://127.0.0.1:7070":   true,
		"http://127.9.8.7:7070":   true,
		"http://localhost:9000":   true,
		"http://LOCALHOST":        true,
		"http://[::1]:9000":       true,
		"https://127.0.0.1:7070":  false, // TLS: the SDK's own choice
		"http://10.1.2.3:7070":    false,
		"http://s3.example.com":   false,
		"http://localhost.evil.x": false,
		"":                        false, // AWS itself
	} {
		q := url.Values{}
		if raw != "" {
			q.Set("endpoint", raw)
		}
		if got := loopbackS3(q); got != want {
			t.Errorf("endpoint %q: loopback %v, want %v", raw, got, want)
		}
	}
	// What a loopback endpoint's client may dial, once a name is resolved
	// (bkt.localhost, say, when the bucket goes in the host name).
	for addr, ok := range map[string]bool{
		"127.0.0.1:7070": true, "127.3.2.1:80": true, "[::1]:9000": true,
		"10.1.2.3:7070": false, "[2001:db8::1]:80": false, "93.184.216.34:80": false,
	} {
		if err := loopbackOnly("tcp", addr, nil); (err == nil) != ok {
			t.Errorf("dial %s: %v, want allowed %v", addr, err, ok)
		}
	}
}

// bodyProxy stands between hpcml and versitygw on loopback: it records
// how each object write's body was protected and, while corrupt is set,
// flips one byte of it.
type bodyProxy struct {
	*httptest.Server
	corrupt atomic.Bool
	mu      sync.Mutex
	writes  []http.Header // headers of PutObject and UploadPart requests
}

func newBodyProxy(t *testing.T, target string) *bodyProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &bodyProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.ContentLength > 0 {
			p.mu.Lock()
			p.writes = append(p.writes, r.Header.Clone())
			p.mu.Unlock()
			if p.corrupt.Load() {
				r.Body = &flipReader{r: r.Body, at: r.ContentLength / 2}
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *bodyProxy) takeWrites() []http.Header {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.writes
	p.writes = nil
	return w
}

// flipReader flips the byte at offset at of what it reads.
type flipReader struct {
	r   io.ReadCloser
	at  int64
	off int64
}

func (f *flipReader) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if i := f.at - f.off; i >= 0 && i < int64(n) {
		b[i] ^= 0xff
	}
	f.off += int64(n)
	return n, err
}

func (f *flipReader) Close() error { return f.r.Close() }

// TestLoopbackS3BodiesAreChecked: to an S3 server on loopback, object
// bodies go unsigned with a CRC32 — and a body changed on the way is
// refused by the server and stored under no name, in one request as in a
// multipart upload. Asking for no checksums keeps them signed.
func TestLoopbackS3BodiesAreChecked(t *testing.T) {
	srv := s3test.Start(t, "AKLOOPBACK", "loopback-secret", "bkt")
	srv.URLEnv(t)
	proxy := newBodyProxy(t, srv.Endpoint)
	ctx := context.Background()
	b, err := Open(ctx, "s3://bkt?endpoint="+proxy.URL+"&region=us-east-1&use_path_style=true")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	small := bytes.Repeat([]byte("hpcml "), 1000)
	large := make([]byte, 17<<20) // over the SDK's multipart threshold (16 MiB): four parts of 5 MiB
	rand.NewChaCha8([32]byte{1}).Read(large)
	write := func(key string, data []byte) error {
		return b.WriteAll(ctx, key, data, &gcblob.WriterOptions{BufferSize: MinPart})
	}

	for key, data := range map[string][]byte{"small": small, "large": large} {
		if err := write(key, data); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		got, err := b.ReadAll(ctx, key)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: read back %d bytes (%v), wrote %d", key, len(got), err, len(data))
		}
		writes := proxy.takeWrites()
		want := 1
		if key == "large" {
			want = (len(data) + MinPart - 1) / MinPart
		}
		if len(writes) != want {
			t.Fatalf("%s: %d body requests, want %d", key, len(writes), want)
		}
		for _, h := range writes {
			if h.Get("X-Amz-Content-Sha256") != unsignedPayload || h.Get("X-Amz-Checksum-Crc32") == "" {
				t.Fatalf("%s: a body sent with x-amz-content-sha256 %q and CRC32 %q: want unsigned with a CRC32",
					key, h.Get("X-Amz-Content-Sha256"), h.Get("X-Amz-Checksum-Crc32"))
			}
		}
	}

	proxy.corrupt.Store(true)
	for key, data := range map[string][]byte{"small-corrupt": small, "large-corrupt": large} {
		err := write(key, data)
		if err == nil {
			t.Fatalf("%s: a body changed on the way was stored", key)
		}
		if ok, _ := b.Exists(ctx, key); ok {
			t.Fatalf("%s: the write failed (%v) but the object exists", key, err)
		}
		t.Logf("%s refused: %v", key, firstLine(err.Error()))
	}
	proxy.corrupt.Store(false)
	proxy.takeWrites()

	t.Setenv(checksumEnv, "when_required")
	signed, err := Open(ctx, "s3://bkt?endpoint="+proxy.URL+"&region=us-east-1&use_path_style=true")
	if err != nil {
		t.Fatal(err)
	}
	defer signed.Close()
	if err := signed.WriteAll(ctx, "signed", small, nil); err != nil {
		t.Fatal(err)
	}
	writes := proxy.takeWrites()
	if len(writes) != 1 {
		t.Fatalf("without checksums: %d body requests, want 1", len(writes))
	}
	for _, h := range writes {
		if sum := h.Get("X-Amz-Content-Sha256"); len(sum) != 64 || h.Get("X-Amz-Checksum-Crc32") != "" {
			t.Fatalf("without checksums: x-amz-content-sha256 %q, CRC32 %q: want the body signed, no CRC", sum, h.Get("X-Amz-Checksum-Crc32"))
		}
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
