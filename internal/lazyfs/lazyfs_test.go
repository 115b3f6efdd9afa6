package lazyfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/hpcml/hpcml/internal/dataset"
)

// requireFUSE fails in CI (which runs as root with /dev/fuse) and skips
// elsewhere when the machine cannot mount.
func requireFUSE(t *testing.T) {
	t.Helper()
	_, err := os.Stat("/dev/fuse")
	if err == nil && os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("FUSE tests need root and /dev/fuse in CI: %v", err)
	}
	t.Skip("needs root and /dev/fuse")
}

// source is a dataset's objects as local files, counting fetches.
type source struct {
	dir     string
	mu      sync.Mutex
	fetched []string
}

func (s *source) fetch(ctx context.Context, o dataset.Object) (*os.File, error) {
	s.mu.Lock()
	s.fetched = append(s.fetched, o.Key)
	s.mu.Unlock()
	if o.Key == "broken" {
		return nil, errors.New("checksum mismatch")
	}
	return os.Open(filepath.Join(s.dir, filepath.FromSlash(o.Key)))
}

func (s *source) fetches() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.fetched)
}

func object(t *testing.T, dir, key, content string) dataset.Object {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(content))
	return dataset.Object{Key: key, Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:])}
}

func TestLazyMount(t *testing.T) {
	requireFUSE(t)
	src := &source{dir: t.TempDir()}
	objects := []dataset.Object{
		object(t, src.dir, "a.txt", "alpha"),
		object(t, src.dir, "sub/b.bin", "bravo bravo"),
		object(t, src.dir, "sub/deep/c", "charlie"),
		{Key: "broken", Size: 3, SHA256: "00"},
	}
	mnt := t.TempDir()
	m, err := New(mnt, objects, src.fetch)
	if err != nil {
		t.Fatal(err)
	}
	unmounted := false
	t.Cleanup(func() {
		if !unmounted {
			m.Unmount()
		}
	})

	// Listing and stat come from the manifest: nothing fetched.
	entries, err := os.ReadDir(filepath.Join(mnt, "sub"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"b.bin", "deep"}) {
		t.Fatalf("sub lists %v", names)
	}
	info, err := os.Stat(filepath.Join(mnt, "sub/b.bin"))
	if err != nil || info.Size() != 11 || info.Mode().Perm() != 0o444 {
		t.Fatalf("stat b.bin: %v %v", info, err)
	}
	if got := src.fetches(); len(got) != 0 {
		t.Fatalf("listing fetched %v", got)
	}

	// Opening fetches nothing; reading fetches that file only.
	if f, err := os.Open(filepath.Join(mnt, "a.txt")); err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}
	data, err := os.ReadFile(filepath.Join(mnt, "sub/deep/c"))
	if err != nil || string(data) != "charlie" {
		t.Fatalf("read c: %q %v", data, err)
	}
	if got := src.fetches(); !slices.Equal(got, []string{"sub/deep/c"}) {
		t.Fatalf("fetched %v, want only sub/deep/c", got)
	}

	// Read-only, and a failed fetch is an I/O error the mount records.
	if err := os.WriteFile(filepath.Join(mnt, "a.txt"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write a.txt: %v, want EROFS", err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "new"), []byte("x"), 0o644); err == nil {
		t.Fatal("created a file on the mount")
	}
	if _, err := os.ReadFile(filepath.Join(mnt, "broken")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read broken: %v, want EIO", err)
	}
	if errs := m.FetchErrors(); len(errs) != 1 || errs[0] != "broken: checksum mismatch" {
		t.Fatalf("fetch errors %q", errs)
	}

	if err := m.Unmount(); err != nil {
		t.Fatal(err)
	}
	unmounted = true
	if entries, err := os.ReadDir(mnt); err != nil || len(entries) != 0 {
		t.Fatalf("after unmount: %v %v", entries, err)
	}
}

func TestRefusesConflictingKeys(t *testing.T) {
	for _, keys := range [][]string{{"a", "a/b"}, {"a/b", "a"}, {"../x"}, {"/abs"}, {"."}, {"a//b"}} {
		var objects []dataset.Object
		for _, k := range keys {
			objects = append(objects, dataset.Object{Key: k})
		}
		if _, err := buildTree(objects); err == nil {
			t.Errorf("keys %q accepted", keys)
		}
	}
}

// A mount whose server died (kill -9) is detached by DetachUnder, after
// which the directory can be removed.
func TestDetachUnderDeadMount(t *testing.T) {
	requireFUSE(t)
	src := &source{dir: t.TempDir()}
	root := t.TempDir()
	mnt := filepath.Join(root, "attempt", "work", "data")
	os.MkdirAll(mnt, 0o755)
	m, err := New(mnt, []dataset.Object{object(t, src.dir, "f", "x")}, src.fetch)
	if err != nil {
		t.Fatal(err)
	}
	points, err := MountsUnder(root)
	if err != nil || !slices.Equal(points, []string{mnt}) {
		t.Fatalf("mounts under %s: %v %v", root, points, err)
	}
	if err := DetachUnder(root); err != nil {
		t.Fatal(err)
	}
	m.server.Wait() // the detach ended the server as a kill would have
	if points, _ := MountsUnder(root); len(points) != 0 {
		t.Fatalf("still mounted: %v", points)
	}
	if err := os.RemoveAll(filepath.Join(root, "attempt")); err != nil {
		t.Fatal(err)
	}
}
