package local

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/task"
)

func writeJournal(t *testing.T, dir string, recs ...task.Record) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, task.WorkDir), 0o755); err != nil {
		t.Fatal(err)
	}
	var data []byte
	for _, r := range recs {
		line, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		data = append(append(data, line...), '\n')
	}
	if err := os.WriteFile(filepath.Join(dir, task.StatusFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestSweepRemovesOnlyLongEndedAttempts(t *testing.T) {
	jobs := t.TempDir()
	b := &Backend{cfg: Config{JobsDir: jobs}, log: slog.New(slog.DiscardHandler)}
	now := time.Now().UTC()
	old, recent := now.Add(-48*time.Hour), now.Add(-time.Minute)
	claimed := task.Record{Stage: task.StageClaimed, At: old, Owner: task.OwnerExecutor}
	done := func(at time.Time) task.Record {
		return task.Record{Stage: task.StageDone, At: at, Result: &job.Result{}}
	}
	dirs := map[string]bool{ // name -> should survive
		"1.1": false, // done two days ago
		"2.1": true,  // done a minute ago
		"3.1": true,  // still running: started, never done
		"4.1": true,  // never claimed
	}
	writeJournal(t, filepath.Join(jobs, "1.1"), claimed, done(old))
	writeJournal(t, filepath.Join(jobs, "2.1"), claimed, done(recent))
	writeJournal(t, filepath.Join(jobs, "3.1"), claimed, task.Record{Stage: task.StageStarted, At: old, PID: 1})
	writeJournal(t, filepath.Join(jobs, "4.1"))
	// Not an attempt dir: the executor's socket and log must be left alone.
	if err := os.WriteFile(filepath.Join(jobs, executorLog), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	if n := b.sweep(now.Add(-24 * time.Hour)); n != 1 {
		t.Errorf("removed %d dirs, want 1", n)
	}
	for name, survive := range dirs {
		_, err := os.Stat(filepath.Join(jobs, name))
		if exists := err == nil; exists != survive {
			t.Errorf("%s: exists=%v, want %v", name, exists, survive)
		}
	}
	if _, err := os.Stat(filepath.Join(jobs, executorLog)); err != nil {
		t.Errorf("executor log removed: %v", err)
	}
}
