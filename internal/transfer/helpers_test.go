package transfer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustEndpoint(t testing.TB, raw string) Endpoint {
	t.Helper()
	ep, err := ParseEndpoint(raw)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

func equalStrings(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || slices.Equal(a, b))
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// randomBytes is n bytes of a seeded stream: different for every seed,
// incompressible, the same on every run.
func randomBytes(seed uint64, n int) []byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

// tree is a set of files by key (slash-separated, relative).
type tree map[string][]byte

func (tr tree) keys() []string {
	ks := make([]string, 0, len(tr))
	for k := range tr {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (tr tree) bytes() int64 {
	var n int64
	for _, v := range tr {
		n += int64(len(v))
	}
	return n
}

// makeTree writes nSmall files of 1–8 KiB in a few directories and
// nLarge files of largeSize bytes under dir.
func makeTree(t testing.TB, dir string, nSmall, nLarge, largeSize int) tree {
	t.Helper()
	tr := tree{}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range nSmall {
		key := fmt.Sprintf("small/d%02d/f%04d.dat", i%10, i)
		tr[key] = randomBytes(uint64(i)+100, 1024+r.IntN(7*1024+1))
	}
	for i := range nLarge {
		tr[fmt.Sprintf("large/big%d.bin", i)] = randomBytes(uint64(i)+1, largeSize)
	}
	for k, v := range tr {
		writeFile(t, filepath.Join(dir, filepath.FromSlash(k)), v)
	}
	return tr
}

// readDir reads every file under dir (a missing dir is empty).
func readDir(t testing.TB, dir string) tree {
	t.Helper()
	tr := tree{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && p == dir {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		tr[filepath.ToSlash(rel)] = data
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// sameTree fails unless got holds exactly want's files, byte for byte.
func sameTree(t testing.TB, what string, got, want tree) {
	t.Helper()
	for _, k := range want.keys() {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: %s missing", what, k)
		case string(g) != string(want[k]):
			t.Errorf("%s: %s differs (%d bytes, sha256 %s; want %d bytes, %s)", what, k, len(g), sha256hex(g)[:12], len(want[k]), sha256hex(want[k])[:12])
		}
	}
	for _, k := range got.keys() {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: unexpected %s", what, k)
		}
	}
}

func entryKeys(es []Entry) []string {
	ks := []string{}
	for _, e := range es {
		ks = append(ks, e.Key)
	}
	return ks
}

func failureKeys(fs []Failure) []string {
	ks := []string{}
	for _, f := range fs {
		ks = append(ks, f.Key)
	}
	return ks
}

func failuresString(fs []Failure) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "\n  %s: %s", f.Key, f.Reason)
	}
	return b.String()
}
