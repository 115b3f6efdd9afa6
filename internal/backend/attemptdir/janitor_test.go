package attemptdir

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/task"
)

func TestSweepRemovesOnlyOldAttemptsTheStoreSaysEnded(t *testing.T) {
	for name, layout := range map[string]func(string) task.Layout{"flat": task.Flat, "nested": task.Nested} {
		t.Run(name, func(t *testing.T) { testSweep(t, layout) })
	}
}

func testSweep(t *testing.T, layout func(string) task.Layout) {
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
		files := layout(filepath.Join(jobs, name))
		if err := os.MkdirAll(files.Work, 0o755); err != nil {
			t.Fatal(err)
		}
		if name != "3.2" {
			for _, f := range []string{files.Status, files.Stdout} {
				if err := os.WriteFile(f, []byte("{}\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		if d.old {
			for _, f := range []string{files.Status, files.Stdout, files.Work} {
				os.Chtimes(f, old, old)
			}
		}
	}
	// A backend's files beside the attempt dirs must be left alone.
	if err := os.WriteFile(filepath.Join(jobs, "executor.log"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ended := func(_ context.Context, id int64, attempt int) bool {
		return dirs[filepath.Base(Path("", id, attempt))].ended
	}
	j := &Janitor{Root: jobs, Keep: 24 * time.Hour, Ended: ended, Log: slog.New(slog.DiscardHandler), Layout: layout}
	if n := j.Sweep(context.Background(), time.Now().Add(-24*time.Hour)); n != 2 {
		t.Errorf("removed %d attempts, want 2", n)
	}
	for name, d := range dirs {
		files := layout(filepath.Join(jobs, name))
		for _, f := range []string{files.Work, files.Status} {
			if name == "3.2" && f == files.Status {
				continue // never had one
			}
			_, err := os.Stat(f)
			if exists := err == nil; exists != d.survive {
				t.Errorf("%s: exists=%v, want %v", f, exists, d.survive)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(jobs, "executor.log")); err != nil {
		t.Errorf("executor log removed: %v", err)
	}
}
