package transfer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFailedStartLeavesNothing: a transfer that cannot start — a missing
// bucket, refused credentials, a prefix with no objects, a missing local
// source — does not make its local destination directory, not even
// empty; one that starts makes it, even with nothing to copy into it,
// and a dry run never does.
func TestFailedStartLeavesNothing(t *testing.T) {
	ctx := context.Background()
	s := startS3(t, "bkt")
	b := s.open(t, "bkt")
	if err := b.WriteAll(ctx, "data/a.txt", []byte("a"), nil); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	emptyDir := t.TempDir()
	for _, tc := range []struct {
		name, src, want string
		secret          string
	}{
		{"missing bucket", s.url("no-such-bucket", "data/"), "bucket does not exist", ""},
		{"refused credentials", s.url("bkt", "data/"), "credentials were refused", "not-the-secret"},
		{"prefix with no objects", s.url("bkt", "dtaa/"), "not found", ""},
		{"missing local source", filepath.Join(base, "nope") + "/", "no such file or directory", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.secret != "" {
				t.Setenv("AWS_SECRET_ACCESS_KEY", tc.secret)
			}
			dst := filepath.Join(base, "new", "deeper")
			for _, opts := range []Options{{}, {Delete: true}, {DryRun: true}} {
				rep, err := Sync(ctx, mustEndpoint(t, tc.src), mustEndpoint(t, dst+"/"), opts)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("%+v: report %+v, error %v; want one saying %q", opts, rep, err, tc.want)
				}
				if _, err := os.Stat(filepath.Join(base, "new")); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("%+v: a transfer that could not start made %s (%v)", opts, filepath.Join(base, "new"), err)
				}
			}
		})
	}

	dst := filepath.Join(base, "made", "here")
	if _, err := Sync(ctx, mustEndpoint(t, emptyDir), mustEndpoint(t, dst+"/"), Options{DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a dry run made %s (%v)", dst, err)
	}
	mustSync(t, mustEndpoint(t, emptyDir), mustEndpoint(t, dst+"/"), Options{})
	if info, err := os.Stat(dst); err != nil || !info.IsDir() {
		t.Fatalf("a sync of an empty directory did not make its destination: %v", err)
	}
}

// TestFailedReport: the report of a transfer that could not start says
// why at its top level, and ERROR. (A transfer stopped once started
// carries its error likewise: TestFullDisk checks it.)
func TestFailedReport(t *testing.T) {
	f := FailedReport("sync", "src/", "dst/", time.Now(), errors.New("src/: no such file or directory"))
	if f.Result != "ERROR" || f.Error != "src/: no such file or directory" || f.Operation != "sync" || f.Source != "src/" ||
		f.Destination != "dst/" || f.Ended.IsZero() || f.OK() {
		t.Fatalf("FailedReport: %+v", f)
	}
}
