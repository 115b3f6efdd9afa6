package transfer

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSyncOlderReplacement: a source file replaced by another of the
// same size with an older time (as tar, cp -p or a restore leave it) is
// copied to a local destination, whose copy carried the newer time; the
// destination then verifies, and the next sync copies nothing.
func TestSyncOlderReplacement(t *testing.T) {
	ctx := context.Background()
	srcDir, dstDir := t.TempDir(), t.TempDir()
	src := tree{"a.bin": randomBytes(1, 1000), "b.bin": randomBytes(2, 9<<20), "same.txt": []byte("unchanged")}
	for k, v := range src {
		writeFile(t, filepath.Join(srcDir, k), v)
	}
	mustSync(t, mustEndpoint(t, srcDir), mustEndpoint(t, dstDir), Options{})

	// Replaced by older versions of the same size: a minute and a day older.
	for k, age := range map[string]time.Duration{"a.bin": time.Minute, "b.bin": 24 * time.Hour} {
		p := filepath.Join(srcDir, k)
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		src[k] = randomBytes(uint64(len(k))+100, len(src[k]))
		writeFile(t, p, src[k])
		old := info.ModTime().Add(-age)
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	rep := mustSync(t, mustEndpoint(t, srcDir), mustEndpoint(t, dstDir), Options{})
	if got := entryKeys(rep.Transferred); !equalStrings(got, []string{"a.bin", "b.bin"}) {
		t.Fatalf("after replacing a.bin and b.bin by older files of the same sizes, sync copied %v", got)
	}
	sameTree(t, "destination", readDir(t, dstDir), src)
	vr, err := Verify(ctx, mustEndpoint(t, srcDir), mustEndpoint(t, dstDir), Options{})
	if err != nil || !vr.OK() {
		t.Fatalf("verify: %v%s", err, failuresString(vr.Mismatched))
	}
	rep = mustSync(t, mustEndpoint(t, srcDir), mustEndpoint(t, dstDir), Options{})
	if rep.Totals.FilesTransferred != 0 || rep.Totals.FilesSkipped != len(src) {
		t.Fatalf("the sync after: %+v", rep.Totals)
	}

	// Within the window times are equal: a destination a fraction of a
	// second off (a store keeping whole seconds) is not copied again.
	p := filepath.Join(dstDir, "same.txt")
	info, _ := os.Stat(filepath.Join(srcDir, "same.txt"))
	off := info.ModTime().Add(-700 * time.Millisecond)
	if err := os.Chtimes(p, off, off); err != nil {
		t.Fatal(err)
	}
	rep = mustSync(t, mustEndpoint(t, srcDir), mustEndpoint(t, dstDir), Options{})
	if rep.Totals.FilesTransferred != 0 {
		t.Fatalf("a time 0.7 s off was taken for a change: copied %v", entryKeys(rep.Transferred))
	}
}

// A file whose name the local file store must escape (it holds "__0x")
// keeps its time of writing: it is not copied again by every sync, and
// setting its time touches no other file.
func TestSyncEscapedNameOnce(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	src := tree{"weird__0x41.txt": []byte("escaped"), "plain.txt": []byte("plain")}
	for k, v := range src {
		writeFile(t, filepath.Join(srcDir, k), v)
	}
	old := time.Now().Add(-time.Hour)
	for k := range src {
		if err := os.Chtimes(filepath.Join(srcDir, k), old, old); err != nil {
			t.Fatal(err)
		}
	}
	mustSync(t, mustEndpoint(t, srcDir), mustEndpoint(t, dstDir), Options{})
	rep := mustSync(t, mustEndpoint(t, srcDir), mustEndpoint(t, dstDir), Options{})
	if got := entryKeys(rep.Transferred); len(got) != 0 {
		t.Fatalf("the second sync copied %v again", got)
	}
	if got := readDir(t, dstDir); len(got) != 2 || string(got["plain.txt"]) != "plain" {
		t.Fatalf("destination holds %v", got.keys())
	}
}
