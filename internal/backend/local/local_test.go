package local

import (
	"context"
	"encoding/json"
	"errors"
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

// Launches whose first write meets a dead connection are sent again on a
// new one, and each attempt's one report is its real end: the reconnect
// must not attach the launches ahead of themselves (the executor would
// answer "unknown", reported as a launch that never started while the
// launch right behind it runs the command — and the scheduler would
// launch the attempt again over its live dir). One launch, and a batch of
// three in one write.
func TestLaunchRetriedOnNewConnection(t *testing.T) {
	for _, n := range []int{1, 3} {
		jobs := startTestExecutor(t)
		rep := &reports{}
		b, err := New(Config{JobsDir: jobs, Executable: "/nonexistent", KillGrace: time.Second, BaseEnv: os.Environ(),
			Capacity: job.Resources{CPUs: 8}}, rep, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		dead, peer := net.Pipe()
		peer.Close()
		b.mu.Lock()
		b.conn, b.enc = dead, json.NewEncoder(dead)
		b.mu.Unlock()
		var batch []*job.Job
		for i := range n {
			batch = append(batch, &job.Job{ID: int64(7 + i), Attempt: 1, State: job.Starting, Spec: job.Spec{Command: []string{"true"}}})
		}
		if n == 1 {
			err = b.Launch(context.Background(), batch[0], nil)
		} else {
			err = errors.Join(b.LaunchBatch(context.Background(), batch, nil)...)
		}
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			rep.mu.Lock()
			got := len(rep.finished)
			rep.mu.Unlock()
			if got >= n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d attempts reported finished", got, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // a second report would come right behind
		rep.mu.Lock()
		if len(rep.finished) != n {
			t.Fatalf("%d reports of %d attempts' ends: %+v", len(rep.finished), n, rep.finished)
		}
		for _, r := range rep.finished {
			if r.NeverStarted || r.NodeLost || r.ExitCode == nil || *r.ExitCode != 0 {
				t.Fatalf("reported %+v, want the command's real exit 0", r)
			}
		}
		rep.mu.Unlock()
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
