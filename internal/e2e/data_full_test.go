package e2e

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

	"github.com/hpcml/hpcml/internal/tmpfstest"
)

// TestDataFullDisk runs `hpcml data sync` of 6 MiB (six files of
// 512 KiB, one of 3 MiB) into a 2 MiB tmpfs, from a local tree and from
// S3: exit status 1 with "destination full: no space left on device
// writing <file>", the report (written elsewhere) lists every file that
// failed with its reason, and the destination holds complete files only
// — no partial file, no temp file. With room made, the same command
// completes and verifies.
func TestDataFullDisk(t *testing.T) {
	t.Parallel()
	srcDir := t.TempDir()
	files := map[string]xferFile{}
	write := func(key string, size, seed int) {
		data := make([]byte, size)
		rand.NewChaCha8([32]byte{byte(seed), 9}).Read(data)
		p := filepath.Join(srcDir, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(data)
		files[key] = xferFile{size: int64(size), sum: hex.EncodeToString(s[:])}
	}
	for i := range 6 {
		write(fmt.Sprintf("part-%d.bin", i), 512<<10, i)
	}
	write("weights/model.bin", 3<<20, 99)

	const access, secret, bucket = "hpcmlfull", "hpcmlfullsecret", "hpcml-full"
	endpoint := startS3(t, access, secret, bucket)
	env := []string{"AWS_ACCESS_KEY_ID=" + access, "AWS_SECRET_ACCESS_KEY=" + secret}
	s3src := fmt.Sprintf("s3://%s/src/?endpoint=%s&region=us-east-1&use_path_style=true", bucket, endpoint)
	if code, out := xferRun(t, env, "sync", srcDir, s3src); code != 0 {
		t.Fatalf("upload: exit %d\n%s", code, out)
	}

	for _, tc := range []struct{ name, src string }{{"local", srcDir}, {"s3", s3src}} {
		t.Run(tc.name, func(t *testing.T) {
			mnt := tmpfstest.Mount(t, "2m")
			dst := filepath.Join(mnt, "dst")
			report := filepath.Join(t.TempDir(), "report.json") // not on the full disk
			code, out := xferRun(t, env, "sync", tc.src, dst, "--report", report)
			if code != 1 {
				t.Fatalf("sync into a full disk: exit %d, want 1\n%s", code, out)
			}
			prefix := "destination full: no space left on device writing " + dst + "/"
			i := strings.Index(out, prefix)
			if i < 0 {
				t.Fatalf("output should say %q and name the file:\n%s", prefix, out)
			}
			named, _, _ := strings.Cut(out[i+len(prefix):], "\n")
			if _, ok := files[named]; !ok {
				t.Fatalf("the error names %q, not a file of the source:\n%s", named, out)
			}
			if !strings.Contains(out, "FAILED    "+named+": ") {
				t.Fatalf("%s should be listed as failed:\n%s", named, out)
			}

			rep := xferReport(t, report)
			if rep.Result != "ERROR" || rep.Totals.FilesFailed == 0 || rep.Totals.FilesFailed != len(rep.Failed) ||
				len(rep.Transferred)+len(rep.Failed) != len(files) {
				t.Fatalf("report: %s, %+v: want ERROR and every one of %d files transferred or failed", rep.Result, rep.Totals, len(files))
			}
			var failed []string
			for _, f := range rep.Failed {
				failed = append(failed, f.Key)
				if !strings.Contains(f.Reason, "no space left on device") {
					t.Errorf("failure of %s: reason %q should say why", f.Key, f.Reason)
				}
			}
			if !slices.Contains(failed, named) || !slices.Contains(failed, "weights/model.bin") {
				t.Errorf("failed %v should include %s and weights/model.bin (3 MiB in 2 MiB)", failed, named)
			}

			// Only complete files, each in the report as transferred.
			transferred := map[string]bool{}
			for _, e := range rep.Transferred {
				transferred[e.Key] = true
				if f := files[e.Key]; e.Size != f.size || e.SHA256 != f.sum {
					t.Errorf("report entry %+v: want %d bytes, sha256 %s", e, f.size, f.sum)
				}
			}
			present := 0
			filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				rel, _ := filepath.Rel(dst, p)
				key := filepath.ToSlash(rel)
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				s := sha256.Sum256(data)
				if f, ok := files[key]; !ok || !transferred[key] || int64(len(data)) != f.size || hex.EncodeToString(s[:]) != f.sum {
					t.Errorf("%s at the destination: %d bytes, sha256 %x; want only the complete files the report lists", key, len(data), s[:6])
				}
				present++
				return nil
			})
			if present != len(rep.Transferred) {
				t.Errorf("%d files at the destination, the report lists %d transferred", present, len(rep.Transferred))
			}
			if t.Failed() {
				t.FailNow()
			}

			tmpfstest.Resize(t, mnt, "8m")
			if code, out := xferRun(t, env, "sync", tc.src, dst); code != 0 {
				t.Fatalf("sync after making room: exit %d\n%s", code, out)
			}
			if code, out := xferRun(t, env, "verify", tc.src, dst); code != 0 {
				t.Fatalf("verify after making room: exit %d\n%s", code, out)
			}
		})
	}
}
