package transfer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSyncMissingSourcePrefix: an S3 prefix under which nothing is listed
// (a typo, most likely: object stores have no directories to be missing)
// is a missing source. sync --delete, dry run or not, cp and verify all
// refuse it, and the destination keeps every file.
func TestSyncMissingSourcePrefix(t *testing.T) {
	ctx := context.Background()
	s := startS3(t, "src", "bkt")
	srcBucket := s.open(t, "src")
	if err := srcBucket.WriteAll(ctx, "data/a.txt", []byte("a"), nil); err != nil {
		t.Fatal(err)
	}
	typo := mustEndpoint(t, s.url("src", "dtaa/"))
	keep := tree{"x.txt": []byte("x"), "sub/y.txt": []byte("yy")}
	forEachDest(t, func(t *testing.T, d *dest) {
		for k, v := range keep {
			d.put(t, "keep/"+k, v, nil)
		}
		for _, opts := range []Options{{Delete: true}, {Delete: true, DryRun: true}, {}} {
			rep, err := Sync(ctx, typo, d.ep(t, "keep/"), opts)
			if err == nil || !strings.Contains(err.Error(), "not found (no objects under prefix") || !strings.Contains(err.Error(), "dtaa/") {
				t.Fatalf("sync %+v from a prefix with no objects: report %+v, error %v; want it refused as not found", opts, rep, err)
			}
			sameTree(t, "destination after the refused sync", d.read(t, "keep/"), keep)
		}
		if _, err := Copy(ctx, typo, d.ep(t, "keep/"), Options{}); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("cp from a prefix with no objects: %v", err)
		}
		if _, err := Verify(ctx, typo, d.ep(t, "keep/"), Options{}); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("verify of a prefix with no objects: %v", err)
		}
		sameTree(t, "destination", d.read(t, "keep/"), keep)

		// A prefix that holds objects still syncs (and --delete works).
		rep := mustSync(t, mustEndpoint(t, s.url("src", "data/")), d.ep(t, "keep/"), Options{Delete: true})
		if rep.Totals.FilesTransferred != 1 || rep.Totals.FilesDeleted != 2 {
			t.Errorf("sync from data/: %+v", rep.Totals)
		}
		sameTree(t, "after the sync from data/", d.read(t, "keep/"), tree{"a.txt": []byte("a")})
	})
}

// TestSyncEmptyLocalSource: a local source directory that exists but is
// empty is a source like any other — sync --delete empties the
// destination — while one that does not exist is an error that leaves
// the destination alone.
func TestSyncEmptyLocalSource(t *testing.T) {
	ctx := context.Background()
	empty := t.TempDir()
	dst := t.TempDir()
	writeFile(t, filepath.Join(dst, "old.txt"), []byte("old"))

	_, err := Sync(ctx, mustEndpoint(t, filepath.Join(empty, "missing")+"/"), mustEndpoint(t, dst), Options{Delete: true})
	if err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Fatalf("sync --delete from a missing directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "old.txt")); err != nil {
		t.Fatalf("a sync from a missing directory removed the destination's file: %v", err)
	}

	rep := mustSync(t, mustEndpoint(t, empty), mustEndpoint(t, dst), Options{Delete: true})
	if !equalStrings(rep.Deleted, []string{"old.txt"}) {
		t.Fatalf("sync --delete from an empty directory deleted %v, want old.txt", rep.Deleted)
	}
	if got := readDir(t, dst); len(got) != 0 {
		t.Fatalf("destination holds %v", got.keys())
	}
}
