package transfer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSyncKeepsUserFilesThatLookTemporary: files of the user's whose
// names end like the temp files of older versions (".<hex>.tmp") are
// data, not leftovers: a sync without --delete neither removes them from
// the destination nor copies them again on every run, whichever way
// local files are written.
func TestSyncKeepsUserFilesThatLookTemporary(t *testing.T) {
	for _, noTmpfile := range []bool{false, true} {
		name := map[bool]string{false: "O_TMPFILE", true: "tempname"}[noTmpfile]
		t.Run(name, func(t *testing.T) {
			srcDir, dstDir := t.TempDir(), t.TempDir()
			src := tree{
				"keep.deadbeefcafe.tmp":            []byte("user data, not a leftover"),
				"sub/model.0123456789abcdef.tmp":   []byte("more user data"),
				"sub/.hpcml-notes.partial":         []byte("not hex: not ours"),
				"sub/x.hpcml-0123456789abcdef.tmp": []byte("a look-alike of the new marker, in another place"),
			}
			for k, v := range src {
				writeFile(t, filepath.Join(srcDir, filepath.FromSlash(k)), v)
			}
			// Only at the destination: a sync without --delete keeps it.
			mine := []byte("the user's own file at the destination")
			writeFile(t, filepath.Join(dstDir, "mine.deadbeef.tmp"), mine)
			want := tree{"mine.deadbeef.tmp": mine}
			for k, v := range src {
				want[k] = v
			}

			rep := mustSync(t, mustEndpoint(t, srcDir), mustEndpoint(t, dstDir), Options{noTmpfile: noTmpfile})
			if rep.Totals.FilesTransferred != len(src) {
				t.Fatalf("first sync: %+v", rep.Totals)
			}
			sameTree(t, "after the first sync", readDir(t, dstDir), want)
			for run := 2; run <= 3; run++ {
				rep = mustSync(t, mustEndpoint(t, srcDir), mustEndpoint(t, dstDir), Options{noTmpfile: noTmpfile})
				if rep.Totals.FilesTransferred != 0 || rep.Totals.FilesSkipped != len(src) {
					t.Fatalf("sync %d copied %v again (totals %+v): it took the user's files for leftovers", run, entryKeys(rep.Transferred), rep.Totals)
				}
				sameTree(t, "after sync", readDir(t, dstDir), want)
			}
		})
	}
}

// TestSyncRemovesItsOwnLeftovers: what a killed write leaves (a
// temporary file under hpcml's marker, never the final name) is removed
// by the next sync into that destination, which then copies the file;
// and a write through a temporary name leaves nothing once committed or
// aborted.
func TestSyncRemovesItsOwnLeftovers(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	src := tree{"a.bin": randomBytes(1, 4096), "sub/b.bin": randomBytes(2, 100)}
	for k, v := range src {
		writeFile(t, filepath.Join(srcDir, filepath.FromSlash(k)), v)
	}
	// A write killed half-way: the temporary file is there, the final
	// name is not.
	w, err := newTempnameWriter(filepath.Join(dstDir, "sub", "b.bin"), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("half")); err != nil {
		t.Fatal(err)
	}
	w.f.Close()
	if !strings.HasPrefix(filepath.Base(w.tmp), ".hpcml-") || !isPartial(filepath.ToSlash(w.tmp)) {
		t.Fatalf("temporary name %s does not carry the marker", w.tmp)
	}

	rep := mustSync(t, mustEndpoint(t, srcDir), mustEndpoint(t, dstDir), Options{noTmpfile: true})
	if got := entryKeys(rep.Transferred); !equalStrings(got, []string{"a.bin", "sub/b.bin"}) {
		t.Fatalf("transferred %v", got)
	}
	if _, err := os.Stat(w.tmp); !os.IsNotExist(err) {
		t.Fatalf("the leftover %s is still there (%v)", w.tmp, err)
	}
	sameTree(t, "destination", readDir(t, dstDir), src)

	// Committed and aborted writes leave no temporary file.
	final := filepath.Join(dstDir, "c.bin")
	for _, commit := range []bool{true, false} {
		w, err := newTempnameWriter(final, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("c"))
		if commit {
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
		} else {
			w.Abort()
		}
		if _, err := os.Stat(w.tmp); !os.IsNotExist(err) {
			t.Fatalf("commit=%v left %s (%v)", commit, w.tmp, err)
		}
	}
	if b, err := os.ReadFile(final); err != nil || string(b) != "c" {
		t.Fatalf("c.bin: %q, %v", b, err)
	}
}
