package transfer

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A local file appears under its name only when committed, with the
// source's time; an aborted one leaves nothing; a commit replaces an
// existing file whole.
func TestTmpfileWriter(t *testing.T) {
	dir := t.TempDir()
	final := filepath.Join(dir, "sub", "f.bin")
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

	w, err := newTmpfileWriter(final, mtime)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("half"))
	if _, err := os.Stat(final); !os.IsNotExist(err) {
		t.Fatalf("visible before commit: %v", err)
	}
	w.Abort()
	if entries, _ := os.ReadDir(filepath.Dir(final)); len(entries) != 0 {
		t.Fatalf("abort left %v", entries)
	}

	for _, content := range []string{"first version", "second"} {
		w, err := newTmpfileWriter(final, mtime)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(content))
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(final)
		info, _ := os.Stat(final)
		if string(b) != content || !info.ModTime().Equal(mtime) {
			t.Fatalf("committed %q at %v, want %q at %v", b, info.ModTime(), content, mtime)
		}
	}
	if entries, _ := os.ReadDir(filepath.Dir(final)); len(entries) != 1 {
		t.Fatalf("dir holds %v after replacing, want only f.bin", entries)
	}
}

func TestPlainKey(t *testing.T) {
	for key, want := range map[string]bool{
		"a.txt": true, "sub/dir/b.bin": true, "": false, "../x": false, "/abs": false, "a//b": false,
		"dir/": false, "x__0x2f": false, "ctl\x01": false,
	} {
		if got := plainKey(key); got != want {
			t.Errorf("plainKey(%q) = %v, want %v", key, got, want)
		}
	}
}
