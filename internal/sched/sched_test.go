package sched

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/backend"
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
	return newHarnessOn(t, cpus, func(f *fakeBackend) backend.Backend { return f }, queues...)
}

// stagingBackend is a fakeBackend that takes one attempt beyond its
// capacity (backend.Stager); the attempts asked back go to unstaged.
type stagingBackend struct {
	*fakeBackend
	unstaged chan launched
}

func (stagingBackend) StageAhead() int { return 1 }
func (b stagingBackend) Unstage(ctx context.Context, id int64, attempt int) error {
	b.unstaged <- launched{id, attempt}
	return nil
}

// newHarnessOn runs the scheduler on the backend wrap makes of the fake.
func newHarnessOn(t *testing.T, cpus float64, wrap func(*fakeBackend) backend.Backend, queues ...*job.Queue) *harness {
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
	s.AddBackend(wrap(be))
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
	ew := h.s.EndSignal(j.ID)
	defer ew.Release()
	if !ew.Active {
		t.Fatal("a launched job is not reported active")
	}
	select {
	case <-ew.Ended:
		t.Fatal("the end signal closed before the job ended")
	default:
	}
	h.end(l, 0)
	h.waitEnd(ew)
	got, err := h.st.GetJob(context.Background(), j.ID)
	if err != nil || got.State != job.Succeeded {
		t.Fatalf("after its end signal the store has %v (%v)", got, err)
	}
	after := h.s.EndSignal(j.ID)
	after.Release()
	if after.Active {
		t.Fatal("an ended job is still reported active")
	}
	if unknown := h.s.EndSignal(j.ID + 1000); unknown.Active {
		t.Fatal("an unknown job is reported active")
	}
}

func (h *harness) waitEnd(ew *EndWait) {
	h.t.Helper()
	select {
	case <-ew.Ended:
	case <-time.After(10 * time.Second):
		h.t.Fatal("the end signal did not close")
	}
}

// TestEndSignalFinalIsTheStoredJob: the record a long poll is answered
// with at a job's end is, field for field, what the store returns for it
// — or nil where the loop does not hold all of it.
func TestEndSignalFinalIsTheStoredJob(t *testing.T) {
	h := newHarness(t, 1)
	ctx := context.Background()
	same := func(what string, ew *EndWait, id int64) {
		t.Helper()
		h.waitEnd(ew)
		stored, err := h.st.GetJob(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(stored)
		got, _ := json.Marshal(ew.Final())
		if string(got) != string(want) {
			t.Fatalf("%s: the end signal's record\n%s\nthe store's\n%s", what, got, want)
		}
		kept, _ := json.Marshal(h.s.EndedJob(id))
		if string(kept) != string(want) {
			t.Fatalf("%s: the recent end kept\n%s\nthe store's\n%s", what, kept, want)
		}
	}

	ok := h.submit(job.Spec{Command: cmd(), Name: "ok", Env: map[string]string{"A": "1"}})
	okEnd := h.s.EndSignal(ok.ID)
	h.end(h.nextLaunch(), 0)
	same("succeeded", okEnd, ok.ID)

	failed := h.submit(job.Spec{Command: cmd()})
	failedEnd := h.s.EndSignal(failed.ID)
	h.end(h.nextLaunch(), 3)
	same("failed", failedEnd, failed.ID)

	// Everything a real attempt reports: usage, logs, a signal, cache use.
	killed := h.submit(job.Spec{Command: cmd(), Resources: job.Resources{CPUs: 0.5, MemoryMB: 64}})
	killedEnd := h.s.EndSignal(killed.ID)
	kl := h.nextLaunch()
	start := time.Now().UTC()
	h.s.Started(kl.id, kl.attempt, start)
	h.s.Finished(kl.id, kl.attempt, job.Result{StartedAt: start, EndedAt: start.Add(1500 * time.Millisecond),
		Signal: "SIGKILL", CPUSeconds: 1.25, MaxRSSBytes: 3 << 20, CacheHits: 2, CacheMisses: 1,
		StdoutURL: "jobs/3/1/stdout", StderrURL: "jobs/3/1/stderr"})
	same("killed by a signal", killedEnd, killed.ID)

	// Cancelled while waiting behind a running job: no attempt at all.
	blocker := h.submit(job.Spec{Command: cmd()})
	bl := h.nextLaunch()
	pending := h.submit(job.Spec{Command: cmd()})
	h.until(pending.ID, "runnable", func(j *job.Job) bool { return j.State == job.Runnable })
	pendingEnd := h.s.EndSignal(pending.ID)
	if err := h.s.Cancel(ctx, pending.ID); err != nil {
		t.Fatal(err)
	}
	same("cancelled before starting", pendingEnd, pending.ID)
	h.end(bl, 0)
	h.until(blocker.ID, "ended", func(j *job.Job) bool { return j.State.Terminal() })

	// An array task; its parent's counts are the store's to tell.
	arr := h.submit(job.Spec{Command: cmd(), Array: "0-1"})
	tasks, err := h.st.ListJobs(ctx, store.JobFilter{Parent: arr.ID})
	if err != nil || len(tasks) != 2 {
		t.Fatalf("array tasks %v %v", tasks, err)
	}
	taskEnd := h.s.EndSignal(tasks[0].ID)
	parentEnd := h.s.EndSignal(arr.ID)
	h.end(h.nextLaunch(), 0)
	h.end(h.nextLaunch(), 0)
	same("array task", taskEnd, tasks[0].ID)
	h.waitEnd(parentEnd)
	if parentEnd.Final() != nil || h.s.EndedJob(arr.ID) != nil {
		t.Fatal("an array parent's end came with a record: its counts are the store's")
	}

	// A retried job: its first attempt is the store's to tell.
	retried := h.submit(job.Spec{Command: cmd(), Retry: job.RetryPolicy{Attempts: 2}})
	retriedEnd := h.s.EndSignal(retried.ID)
	h.end(h.nextLaunch(), 1)
	h.end(h.nextLaunch(), 0)
	h.waitEnd(retriedEnd)
	if retriedEnd.Final() != nil || h.s.EndedJob(retried.ID) != nil {
		t.Fatal("a retried job's end came with a record holding only its last attempt")
	}
	if h.s.EndedJob(blocker.ID+1000) != nil {
		t.Fatal("a record for a job that does not exist")
	}

	// A big spec is not kept in memory (its waiter still gets the record).
	big := h.submit(job.Spec{Command: cmd(), Env: map[string]string{"BIG": strings.Repeat("x", recentSpecMax)}})
	bigEnd := h.s.EndSignal(big.ID)
	h.end(h.nextLaunch(), 0)
	h.waitEnd(bigEnd)
	if bigEnd.Final() == nil || h.s.EndedJob(big.ID) != nil {
		t.Fatal("a job with a big spec: its waiter's record missing, or kept in memory")
	}
}

// TestRecentEndsAreBounded: the ended jobs kept in memory are the last
// recentEndsMax, oldest dropped first.
func TestRecentEndsAreBounded(t *testing.T) {
	var r recentEnds
	for id := int64(1); id <= recentEndsMax+10; id++ {
		r.add([]*job.Job{{ID: id}})
	}
	if len(r.byID) != recentEndsMax {
		t.Fatalf("%d kept, want %d", len(r.byID), recentEndsMax)
	}
	if r.byID[10] != nil || r.byID[11] == nil || r.byID[recentEndsMax+10] == nil {
		t.Fatal("not the last ones kept")
	}
}

// TestStagingAheadOfAFreeSlot: a backend that stages gets one attempt
// beyond its capacity, said to be staged, once the last attempts that
// ended on it were all short, and never more than it takes; a long run
// stops staging (it would hand a slot to whoever was staged first).
func TestStagingAheadOfAFreeSlot(t *testing.T) {
	h := newHarnessOn(t, 1, func(f *fakeBackend) backend.Backend { return stagingBackend{f, make(chan launched, 10)} })
	// Nothing has run yet: no staging, one at a time.
	for range 8 {
		h.submit(job.Spec{Command: cmd()})
	}
	for range 8 {
		h.end(h.nextLaunch(), 0) // 1 ms each
	}
	running := h.submit(job.Spec{Command: cmd()})
	rl := h.nextLaunch()
	h.s.Started(rl.id, rl.attempt, time.Now().UTC()) // until then it waits to start itself
	staged := h.submit(job.Spec{Command: cmd()})
	sl := h.nextLaunch()
	if sl.id != staged.ID {
		t.Fatalf("launched %d, want the staged %d", sl.id, staged.ID)
	}
	got := h.until(staged.ID, "starting", func(j *job.Job) bool { return j.State == job.Starting })
	if got.Reason != ReasonStaged {
		t.Fatalf("staged job's reason %q", got.Reason)
	}
	waiting := h.submit(job.Spec{Command: cmd()})
	h.noLaunch() // one staged at most
	h.until(waiting.ID, "runnable", func(j *job.Job) bool { return j.State == job.Runnable })

	// The running one ends and the staged one starts on the node: room
	// to stage the next.
	h.end(rl, 0)
	now := time.Now().UTC()
	h.s.Started(sl.id, sl.attempt, now)
	wl := h.nextLaunch()
	if wl.id != waiting.ID {
		t.Fatalf("launched %d, want %d staged next", wl.id, waiting.ID)
	}
	h.until(running.ID, "ended", func(j *job.Job) bool { return j.State.Terminal() })

	// A run of 2 s ends; the job staged behind it starts in its slot.
	// Room to stage again, but a long run was seen: nothing is staged.
	h.s.Finished(sl.id, sl.attempt, job.Result{StartedAt: now, EndedAt: now.Add(2 * time.Second), ExitCode: new(int)})
	h.s.Started(wl.id, wl.attempt, time.Now().UTC())
	h.until(waiting.ID, "running", func(j *job.Job) bool { return j.State == job.Running })
	next := h.submit(job.Spec{Command: cmd()})
	h.noLaunch()
	h.until(next.ID, "runnable", func(j *job.Job) bool { return j.State == job.Runnable })
}

// TestStagedTooLongIsTakenBack: a job staged behind one that turns out
// not to be short is asked back after a second, placed again by priority
// once it comes back never started, and staging stops meanwhile.
func TestStagedTooLongIsTakenBack(t *testing.T) {
	sb := stagingBackend{unstaged: make(chan launched, 10)}
	h := newHarnessOn(t, 1, func(f *fakeBackend) backend.Backend { sb.fakeBackend = f; return sb },
		&job.Queue{Name: "hi", Priority: 10, Backend: "local"})
	for range 8 {
		h.submit(job.Spec{Command: cmd()})
	}
	for range 8 {
		h.end(h.nextLaunch(), 0)
	}
	h.submit(job.Spec{Command: cmd()})
	rl := h.nextLaunch()
	h.s.Started(rl.id, rl.attempt, time.Now().UTC()) // and it runs on
	lo := h.submit(job.Spec{Command: cmd()})
	sl := h.nextLaunch()
	if sl.id != lo.ID {
		t.Fatalf("launched %d, want %d staged", sl.id, lo.ID)
	}
	start := time.Now()
	var back launched
	select {
	case back = <-sb.unstaged:
	case <-time.After(5 * time.Second):
		t.Fatal("a job staged for seconds was not asked back")
	}
	if back != sl || time.Since(start) < stagedWaitMax-100*time.Millisecond {
		t.Fatalf("asked back %+v after %v, want %+v after %v", back, time.Since(start), sl, stagedWaitMax)
	}
	hi := h.submit(job.Spec{Command: cmd(), Queue: "hi"})
	h.s.Finished(sl.id, sl.attempt, job.Result{NeverStarted: true, EndedAt: time.Now().UTC(), Error: "taken back"})
	h.until(lo.ID, "runnable again", func(j *job.Job) bool { return j.State == job.Runnable })
	h.noLaunch() // staging stopped: both wait for the slot
	h.end(rl, 0)
	if l := h.nextLaunch(); l.id != hi.ID {
		t.Fatalf("the freed slot went to %d, want the higher-priority %d", l.id, hi.ID)
	}
}
