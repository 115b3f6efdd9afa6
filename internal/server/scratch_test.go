package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A scratch dir serves the data dir that claimed it first — again after a
// restart, and after the data dir moved — and no other.
func TestClaimScratchDir(t *testing.T) {
	base := t.TempDir()
	a, b, scratch := filepath.Join(base, "a"), filepath.Join(base, "b"), filepath.Join(base, "scratch")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := claimScratchDir(a, scratch); err != nil {
		t.Fatal(err)
	}
	if err := claimScratchDir(a, scratch); err != nil {
		t.Fatalf("the same data dir again: %v", err)
	}
	err := claimScratchDir(b, scratch)
	if err == nil || !strings.Contains(err.Error(), "another hpcml server") {
		t.Fatalf("a second data dir on the same scratch dir: %v", err)
	}
	moved := filepath.Join(base, "a-moved")
	if err := os.Rename(a, moved); err != nil {
		t.Fatal(err)
	}
	if err := claimScratchDir(moved, scratch); err != nil {
		t.Fatalf("the data dir after a move: %v", err)
	}
	// Nothing but the two files: no temporary file is left behind.
	for _, d := range []string{moved, scratch} {
		entries, _ := os.ReadDir(d)
		if len(entries) != 1 {
			t.Fatalf("%s holds %v", d, entries)
		}
	}
}

// A file that exists is never replaced, and an empty or partial one is
// never created: the bytes appear whole or not at all.
func TestWriteOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	got, err := writeOnce(path, []byte("first"))
	if err != nil || string(got) != "first" {
		t.Fatalf("create: %q %v", got, err)
	}
	if got, err = writeOnce(path, []byte("second")); err != nil || string(got) != "first" {
		t.Fatalf("second write: %q %v, want the first content kept", got, err)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", info.Mode(), err)
	}
}

// The token survives restarts, and a data dir whose token file is short
// is refused rather than served with a guessable token.
func TestToken(t *testing.T) {
	dir := t.TempDir()
	tok, err := loadOrCreateToken(dir)
	if err != nil || len(tok) != 64 {
		t.Fatalf("token %q: %v", tok, err)
	}
	if again, err := loadOrCreateToken(dir); err != nil || again != tok {
		t.Fatalf("token after a restart: %q %v, want %q", again, err, tok)
	}
	if err := os.WriteFile(filepath.Join(dir, TokenFile), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrCreateToken(dir); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Fatalf("short token: %v", err)
	}
}
