package transfer

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// retryLog records the retries a transfer logs ("transfer failed;
// retrying"), by key.
type retryLog struct {
	mu      sync.Mutex
	retried []string
}

func (l *retryLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *retryLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *retryLog) WithGroup(string) slog.Handler            { return l }
func (l *retryLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, "retrying") {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "key" {
			l.mu.Lock()
			l.retried = append(l.retried, a.Value.String())
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

func (l *retryLog) keys() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.retried...)
}

// failureOf is the reason key failed in rep ("" if it did not).
func failureOf(rep *Report, key string) string {
	for _, f := range rep.Failed {
		if f.Key == key {
			return f.Reason
		}
	}
	return ""
}

// failedOnce checks a sync of ok.txt and key into dstDir: key alone
// failed, its reason holding reason, and was not retried (why says why it
// must not be); ok.txt was copied.
func failedOnce(t *testing.T, rep *Report, l *retryLog, dstDir, key, reason, why string) {
	t.Helper()
	if got := failureKeys(rep.Failed); !equalStrings(got, []string{key}) || !strings.Contains(failureOf(rep, key), reason) {
		t.Fatalf("failed %v%s; want %s, %s", got, failuresString(rep.Failed), key, reason)
	}
	if got := l.keys(); len(got) != 0 {
		t.Fatalf("retried %v: %s", got, why)
	}
	sameTree(t, "destination", readDir(t, dstDir), tree{"ok.txt": []byte("ok")})
}

// TestPermanentErrorsNotRetried: a file that fails for a reason no retry
// can mend is failed at once, not tried again after 1, 2 and 4 s: a
// source file that is not there when read (a dangling symlink the
// listing showed), a source file the user may not read, and an object
// store refusing the credentials. The other files are copied.
func TestPermanentErrorsNotRetried(t *testing.T) {
	ctx := context.Background()
	opts := func(l *retryLog) Options {
		return Options{Retries: 3, RetryDelay: time.Millisecond, Log: slog.New(l)}
	}

	t.Run("source not there", func(t *testing.T) {
		srcDir, dstDir := t.TempDir(), t.TempDir()
		writeFile(t, filepath.Join(srcDir, "ok.txt"), []byte("ok"))
		if err := os.Symlink(filepath.Join(srcDir, "gone"), filepath.Join(srcDir, "dangling")); err != nil {
			t.Fatal(err)
		}
		l := &retryLog{}
		rep, err := Sync(ctx, mustEndpoint(t, srcDir), mustEndpoint(t, dstDir), opts(l))
		if err != nil {
			t.Fatal(err)
		}
		failedOnce(t, rep, l, dstDir, "dangling", "no such file", "a source file that is not there will not appear by retrying")
	})

	t.Run("permission denied", func(t *testing.T) {
		base := t.TempDir()
		srcDir, dstDir := filepath.Join(base, "src"), filepath.Join(base, "dst")
		writeFile(t, filepath.Join(srcDir, "ok.txt"), []byte("ok"))
		writeFile(t, filepath.Join(srcDir, "secret.txt"), []byte("secret"))
		if err := os.Chmod(filepath.Join(srcDir, "secret.txt"), 0); err != nil {
			t.Fatal(err)
		}
		l := &retryLog{}
		var rep *Report
		var err error
		asUnprivileged(t, []string{base, filepath.Dir(base), srcDir}, []string{base}, func() {
			rep, err = Sync(ctx, mustEndpoint(t, srcDir), mustEndpoint(t, dstDir+"/"), opts(l))
		})
		if err != nil {
			t.Fatal(err)
		}
		failedOnce(t, rep, l, dstDir, "secret.txt", "permission denied", "permission will not be granted by retrying")
		if rep.Totals.BytesFailed != int64(len("secret")) {
			t.Fatalf("bytes failed %d, want the %d of secret.txt", rep.Totals.BytesFailed, len("secret"))
		}
	})

	t.Run("credentials refused", func(t *testing.T) {
		// The listing is what normally meets refused credentials, and it
		// fails the whole transfer before any file. Credentials revoked
		// after the listing are met by each write instead: the engine
		// here copies to a destination opened with a wrong secret.
		s := startS3(t, "bkt")
		srcDir := t.TempDir()
		// Small files: a server that refuses a request as soon as it has
		// its headers may close the connection while a large body is
		// still being sent, and the client then sees a reset connection
		// — no different from a network failure, so rightly retried.
		writeFile(t, filepath.Join(srcDir, "a.bin"), randomBytes(3, 1000))
		writeFile(t, filepath.Join(srcDir, "b.bin"), randomBytes(4, 2000))
		src, err := openStore(ctx, mustEndpoint(t, srcDir), false)
		if err != nil {
			t.Fatal(err)
		}
		defer src.close()
		t.Setenv("AWS_SECRET_ACCESS_KEY", "revoked")
		dst, err := openStore(ctx, mustEndpoint(t, s.url("bkt", "out/")), true)
		if err != nil {
			t.Fatal(err)
		}
		defer dst.close()
		l := &retryLog{}
		o := opts(l)
		o.defaults()
		e := &engine{opts: o, src: src, dst: dst, filter: &filter{}, rep: &Report{}}
		for _, key := range []string{"a.bin", "b.bin"} {
			info, err := os.Stat(filepath.Join(srcDir, key))
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.copyWithRetries(ctx, object{Key: key, Size: info.Size(), ModTime: info.ModTime()})
			if err == nil || !permanent(err) {
				t.Fatalf("%s: error %v; want a refusal, taken as permanent", key, err)
			}
		}
		if got := l.keys(); len(got) != 0 {
			t.Fatalf("retried %v: refused credentials will not be accepted by retrying", got)
		}
		// And a missing bucket, met by a write.
		t.Setenv("AWS_SECRET_ACCESS_KEY", testSecret)
		gone, err := openStore(ctx, mustEndpoint(t, s.url("no-such-bucket", "out/")), true)
		if err != nil {
			t.Fatal(err)
		}
		defer gone.close()
		e.dst = gone
		if _, err := e.copyWithRetries(ctx, object{Key: "a.bin", Size: 1000}); err == nil || !permanent(err) || !strings.Contains(err.Error(), "NoSuchBucket") {
			t.Fatalf("write into a missing bucket: %v; want NoSuchBucket, taken as permanent", err)
		}
		if got := l.keys(); len(got) != 0 {
			t.Fatalf("retried %v into a missing bucket", got)
		}
	})
}

// TestOtherErrorsRetried: an error not known to be permanent is still
// retried — here a file whose name is taken at the destination by a
// directory, which its owner may yet move away.
func TestOtherErrorsRetried(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(srcDir, "clash"), []byte("file"))
	writeFile(t, filepath.Join(dstDir, "clash", "inner.txt"), []byte("in a dir"))
	l := &retryLog{}
	rep, err := Sync(context.Background(), mustEndpoint(t, srcDir), mustEndpoint(t, dstDir), Options{Retries: 2, RetryDelay: time.Millisecond, Log: slog.New(l)})
	if err != nil {
		t.Fatal(err)
	}
	if got := failureKeys(rep.Failed); !equalStrings(got, []string{"clash"}) {
		t.Fatalf("failed %v, want clash", got)
	}
	if got := l.keys(); !equalStrings(got, []string{"clash", "clash"}) {
		t.Fatalf("retried %v, want clash twice", got)
	}
}

// asUnprivileged runs fn with the effective user nobody's (65534), so
// that file permissions apply (root reads any file), then becomes root
// again: the real and saved user IDs stay 0. It opens the directories
// read to everyone and write to everyone. Not root already, fn runs as
// the user the tests run as, to whom permissions apply anyway. The
// package's tests do not run in parallel, so nothing else runs meanwhile.
func asUnprivileged(t *testing.T, readable, writable []string, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		fn()
		return
	}
	for _, d := range readable {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range writable {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Setresuid(-1, 65534, -1); err != nil {
		t.Skipf("cannot take an unprivileged user ID to test permissions as root: %v", err)
	}
	defer func() {
		if err := syscall.Setresuid(-1, 0, -1); err != nil {
			panic("cannot become root again: " + err.Error())
		}
	}()
	fn()
}
