package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcml/hpcml/internal/s3test"
)

// S3 settings given by flags reach locations whose URLs leave them out,
// for every data command; a URL's own setting wins over a flag.
func TestDataS3Flags(t *testing.T) {
	srv := s3test.Start(t, "flagtest", "flagtestsecret", "bkt")
	srv.URLEnv(t) // credentials in the environment; the URLs below carry no query
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--endpoint-url", srv.Endpoint, "--region", "us-east-1", "--path-style"}
	run := func(args ...string) result {
		t.Helper()
		return runCLI(t, nil, append(append([]string{"data"}, args...), flags...)...)
	}
	if r := run("sync", src+"/", "s3://bkt/flags/"); r.code != 0 {
		t.Fatalf("sync: %d %s", r.code, r.stderr)
	}
	if r := run("ls", "s3://bkt/flags/"); r.code != 0 || !strings.Contains(r.stdout, "a.txt") {
		t.Fatalf("ls: %d %q %s", r.code, r.stdout, r.stderr)
	}
	if r := run("du", "s3://bkt/flags/"); r.code != 0 || !strings.Contains(r.stdout, "1 files") {
		t.Fatalf("du: %d %q %s", r.code, r.stdout, r.stderr)
	}
	if r := run("verify", src+"/", "s3://bkt/flags/"); r.code != 0 {
		t.Fatalf("verify: %d %s", r.code, r.stderr)
	}
	if r := run("cleanup", "s3://bkt/flags/", "--dry-run"); r.code != 0 || !strings.Contains(r.stdout, "would abort 0") {
		t.Fatalf("cleanup: %d %q %s", r.code, r.stdout, r.stderr)
	}
	// The URL's endpoint wins: this one answers nothing.
	if r := run("ls", "s3://bkt/flags/?endpoint=http://127.0.0.1:1"); r.code == 0 {
		t.Fatalf("ls with the URL's dead endpoint succeeded: %q", r.stdout)
	}
	if r := run("rm", "--recursive", "s3://bkt/flags/"); r.code != 0 {
		t.Fatalf("rm: %d %s", r.code, r.stderr)
	}
	if r := run("ls", "s3://bkt/flags/"); r.code != 0 || strings.Contains(r.stdout, "a.txt") {
		t.Fatalf("ls after rm: %d %q %s", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, nil, "data", "ls", "s3://bkt/flags/", "--endpoint-url", "127.0.0.1:7070"); r.code == 0 || !strings.Contains(r.stderr, "--endpoint-url") {
		t.Fatalf("a bad --endpoint-url: %d %s", r.code, r.stderr)
	}
}

// s3DataRig starts an S3 server with the bucket "bkt" (credentials in
// the environment), writes files into a local source dir, and returns
// the dir and a runner of `hpcml data ...` with the server's flags.
func s3DataRig(t *testing.T, access string, files map[string]string) (src string, run func(args ...string) result) {
	t.Helper()
	srv := s3test.Start(t, access, access+"secret", "bkt")
	srv.URLEnv(t)
	src = t.TempDir()
	for f, body := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, f), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	flags := []string{"--endpoint-url", srv.Endpoint, "--region", "us-east-1", "--path-style"}
	return src, func(args ...string) result {
		t.Helper()
		return runCLI(t, nil, append(append([]string{"data"}, args...), flags...)...)
	}
}

// TestDataTreeWithoutSlash: s3://bucket/dir names the objects under
// dir/ when there is no object "dir", for every data command, as aws s3
// and rclone read it; rm asks for --recursive before removing a tree so
// named.
func TestDataTreeWithoutSlash(t *testing.T) {
	src, run := s3DataRig(t, "treetest", map[string]string{"a.txt": "a.txt", "sub/b.txt": "sub/b.txt"})
	if r := run("sync", src+"/", "s3://bkt/dir/"); r.code != 0 {
		t.Fatalf("sync up: %d %s", r.code, r.stderr)
	}
	if r := run("ls", "s3://bkt/dir"); r.code != 0 || !strings.Contains(r.stdout, "a.txt") || !strings.Contains(r.stdout, "sub/b.txt") {
		t.Fatalf("ls without the slash: %d %q %s", r.code, r.stdout, r.stderr)
	}
	if r := run("du", "s3://bkt/dir"); r.code != 0 || !strings.Contains(r.stdout, "2 files") {
		t.Fatalf("du without the slash: %d %q %s", r.code, r.stdout, r.stderr)
	}
	down := filepath.Join(t.TempDir(), "down")
	if r := run("sync", "s3://bkt/dir", down); r.code != 0 {
		t.Fatalf("sync down without the slash: %d %s", r.code, r.stderr)
	}
	if got, err := os.ReadFile(filepath.Join(down, "sub", "b.txt")); err != nil || string(got) != "sub/b.txt" {
		t.Fatalf("sync down: sub/b.txt %q (%v)", got, err)
	}
	if r := run("verify", "s3://bkt/dir", down); r.code != 0 {
		t.Fatalf("verify without the slash: %d %s", r.code, r.stderr)
	}
	if r := run("ls", "s3://bkt/di"); r.code == 0 || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("ls of a name that is neither: %d %q %s", r.code, r.stdout, r.stderr)
	}
	if r := run("rm", "s3://bkt/dir"); r.code == 0 || !strings.Contains(r.stderr, "--recursive") {
		t.Fatalf("rm of a tree without --recursive: %d %s", r.code, r.stderr)
	}
	if r := run("ls", "s3://bkt/dir/"); r.code != 0 || !strings.Contains(r.stdout, "a.txt") {
		t.Fatalf("rm without --recursive removed something: %q", r.stdout)
	}
	if r := run("rm", "-r", "s3://bkt/dir"); r.code != 0 {
		t.Fatalf("rm -r without the slash: %d %s", r.code, r.stderr)
	}
	if r := run("ls", "s3://bkt/"); r.code != 0 || strings.Contains(r.stdout, "a.txt") {
		t.Fatalf("ls after rm -r: %d %q %s", r.code, r.stdout, r.stderr)
	}
}

// TestDataCp: cp copies a tree and a single file, to S3 and back, and
// never deletes: a file only the destination has survives; its report
// says "copy".
func TestDataCp(t *testing.T) {
	src, run := s3DataRig(t, "cptest", map[string]string{"a.txt": "alpha", "sub/b.txt": "beta"})
	if r := run("cp", src+"/", "s3://bkt/cp/"); r.code != 0 {
		t.Fatalf("cp up: %d %s", r.code, r.stderr)
	}
	down := t.TempDir()
	if err := os.WriteFile(filepath.Join(down, "mine.txt"), []byte("only here"), 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "report.json")
	if r := run("cp", "s3://bkt/cp/", down, "--report", report); r.code != 0 {
		t.Fatalf("cp down: %d %s", r.code, r.stderr)
	}
	for f, want := range map[string]string{"a.txt": "alpha", "sub/b.txt": "beta", "mine.txt": "only here"} {
		if got, err := os.ReadFile(filepath.Join(down, f)); err != nil || string(got) != want {
			t.Fatalf("%s after cp: %q (%v), want %q", f, got, err, want)
		}
	}
	if b, err := os.ReadFile(report); err != nil || !strings.Contains(string(b), `"operation": "copy"`) || !strings.Contains(string(b), `"files_transferred": 2`) {
		t.Fatalf("cp report: %s (%v)", b, err)
	}
	// One object into a directory lands under its own name.
	one := t.TempDir()
	if r := run("cp", "s3://bkt/cp/sub/b.txt", one+"/"); r.code != 0 {
		t.Fatalf("cp of one object: %d %s", r.code, r.stderr)
	}
	if got, err := os.ReadFile(filepath.Join(one, "b.txt")); err != nil || string(got) != "beta" {
		t.Fatalf("one object copied into a directory: %q (%v)", got, err)
	}
}
