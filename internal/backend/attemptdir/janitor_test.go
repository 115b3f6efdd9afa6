package attemptdir

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSweepRemovesOnlyOldAttemptsTheStoreSaysEnded(t *testing.T) {
	jobs := t.TempDir()

	old := time.Now().Add(-48 * time.Hour)
	type dir struct {
		old, ended, survive bool
	}
	dirs := map[string]dir{
		"1.1":            {old: true, ended: true, survive: false}, // ended two days ago
		"2.1":            {old: false, ended: true, survive: true}, // ended a minute ago
		"3.1":            {old: true, ended: false, survive: true}, // the store has not seen its end (a server restarting)
		"3.2":            {old: true, ended: true, survive: false}, // an ended attempt without a journal (lost node)
		"not-an-attempt": {old: true, ended: true, survive: true},
	}
	for name, d := range dirs {
		p := filepath.Join(jobs, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if name != "3.2" {
			if err := os.WriteFile(filepath.Join(p, "status.jsonl"), []byte("{}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if d.old {
			for _, f := range []string{filepath.Join(p, "status.jsonl"), p} {
				os.Chtimes(f, old, old)
			}
		}
	}
	// A backend's files beside the attempt dirs must be left alone.
	if err := os.WriteFile(filepath.Join(jobs, "executor.log"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ended := func(_ context.Context, id int64, attempt int) bool {
		name := filepath.Base(Path("", id, attempt))
		return dirs[name].ended
	}

	j := &Janitor{Root: jobs, Keep: 24 * time.Hour, Ended: ended, Log: slog.New(slog.DiscardHandler)}
	if n := j.Sweep(context.Background(), time.Now().Add(-24*time.Hour)); n != 2 {
		t.Errorf("removed %d dirs, want 2", n)
	}
	for name, d := range dirs {
		_, err := os.Stat(filepath.Join(jobs, name))
		if exists := err == nil; exists != d.survive {
			t.Errorf("%s: exists=%v, want %v", name, exists, d.survive)
		}
	}
	if _, err := os.Stat(filepath.Join(jobs, "executor.log")); err != nil {
		t.Errorf("executor log removed: %v", err)
	}
}
