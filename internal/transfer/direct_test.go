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

	gcblob "gocloud.dev/blob"
)

// getRecorder stands between the engine and versitygw and records every
// object GET by how it was sent: "direct" (blob.Getter's, user agent
// hpcml) or "sdk". The first direct GET of failOnce is answered 503; the
// first direct GET of each key in corruptOnce gets its first byte flipped.
type getRecorder struct {
	mu          sync.Mutex
	gets        map[string][]string // key -> "direct"/"sdk", in order
	failOnce    string
	corruptOnce map[string]bool
}

func (g *getRecorder) start(t *testing.T, endpoint, bucket string) string {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		key := strings.TrimPrefix(resp.Request.URL.Path, "/"+bucket+"/")
		g.mu.Lock()
		defer g.mu.Unlock()
		if resp.Request.Header.Get("User-Agent") == "hpcml" && g.corruptOnce[key] && resp.StatusCode == http.StatusOK {
			delete(g.corruptOnce, key)
			resp.Body = &flipFirst{r: resp.Body}
		}
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, isObject := strings.CutPrefix(r.URL.Path, "/"+bucket+"/")
		if r.Method == http.MethodGet && isObject && key != "" {
			how := "sdk"
			if r.Header.Get("User-Agent") == "hpcml" {
				how = "direct"
			}
			g.mu.Lock()
			g.gets[key] = append(g.gets[key], how)
			fail := how == "direct" && key == g.failOnce
			if fail {
				g.failOnce = ""
			}
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
// that need escaping in a URL included) and checked by what they carry;
// a direct GET that is not answered 200 is left to the SDK, whose answer
// then counts: a 503 is read again, a vanished object fails at once.
func TestSmallDownloadsDirect(t *testing.T) {
	ctx := context.Background()
	s := startS3(t, "bkt")
	b := s.open(t, "bkt")
	put := func(key string, data []byte, meta map[string]string) {
		t.Helper()
		if err := b.WriteAll(ctx, key, data, &gcblob.WriterOptions{Metadata: meta}); err != nil {
			t.Fatal(err)
		}
	}
	rec := &getRecorder{gets: map[string][]string{}}
	endpoint := rec.start(t, s.endpoint, "bkt")
	srcOf := func(prefix string) Endpoint {
		return mustEndpoint(t, "s3://bkt/"+prefix+"?endpoint="+endpoint+"&region=us-east-1&use_path_style=true")
	}
	l := &retryLog{}
	opts := Options{Retries: 3, RetryDelay: time.Millisecond, Log: slog.New(l)}
	sync := func(prefix string, o Options) (*Report, string) {
		t.Helper()
		dstDir := t.TempDir()
		rep, err := Sync(ctx, srcOf(prefix), mustEndpoint(t, dstDir+"/"), o)
		if err != nil {
			t.Fatal(err)
		}
		return rep, dstDir
	}

	want := tree{
		"a.bin":                 randomBytes(1, 100),
		"with space/b+c=d.bin":  randomBytes(2, 5000),
		"ünï/çødé.bin":          randomBytes(3, 10),
		"empty":                 {},
		"100%/q?x#y;z,w@v!.bin": randomBytes(5, 7),
	}
	for key, data := range want {
		put("in/"+key, data, nil)
	}
	rep, dstDir := sync("in/", opts)
	if len(rep.Failed) != 0 {
		t.Fatalf("failed:%s", failuresString(rep.Failed))
	}
	sameTree(t, "destination", readDir(t, dstDir), want)
	for key := range want {
		if got := rec.of("in/" + key); got != "direct" {
			t.Errorf("%s: GETs %q, want one direct", key, got)
		}
	}

	// A 503: the SDK reads the object (not a retry of the file).
	slow := randomBytes(4, 4096)
	put("slow/slow.bin", slow, nil)
	rec.mu.Lock()
	rec.failOnce = "slow/slow.bin"
	rec.mu.Unlock()
	rep, dstDir = sync("slow/", opts)
	if len(rep.Failed) != 0 {
		t.Fatalf("failed:%s", failuresString(rep.Failed))
	}
	sameTree(t, "destination", readDir(t, dstDir), tree{"slow.bin": slow})
	if got := rec.of("slow/slow.bin"); got != "direct,sdk" {
		t.Errorf("after a 503: GETs %q, want direct,sdk", got)
	}
	if got := l.keys(); len(got) != 0 {
		t.Fatalf("retried %v: the SDK's read after a failed direct GET is not a retry of the file", got)
	}

	// Bytes changed on the way fail the file, by the SHA-256 recorded with
	// an object hpcml wrote, else by the S3 checksum the store keeps;
	// nothing lands.
	recorded, plain := randomBytes(6, 3000), randomBytes(7, 3000)
	put("bad/recorded.bin", recorded, map[string]string{MetaSHA256: sha256hex(recorded)})
	put("bad/crc.bin", plain, nil)
	rec.mu.Lock()
	rec.corruptOnce = map[string]bool{"bad/recorded.bin": true, "bad/crc.bin": true}
	rec.mu.Unlock()
	noRetries := opts
	noRetries.Retries = 0
	rep, dstDir = sync("bad/", noRetries)
	if got := failureKeys(rep.Failed); !equalStrings(got, []string{"crc.bin", "recorded.bin"}) ||
		!strings.Contains(failureOf(rep, "recorded.bin"), "SHA-256 recorded with the source") ||
		!strings.Contains(failureOf(rep, "crc.bin"), "S3 checksum (crc32:") {
		t.Fatalf("corrupted on the way: failed %v%s; want both, by the recorded SHA-256 and the S3 CRC32", got, failuresString(rep.Failed))
	}
	sameTree(t, "destination after corrupted reads", readDir(t, dstDir), tree{})
	rep, dstDir = sync("bad/", opts) // read again, unharmed
	if len(rep.Failed) != 0 {
		t.Fatalf("failed:%s", failuresString(rep.Failed))
	}
	sameTree(t, "destination", readDir(t, dstDir), tree{"recorded.bin": recorded, "crc.bin": plain})

	// An object listed but deleted before its copy: the direct GET's 404
	// goes to the SDK, whose NoSuchKey marks the object vanished, which no
	// retry brings back.
	store, err := openStore(ctx, srcOf("in/"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer store.close()
	if store.directGetter(ctx) == nil {
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
