package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/transfer"
)

// TestDataSyncReportsToJob: a transfer running as a job leaves its
// progress in HPCML_PROGRESS_FILE; the last report has everything done.
func TestDataSyncReportsToJob(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%d", i)), []byte(strings.Repeat("x", 1000*(i+1))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "progress.json")
	r := runCLI(t, map[string]string{job.ProgressFileEnv: path}, "data", "sync", src, dst, "--verify", "transferred")
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	p, err := job.ReadProgressFile(path)
	if err != nil || p == nil {
		t.Fatalf("progress %+v, %v", p, err)
	}
	want := job.Progress{Done: 6000, Total: 6000, Unit: job.UnitBytes, FilesDone: 3, FilesTotal: 3,
		Message: "copied 3 of 3 files; verifying", UpdatedAt: p.UpdatedAt}
	if *p != want {
		t.Errorf("final report %+v, want %+v", *p, want)
	}
}

func TestJobProgressOfTransfer(t *testing.T) {
	tests := []struct {
		name string
		s    transfer.Stats
		del  bool
		want job.Progress
	}{
		{"copying", transfer.Stats{Files: 10, FilesDone: 4, Total: 1000, Bytes: 400, Rate: 100, ETA: 6 * time.Second},
			false, job.Progress{Done: 400, Total: 1000, Unit: "bytes", FilesDone: 4, FilesTotal: 10, Rate: 100, ETASeconds: 6, Message: "copying"}},
		{"retries past the total", transfer.Stats{Files: 1, Total: 1000, Bytes: 1500, FilesFailed: 1, Rate: 100},
			false, job.Progress{Done: 1000, Total: 1000, Unit: "bytes", FilesTotal: 1, Rate: 100, Message: "copying; 1 failed"}},
		{"nothing to copy", transfer.Stats{Final: true}, true, job.Progress{Unit: "bytes", Message: "nothing to copy; deleting"}},
		{"final", transfer.Stats{Files: 2, FilesDone: 2, Total: 10, Bytes: 10, Rate: 5, Final: true},
			false, job.Progress{Done: 10, Total: 10, Unit: "bytes", FilesDone: 2, FilesTotal: 2, Message: "copied 2 of 2 files"}},
	}
	for _, tt := range tests {
		if got := jobProgress(tt.s, transfer.VerifyNone, tt.del); *got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.name, *got, tt.want)
		}
	}
}
