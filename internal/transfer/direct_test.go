package transfer

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// getRecorder stands between the engine and versitygw and records every
// object GET by how it was sent: "direct" (blob.Getter's, user agent
// hpcml) or "sdk". The first direct GET of failOnce is answered 503.
type getRecorder struct {
	mu       sync.Mutex
	gets     map[string][]string // key -> "direct"/"sdk", in order
	failOnce string
	failed   bool
}

func (g *getRecorder) start(t *testing.T, endpoint, bucket string) string {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, isObject := strings.CutPrefix(r.URL.Path, "/"+bucket+"/")
		if r.Method == http.MethodGet && isObject && key != "" {
			how := "sdk"
			if r.Header.Get("User-Agent") == "hpcml" {
				how = "direct"
			}
			g.mu.Lock()
			g.gets[key] = append(g.gets[key], how)
			fail := how == "direct" && key == g.failOnce && !g.failed
			g.failed = g.failed || fail
			g.mu.Unlock()
			if fail {
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte("<Error><Code>SlowDown</Code></Error>"))
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (g *getRecorder) of(key string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.gets[key], ",")
}

// TestSmallDownloadsDirect: small objects are read by direct GETs (keys
// that need escaping in a URL included), and a direct GET that is not
// answered 200 is left to the SDK, whose answer then counts: a 503 is
// read again, a vanished object fails at once as vanished.
func TestSmallDownloadsDirect(t *testing.T) {
	ctx := context.Background()
	s := startS3(t, "bkt")
	b := s.open(t, "bkt")
	want := tree{
		"a.bin":                 randomBytes(1, 100),
		"with space/b+c=d.bin":  randomBytes(2, 5000),
		"ünï/çødé.bin":          randomBytes(3, 10),
		"slow.bin":              randomBytes(4, 4096),
		"empty":                 {},
		"100%/q?x#y;z,w@v!.bin": randomBytes(5, 7),
	}
	for key, data := range want {
		if err := b.WriteAll(ctx, "in/"+key, data, nil); err != nil {
			t.Fatal(err)
		}
	}
	rec := &getRecorder{gets: map[string][]string{}, failOnce: "in/slow.bin"}
	src := "s3://bkt/in/?endpoint=" + rec.start(t, s.endpoint, "bkt") + "&region=us-east-1&use_path_style=true"
	dstDir := t.TempDir()
	l := &retryLog{}
	opts := Options{Retries: 3, RetryDelay: time.Millisecond, Log: slog.New(l)}
	rep, err := Sync(ctx, mustEndpoint(t, src), mustEndpoint(t, dstDir+"/"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failed) != 0 {
		t.Fatalf("failed:%s", failuresString(rep.Failed))
	}
	sameTree(t, "destination", readDir(t, dstDir), want)
	for key := range want {
		wantGets := "direct"
		if key == "slow.bin" {
			wantGets = "direct,sdk" // the 503, then the SDK's read
		}
		if got := rec.of("in/" + key); got != wantGets {
			t.Errorf("%s: GETs %q, want %q", key, got, wantGets)
		}
	}
	if got := l.keys(); len(got) != 0 {
		t.Fatalf("retried %v: the SDK's read after a failed direct GET is not a retry of the file", got)
	}

	// An object listed but deleted before its copy: the direct GET's 404
	// goes to the SDK, whose NoSuchKey marks the object vanished, which no
	// retry brings back.
	store, err := openStore(ctx, mustEndpoint(t, src), false)
	if err != nil {
		t.Fatal(err)
	}
	defer store.close()
	if store.get == nil {
		t.Fatal("an S3 source without a direct getter")
	}
	dst, err := openStore(ctx, mustEndpoint(t, filepath.Join(t.TempDir(), "out")+"/"), true)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.close()
	if err := dst.prepare(ctx); err != nil {
		t.Fatal(err)
	}
	o := opts
	o.defaults()
	e := &engine{opts: o, src: store, dst: dst, filter: &filter{}, rep: &Report{}}
	_, err = e.copyWithRetries(ctx, object{Key: "gone.bin", Size: 5, ModTime: time.Now()})
	if err == nil || !permanent(err) || !strings.Contains(err.Error(), errNotFoundSource.Error()) {
		t.Fatalf("copy of a vanished object: %v; want it vanished, taken as permanent", err)
	}
	if got := rec.of("in/gone.bin"); got != "direct,sdk" {
		t.Fatalf("vanished object: GETs %q, want direct,sdk", got)
	}
	if got := l.keys(); len(got) != 0 {
		t.Fatalf("retried %v", got)
	}
}
