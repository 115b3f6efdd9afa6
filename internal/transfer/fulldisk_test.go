package transfer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hpcml/hpcml/internal/tmpfstest"
)

// TestFullDisk syncs 6 MiB into a 2 MiB tmpfs — six files of 512 KiB and
// one of 3 MiB that can never fit — from a local tree and from S3,
// through O_TMPFILE and through temp names, one file at a time and many.
// The sync stops starting files at the first "no space left on device"
// and fails fast (no retries) with an error naming the file; the report
// accounts for every file, the failed ones with reasons; what is at the
// destination is complete and nothing else is (no temp file, no space
// held by an unnamed one). With room made, the same sync copies exactly
// what failed.
func TestFullDisk(t *testing.T) {
	ctx := context.Background()
	srcDir := t.TempDir()
	src := tree{"b/big.bin": randomBytes(600, 3<<20)}
	for i := range 6 {
		src[fmt.Sprintf("a/s%d.bin", i)] = randomBytes(uint64(500+i), 512<<10)
	}
	s3 := startS3(t, "src")
	b := s3.open(t, "src")
	for k, v := range src {
		writeFile(t, filepath.Join(srcDir, filepath.FromSlash(k)), v)
		if err := b.WriteAll(ctx, "data/"+k, v, nil); err != nil {
			t.Fatal(err)
		}
	}
	sources := []struct {
		name string
		ep   Endpoint
	}{{"local", mustEndpoint(t, srcDir)}, {"s3", mustEndpoint(t, s3.url("src", "data/"))}}

	for _, source := range sources {
		for _, tmpfile := range []bool{true, false} {
			for _, transfers := range []int{1, 16} {
				writer := map[bool]string{true: "O_TMPFILE", false: "tempname"}[tmpfile]
				t.Run(fmt.Sprintf("%s/%s/transfers=%d", source.name, writer, transfers), func(t *testing.T) {
					mnt := tmpfstest.Mount(t, "2m")
					dstDir := filepath.Join(mnt, "dst")
					if tmpfile {
						// tmpfs makes unnamed files: this is that path, not
						// a silent fallback to temp names.
						w, err := newTmpfileWriter(filepath.Join(mnt, "probe"), time.Time{})
						if err != nil {
							t.Fatalf("O_TMPFILE on tmpfs: %v", err)
						}
						w.Abort()
					}
					dst := mustEndpoint(t, dstDir)
					start := time.Now()
					// Were a full disk retried, the first retry alone would
					// take 10 s.
					rep, err := Sync(ctx, source.ep, dst, Options{Transfers: transfers, Retries: 3,
						RetryDelay: 10 * time.Second, noTmpfile: !tmpfile})
					if took := time.Since(start); took > 5*time.Second {
						t.Errorf("a sync into a full disk took %v: it should stop, not retry", took.Round(time.Millisecond))
					}
					checkFull(t, rep, err, dstDir, src, transfers == 1)
					if used, want := tmpfstest.Used(t, mnt), pages(rep.Transferred); used != want {
						t.Errorf("%d bytes used on the tmpfs, want %d (the files transferred): a failed write holds space", used, want)
					}

					tmpfstest.Resize(t, mnt, "8m")
					again, err := Sync(ctx, source.ep, dst, Options{Transfers: transfers, noTmpfile: !tmpfile})
					if err != nil || !again.OK() {
						t.Fatalf("sync after making room: %v%s", err, failuresString(again.Failed))
					}
					if got, want := entryKeys(again.Transferred), failureKeys(rep.Failed); !equalStrings(got, want) {
						t.Errorf("after making room transferred %v, want what failed: %v", got, want)
					}
					if got, want := entryKeys(again.Skipped), entryKeys(rep.Transferred); !equalStrings(got, want) {
						t.Errorf("after making room skipped %v, want what was complete: %v", got, want)
					}
					sameTree(t, "after making room", readDir(t, dstDir), src)
				})
			}
		}
	}
}

// checkFull checks a sync into a full disk: its error, its report, and
// that the destination holds complete files only. sequential: the files
// were copied one at a time, in key order.
func checkFull(t *testing.T, rep *Report, err error, dstDir string, src tree, sequential bool) {
	t.Helper()
	var full *FullError
	if !errors.Is(err, ErrDestinationFull) || !errors.As(err, &full) || full.Errno != unix.ENOSPC {
		t.Fatalf("error %v, want a *FullError (ENOSPC)", err)
	}
	if rep == nil {
		t.Fatal("no report")
	}
	if rep.Error != err.Error() {
		t.Errorf("the report's error is %q, want %q", rep.Error, err)
	}
	prefix := "destination full: no space left on device writing " + dstDir + "/"
	named := strings.TrimPrefix(err.Error(), prefix)
	if !strings.HasPrefix(err.Error(), prefix) || src[named] == nil {
		t.Fatalf("error %q should be %q and a file of the source", err, prefix+"KEY")
	}
	if rep.Result != "ERROR" || rep.Totals.FilesListed != len(src) || rep.Totals.FilesFailed != len(rep.Failed) ||
		len(rep.Transferred)+len(rep.Failed) != len(src) {
		t.Fatalf("report: %s, %+v, %d transferred + %d failed, want %d files%s", rep.Result, rep.Totals,
			len(rep.Transferred), len(rep.Failed), len(src), failuresString(rep.Failed))
	}
	// Every failure says why; the file named by the error failed with
	// ENOSPC itself, and so did the 3 MiB file unless it was not started.
	var attempted, notAttempted []string
	for _, f := range rep.Failed {
		switch {
		case f.Reason == "not attempted: "+err.Error():
			notAttempted = append(notAttempted, f.Key)
		case strings.Contains(f.Reason, "no space left on device") && strings.Contains(f.Reason, f.Key):
			attempted = append(attempted, f.Key)
		default:
			t.Errorf("failure of %s: %q should say no space was left, naming the file, or that it was not attempted", f.Key, f.Reason)
		}
	}
	if !slices.Contains(attempted, named) {
		t.Errorf("the error names %s, which did not fail for want of space:%s", named, failuresString(rep.Failed))
	}
	if !slices.Contains(failureKeys(rep.Failed), "b/big.bin") {
		t.Errorf("b/big.bin (3 MiB in 2 MiB) is not among the failures:%s", failuresString(rep.Failed))
	}
	if sequential {
		// In key order: some files fit, the next found the disk full,
		// and none after it was started.
		keys := src.keys()
		n := len(rep.Transferred)
		if n == 0 || !equalStrings(entryKeys(rep.Transferred), keys[:n]) || !equalStrings(attempted, []string{keys[n]}) ||
			!equalStrings(notAttempted, keys[n+1:]) || named != keys[n] {
			t.Fatalf("one at a time: transferred %v, failed %v, not attempted %v; want a prefix of %v, then one failed, then none started",
				entryKeys(rep.Transferred), attempted, notAttempted, keys)
		}
	}
	// Complete files only: exactly what the report says was transferred,
	// each the source's bytes.
	got := readDir(t, dstDir)
	want := tree{}
	for _, e := range rep.Transferred {
		want[e.Key] = src[e.Key]
		if e.Size != int64(len(src[e.Key])) || e.SHA256 != sha256hex(src[e.Key]) {
			t.Errorf("report entry %+v: want %d bytes, sha256 %s", e, len(src[e.Key]), sha256hex(src[e.Key]))
		}
	}
	sameTree(t, "full destination", got, want)
	if t.Failed() {
		t.FailNow()
	}
}

// pages is the space tmpfs gives the files of es: whole pages.
func pages(es []Entry) int64 {
	ps := int64(os.Getpagesize())
	var n int64
	for _, e := range es {
		n += (e.Size + ps - 1) / ps * ps
	}
	return n
}
