package sched

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/store"
)

// fakeBackend stands in for the machines: it records launches and lets
// the test decide how each attempt ends. The scheduler, the thing under
// test, runs for real on a real SQLite store.
type fakeBackend struct {
	capacity job.Resources
	launched chan launched
	mu       sync.Mutex
	cancels  []int64
}

type launched struct {
	id      int64
	attempt int
}

func (f *fakeBackend) Name() string            { return job.BackendLocal }
func (f *fakeBackend) Capacity() job.Resources { return f.capacity }
func (f *fakeBackend) Limits(context.Context, *job.Queue) (job.Limits, error) {
	return job.Limits{MaxNode: f.capacity, SingleNode: true}, nil
}
func (f *fakeBackend) CheckQueue(context.Context, *job.Queue) error { return nil }
func (f *fakeBackend) Launch(ctx context.Context, j *job.Job, q *job.Queue) error {
	f.launched <- launched{j.ID, j.Attempt}
	return nil
}
func (f *fakeBackend) Cancel(ctx context.Context, id int64, attempt int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancels = append(f.cancels, id)
	return nil
}
func (f *fakeBackend) Recover(ctx context.Context, j *job.Job) error { return nil }

type harness struct {
	t  *testing.T
	s  *Scheduler
	st *store.SQLite
	be *fakeBackend
}

func newHarness(t *testing.T, cpus float64, queues ...*job.Queue) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range append([]*job.Queue{{Name: "default", Backend: "local"}}, queues...) {
		if err := st.CreateQueue(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	be := &fakeBackend{capacity: job.Resources{CPUs: cpus, MemoryMB: 1024}, launched: make(chan launched, 100)}
	s := New(st, slog.New(slog.DiscardHandler), nil)
	s.AddBackend(be)
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; st.Close() })
	return &harness{t: t, s: s, st: st, be: be}
}

func (h *harness) submit(spec job.Spec) *job.Job {
	h.t.Helper()
	j, err := h.s.Submit(context.Background(), &spec)
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

// nextLaunch returns the next attempt handed to the backend.
func (h *harness) nextLaunch() launched {
	h.t.Helper()
	select {
	case l := <-h.be.launched:
		return l
	case <-time.After(5 * time.Second):
		h.t.Fatal("no launch")
		return launched{}
	}
}

func (h *harness) noLaunch() {
	h.t.Helper()
	select {
	case l := <-h.be.launched:
		h.t.Fatalf("unexpected launch of job %d attempt %d", l.id, l.attempt)
	case <-time.After(200 * time.Millisecond):
	}
}

func (h *harness) end(l launched, code int) {
	now := time.Now().UTC()
	h.s.Started(l.id, l.attempt, now)
	h.s.Finished(l.id, l.attempt, job.Result{StartedAt: now, EndedAt: now.Add(time.Millisecond), ExitCode: &code})
}

// until waits for job id to satisfy cond in the store.
func (h *harness) until(id int64, what string, cond func(*job.Job) bool) *job.Job {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		j, err := h.st.GetJob(context.Background(), id)
		if err == nil && cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("job %d not %s: %+v (%v)", id, what, j, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func cmd() []string { return []string{"true"} }

// When a slot frees, the waiting job of the higher-priority queue gets it
// even though a lower-priority job waited longer.
func TestPriorityOrdersWaitingJobs(t *testing.T) {
	h := newHarness(t, 1, &job.Queue{Name: "hi", Priority: 10, Backend: "local"})
	running := h.submit(job.Spec{Command: cmd()})
	first := h.nextLaunch()
	if first.id != running.ID {
		t.Fatalf("launched %d, want %d", first.id, running.ID)
	}
	older := h.submit(job.Spec{Command: cmd()})
	urgent := h.submit(job.Spec{Command: cmd(), Queue: "hi"})
	h.noLaunch() // one CPU, held
	h.until(older.ID, "waiting for resources", func(j *job.Job) bool { return j.State == job.Runnable })
	h.end(first, 0)
	if l := h.nextLaunch(); l.id != urgent.ID {
		t.Fatalf("launched %d after the slot freed, want the high-priority %d", l.id, urgent.ID)
	}
}

// A failed attempt is retried as a new attempt under the policy; the
// failed attempt's record stays.
func TestRetryMakesANewAttempt(t *testing.T) {
	h := newHarness(t, 2)
	j := h.submit(job.Spec{Command: cmd(), Retry: job.RetryPolicy{Attempts: 2}})
	a1 := h.nextLaunch()
	h.end(a1, 3)
	a2 := h.nextLaunch()
	if a2.id != j.ID || a2.attempt != 2 {
		t.Fatalf("relaunch %+v, want job %d attempt 2", a2, j.ID)
	}
	h.end(a2, 0)
	done := h.until(j.ID, "succeeded", func(j *job.Job) bool { return j.State == job.Succeeded })
	if len(done.Attempts) != 2 || done.Attempts[0].State != job.Failed || *done.Attempts[0].ExitCode != 3 {
		t.Fatalf("attempts %+v", done.Attempts)
	}
}

// A launch lost before anything ran is launched again as the same
// attempt: it does not use up the retry policy.
func TestNeverStartedIsRelaunchedAsTheSameAttempt(t *testing.T) {
	h := newHarness(t, 2)
	j := h.submit(job.Spec{Command: cmd()})
	a1 := h.nextLaunch()
	h.s.Finished(a1.id, a1.attempt, job.Result{NeverStarted: true, Error: "launch interrupted"})
	again := h.nextLaunch()
	if again.id != j.ID || again.attempt != 1 {
		t.Fatalf("relaunch %+v, want job %d attempt 1 again", again, j.ID)
	}
	h.end(again, 0)
	h.until(j.ID, "succeeded", func(j *job.Job) bool { return j.State == job.Succeeded && j.Attempt == 1 })
}

// A dependency that can never be satisfied fails the dependent job at
// once, naming the dependency, and it never launches.
func TestImpossibleDependencyFails(t *testing.T) {
	h := newHarness(t, 2)
	dep := h.submit(job.Spec{Command: cmd()})
	child := h.submit(job.Spec{Command: cmd(), DependsOn: []job.Dependency{{Type: job.AfterOK, JobID: dep.ID}}})
	h.end(h.nextLaunch(), 1)
	got := h.until(child.ID, "failed", func(j *job.Job) bool { return j.State == job.Failed })
	if !strings.Contains(got.Reason, "afterok") || !strings.Contains(got.Reason, "FAILED") {
		t.Fatalf("reason %q", got.Reason)
	}
	h.noLaunch()
}

// A chain of dependents settles in one go: a job failed because its
// dependency can never be satisfied is an end its own dependents see —
// afterany runs, afterok fails — without another event to wake them.
func TestDependencyFailureCascades(t *testing.T) {
	h := newHarness(t, 2)
	dep := h.submit(job.Spec{Command: cmd()})
	child := h.submit(job.Spec{Command: cmd(), DependsOn: []job.Dependency{{Type: job.AfterOK, JobID: dep.ID}}})
	cleanup := h.submit(job.Spec{Command: cmd(), DependsOn: []job.Dependency{{Type: job.AfterAny, JobID: child.ID}}})
	grandchild := h.submit(job.Spec{Command: cmd(), DependsOn: []job.Dependency{{Type: job.AfterOK, JobID: child.ID}}})
	h.end(h.nextLaunch(), 1)
	h.until(grandchild.ID, "failed", func(j *job.Job) bool { return j.State == job.Failed })
	if l := h.nextLaunch(); l.id != cleanup.ID {
		t.Fatalf("launched job %d, want the afterany cleanup %d", l.id, cleanup.ID)
	}
}

// A cancel of a waiting job ends it at once; of a running one, it asks
// the backend and the job ends CANCELLED when the attempt reports.
func TestCancel(t *testing.T) {
	h := newHarness(t, 1)
	run := h.submit(job.Spec{Command: cmd()})
	l := h.nextLaunch()
	wait := h.submit(job.Spec{Command: cmd()})
	if err := h.s.Cancel(context.Background(), wait.ID); err != nil {
		t.Fatal(err)
	}
	h.until(wait.ID, "cancelled", func(j *job.Job) bool { return j.State == job.Cancelled })
	h.s.Started(l.id, l.attempt, time.Now().UTC())
	if err := h.s.Cancel(context.Background(), run.ID); err != nil {
		t.Fatal(err)
	}
	h.until(run.ID, "cancelling", func(j *job.Job) bool { return j.CancelRequested })
	h.s.Finished(l.id, l.attempt, job.Result{StartedAt: time.Now().UTC(), EndedAt: time.Now().UTC(), Cancelled: true})
	h.until(run.ID, "cancelled", func(j *job.Job) bool { return j.State == job.Cancelled })
	h.be.mu.Lock()
	defer h.be.mu.Unlock()
	if len(h.be.cancels) != 1 || h.be.cancels[0] != run.ID {
		t.Fatalf("backend cancels %v, want [%d]", h.be.cancels, run.ID)
	}
	if err := h.s.Cancel(context.Background(), run.ID); err == nil {
		t.Fatal("cancel of an ended job succeeded")
	}
}

// TestEndSignalKnowsActiveJobs: a job the loop has taken in is reported
// active (a long poll then waits without reading it), its signal closes
// once its end is in the store, and from then on nothing is known of it.
func TestEndSignalKnowsActiveJobs(t *testing.T) {
	h := newHarness(t, 1)
	j := h.submit(job.Spec{Command: cmd()})
	l := h.nextLaunch() // launched: the loop has taken it in
	ended, release, active := h.s.EndSignal(j.ID)
	defer release()
	if !active {
		t.Fatal("a launched job is not reported active")
	}
	select {
	case <-ended:
		t.Fatal("the end signal closed before the job ended")
	default:
	}
	h.end(l, 0)
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the end signal did not close")
	}
	got, err := h.st.GetJob(context.Background(), j.ID)
	if err != nil || got.State != job.Succeeded {
		t.Fatalf("after its end signal the store has %v (%v)", got, err)
	}
	_, release2, active := h.s.EndSignal(j.ID)
	release2()
	if active {
		t.Fatal("an ended job is still reported active")
	}
	if _, release3, active := h.s.EndSignal(j.ID + 1000); active {
		t.Fatal("an unknown job is reported active")
	} else {
		release3()
	}
}
