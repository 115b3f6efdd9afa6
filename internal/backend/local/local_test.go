package local

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/task"
)

// reports records what a Backend reports.
type reports struct {
	mu       sync.Mutex
	started  int
	finished []job.Result
}

func (r *reports) Queued(int64, int, string, string) {}

func (r *reports) Started(int64, int, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started++
}

func (r *reports) Finished(_ int64, _ int, res job.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finished = append(r.finished, res)
}

// A launch whose first write meets a dead connection is sent again on a
// new one, and the attempt's one report is its real end: the reconnect
// must not attach the launch ahead of itself (the executor would answer
// "unknown", reported as a launch that never started while the launch
// right behind it runs the command — and the scheduler would launch the
// attempt again over its live dir).
func TestLaunchRetriedOnNewConnection(t *testing.T) {
	jobs := startTestExecutor(t)
	rep := &reports{}
	b, err := New(Config{JobsDir: jobs, Executable: "/nonexistent", KillGrace: time.Second, BaseEnv: os.Environ()},
		rep, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dead, peer := net.Pipe()
	peer.Close()
	b.mu.Lock()
	b.conn, b.enc = dead, json.NewEncoder(dead)
	b.mu.Unlock()
	j := &job.Job{ID: 7, Attempt: 1, State: job.Starting, Spec: job.Spec{Command: []string{"true"}}}
	if err := b.Launch(context.Background(), j, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rep.mu.Lock()
		n := len(rep.finished)
		rep.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the attempt was never reported finished")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a second report would come right behind
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if len(rep.finished) != 1 {
		t.Fatalf("%d reports of the attempt's end, want 1: %+v", len(rep.finished), rep.finished)
	}
	if r := rep.finished[0]; r.NeverStarted || r.NodeLost || r.ExitCode == nil || *r.ExitCode != 0 {
		t.Fatalf("reported %+v, want the command's real exit 0", r)
	}
}

// TestMakeAttemptDir: a fresh dir and its work dir are made; one left by
// an abandoned launch is made anew, empty; a missing jobs dir is made.
func TestMakeAttemptDir(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "7.1")
	if err := makeAttemptDir(dir); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(filepath.Join(dir, task.WorkDir)); err != nil || !info.IsDir() {
		t.Fatalf("work dir: %v", err)
	}
	stale := filepath.Join(dir, task.WorkDir, "left-over")
	if err := os.WriteFile(stale, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := makeAttemptDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("an abandoned launch's file survived: %v", err)
	}
	deep := filepath.Join(root, "gone", "8.1")
	if err := makeAttemptDir(deep); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(deep, task.WorkDir)); err != nil {
		t.Fatal(err)
	}
}
