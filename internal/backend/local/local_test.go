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
	ended    map[int64][]job.Result // finished, by job
}

func (r *reports) Queued(int64, int, string, string) {}

func (r *reports) Started(int64, int, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started++
}

func (r *reports) Finished(id int64, _ int, res job.Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finished = append(r.finished, res)
	if r.ended == nil {
		r.ended = map[int64][]job.Result{}
	}
	r.ended[id] = append(r.ended[id], res)
}

// Launches whose first write meets a dead connection are sent again on a
// new one, and each attempt's one report is its real end: the reconnect
// must not attach the launches ahead of themselves (the executor would
// answer "unknown", reported as a launch that never started while the
// launch right behind it runs the command — and the scheduler would
// launch the attempt again over its live dir). One launch, and a batch of
// three in one write.
//
// And a batch whose connection dies after its first launch was written
// whole: that launch may have been read, so it is not sent again (the
// executor could run it twice) but attached — this peer was no executor,
// so it never started — and the rest run on the new connection.
func TestLaunchRetriedOnNewConnection(t *testing.T) {
	deadAtOnce := func() net.Conn {
		dead, peer := net.Pipe()
		peer.Close()
		return dead
	}
	firstLineOnly := func() net.Conn {
		c, peer := net.Pipe()
		go func() {
			b := make([]byte, 1)
			for {
				if _, err := peer.Read(b); err != nil || b[0] == '\n' {
					break
				}
			}
			peer.Close()
		}()
		return c
	}
	for _, c := range []struct {
		name  string
		n     int
		conn  func() net.Conn
		never int64 // the job reported never started, if any
	}{
		{"one launch", 1, deadAtOnce, 0},
		{"a batch", 3, deadAtOnce, 0},
		{"a batch cut after its first launch", 3, firstLineOnly, 7},
	} {
		jobs := startTestExecutor(t)
		rep := &reports{}
		b, err := New(Config{JobsDir: jobs, Executable: "/nonexistent", KillGrace: time.Second, BaseEnv: os.Environ(),
			Capacity: job.Resources{CPUs: 8}}, rep, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		conn := c.conn()
		b.mu.Lock()
		b.conn, b.enc = conn, json.NewEncoder(conn)
		b.mu.Unlock()
		var batch []*job.Job
		for i := range c.n {
			batch = append(batch, &job.Job{ID: int64(7 + i), Attempt: 1, State: job.Starting, Spec: job.Spec{Command: []string{"true"}}})
		}
		if c.n == 1 {
			err = b.Launch(context.Background(), batch[0], nil)
		} else {
			err = errors.Join(b.LaunchBatch(context.Background(), batch, nil)...)
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			rep.mu.Lock()
			got := len(rep.finished)
			rep.mu.Unlock()
			if got >= c.n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d attempts reported finished", c.name, got, c.n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // a second report would come right behind
		rep.mu.Lock()
		for _, j := range batch {
			got := rep.ended[j.ID]
			if len(got) != 1 {
				t.Fatalf("%s: job %d reported ended %d times: %+v", c.name, j.ID, len(got), got)
			}
			r := got[0]
			if j.ID == c.never {
				if !r.NeverStarted {
					t.Fatalf("%s: job %d reported %+v, want never started", c.name, j.ID, r)
				}
				continue
			}
			if r.NeverStarted || r.NodeLost || r.ExitCode == nil || *r.ExitCode != 0 {
				t.Fatalf("%s: job %d reported %+v, want the command's real exit 0", c.name, j.ID, r)
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
