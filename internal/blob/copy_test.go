package blob

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	gcblob "gocloud.dev/blob"
)

func put(t *testing.T, b *Bucket, key, data string) {
	t.Helper()
	if _, err := UploadReader(context.Background(), b, key, strings.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

func listAll(t *testing.T, b *Bucket) map[string]string {
	t.Helper()
	ctx := context.Background()
	got := map[string]string{}
	it := b.List(&gcblob.ListOptions{})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := b.ReadAll(ctx, obj.Key)
		if err != nil {
			t.Fatal(err)
		}
		got[obj.Key] = string(data)
	}
}

// fileStore is a file:// store in a temp dir, opened in a bucket cache
// closed when the test ends.
func fileStore(t *testing.T) (store string, shared *Cache, b *Bucket) {
	t.Helper()
	store = "file://" + t.TempDir()
	shared = NewCache()
	t.Cleanup(func() { shared.Close() })
	b, err := shared.Open(context.Background(), store)
	if err != nil {
		t.Fatal(err)
	}
	return store, shared, b
}

func openRoot(t *testing.T) (string, *os.Root) {
	t.Helper()
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return dir, root
}

func TestDownloadSkipsFolderMarkers(t *testing.T) {
	ctx := context.Background()
	store, shared, b := fileStore(t)
	// What an S3 console leaves for folders: empty objects named "x/".
	put(t, b, "in/", "")
	put(t, b, "in/sub/", "")
	put(t, b, "in/a.txt", "a")
	put(t, b, "in/sub/b.txt", "b")
	put(t, b, "empty/", "")

	dir, root := openRoot(t)
	s := NewStager(store, shared)
	defer s.Close()
	if _, err := s.Download(ctx, "in/", root, "data"); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{"data/a.txt": "a", "data/sub/b.txt": "b"} {
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q %v", f, got, err)
		}
	}
	// A folder with nothing but its marker holds no objects.
	if _, err := s.Download(ctx, "empty/", root, "e"); err == nil || !strings.Contains(err.Error(), "no objects") {
		t.Errorf("got %v, want no objects", err)
	}
}

func TestUploadFollowsSymlinksInsideTheJobDir(t *testing.T) {
	ctx := context.Background()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644)
	dir, root := openRoot(t)
	for _, d := range []string{"out/sub", "elsewhere"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "out/real.txt"), []byte("real"), 0o644)
	os.WriteFile(filepath.Join(dir, "out/sub/deep.txt"), []byte("deep"), 0o644)
	os.WriteFile(filepath.Join(dir, "elsewhere/other.txt"), []byte("other"), 0o644)
	os.Symlink("real.txt", filepath.Join(dir, "out/link.txt"))
	os.Symlink("../elsewhere/other.txt", filepath.Join(dir, "out/other.txt"))
	os.Symlink("sub", filepath.Join(dir, "out/latest")) // a directory: not followed

	store := "file://" + t.TempDir()
	shared := NewCache()
	defer shared.Close()
	s := NewStager(store, shared)
	defer s.Close()
	if _, err := s.Upload(ctx, root, "out", "res/"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Upload(ctx, root, "out/link.txt", "single.txt"); err != nil {
		t.Fatal(err)
	}
	b, _ := shared.Open(ctx, store)
	got := listAll(t, b)
	want := map[string]string{"res/real.txt": "real", "res/link.txt": "real", "res/other.txt": "other",
		"res/sub/deep.txt": "deep", "single.txt": "real"}
	if len(got) != len(want) {
		t.Errorf("objects %v, want %v", keys(got), keys(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}

	// A symlink that leaves the job dir is refused, in a directory as
	// for a single file.
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "out/escape"))
	if _, err := s.Upload(ctx, root, "out", "res2/"); err == nil {
		t.Error("an output dir with a symlink out of the job dir was uploaded")
	}
	if _, err := s.Upload(ctx, root, "out/escape", "res3"); err == nil {
		t.Error("a symlink out of the job dir was uploaded")
	}
	for k, v := range listAll(t, b) {
		if v == "secret" {
			t.Errorf("%s uploaded from outside the job dir", k)
		}
	}
}

func TestStagerOwnsBucketsOtherThanTheDefault(t *testing.T) {
	ctx := context.Background()
	store, other := "file://"+t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(other, "x.txt"), []byte("x"), 0o644)
	shared := NewCache()
	defer shared.Close()
	_, root := openRoot(t)
	s := NewStager(store, shared)
	if _, err := s.Download(ctx, "file://"+other+"/x.txt", root, "x.txt"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Upload(ctx, root, "x.txt", "y.txt"); err != nil {
		t.Fatal(err)
	}
	if len(shared.buckets) != 1 || shared.buckets[store] == nil {
		t.Errorf("shared cache holds %v, want only the default bucket", keys(shared.buckets))
	}
	if len(s.own.buckets) != 1 {
		t.Errorf("stager holds %v", keys(s.own.buckets))
	}
	s.Close()
	if len(s.own.buckets) != 0 {
		t.Error("Close left buckets open")
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Reading from a file:// directory that does not exist fails and creates
// nothing; writing an output to one creates it.
func TestFileURLsCreateDirectoriesOnlyForOutputs(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	dir, root := openRoot(t)
	s := NewStager("file://"+filepath.Join(base, "default"), NewCache())
	defer s.Close()

	missing := filepath.Join(base, "nope")
	if _, err := s.Download(ctx, "file://"+missing+"/x.txt", root, "x.txt"); err == nil {
		t.Fatal("download from a missing directory succeeded")
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a failed download created %s (%v)", missing, err)
	}

	if err := os.WriteFile(filepath.Join(dir, "out.txt"), []byte("result"), 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(base, "new", "results")
	if _, err := s.Upload(ctx, root, "out.txt", "file://"+target+"/"); err != nil {
		t.Fatalf("upload to a new directory: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(target, "out.txt")); err != nil || string(b) != "result" {
		t.Errorf("uploaded file: %q, %v", b, err)
	}
}

// TestDownloadPrefixInParallel: a prefix of many objects in nested dirs
// arrives whole (copied several at a time), with every byte counted, and
// no temporary file left.
func TestDownloadPrefixInParallel(t *testing.T) {
	ctx := context.Background()
	store, shared, b := fileStore(t)
	want := map[string]string{}
	var bytes int64
	for i := range 40 {
		key := fmt.Sprintf("d%d/s%d/f%02d.txt", i%3, i%5, i)
		body := strings.Repeat(strconv.Itoa(i), i+1)
		put(t, b, "in/"+key, body)
		want[key] = body
		bytes += int64(len(body))
	}
	dir, root := openRoot(t)
	s := NewStager(store, shared)
	defer s.Close()
	n, err := s.Download(ctx, "in/", root, "data")
	if err != nil || n != bytes {
		t.Fatalf("download: %d bytes (%v), want %d", n, err, bytes)
	}
	files := 0
	filepath.WalkDir(filepath.Join(dir, "data"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files++
			rel, _ := filepath.Rel(filepath.Join(dir, "data"), p)
			if got, _ := os.ReadFile(p); string(got) != want[filepath.ToSlash(rel)] {
				t.Errorf("%s: %q, want %q", rel, got, want[filepath.ToSlash(rel)])
			}
		}
		return nil
	})
	if files != len(want) {
		t.Fatalf("%d files in the job dir, want %d (no temporaries)", files, len(want))
	}
}
