package transfer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInput: every bad location gets an error that says what is
// wrong, and nothing appears at the destination.
func TestBadInput(t *testing.T) {
	srcDir := t.TempDir()
	writeFile(t, filepath.Join(srcDir, "a.txt"), []byte("a"))
	writeFile(t, filepath.Join(srcDir, "sub", "b.txt"), []byte("b"))
	ctx := context.Background()

	expectErr := func(t *testing.T, err error, want string) {
		t.Helper()
		if err == nil {
			t.Fatalf("no error, want one containing %q", want)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q should contain %q", err, want)
		}
	}

	forEachDest(t, func(t *testing.T, d *dest) {
		t.Run("missing source dir", func(t *testing.T) {
			_, err := Sync(ctx, mustEndpoint(t, filepath.Join(srcDir, "nope")+"/"), d.ep(t, "out1/"), Options{})
			expectErr(t, err, "no such file or directory")
			if got := d.read(t, "out1/"); len(got) != 0 {
				t.Fatalf("wrote %v", got.keys())
			}
		})
		t.Run("destination inside the source", func(t *testing.T) {
			d.put(t, "in/f.txt", []byte("f"), nil)
			_, err := Sync(ctx, d.ep(t, "in/"), d.ep(t, "in/copy/"), Options{})
			expectErr(t, err, "inside the source")
			if got := d.read(t, "in/"); len(got) != 1 {
				t.Fatalf("source tree now holds %v", got.keys())
			}
			_, err = Sync(ctx, d.ep(t, "in/"), d.ep(t, "in/"), Options{})
			expectErr(t, err, "the same")
		})
		t.Run("http destination", func(t *testing.T) {
			_, err := Sync(ctx, d.ep(t, "in/"), mustEndpoint(t, "http://127.0.0.1:1/upload/"), Options{})
			expectErr(t, err, "can only be a source")
			_, err = Copy(ctx, mustEndpoint(t, srcDir), mustEndpoint(t, "https://127.0.0.1:1/x"), Options{})
			expectErr(t, err, "can only be a source")
		})
		if d.s3 == nil {
			return
		}
		t.Run("missing bucket", func(t *testing.T) {
			_, err := Sync(ctx, mustEndpoint(t, srcDir), mustEndpoint(t, d.s3.url("no-such-bucket", "x/")), Options{})
			expectErr(t, err, "bucket does not exist")
			_, err = Sync(ctx, mustEndpoint(t, d.s3.url("no-such-bucket", "x/")), d.ep(t, "out2/"), Options{})
			expectErr(t, err, "bucket does not exist")
			if got := d.read(t, "out2/"); len(got) != 0 {
				t.Fatalf("wrote %v", got.keys())
			}
			_, err = List(ctx, mustEndpoint(t, d.s3.url("no-such-bucket", "")))
			expectErr(t, err, "bucket does not exist")
		})
		t.Run("wrong secret", func(t *testing.T) {
			t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
			_, err := Sync(ctx, mustEndpoint(t, srcDir), d.ep(t, "out3/"), Options{})
			expectErr(t, err, "credentials were refused")
			if got := d.read(t, "out3/"); len(got) != 0 {
				t.Fatalf("wrote %v", got.keys())
			}
			_, err = Verify(ctx, mustEndpoint(t, srcDir), d.ep(t, "out3/"), Options{})
			expectErr(t, err, "credentials were refused")
		})
		t.Run("no credentials", func(t *testing.T) {
			for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"} {
				t.Setenv(v, "")
			}
			t.Setenv("HOME", t.TempDir())                 // no ~/.aws files
			t.Setenv("AWS_EC2_METADATA_DISABLED", "true") // no wait for an instance role
			_, err := Sync(ctx, mustEndpoint(t, srcDir), d.ep(t, "out4/"), Options{})
			expectErr(t, err, "no S3 credentials found")
		})
	})

	t.Run("local destination inside the source", func(t *testing.T) {
		inner := filepath.Join(srcDir, "sub", "copy")
		for _, dst := range []string{inner, inner + "/", "file://" + inner + "/"} {
			_, err := Sync(ctx, mustEndpoint(t, srcDir), mustEndpoint(t, dst), Options{})
			expectErr(t, err, "inside the source")
			if _, err := os.Stat(inner); !os.IsNotExist(err) {
				t.Fatalf("%s: created %s (%v)", dst, inner, err)
			}
		}
	})
	t.Run("local missing source file", func(t *testing.T) {
		// The destination tree already exists: nothing is added to it.
		dst := t.TempDir()
		_, err := Sync(ctx, mustEndpoint(t, filepath.Join(srcDir, "nope.txt")), mustEndpoint(t, dst), Options{})
		expectErr(t, err, "not found")
		if got := readDir(t, dst); len(got) != 0 {
			t.Fatalf("wrote %v", got.keys())
		}
	})
}
