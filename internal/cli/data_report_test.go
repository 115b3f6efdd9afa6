package cli

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcml/hpcml/internal/s3test"
	"github.com/hpcml/hpcml/internal/transfer"
)

// TestDataReportOnBadInput: with --report, a transfer that cannot start
// (a missing source, a bad flag, a missing bucket, refused credentials)
// still writes a report, whose top level carries the error and the
// result ERROR; the command exits 1 naming the problem, and no
// destination directory is made.
func TestDataReportOnBadInput(t *testing.T) {
	srv := s3test.Start(t, "clitest", "clitestsecret", "bkt")
	q := srv.URLEnv(t)
	base := t.TempDir()
	src := filepath.Join(base, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(base, "out", "dst") + "/"
	for _, tc := range []struct {
		name   string
		args   []string
		want   string // in the error and the report
		op     string
		secret string
	}{
		{"missing source", []string{"data", "sync", filepath.Join(base, "nope") + "/", dst}, "no such file or directory", "sync", ""},
		{"bad flag value", []string{"data", "cp", src, dst, "--bwlimit", "fast"}, `"fast"`, "copy", ""},
		{"bad location", []string{"data", "sync", "ftp://host/x", dst}, "scheme must be", "sync", ""},
		{"missing bucket", []string{"data", "sync", "s3://no-such-bucket/data/" + q, dst}, "bucket does not exist", "sync", ""},
		{"refused credentials", []string{"data", "sync", "s3://bkt/data/" + q, dst}, "credentials were refused", "sync", "wrong"},
		{"verify of a missing source", []string{"data", "verify", filepath.Join(base, "nope") + "/", src}, "no such file or directory", "verify", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.secret != "" {
				t.Setenv("AWS_SECRET_ACCESS_KEY", tc.secret)
			}
			report := filepath.Join(t.TempDir(), "report.json")
			r := runCLI(t, nil, append(tc.args, "--report", report)...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 1 and an error containing %q", r.code, r.stderr, tc.want)
			}
			data, err := os.ReadFile(report)
			if err != nil {
				t.Fatalf("no report: %v", err)
			}
			var rep transfer.Report
			if err := json.Unmarshal(data, &rep); err != nil {
				t.Fatalf("report %s: %v", data, err)
			}
			if rep.Result != "ERROR" || !strings.Contains(rep.Error, tc.want) || rep.Operation != tc.op ||
				rep.Source != tc.args[2] || rep.Destination != tc.args[3] || rep.Started.IsZero() {
				t.Fatalf("report %s: want result ERROR, error containing %q, operation %s and the locations given", data, tc.want, tc.op)
			}
			// The fields every report has are there, as before.
			var fields map[string]any
			json.Unmarshal(data, &fields)
			for _, k := range []string{"operation", "source", "destination", "verify_mode", "started_at", "ended_at", "result", "error", "totals", "transferred", "failed", "verify_failed"} {
				if _, ok := fields[k]; !ok {
					t.Errorf("report has no %q: %s", k, data)
				}
			}
			if _, err := os.Stat(filepath.Join(base, "out")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a transfer that could not start made %s (%v)", filepath.Join(base, "out"), err)
			}
		})
	}
}
