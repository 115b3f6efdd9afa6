package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"

	hblob "github.com/hpcml/hpcml/internal/blob"
)

func TestCheckEndpoints(t *testing.T) {
	dir := t.TempDir()
	for _, sub := range []string{"src/inner", "other"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "src", "f.txt"), []byte("x"))
	const q = "?endpoint=http://127.0.0.1:7070&region=us-east-1&use_path_style=true"
	src := filepath.Join(dir, "src")
	for _, tc := range []struct {
		src, dst string
		want     string // "" for allowed
	}{
		{src, src, "the same"},
		{src, src + "/", "the same"},
		{src, "file://" + src + "/", "the same"},
		{src, filepath.Join(src, "inner"), "inside the source"},
		{src, filepath.Join(src, "new", "deeper") + "/", "inside the source"},
		{src, filepath.Join(dir, "other"), ""},
		{src, filepath.Join(dir, "src-copy") + "/", ""}, // a sibling sharing a name prefix
		{filepath.Join(src, "f.txt"), filepath.Join(src, "g.txt"), ""},
		{filepath.Join(src, "f.txt"), filepath.Join(src, "f.txt"), "the same"},
		{"s3://bkt/data/" + q, "s3://bkt/data/" + q, "the same"},
		{"s3://bkt/data/" + q, "s3://bkt/data/sub/" + q, "inside the source"},
		{"s3://bkt/" + q, "s3://bkt/any/" + q, "inside the source"},
		{"s3://bkt/data/" + q, "s3://bkt/data2/" + q, ""},
		{"s3://bkt/data/" + q, "s3://other/data/sub/" + q, ""},
		{"s3://bkt/data/x.bin" + q, "s3://bkt/data/y.bin" + q, ""},
		{"s3://bkt/data/" + q, src, ""},
		{src, "s3://bkt/data/" + q, ""},
		// The same bucket however the query is written.
		{"s3://bkt/data/?region=us-east-1&use_path_style=true&endpoint=http://127.0.0.1:7070", "s3://bkt/data/sub/" + q, "inside the source"},
		{"s3://bkt/data/" + q, "s3://bkt/?use_path_style=true&endpoint=http%3A%2F%2F127.0.0.1%3A7070%2F", "inside the destination"},
		{"s3://bkt/data/?endpoint=HTTP://LocalHost:80/", "s3://bkt/data/?endpoint=http://localhost&region=eu-west-1", "the same"},
		{"s3://BKT/data/" + q, "s3://bkt/data/" + q, "the same"},
		{"s3://bkt/data/?endpoint=http://127.0.0.1:7070", "s3://bkt/data/?endpoint=http://127.0.0.1:7071", ""}, // another server
		{src, "http://example.com/upload", "only be a source"},
		{"s3://bkt/data/" + q, "https://example.com/x/", "only be a source"},
	} {
		s, d := mustEndpoint(t, tc.src), mustEndpoint(t, tc.dst)
		if !s.Single() {
			d = d.AsTree() // as run does
		}
		err := checkEndpoints(s, d)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s -> %s: %v", tc.src, tc.dst, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s -> %s: error %v, want %q", tc.src, tc.dst, err, tc.want)
		}
	}
}

// dest is where the engine tests write: a file:// tree or a prefix in a
// bucket of a real versitygw.
type dest struct {
	name   string
	root   string       // file: the directory under which prefixes are
	s3     *s3Server    // s3: the server
	bucket string       // s3: the bucket's name
	b      *blob.Bucket // s3: opened with the right credentials
}

// forEachDest runs fn against a file:// destination and an S3 one.
func forEachDest(t *testing.T, fn func(t *testing.T, d *dest)) {
	t.Run("file", func(t *testing.T) {
		fn(t, &dest{name: "file", root: t.TempDir()})
	})
	t.Run("s3", func(t *testing.T) {
		s := startS3(t, "bkt")
		fn(t, &dest{name: "s3", s3: s, bucket: "bkt", b: s.open(t, "bkt")})
	})
}

// url is the destination's location of prefix ("x/") or key.
func (d *dest) url(key string) string {
	if d.s3 != nil {
		return d.s3.url(d.bucket, key)
	}
	u := "file://" + filepath.Join(d.root, filepath.FromSlash(key))
	if strings.HasSuffix(key, "/") {
		u += "/"
	}
	return u
}

func (d *dest) ep(t testing.TB, key string) Endpoint { return mustEndpoint(t, d.url(key)) }

// read is every object under prefix, read without the engine.
func (d *dest) read(t testing.TB, prefix string) tree {
	t.Helper()
	if d.s3 != nil {
		return readPrefix(t, d.b, prefix)
	}
	return readDir(t, filepath.Join(d.root, filepath.FromSlash(prefix)))
}

// put writes an object without the engine.
func (d *dest) put(t testing.TB, key string, data []byte, meta map[string]string) {
	t.Helper()
	if d.s3 != nil {
		if err := d.b.WriteAll(context.Background(), key, data, &blob.WriterOptions{Metadata: meta}); err != nil {
			t.Fatal(err)
		}
		return
	}
	writeFile(t, filepath.Join(d.root, filepath.FromSlash(key)), data)
}

// flip changes one byte of an object, keeping its size, time (for a
// file) and metadata (for an object): only its content says it changed.
func (d *dest) flip(t testing.TB, key string, at int) {
	t.Helper()
	ctx := context.Background()
	if d.s3 != nil {
		a, err := d.b.Attributes(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		data, err := d.b.ReadAll(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		data[at] ^= 0xff
		d.put(t, key, data, a.Metadata)
		return
	}
	p := filepath.Join(d.root, filepath.FromSlash(key))
	flipFile(t, p, at)
}

// flipFile changes one byte of a file and puts its time back.
func flipFile(t testing.TB, p string, at int) {
	t.Helper()
	info, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, int64(at)); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, int64(at)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
}

func mustSync(t testing.TB, src, dst Endpoint, opts Options) *Report {
	t.Helper()
	rep, err := Sync(context.Background(), src, dst, opts)
	if err != nil {
		t.Fatalf("sync %s -> %s: %v", src, dst, err)
	}
	if !rep.OK() {
		t.Fatalf("sync %s -> %s: failed%s%s", src, dst, failuresString(rep.Failed), failuresString(rep.Mismatched))
	}
	return rep
}

// TestSyncRoundTrip copies many small files and two multipart-sized ones
// to the destination and back: every byte arrives, every object carries
// its SHA-256, and a second sync copies nothing.
func TestSyncRoundTrip(t *testing.T) {
	srcDir := t.TempDir()
	// 40 MiB: over the 8 MiB small-object threshold (streamed) and
	// three 16 MiB parts on S3.
	src := makeTree(t, srcDir, 300, 2, 40<<20)
	forEachDest(t, func(t *testing.T, d *dest) {
		ctx := context.Background()
		rep := mustSync(t, mustEndpoint(t, srcDir), d.ep(t, "data/"), Options{Transfers: 8})
		if rep.Totals.FilesListed != len(src) || rep.Totals.FilesTransferred != len(src) || rep.Totals.FilesSkipped != 0 ||
			rep.Totals.BytesTransferred != src.bytes() || rep.Result != "SUCCESS" || rep.Operation != "sync" {
			t.Fatalf("first sync: %+v, result %s", rep.Totals, rep.Result)
		}
		for _, e := range rep.Transferred {
			if e.SHA256 != sha256hex(src[e.Key]) || e.Size != int64(len(src[e.Key])) {
				t.Errorf("report entry %+v: want sha256 %s", e, sha256hex(src[e.Key]))
			}
		}
		sameTree(t, "destination", d.read(t, "data/"), src)
		if d.s3 != nil {
			for _, k := range src.keys() {
				a, err := d.b.Attributes(ctx, "data/"+k)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := a.Metadata[MetaSHA256], sha256hex(src[k]); got != want {
					t.Errorf("%s: metadata sha256 %q, want %q", k, got, want)
				}
				// As rclone records and reads it: seconds.nanoseconds.
				si, _ := os.Stat(filepath.Join(srcDir, k))
				if got, want := a.Metadata[MetaMtime], mtimeValue(si.ModTime()); got != want || !strings.HasPrefix(got, strconv.FormatInt(si.ModTime().Unix(), 10)) {
					t.Errorf("%s: metadata mtime %q, want %q", k, got, want)
				}
			}
			// The large ones went up in three 16 MiB parts (a multipart
			// ETag ends in -<parts>).
			h, err := d.s3.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(d.bucket), Key: aws.String("data/large/big0.bin")})
			if err != nil || !strings.HasSuffix(aws.ToString(h.ETag), "-3\"") {
				t.Errorf("big0.bin: ETag %s (%v), want a three-part upload", aws.ToString(h.ETag), err)
			}
		} else {
			// A local copy takes the source's time: the next sync sees it
			// as up to date without reading it.
			for _, k := range []string{"large/big0.bin", "small/d03/f0003.dat"} {
				si, _ := os.Stat(filepath.Join(srcDir, k))
				di, err := os.Stat(filepath.Join(d.root, "data", k))
				if err != nil || !di.ModTime().Equal(si.ModTime()) {
					t.Errorf("%s: destination time %v, source %v (%v)", k, di.ModTime(), si.ModTime(), err)
				}
			}
		}

		rep = mustSync(t, mustEndpoint(t, srcDir), d.ep(t, "data/"), Options{})
		if rep.Totals.FilesTransferred != 0 || rep.Totals.FilesSkipped != len(src) || rep.Totals.BytesSkipped != src.bytes() {
			t.Fatalf("second sync: %+v", rep.Totals)
		}

		// And back.
		backDir := filepath.Join(t.TempDir(), "back")
		rep = mustSync(t, d.ep(t, "data/"), mustEndpoint(t, backDir+"/"), Options{Transfers: 8})
		if rep.Totals.FilesTransferred != len(src) {
			t.Fatalf("sync back: %+v", rep.Totals)
		}
		sameTree(t, "back", readDir(t, backDir), src)
		rep = mustSync(t, d.ep(t, "data/"), mustEndpoint(t, backDir), Options{})
		if rep.Totals.FilesTransferred != 0 || rep.Totals.FilesSkipped != len(src) {
			t.Fatalf("second sync back: %+v", rep.Totals)
		}
		// The whole round trip verifies against the original.
		vr, err := Verify(ctx, mustEndpoint(t, srcDir), mustEndpoint(t, backDir), Options{})
		if err != nil || !vr.OK() || vr.Totals.FilesVerified != len(src) {
			t.Fatalf("verify: %+v, %v%s", vr.Totals, err, failuresString(vr.Mismatched))
		}
	})
}

// TestSyncOneFile copies one file, to a key and into a tree.
func TestSyncOneFile(t *testing.T) {
	srcDir := t.TempDir()
	data := randomBytes(7, 12<<20) // streamed
	writeFile(t, filepath.Join(srcDir, "model.bin"), data)
	small := []byte("hello\n")
	writeFile(t, filepath.Join(srcDir, "note.txt"), small)
	forEachDest(t, func(t *testing.T, d *dest) {
		rep := mustSync(t, mustEndpoint(t, filepath.Join(srcDir, "model.bin")), d.ep(t, "one/renamed.bin"), Options{})
		if rep.Totals.FilesTransferred != 1 {
			t.Fatalf("%+v", rep.Totals)
		}
		if _, err := Copy(context.Background(), mustEndpoint(t, filepath.Join(srcDir, "note.txt")), d.ep(t, "tree/"), Options{}); err != nil {
			t.Fatal(err)
		}
		sameTree(t, "one", d.read(t, "one/"), tree{"renamed.bin": data})
		sameTree(t, "tree", d.read(t, "tree/"), tree{"note.txt": small})
		rep = mustSync(t, mustEndpoint(t, filepath.Join(srcDir, "model.bin")), d.ep(t, "one/renamed.bin"), Options{})
		if rep.Totals.FilesTransferred != 0 || rep.Totals.FilesSkipped != 1 {
			t.Fatalf("again: %+v", rep.Totals)
		}
	})
}

// TestSyncChecksum: a file changed without a change of size or time is
// seen only by --checksum, which copies exactly that file.
func TestSyncChecksum(t *testing.T) {
	forEachDest(t, func(t *testing.T, d *dest) {
		srcDir := t.TempDir()
		src := makeTree(t, srcDir, 20, 1, 9<<20)
		mustSync(t, mustEndpoint(t, srcDir), d.ep(t, "c/"), Options{})
		for _, k := range []string{"small/d04/f0004.dat", "large/big0.bin"} {
			flipFile(t, filepath.Join(srcDir, k), 100)
			src[k][100] ^= 0xff
		}
		rep := mustSync(t, mustEndpoint(t, srcDir), d.ep(t, "c/"), Options{})
		if rep.Totals.FilesTransferred != 0 {
			t.Fatalf("without --checksum the change should go unseen: %+v", rep.Totals)
		}
		rep = mustSync(t, mustEndpoint(t, srcDir), d.ep(t, "c/"), Options{Checksum: true, Checkers: 4})
		if got := entryKeys(rep.Transferred); !equalStrings(got, []string{"large/big0.bin", "small/d04/f0004.dat"}) {
			t.Fatalf("--checksum transferred %v", got)
		}
		if rep.Totals.FilesSkipped != len(src)-2 {
			t.Errorf("skipped %d, want %d", rep.Totals.FilesSkipped, len(src)-2)
		}
		sameTree(t, "after --checksum", d.read(t, "c/"), src)
		if d.s3 != nil {
			a, err := d.b.Attributes(context.Background(), "c/small/d04/f0004.dat")
			if err != nil || a.Metadata[MetaSHA256] != sha256hex(src["small/d04/f0004.dat"]) {
				t.Errorf("metadata after re-copy: %v %v", a.Metadata, err)
			}
		}
		rep = mustSync(t, mustEndpoint(t, srcDir), d.ep(t, "c/"), Options{Checksum: true})
		if rep.Totals.FilesTransferred != 0 || rep.Totals.FilesSkipped != len(src) {
			t.Fatalf("--checksum again: %+v", rep.Totals)
		}
	})
}

// TestSyncDelete: --delete removes what the source lacks, except what
// the filters leave out; cp never deletes.
func TestSyncDelete(t *testing.T) {
	forEachDest(t, func(t *testing.T, d *dest) {
		srcDir := t.TempDir()
		src := tree{"a.txt": []byte("a"), "sub/b.txt": []byte("bb")}
		for k, v := range src {
			writeFile(t, filepath.Join(srcDir, k), v)
		}
		extras := tree{"old.txt": []byte("old"), "sub/old.bin": []byte("o"), "deep/x/y.txt": []byte("y"), "keep.log": []byte("log"), "sub/keep.log": []byte("log2")}
		for k, v := range extras {
			d.put(t, "del/"+k, v, nil)
		}
		all := tree{}
		for k, v := range src {
			all[k] = v
		}
		for k, v := range extras {
			all[k] = v
		}
		// cp with Delete set still deletes nothing.
		rep, err := Copy(context.Background(), mustEndpoint(t, srcDir), d.ep(t, "del/"), Options{Delete: true, Exclude: []string{"*.log"}})
		if err != nil || !rep.OK() || len(rep.Deleted) != 0 || rep.Operation != "copy" {
			t.Fatalf("copy: %+v, %v", rep, err)
		}
		sameTree(t, "after cp", d.read(t, "del/"), all)
		// sync without --delete neither.
		mustSync(t, mustEndpoint(t, srcDir), d.ep(t, "del/"), Options{})
		sameTree(t, "after sync", d.read(t, "del/"), all)

		rep = mustSync(t, mustEndpoint(t, srcDir), d.ep(t, "del/"), Options{Delete: true, Exclude: []string{"*.log"}})
		if want := []string{"deep/x/y.txt", "old.txt", "sub/old.bin"}; !equalStrings(rep.Deleted, want) || rep.Totals.FilesDeleted != 3 {
			t.Fatalf("deleted %v (%d), want %v", rep.Deleted, rep.Totals.FilesDeleted, want)
		}
		want := tree{"keep.log": extras["keep.log"], "sub/keep.log": extras["sub/keep.log"]}
		for k, v := range src {
			want[k] = v
		}
		sameTree(t, "after sync --delete", d.read(t, "del/"), want)
	})
}

// TestSyncDeleteRefusedAfterFailure: when a file cannot be written,
// nothing is deleted.
func TestSyncDeleteRefusedAfterFailure(t *testing.T) {
	forEachDest(t, func(t *testing.T, d *dest) {
		srcDir := t.TempDir()
		writeFile(t, filepath.Join(srcDir, "ok.txt"), []byte("ok"))
		// A file where the destination has a directory of that name (a
		// "directory" object on versitygw's posix backend): its write
		// cannot complete.
		writeFile(t, filepath.Join(srcDir, "clash"), []byte("file"))
		d.put(t, "r/clash/inner.txt", []byte("in a dir"), nil)
		d.put(t, "r/extra.txt", []byte("extra"), nil)

		rep, err := Sync(context.Background(), mustEndpoint(t, srcDir), d.ep(t, "r/"), Options{Delete: true, Retries: 1, RetryDelay: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() || rep.Result != "ERROR" || rep.Totals.FilesTransferred != 1 {
			t.Fatalf("a failed write should fail the sync: %+v", rep)
		}
		if len(rep.Deleted) != 0 || rep.Totals.FilesDeleted != 0 {
			t.Fatalf("deleted %v after a failure", rep.Deleted)
		}
		var clash, refused bool
		for _, f := range rep.Failed {
			clash = clash || f.Key == "clash"
			refused = refused || f.Key == "" && strings.Contains(f.Reason, "not deleting 2 destination files")
		}
		if !clash || !refused {
			t.Fatalf("failures should name clash and the refused delete:%s", failuresString(rep.Failed))
		}
		sameTree(t, "destination", d.read(t, "r/"), tree{
			"ok.txt": []byte("ok"), "clash/inner.txt": []byte("in a dir"), "extra.txt": []byte("extra"),
		})
	})
}

// TestSyncFilters: only included keys travel, and excludes win.
func TestSyncFilters(t *testing.T) {
	forEachDest(t, func(t *testing.T, d *dest) {
		srcDir := t.TempDir()
		files := []string{"a.bin", "a.txt", "sub/b.bin", "sub/c.txt", "skip/d.bin", "x/skip/e.bin", "x/y/z.txt"}
		src := tree{}
		for i, k := range files {
			src[k] = []byte(strings.Repeat(string(rune('a'+i)), i+1))
			writeFile(t, filepath.Join(srcDir, k), src[k])
		}
		rep := mustSync(t, mustEndpoint(t, srcDir), d.ep(t, "f/"), Options{Include: []string{"*.bin", "x/**"}, Exclude: []string{"skip/**", "**/z.txt"}})
		want := tree{"a.bin": src["a.bin"], "sub/b.bin": src["sub/b.bin"], "x/skip/e.bin": src["x/skip/e.bin"]}
		sameTree(t, "filtered", d.read(t, "f/"), want)
		if rep.Totals.FilesListed != 3 || rep.Totals.FilesTransferred != 3 {
			t.Errorf("totals %+v", rep.Totals)
		}
		// Verify with the same filters is clean; without them it finds
		// what was left out.
		vr, err := Verify(context.Background(), mustEndpoint(t, srcDir), d.ep(t, "f/"), Options{Include: []string{"*.bin", "x/**"}, Exclude: []string{"skip/**", "**/z.txt"}})
		if err != nil || !vr.OK() || vr.Totals.FilesVerified != 3 {
			t.Fatalf("verify with filters: %+v %v%s", vr.Totals, err, failuresString(vr.Mismatched))
		}
		vr, err = Verify(context.Background(), mustEndpoint(t, srcDir), d.ep(t, "f/"), Options{})
		if err != nil || vr.OK() {
			t.Fatalf("verify without filters: %+v, %v", vr, err)
		}
		if got := failureKeys(vr.Mismatched); !equalStrings(got, []string{"a.txt", "skip/d.bin", "sub/c.txt", "x/y/z.txt"}) {
			t.Errorf("missing: %v", got)
		}
		if _, err := Sync(context.Background(), mustEndpoint(t, srcDir), d.ep(t, "f/"), Options{Include: []string{"[x"}}); err == nil || !strings.Contains(err.Error(), "bad pattern") {
			t.Errorf("bad pattern: %v", err)
		}
	})
}

// TestSyncDryRun: a dry run reports what it would do and changes nothing.
func TestSyncDryRun(t *testing.T) {
	forEachDest(t, func(t *testing.T, d *dest) {
		srcDir := t.TempDir()
		src := makeTree(t, srcDir, 10, 0, 0)
		mustSync(t, mustEndpoint(t, srcDir), d.ep(t, "dry/"), Options{})
		// One new file at the source, one changed in size, one extra at
		// the destination.
		writeFile(t, filepath.Join(srcDir, "new.txt"), []byte("new"))
		writeFile(t, filepath.Join(srcDir, "small/d01/f0001.dat"), []byte("shorter"))
		d.put(t, "dry/extra.txt", []byte("extra"), nil)
		before := d.read(t, "dry/")

		rep, err := Sync(context.Background(), mustEndpoint(t, srcDir), d.ep(t, "dry/"), Options{DryRun: true, Delete: true})
		if err != nil || !rep.OK() || !rep.DryRun {
			t.Fatalf("dry run: %+v, %v", rep, err)
		}
		if got := entryKeys(rep.Transferred); !equalStrings(got, []string{"new.txt", "small/d01/f0001.dat"}) {
			t.Errorf("would transfer %v", got)
		}
		if !equalStrings(rep.Deleted, []string{"extra.txt"}) {
			t.Errorf("would delete %v", rep.Deleted)
		}
		if rep.Totals.FilesSkipped != len(src)-1 {
			t.Errorf("would skip %d, want %d", rep.Totals.FilesSkipped, len(src)-1)
		}
		sameTree(t, "after dry run", d.read(t, "dry/"), before)
		// A dry run of cp into an empty prefix lists everything and
		// writes nothing.
		if d.s3 != nil {
			rep, err := Copy(context.Background(), mustEndpoint(t, srcDir), d.ep(t, "empty/"), Options{DryRun: true})
			if err != nil || rep.Totals.FilesTransferred != len(src)+1 {
				t.Fatalf("dry-run cp: %+v, %v", rep, err)
			}
			if got := d.read(t, "empty/"); len(got) != 0 {
				t.Fatalf("dry-run cp wrote %v", got.keys())
			}
		}
	})
}

// TestVerifyFindsCorruption: a byte flipped at the destination (size,
// time and recorded checksum unchanged) is found by Verify, and only
// that file is named; a missing file is named too.
func TestVerifyFindsCorruption(t *testing.T) {
	forEachDest(t, func(t *testing.T, d *dest) {
		ctx := context.Background()
		srcDir := t.TempDir()
		src := makeTree(t, srcDir, 50, 1, 9<<20)
		mustSync(t, mustEndpoint(t, srcDir), d.ep(t, "v/"), Options{})
		rep, err := Verify(ctx, mustEndpoint(t, srcDir), d.ep(t, "v/"), Options{})
		if err != nil || !rep.OK() || rep.Totals.FilesVerified != len(src) || rep.Totals.FilesListed != len(src) || rep.Operation != "verify" {
			t.Fatalf("clean verify: %+v, %v%s", rep.Totals, err, failuresString(rep.Mismatched))
		}

		d.flip(t, "v/small/d07/f0017.dat", 5)
		rep, err = Verify(ctx, mustEndpoint(t, srcDir), d.ep(t, "v/"), Options{Checkers: 3})
		if err != nil {
			t.Fatal(err)
		}
		if got := failureKeys(rep.Mismatched); !equalStrings(got, []string{"small/d07/f0017.dat"}) || rep.Result != "ERROR" {
			t.Fatalf("mismatched %v (%s), want only small/d07/f0017.dat", got, rep.Result)
		}
		if !strings.Contains(rep.Mismatched[0].Reason, "content differs") || rep.Totals.FilesVerified != len(src)-1 {
			t.Errorf("reason %q, verified %d", rep.Mismatched[0].Reason, rep.Totals.FilesVerified)
		}
		// A sync by size and time does not see it; with verify=all it is
		// reported.
		srep, err := Sync(ctx, mustEndpoint(t, srcDir), d.ep(t, "v/"), Options{Verify: VerifyAll})
		if err != nil || srep.Totals.FilesTransferred != 0 {
			t.Fatalf("sync --verify all: %+v, %v", srep, err)
		}
		if got := failureKeys(srep.Mismatched); !equalStrings(got, []string{"small/d07/f0017.dat"}) || srep.OK() {
			t.Fatalf("sync --verify all: mismatched %v", got)
		}
		// --checksum repairs it (on S3 the recorded checksum still says
		// the old content; the checksum sync trusts it, so only a
		// re-read finds the damage).
		if d.s3 == nil {
			srep = mustSync(t, mustEndpoint(t, srcDir), d.ep(t, "v/"), Options{Checksum: true, Verify: VerifyTransferred})
			if got := entryKeys(srep.Transferred); !equalStrings(got, []string{"small/d07/f0017.dat"}) || srep.Totals.FilesVerified != 1 {
				t.Fatalf("repair: %v, verified %d", got, srep.Totals.FilesVerified)
			}
			sameTree(t, "repaired", d.read(t, "v/"), src)
		}
	})
}

// TestSyncVerifyModes: verify=transferred re-reads what was written;
// an unknown mode is refused before anything is written.
func TestSyncVerifyModes(t *testing.T) {
	forEachDest(t, func(t *testing.T, d *dest) {
		srcDir := t.TempDir()
		src := makeTree(t, srcDir, 30, 1, 9<<20)
		rep := mustSync(t, mustEndpoint(t, srcDir), d.ep(t, "m/"), Options{Verify: VerifyTransferred})
		if rep.Totals.FilesVerified != len(src) || rep.VerifyMode != VerifyTransferred {
			t.Fatalf("verify transferred: %+v", rep.Totals)
		}
		writeFile(t, filepath.Join(srcDir, "late.txt"), []byte("late"))
		rep = mustSync(t, mustEndpoint(t, srcDir), d.ep(t, "m/"), Options{Verify: VerifyTransferred})
		if rep.Totals.FilesVerified != 1 || rep.Totals.FilesTransferred != 1 {
			t.Fatalf("verify transferred, one new: %+v", rep.Totals)
		}
		rep = mustSync(t, mustEndpoint(t, srcDir), d.ep(t, "m/"), Options{Verify: VerifyAll})
		if rep.Totals.FilesVerified != len(src)+1 || rep.Totals.FilesTransferred != 0 {
			t.Fatalf("verify all: %+v", rep.Totals)
		}
		_, err := Sync(context.Background(), mustEndpoint(t, srcDir), d.ep(t, "other/"), Options{Verify: "some"})
		if err == nil || !strings.Contains(err.Error(), "verify mode") {
			t.Fatalf("bad verify mode: %v", err)
		}
		if got := d.read(t, "other/"); len(got) != 0 {
			t.Fatalf("a refused sync wrote %v", got.keys())
		}
	})
}

// TestBandwidthLimit: the limit holds across all parallel transfers.
// The issue asks for "bandwidth limit respected within 10 %", so this
// test (unlike the rest) looks at the clock: the copy may not be more
// than 10 % faster than the limit allows. No upper bound is asserted.
func TestBandwidthLimit(t *testing.T) {
	srcDir := t.TempDir()
	src := tree{}
	for i := range 8 {
		k := "part" + string(rune('0'+i))
		src[k] = randomBytes(uint64(i), 1<<20)
		writeFile(t, filepath.Join(srcDir, k), src[k])
	}
	s := startS3(t, "bkt")
	d := &dest{name: "s3", s3: s, bucket: "bkt", b: s.open(t, "bkt")}
	const limit = 4 << 20
	start := time.Now()
	rep := mustSync(t, mustEndpoint(t, srcDir), d.ep(t, "bw/"), Options{BwLimit: limit, Transfers: 4})
	elapsed := time.Since(start)
	if rep.Totals.BytesTransferred != 8<<20 {
		t.Fatalf("%+v", rep.Totals)
	}
	ideal := time.Duration(float64(src.bytes()) / limit * float64(time.Second))
	if elapsed < ideal*9/10 {
		t.Fatalf("8 MiB at 4 MiB/s took %v: faster than the limit allows (ideal %v)", elapsed, ideal)
	}
	t.Logf("8 MiB at 4 MiB/s: %v (ideal %v)", elapsed, ideal)
	sameTree(t, "limited", d.read(t, "bw/"), src)
}

// TestBandwidthLimitDownloads: the limit holds on downloads from S3 too,
// by direct GETs of small objects and by the ranges of a large one (4
// at a time). Only a lower bound on the time is asserted.
func TestBandwidthLimitDownloads(t *testing.T) {
	ctx := context.Background()
	s := startS3(t, "bkt")
	b := s.open(t, "bkt")
	want := tree{"large.bin": randomBytes(31, rangedMin+1<<20)}
	for i := range 4 {
		want[fmt.Sprintf("small%d.bin", i)] = randomBytes(uint64(32+i), 1<<20)
	}
	for k, data := range want {
		if err := b.WriteAll(ctx, "bw/"+k, data, nil); err != nil {
			t.Fatal(err)
		}
	}
	const limit = 16 << 20
	dstDir := t.TempDir()
	start := time.Now()
	rep := mustSync(t, mustEndpoint(t, s.url("bkt", "bw/")), mustEndpoint(t, dstDir+"/"), Options{BwLimit: limit, Transfers: 4})
	elapsed := time.Since(start)
	if rep.Totals.BytesTransferred != want.bytes() {
		t.Fatalf("%+v", rep.Totals)
	}
	ideal := time.Duration(float64(want.bytes()) / limit * float64(time.Second))
	if elapsed < ideal*9/10 {
		t.Fatalf("%d MiB at 16 MiB/s took %v: faster than the limit allows (ideal %v)", want.bytes()>>20, elapsed, ideal)
	}
	t.Logf("%d MiB down at 16 MiB/s: %v (ideal %v)", want.bytes()>>20, elapsed, ideal)
	sameTree(t, "limited", readDir(t, dstDir), want)
}

// TestBandwidthLimitHashPass: a large file going to S3 from a source
// that records no SHA-256 is read twice — once to hash it (the checksum
// goes with the upload), once to copy it — and the limit holds over both
// reads. Only a lower bound on the time is asserted, with a 20 % margin.
func TestBandwidthLimitHashPass(t *testing.T) {
	srcDir := t.TempDir()
	data := randomBytes(21, smallObject+1<<20) // over the small-object size: streamed
	writeFile(t, filepath.Join(srcDir, "large.bin"), data)
	s := startS3(t, "bkt")
	d := &dest{name: "s3", s3: s, bucket: "bkt", b: s.open(t, "bkt")}
	const limit = 6 << 20
	start := time.Now()
	rep := mustSync(t, mustEndpoint(t, srcDir), d.ep(t, "bw/"), Options{BwLimit: limit})
	elapsed := time.Since(start)
	if rep.Totals.BytesTransferred != int64(len(data)) {
		t.Fatalf("%+v", rep.Totals)
	}
	read := 2 * len(data) // the hash pass and the copy
	ideal := time.Duration(float64(read) / limit * float64(time.Second))
	if elapsed < ideal*8/10 {
		t.Fatalf("%d MiB read (hashed, then copied) at 6 MiB/s took %v: faster than the limit allows (ideal %v)", read>>20, elapsed, ideal)
	}
	t.Logf("%d MiB read at 6 MiB/s: %v (ideal %v)", read>>20, elapsed, ideal)
	sameTree(t, "limited", d.read(t, "bw/"), tree{"large.bin": data})
}

// TestSourceChangedWhileCopied: a large file changed between the read
// that takes its SHA-256 and the copy (same size, same time) is not
// stored under the old checksum; tried again, it is stored with the new
// one.
func TestSourceChangedWhileCopied(t *testing.T) {
	for _, size := range []int{smallObject + 1<<20, 2*hblob.DefaultPart + 1} { // one PUT; a multipart upload
		t.Run(fmt.Sprintf("%dMiB", size>>20), func(t *testing.T) { testSourceChangedWhileCopied(t, size) })
	}
}

func testSourceChangedWhileCopied(t *testing.T, size int) {
	srcDir := t.TempDir()
	data := randomBytes(22, size)
	path := filepath.Join(srcDir, "large.bin")
	writeFile(t, path, data)
	s := startS3(t, "bkt")
	d := &dest{name: "s3", s3: s, bucket: "bkt", b: s.open(t, "bkt")}
	flips, at := 0, len(data)-1
	opts := Options{afterPreSum: func(string) {
		if flips == 0 {
			flipFile(t, path, at)
		}
		flips++
	}}

	rep, err := Sync(context.Background(), mustEndpoint(t, srcDir), d.ep(t, "once/"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failed) != 1 || !strings.Contains(rep.Failed[0].Reason, "source changed while copied") {
		t.Fatalf("a source changed during its copy: failures %+v", rep.Failed)
	}
	if got := d.read(t, "once/"); len(got) != 0 {
		t.Fatalf("a copy of a changed source left %d objects", len(got))
	}

	flips, at = 0, 0 // another byte: the file must differ from data
	opts.Retries, opts.RetryDelay = 1, time.Millisecond
	rep = mustSync(t, mustEndpoint(t, srcDir), d.ep(t, "retried/"), opts)
	if flips != 2 || rep.Totals.FilesTransferred != 1 {
		t.Fatalf("%d first reads, %+v", flips, rep.Totals)
	}
	changed, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(changed, data) { // flipped twice: a test that proves nothing
		t.Fatal("the source is as it was")
	}
	sameTree(t, "changed, then copied again", d.read(t, "retried/"), tree{"large.bin": changed})
	a, err := d.b.Attributes(context.Background(), "retried/large.bin")
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(changed); a.Metadata[MetaSHA256] != hex.EncodeToString(sum[:]) {
		t.Fatalf("recorded SHA-256 %s is not the new content's", a.Metadata[MetaSHA256])
	}
}

// TestHTTPSource copies from an http(s) URL.
func TestHTTPSource(t *testing.T) {
	data := randomBytes(9, 9<<20)
	mod := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/files/weights.bin" {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "weights.bin", mod, bytes.NewReader(data))
	}))
	defer srv.Close()
	forEachDest(t, func(t *testing.T, d *dest) {
		rep := mustSync(t, mustEndpoint(t, srv.URL+"/files/weights.bin"), d.ep(t, "h/"), Options{})
		if rep.Totals.FilesTransferred != 1 || rep.Transferred[0].SHA256 != sha256hex(data) {
			t.Fatalf("%+v", rep)
		}
		sameTree(t, "from http", d.read(t, "h/"), tree{"weights.bin": data})
		rep = mustSync(t, mustEndpoint(t, srv.URL+"/files/weights.bin"), d.ep(t, "h/"), Options{})
		if rep.Totals.FilesSkipped != 1 {
			t.Errorf("again: %+v", rep.Totals)
		}
		_, err := Sync(context.Background(), mustEndpoint(t, srv.URL+"/files/missing.bin"), d.ep(t, "h2/"), Options{})
		if err == nil || !strings.Contains(err.Error(), "404") {
			t.Errorf("missing http source: %v", err)
		}
		if got := d.read(t, "h2/"); len(got) != 0 {
			t.Errorf("wrote %v", got.keys())
		}
	})
}

// TestCheckEndpointsSymlinks: a path through a symlink is where the link
// leads. A sync from src/inner reached through a link to src, into src,
// would delete the source with --delete; it is refused, dry run or not,
// and so is a destination inside the source reached through a link, even
// one that does not exist yet.
func TestCheckEndpointsSymlinks(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFile(t, filepath.Join(src, "inner", "f.txt"), []byte("f"))
	writeFile(t, filepath.Join(src, "g.txt"), []byte("g"))
	alias := filepath.Join(dir, "alias")
	if err := os.Symlink("src", alias); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(src, "g.txt"), filepath.Join(dir, "g-link.txt")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ src, dst, want string }{
		{filepath.Join(alias, "inner"), src, "inside the destination"},
		{src, filepath.Join(alias, "inner"), "inside the source"},
		{src, filepath.Join(alias, "new", "deeper") + "/", "inside the source"},
		{alias, src, "the same"},
		{alias + "/", "file://" + src + "/", "the same"},
		{filepath.Join(dir, "g-link.txt"), filepath.Join(src, "g.txt"), "the same"},
		{filepath.Join(alias, "inner"), filepath.Join(dir, "elsewhere") + "/", ""},
	} {
		for _, opts := range []Options{{Delete: true, DryRun: true}, {Delete: true}} {
			_, err := Sync(context.Background(), mustEndpoint(t, tc.src), mustEndpoint(t, tc.dst), opts)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("%s -> %s: %v", tc.src, tc.dst, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("%s -> %s (dry run %v): error %v, want %q", tc.src, tc.dst, opts.DryRun, err, tc.want)
			}
		}
		sameTree(t, "source", readDir(t, src), tree{"inner/f.txt": []byte("f"), "g.txt": []byte("g")})
	}
}

// Large uploads to S3 take their part buffers from a budget: with room
// for one file's buffers, four large files go one at a time (memory
// bounded whatever the sizes and the transfers), and a file whose buffers
// exceed the budget alone still goes.
func TestUploadMemoryBudget(t *testing.T) {
	srcDir := t.TempDir()
	src := tree{}
	for i := range 4 {
		src[fmt.Sprintf("f%d.bin", i)] = randomBytes(uint64(30+i), smallObject+1<<20)
	}
	for k, v := range src {
		writeFile(t, filepath.Join(srcDir, k), v)
	}
	s := startS3(t, "bkt")
	d := &dest{name: "s3", s3: s, bucket: "bkt", b: s.open(t, "bkt")}
	one := uploadBuffers(smallObject + 1<<20)
	for _, budget := range []int64{one, one / 2} {
		var mu sync.Mutex
		var peak int64
		opts := Options{Transfers: 4, MaxMemory: budget, memoryProbe: func(inUse int64) {
			mu.Lock()
			peak = max(peak, inUse)
			mu.Unlock()
		}}
		prefix := fmt.Sprintf("mem%d/", budget)
		rep := mustSync(t, mustEndpoint(t, srcDir), d.ep(t, prefix), opts)
		if rep.Totals.FilesTransferred != 4 {
			t.Fatalf("budget %d: %+v", budget, rep.Totals)
		}
		if peak == 0 || peak > budget {
			t.Fatalf("budget %d MiB: upload buffers peaked at %d MiB", budget>>20, peak>>20)
		}
		sameTree(t, "under a memory budget", d.read(t, prefix), src)
	}
}
