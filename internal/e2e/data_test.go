package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	gcblob "gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"

	"github.com/hpcml/hpcml/internal/transfer"
)

// xferFile is one file of a source tree.
type xferFile struct {
	size int64
	sum  string // hex SHA-256
}

// xferTree writes nSmall files of 1–4 KiB and nLarge of largeSize bytes
// under dir and returns them by key. The large ones sort first, so that
// they are mid-transfer when a slow run is killed.
func xferTree(t *testing.T, dir string, nSmall, nLarge, largeSize int) map[string]xferFile {
	t.Helper()
	files := map[string]xferFile{}
	r := rand.New(rand.NewPCG(3, 4))
	write := func(key string, data []byte) {
		p := filepath.Join(dir, filepath.FromSlash(key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(data)
		files[key] = xferFile{size: int64(len(data)), sum: hex.EncodeToString(s[:])}
	}
	for i := range nLarge {
		data := make([]byte, largeSize)
		rand.NewChaCha8([32]byte{byte(i), 1}).Read(data)
		write(fmt.Sprintf("a-large/big%d.bin", i), data)
	}
	for i := range nSmall {
		data := make([]byte, 1024+r.IntN(3*1024+1))
		rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), 2}).Read(data)
		write(fmt.Sprintf("d%02d/f%04d.txt", i%50, i), data)
	}
	return files
}

// xferRun runs `hpcml data ...` to the end and returns its exit code and
// combined output.
func xferRun(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"data"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	}
	t.Fatalf("hpcml data %v: %v\n%s", args, err, out)
	return -1, ""
}

// xferKilled starts a slow `hpcml data sync`, waits a second and until
// present() reports a file at the destination, and kills it with SIGKILL.
func xferKilled(t *testing.T, env []string, present func() int, args ...string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"data", "sync"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	start := time.Now()
	for time.Since(start) < time.Second || present() == 0 {
		select {
		case err := <-exited:
			t.Fatalf("the slow sync ended before it was killed (%v):\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("nothing arrived in 20s:\n%s", out.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
}

// xferReport reads a --report file.
func xferReport(t *testing.T, path string) *transfer.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep transfer.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report %s: %v", path, err)
	}
	return &rep
}

// xferCheckRerun checks the report of the run after the kill: exactly
// the files that were missing were copied, the rest skipped.
func xferCheckRerun(t *testing.T, rep *transfer.Report, files map[string]xferFile, before []string) {
	t.Helper()
	tot := rep.Totals
	if rep.Result != "SUCCESS" || tot.FilesFailed != 0 {
		t.Fatalf("rerun: %s, %+v", rep.Result, tot)
	}
	if tot.FilesTransferred+tot.FilesSkipped != len(files) || tot.FilesSkipped == 0 || tot.FilesSkipped != len(before) {
		t.Fatalf("rerun: %d transferred + %d skipped, want %d skipped of %d (what the killed run completed)",
			tot.FilesTransferred, tot.FilesSkipped, len(before), len(files))
	}
	var want []string
	for k := range files {
		if !slices.Contains(before, k) {
			want = append(want, k)
		}
	}
	slices.Sort(want)
	var got []string
	for _, e := range rep.Transferred {
		got = append(got, e.Key)
		if f := files[e.Key]; e.SHA256 != f.sum || e.Size != f.size {
			t.Errorf("report entry %+v: want %d bytes, sha256 %s", e, f.size, f.sum)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("rerun transferred %d files, want the %d missing ones", len(got), len(want))
	}
}

// TestDataResumeAfterKill kills a throttled `hpcml data sync` with
// SIGKILL part-way: nothing at the destination is partial, a rerun copies
// exactly what is missing, and the result verifies; then a byte flipped
// at the destination makes `hpcml data verify` fail naming that file.
func TestDataResumeAfterKill(t *testing.T) {
	t.Parallel()
	srcDir := t.TempDir()
	// 20 MiB: streamed, and two parts (16 + 4 MiB) on S3.
	files := xferTree(t, srcDir, 3000, 2, 20<<20)
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	const corrupt = "d07/f0007.txt"

	t.Run("s3", func(t *testing.T) {
		t.Parallel()
		const access, secret, bucket = "hpcmlresume", "hpcmlresumesecret", "hpcml-resume"
		endpoint := startS3(t, access, secret, bucket)
		env := []string{"AWS_ACCESS_KEY_ID=" + access, "AWS_SECRET_ACCESS_KEY=" + secret}
		dst := fmt.Sprintf("s3://%s/resume/?endpoint=%s&region=us-east-1&use_path_style=true", bucket, endpoint)
		ctx := context.Background()
		client := s3.New(s3.Options{
			Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(access, secret, ""),
		})
		b, err := s3blob.OpenBucket(ctx, client, bucket, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		list := func() []string {
			var ks []string
			it := b.List(&gcblob.ListOptions{Prefix: "resume/"})
			for {
				o, err := it.Next(ctx)
				if err == io.EOF {
					return ks
				}
				if err != nil {
					t.Fatal(err)
				}
				ks = append(ks, strings.TrimPrefix(o.Key, "resume/"))
			}
		}

		xferKilled(t, env, func() int { return len(list()) }, srcDir, dst, "--transfers", "4", "--bwlimit", "2M")

		// Every object there is whole: the right size, the source's
		// SHA-256 recorded, and content that hashes to it.
		before := list()
		if len(before) == 0 || len(before) >= len(files) {
			t.Fatalf("after the kill %d of %d objects are there; want some but not all", len(before), len(files))
		}
		for _, k := range before {
			f, ok := files[k]
			if !ok {
				t.Fatalf("unexpected object %q", k)
			}
			a, err := b.Attributes(ctx, "resume/"+k)
			if err != nil {
				t.Fatal(err)
			}
			data, err := b.ReadAll(ctx, "resume/"+k)
			if err != nil {
				t.Fatal(err)
			}
			s := sha256.Sum256(data)
			if a.Size != f.size || a.Metadata["sha256"] != f.sum || hex.EncodeToString(s[:]) != f.sum {
				t.Fatalf("%s is partial: %d bytes, recorded sha256 %q, content %x; want %d bytes, %s",
					k, a.Size, a.Metadata["sha256"], s, f.size, f.sum)
			}
		}
		t.Logf("killed after %d of %d objects", len(before), len(files))

		// What the kill left of a large file's upload is cleaned up: the
		// unfinished multipart uploads under the destination are aborted.
		unfinished := func() int {
			out, err := client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket), Prefix: aws.String("resume/")})
			if err != nil {
				t.Fatal(err)
			}
			return len(out.Uploads)
		}
		left := unfinished()
		if code, out := xferRun(t, env, "cleanup", dst, "--dry-run", "--older-than", "0s"); code != 0 ||
			!strings.Contains(out, fmt.Sprintf("would abort %d unfinished upload(s)", left)) || unfinished() != left {
			t.Fatalf("cleanup --dry-run with %d unfinished: exit %d\n%s", left, code, out)
		}
		if code, out := xferRun(t, env, "cleanup", dst, "--older-than", "0s"); code != 0 ||
			!strings.Contains(out, fmt.Sprintf("aborted %d unfinished upload(s)", left)) || unfinished() != 0 {
			t.Fatalf("cleanup with %d unfinished: exit %d, %d left\n%s", left, code, unfinished(), out)
		}
		t.Logf("the kill left %d unfinished multipart uploads", left)

		report := filepath.Join(t.TempDir(), "report.json")
		if code, out := xferRun(t, env, "sync", srcDir, dst, "--report", report); code != 0 {
			t.Fatalf("rerun: exit %d\n%s", code, out)
		}
		xferCheckRerun(t, xferReport(t, report), files, before)
		if got := list(); !slices.Equal(got, keys) {
			t.Fatalf("after the rerun %d objects, want %d", len(got), len(keys))
		}
		if code, out := xferRun(t, env, "verify", srcDir, dst); code != 0 || !strings.Contains(out, fmt.Sprintf("Verified %d of %d files", len(files), len(files))) {
			t.Fatalf("verify: exit %d\n%s", code, out)
		}

		// The same size and the same recorded checksum, one byte changed.
		a, err := b.Attributes(ctx, "resume/"+corrupt)
		if err != nil {
			t.Fatal(err)
		}
		data, err := b.ReadAll(ctx, "resume/"+corrupt)
		if err != nil {
			t.Fatal(err)
		}
		data[10] ^= 0x01
		if err := b.WriteAll(ctx, "resume/"+corrupt, data, &gcblob.WriterOptions{Metadata: a.Metadata}); err != nil {
			t.Fatal(err)
		}
		xferExpectMismatch(t, env, srcDir, dst, corrupt)
	})

	t.Run("local", func(t *testing.T) {
		t.Parallel()
		dstDir := filepath.Join(t.TempDir(), "dst")
		walk := func() (whole, tmp []string) {
			filepath.WalkDir(dstDir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return nil
				}
				rel, _ := filepath.Rel(dstDir, p)
				if strings.HasPrefix(d.Name(), ".hpcml-") && strings.HasSuffix(d.Name(), ".partial") { // hpcml's temp files
					tmp = append(tmp, filepath.ToSlash(rel))
				} else {
					whole = append(whole, filepath.ToSlash(rel))
				}
				return nil
			})
			slices.Sort(whole)
			return whole, tmp
		}

		xferKilled(t, nil, func() int { w, _ := walk(); return len(w) }, srcDir, dstDir, "--transfers", "4", "--bwlimit", "2M")

		before, tmp := walk()
		if len(before) == 0 || len(before) >= len(files) {
			t.Fatalf("after the kill %d of %d files are there; want some but not all", len(before), len(files))
		}
		// The large files were being written when the kill came: their
		// temp files are left, never a partial file under a final name.
		// Local files are written as unnamed inodes (O_TMPFILE) linked when
		// complete, so a kill normally leaves no temp file at all; where
		// the file system cannot, temp files are left and the rerun
		// removes them (checked below).
		for _, k := range before {
			f, ok := files[k]
			if !ok {
				t.Fatalf("unexpected file %q", k)
			}
			data, err := os.ReadFile(filepath.Join(dstDir, filepath.FromSlash(k)))
			if err != nil {
				t.Fatal(err)
			}
			s := sha256.Sum256(data)
			if int64(len(data)) != f.size || hex.EncodeToString(s[:]) != f.sum {
				t.Fatalf("%s is partial: %d bytes, want %d", k, len(data), f.size)
			}
		}
		t.Logf("killed after %d of %d files, %d temp files left", len(before), len(files), len(tmp))

		report := filepath.Join(t.TempDir(), "report.json")
		if code, out := xferRun(t, nil, "sync", srcDir, dstDir, "--report", report); code != 0 {
			t.Fatalf("rerun: exit %d\n%s", code, out)
		}
		xferCheckRerun(t, xferReport(t, report), files, before)
		after, tmp := walk()
		if len(tmp) != 0 {
			t.Fatalf("temp files left after the rerun: %v", tmp)
		}
		if !slices.Equal(after, keys) {
			t.Fatalf("after the rerun %d files, want %d", len(after), len(keys))
		}
		if code, out := xferRun(t, nil, "verify", srcDir, dstDir); code != 0 {
			t.Fatalf("verify: exit %d\n%s", code, out)
		}

		// One byte changed, size and time kept.
		p := filepath.Join(dstDir, filepath.FromSlash(corrupt))
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data[10] ^= 0x01
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, info.ModTime(), info.ModTime()); err != nil {
			t.Fatal(err)
		}
		xferExpectMismatch(t, nil, srcDir, dstDir, corrupt)
	})
}

// xferExpectMismatch runs `hpcml data verify` and expects exit code 1,
// the corrupted file named, and no other.
func xferExpectMismatch(t *testing.T, env []string, src, dst, corrupt string) {
	t.Helper()
	report := filepath.Join(t.TempDir(), "verify.json")
	code, out := xferRun(t, env, "verify", src, dst, "--report", report)
	if code != 1 {
		t.Fatalf("verify after a byte flip: exit %d, want 1\n%s", code, out)
	}
	if !strings.Contains(out, "MISMATCH") || !strings.Contains(out, corrupt) {
		t.Fatalf("verify output should name %s:\n%s", corrupt, out)
	}
	rep := xferReport(t, report)
	if len(rep.Mismatched) != 1 || rep.Mismatched[0].Key != corrupt || rep.Result != "ERROR" {
		t.Fatalf("verify report: %s, mismatched %+v", rep.Result, rep.Mismatched)
	}
}
