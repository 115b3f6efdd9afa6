package task

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/hpcml/hpcml/internal/job"
)

// TestJobEnvProgressFile: a job is told where to report its progress, in
// its attempt dir where the server reads it (ReadProgress).
func TestJobEnvProgressFile(t *testing.T) {
	dir := t.TempDir()
	j := &job.Job{ID: 7, Attempt: 2, Spec: job.Spec{Command: []string{"true"}}}
	env := JobEnv([]string{"HPCML_PROGRESS_FILE=/elsewhere", "PATH=/bin"}, j, dir)
	path := filepath.Join(dir, ProgressFile)
	if !slices.Contains(env, job.ProgressFileEnv+"="+path) || slices.Contains(env, "HPCML_PROGRESS_FILE=/elsewhere") {
		t.Fatalf("env %q lacks %s=%s", env, job.ProgressFileEnv, path)
	}
	if !slices.Contains(env, "HPCML_JOB_DIR="+filepath.Join(dir, WorkDir)) {
		t.Errorf("env %q lacks the job dir", env)
	}
	if p, err := ReadProgress(dir); p != nil || err != nil {
		t.Fatalf("before any report: %+v, %v", p, err)
	}
	if err := job.WriteProgressFile(path, &job.Progress{Done: 4, Total: 8, Unit: "steps"}); err != nil {
		t.Fatal(err)
	}
	if p, err := ReadProgress(dir); err != nil || p == nil || p.Done != 4 || p.Total != 8 {
		t.Fatalf("read back %+v, %v", p, err)
	}
}
