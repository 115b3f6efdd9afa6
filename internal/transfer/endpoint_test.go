package transfer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestParseEndpointLocal(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "data.bin")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "new")
	for _, tc := range []struct {
		name, raw          string
		root, prefix       string
		single             bool
		bucketHasDirSuffix string
	}{
		{name: "existing dir", raw: dir, root: dir},
		{name: "existing dir with slash", raw: dir + "/", root: dir},
		{name: "existing file", raw: file, root: dir, prefix: "data.bin", single: true},
		{name: "missing path is one file", raw: missing, root: dir, prefix: "new", single: true},
		{name: "missing path with slash is a tree", raw: missing + "/", root: missing},
		{name: "file URL dir", raw: "file://" + dir + "/", root: dir},
		{name: "file URL existing dir without slash", raw: "file://" + dir, root: dir},
		{name: "file URL file", raw: "file://" + file, root: dir, prefix: "data.bin", single: true},
		{name: "file URL localhost", raw: "file://localhost" + dir + "/", root: dir},
		{name: "dotdot in a local path is cleaned", raw: dir + "/sub/../data.bin", root: dir, prefix: "data.bin", single: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep, err := ParseEndpoint(tc.raw)
			if err != nil {
				t.Fatal(err)
			}
			if ep.Kind != KindLocal || ep.Root != tc.root || ep.Prefix != tc.prefix || ep.Single() != tc.single || ep.Raw != tc.raw {
				t.Fatalf("got %+v (single %v), want root %q prefix %q single %v", ep, ep.Single(), tc.root, tc.prefix, tc.single)
			}
			want := "file://" + tc.root + "?metadata=skip"
			if ep.Bucket != want {
				t.Errorf("bucket %q, want %q", ep.Bucket, want)
			}
			if ep.String() != tc.raw {
				t.Errorf("String() = %q", ep.String())
			}
		})
	}
}

func TestParseEndpointRelativeLocal(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.Mkdir("tree", 0o755); err != nil {
		t.Fatal(err)
	}
	ep, err := ParseEndpoint("tree")
	if err != nil {
		t.Fatal(err)
	}
	if ep.Root != filepath.Join(dir, "tree") || ep.Single() {
		t.Fatalf("relative dir: %+v", ep)
	}
}

func TestParseEndpointS3(t *testing.T) {
	const q = "?endpoint=http://127.0.0.1:7070&region=us-east-1&use_path_style=true"
	for _, tc := range []struct {
		raw, bucket, prefix string
		single              bool
	}{
		{raw: "s3://bkt", bucket: "s3://bkt", prefix: ""},
		{raw: "s3://bkt/", bucket: "s3://bkt", prefix: ""},
		{raw: "s3://bkt/data/", bucket: "s3://bkt", prefix: "data/"},
		{raw: "s3://bkt/data/x.bin", bucket: "s3://bkt", prefix: "data/x.bin", single: true},
		{raw: "s3://bkt/data/" + q, bucket: "s3://bkt" + q, prefix: "data/"},
		{raw: "s3://bkt/a/b/file" + q, bucket: "s3://bkt" + q, prefix: "a/b/file", single: true},
		{raw: "s3://bkt" + q, bucket: "s3://bkt" + q, prefix: ""},
	} {
		ep, err := ParseEndpoint(tc.raw)
		if err != nil {
			t.Errorf("%s: %v", tc.raw, err)
			continue
		}
		if ep.Kind != KindS3 || ep.Bucket != tc.bucket || ep.Prefix != tc.prefix || ep.Single() != tc.single || ep.Raw != tc.raw {
			t.Errorf("%s: got %+v, want bucket %q prefix %q single %v", tc.raw, ep, tc.bucket, tc.prefix, tc.single)
		}
	}
}

func TestParseEndpointHTTP(t *testing.T) {
	for _, tc := range []struct{ raw, prefix string }{
		{"https://example.com/data/file.tar.gz", "file.tar.gz"},
		{"http://example.com/x.bin?sig=abc", "x.bin"},
		{"http://example.com/", "index"},
		{"http://example.com", "index"},
	} {
		ep, err := ParseEndpoint(tc.raw)
		if err != nil {
			t.Errorf("%s: %v", tc.raw, err)
			continue
		}
		if ep.Kind != KindHTTP || ep.Bucket != tc.raw || ep.Prefix != tc.prefix || !ep.Single() {
			t.Errorf("%s: got %+v, want prefix %q", tc.raw, ep, tc.prefix)
		}
	}
}

func TestParseEndpointErrors(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"", "empty"},
		{"ftp://host/x", "scheme must be"},
		{"gs://bucket/x", "scheme must be"},
		{"s3:///key", "no bucket"},
		{"s3://", "no bucket"},
		{"s3://bkt/a/../b", ".. is not allowed"},
		{"s3://bkt/../b", ".. is not allowed"},
		{"s3://bkt/a/..", ".. is not allowed"},
		{"s3://bkt/a/%2e%2e/b", ".. is not allowed"},
		{"file://host/tmp/x", "file:///path"},
		{"http:///x", "no host"},
		{"s3://bkt/%zz", "invalid URL escape"},
	} {
		ep, err := ParseEndpoint(tc.raw)
		if err == nil {
			t.Errorf("%q: no error, got %+v", tc.raw, ep)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q should contain %q", tc.raw, err, tc.want)
		}
	}
	// Keys that merely contain dots are fine.
	for _, raw := range []string{"s3://bkt/a..b/c", "s3://bkt/..a/", "s3://bkt/a/b../"} {
		if _, err := ParseEndpoint(raw); err != nil {
			t.Errorf("%q: %v", raw, err)
		}
	}
}

func TestAsTree(t *testing.T) {
	dir := t.TempDir()
	local, err := ParseEndpoint(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if !local.Single() {
		t.Fatal("a missing path without a slash should name one file")
	}
	tree := local.AsTree()
	if tree.Single() || tree.Root != filepath.Join(dir, "out") || tree.Prefix != "" || tree.Bucket != "file://"+filepath.Join(dir, "out")+"?metadata=skip" {
		t.Fatalf("local AsTree: %+v", tree)
	}
	if tree.Raw != local.Raw {
		t.Errorf("AsTree changed Raw: %q", tree.Raw)
	}

	s3, err := ParseEndpoint("s3://bkt/data/v1?region=us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	st := s3.AsTree()
	if st.Single() || st.Prefix != "data/v1/" || st.Bucket != s3.Bucket {
		t.Fatalf("s3 AsTree: %+v", st)
	}

	// A tree stays as it is.
	for _, raw := range []string{dir, "s3://bkt/data/", "s3://bkt"} {
		ep, err := ParseEndpoint(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := ep.AsTree(); got != ep {
			t.Errorf("%s: AsTree changed a tree: %+v -> %+v", raw, ep, got)
		}
	}
}

// TestLocate: an S3 name that is no object but a prefix of some is the
// tree under it; an object's name, or a name that is neither, is left.
// (An object that is also a tree's name cannot be made on versitygw's
// posix backend; there the object wins, since its HEAD succeeds.)
func TestLocate(t *testing.T) {
	s := startS3(t, "loc")
	ctx := context.Background()
	for _, k := range []string{"dir/a", "dir/sub/b"} {
		if _, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("loc"), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
			t.Fatal(err)
		}
	}
	for key, wantPrefix := range map[string]string{
		"dir":   "dir/", // a tree named without its slash
		"dir/":  "dir/",
		"dir/a": "dir/a", // an object
		"none":  "none",  // neither: left for the transfer to report
		"di":    "di",    // a prefix of names, not of a tree
	} {
		if got, err := Locate(ctx, mustEndpoint(t, s.url("loc", key))); err != nil || got.Prefix != wantPrefix {
			t.Errorf("Locate(%s): prefix %q (%v), want %q", key, got.Prefix, err, wantPrefix)
		}
	}
	// A dataset manifest of such a name records the tree's URL, which
	// jobs read again.
	m, err := Manifest(ctx, mustEndpoint(t, s.url("loc", "dir")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.Source, "s3://loc/dir/?") || len(m.Objects) != 2 || m.Objects[0].Key != "a" {
		t.Fatalf("manifest of s3://loc/dir: source %q, objects %+v", m.Source, m.Objects)
	}
	if again := mustEndpoint(t, m.Source); again.Single() {
		t.Fatalf("the manifest's source %q reads as one object", m.Source)
	}
}

// TestSingleSourceDeletesNothing: sync --delete of one object into a
// directory copies it and deletes nothing there (no tree to mirror),
// whether the object was named directly or was a tree's only member.
func TestSingleSourceDeletesNothing(t *testing.T) {
	s := startS3(t, "one")
	if _, err := s.client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String("one"), Key: aws.String("in/x.bin"), Body: strings.NewReader("x"),
	}); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := os.WriteFile(filepath.Join(dst, "keep.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := mustSync(t, mustEndpoint(t, s.url("one", "in/x.bin")), mustEndpoint(t, dst), Options{Delete: true})
	if rep.Totals.FilesTransferred != 1 || rep.Totals.FilesDeleted != 0 {
		t.Fatalf("sync --delete of one object: %+v", rep.Totals)
	}
	for _, name := range []string{"keep.txt", "x.bin"} {
		if _, err := os.Stat(filepath.Join(dst, name)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// The tree named without its slash mirrors, deletes included.
	rep = mustSync(t, mustEndpoint(t, s.url("one", "in")), mustEndpoint(t, dst), Options{Delete: true})
	if rep.Totals.FilesDeleted != 1 {
		t.Fatalf("sync --delete of the tree s3://one/in: %+v", rep.Totals)
	}
	if _, err := os.Stat(filepath.Join(dst, "keep.txt")); err == nil {
		t.Fatal("keep.txt survived a sync --delete of a tree that lacks it")
	}
}
