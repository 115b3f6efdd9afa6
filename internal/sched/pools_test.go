package sched

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/backend"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/store"
)

// clusterBackend stands in for Slurm: unbounded, holding dependencies,
// with launch outcomes the test scripts.
type clusterBackend struct {
	mu       sync.Mutex
	fail     []error // next launches' errors, in order
	launches chan *job.Job
	cancels  []int64
}

func (c *clusterBackend) Name() string            { return job.BackendSlurm }
func (c *clusterBackend) Capacity() job.Resources { return job.Resources{} }
func (c *clusterBackend) Limits(context.Context, *job.Queue) (job.Limits, error) {
	return job.Limits{}, nil
}
func (c *clusterBackend) CheckQueue(context.Context, *job.Queue) error { return nil }
func (c *clusterBackend) HoldsDependencies() bool                      { return true }
func (c *clusterBackend) Launch(ctx context.Context, j *job.Job, q *job.Queue) error {
	c.mu.Lock()
	var err error
	if len(c.fail) > 0 {
		err, c.fail = c.fail[0], c.fail[1:]
	}
	c.mu.Unlock()
	if err == nil {
		c.launches <- j
	}
	return err
}
func (c *clusterBackend) Cancel(ctx context.Context, id int64, attempt int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cancels = append(c.cancels, id)
	return nil
}
func (c *clusterBackend) Recover(ctx context.Context, j *job.Job) error { return nil }

var (
	_ backend.Backend          = (*clusterBackend)(nil)
	_ backend.DependencyHolder = (*clusterBackend)(nil)
)

// newPoolsHarness runs a scheduler with a one-CPU local backend (queue
// "default") and a cluster backend (queue "hpc").
func newPoolsHarness(t *testing.T) (*harness, *clusterBackend) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []*job.Queue{{Name: "default", Backend: job.BackendLocal}, {Name: "hpc", Backend: job.BackendSlurm}} {
		if err := st.CreateQueue(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	local := &fakeBackend{capacity: job.Resources{CPUs: 1, MemoryMB: 1024}, launched: make(chan launched, 100)}
	cluster := &clusterBackend{launches: make(chan *job.Job, 100)}
	s := New(st, slog.New(slog.DiscardHandler), nil)
	s.AddBackend(local)
	s.AddBackend(cluster)
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; st.Close() })
	return &harness{t: t, s: s, st: st, be: local}, cluster
}

func (c *clusterBackend) next(t *testing.T) *job.Job {
	t.Helper()
	select {
	case j := <-c.launches:
		return j
	case <-time.After(5 * time.Second):
		t.Fatal("no launch on the cluster")
		return nil
	}
}

// A full local machine holds back nothing bound for the cluster, and the
// cluster gets every runnable job at once, whatever its size.
func TestUnboundedPoolTakesEveryRunnableJob(t *testing.T) {
	h, cluster := newPoolsHarness(t)
	h.submit(job.Spec{Command: cmd()})
	h.nextLaunch() // the local CPU is taken
	waiting := h.submit(job.Spec{Command: cmd()})
	for i := 0; i < 5; i++ {
		h.submit(job.Spec{Command: cmd(), Queue: "hpc", Resources: job.Resources{CPUs: 8}})
	}
	for i := 0; i < 5; i++ {
		if j := cluster.next(t); j.Queue != "hpc" {
			t.Fatalf("cluster launched a job of queue %s", j.Queue)
		}
	}
	h.noLaunch()
	h.until(waiting.ID, "waiting locally", func(j *job.Job) bool { return j.State == job.Runnable })
}

// A backend that cannot be reached holds its jobs RUNNABLE with the
// reason, and they are launched, as the same attempt, once it answers.
func TestUnavailableBackendHoldsJobsAndRetries(t *testing.T) {
	h, cluster := newPoolsHarness(t)
	cluster.fail = []error{fmt.Errorf("slurm controller unreachable (connect failure): %w", backend.ErrUnavailable)}
	j := h.submit(job.Spec{Command: cmd(), Queue: "hpc"})
	h.until(j.ID, "waiting for the backend", func(j *job.Job) bool {
		return j.State == job.Runnable && strings.Contains(j.Reason, "unreachable")
	})
	got := cluster.next(t) // after the backoff
	if got.ID != j.ID || got.Attempt != 1 {
		t.Fatalf("relaunch of job %d attempt %d, want job %d attempt 1", got.ID, got.Attempt, j.ID)
	}
}

// A job whose dependency runs on the same holding backend, on its last
// attempt, is handed over before the dependency ends; when the dependency
// fails, the held job is cancelled in the backend and ends FAILED.
func TestHeldDependentFailsWithItsDependency(t *testing.T) {
	h, cluster := newPoolsHarness(t)
	dep := h.submit(job.Spec{Command: cmd(), Queue: "hpc"})
	l := cluster.next(t)
	h.s.Queued(l.ID, l.Attempt, "slurm:100", "submitted")
	h.until(dep.ID, "known to the backend", func(j *job.Job) bool {
		return len(j.Attempts) == 1 && j.Attempts[0].BackendID == "slurm:100"
	})
	child := h.submit(job.Spec{Command: cmd(), Queue: "hpc", DependsOn: []job.Dependency{{Type: job.AfterOK, JobID: dep.ID}}})
	held := cluster.next(t)
	if held.ID != child.ID || len(held.Spec.DependsOn) != 1 || held.Spec.DependsOn[0].JobID != dep.ID {
		t.Fatalf("launched %d with dependencies %v, want %d held on %d", held.ID, held.Spec.DependsOn, child.ID, dep.ID)
	}
	h.until(child.ID, "held", func(j *job.Job) bool { return j.State == job.Starting })
	code := 1
	h.s.Finished(l.ID, l.Attempt, job.Result{StartedAt: time.Now(), EndedAt: time.Now(), ExitCode: &code})
	waitFor(t, "cancel of the held job", func() bool {
		cluster.mu.Lock()
		defer cluster.mu.Unlock()
		return len(cluster.cancels) == 1 && cluster.cancels[0] == child.ID
	})
	h.s.Finished(held.ID, held.Attempt, job.Result{Cancelled: true, NeverStarted: true})
	got := h.until(child.ID, "failed", func(j *job.Job) bool { return j.State.Terminal() })
	if got.State != job.Failed || !strings.Contains(got.Reason, "can never be satisfied") {
		t.Fatalf("held job ended %s (%s), want FAILED on its dependency", got.State, got.Reason)
	}
}

// A dependency that ended before the backend could hold the job on it
// sends the job back to PENDING, to be decided on the dependency's
// outcome; nothing was launched.
func TestDependencyGoneReturnsToPending(t *testing.T) {
	h, cluster := newPoolsHarness(t)
	dep := h.submit(job.Spec{Command: cmd(), Queue: "hpc"})
	l := cluster.next(t)
	h.s.Queued(l.ID, l.Attempt, "slurm:100", "submitted")
	h.until(dep.ID, "known to the backend", func(j *job.Job) bool {
		return len(j.Attempts) == 1 && j.Attempts[0].BackendID != ""
	})
	cluster.mu.Lock()
	cluster.fail = []error{fmt.Errorf("job %d: %w", dep.ID, backend.ErrDependencyGone)}
	cluster.mu.Unlock()
	child := h.submit(job.Spec{Command: cmd(), Queue: "hpc", DependsOn: []job.Dependency{{Type: job.AfterOK, JobID: dep.ID}}})
	h.until(child.ID, "pending again", func(j *job.Job) bool {
		return j.State == job.Pending && len(j.Attempts) == 1 && j.Attempts[0].State == job.Pending
	})
	h.s.Finished(l.ID, l.Attempt, job.Result{StartedAt: time.Now(), EndedAt: time.Now(), ExitCode: new(int)})
	got := cluster.next(t)
	if got.ID != child.ID || got.Attempt != 1 || len(got.Spec.DependsOn) != 0 {
		t.Fatalf("launched job %d attempt %d with %v, want %d attempt 1 with its dependency decided", got.ID, got.Attempt, got.Spec.DependsOn, child.ID)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// countStager stages up to n attempts.
type countStager int

func (n countStager) StageAhead() int                         { return int(n) }
func (countStager) Unstage(context.Context, int64, int) error { return nil }

// TestStagingIsBoundedByCountAndTime: a pool stages while its last runs
// were short, up to the backend's count for trivial jobs and fewer as the
// runs grow, so that what waits to start is at most stagedWorkPerCPU of
// work per CPU — a job's work being the CPUs it asks for times the run.
func TestStagingIsBoundedByCountAndTime(t *testing.T) {
	staged := func(poolCPUs, jobCPUs float64, run time.Duration) int {
		p := &pool{bounded: true, total: job.Resources{CPUs: poolCPUs}, stager: countStager(8)}
		for range len(p.runs) {
			p.ran(run)
		}
		r := job.Resources{CPUs: jobCPUs}
		for p.canStage(r) {
			p.unstarted++
			p.unstartedMilli += r.MilliCPUs()
		}
		return p.unstarted
	}
	for _, c := range []struct {
		poolCPUs, jobCPUs float64
		run               time.Duration
		want              int
	}{
		{1, 1, 2 * time.Millisecond, 8}, // trivial: the backend's count
		{1, 1, 0, 8},
		{1, 1, 100 * time.Millisecond, 8},
		{1, 1, 150 * time.Millisecond, 6},
		{2, 1, 150 * time.Millisecond, 8},
		{1, 1, 250 * time.Millisecond, 4},
		{2, 1, 250 * time.Millisecond, 8},
		{1, 1, 400 * time.Millisecond, 2},
		{3, 1, 400 * time.Millisecond, 7},
		{1, 1, stageRunMax, 2},
		{1, 1, stageRunMax + time.Millisecond, 0}, // not short: none
		{2, 2, 250 * time.Millisecond, 4},         // jobs of two CPUs weigh twice
		{2, 0.5, 400 * time.Millisecond, 8},       // and of half a CPU half
		{2, 0.5, stageRunMax, 8},
		{1, 0.25, stageRunMax, 8},
		{4, 4, stageRunMax, 2},
	} {
		if got := staged(c.poolCPUs, c.jobCPUs, c.run); got != c.want {
			t.Errorf("a pool of %g CPUs, jobs of %g CPUs, runs of %v: %d staged, want %d", c.poolCPUs, c.jobCPUs, c.run, got, c.want)
		}
	}

	// One long run among short ones stops staging.
	one := job.Resources{CPUs: 1}
	p := &pool{bounded: true, total: one, stager: countStager(8)}
	for i := range len(p.runs) {
		p.ran(time.Duration(i+1) * time.Millisecond)
	}
	if !p.canStage(one) {
		t.Fatal("short runs: no staging")
	}
	p.ran(time.Second)
	if p.canStage(one) {
		t.Fatal("stages after a run of 1 s")
	}
}

// TestTakeBackKeepsOrder: a staged job asked back takes the jobs staged
// after it back with it (left on the node, they would start ahead of
// it), and none goes while one of them is still being launched.
func TestTakeBackKeepsOrder(t *testing.T) {
	t0 := time.Now()
	p := &pool{}
	var entries []*entry
	for i, after := range []time.Duration{0, 500 * time.Millisecond, 1900 * time.Millisecond} {
		e := &entry{j: &job.Job{ID: int64(10 + i)}, pool: p, stagedAt: t0.Add(after)}
		p.staged = append(p.staged, e)
		entries = append(entries, e)
	}
	st := &state{pools: map[string]*pool{"local": p}}

	st.checkStaged(t0.Add(stagedWaitMax - time.Millisecond))
	if len(st.unstages) != 0 {
		t.Fatalf("asked back %d before any waited %v", len(st.unstages), stagedWaitMax)
	}

	entries[2].launching = true
	st.checkStaged(t0.Add(stagedWaitMax + time.Millisecond))
	if len(st.unstages) != 0 {
		t.Fatalf("asked back %d while a job staged after them was still being launched", len(st.unstages))
	}

	entries[2].launching = false
	st.checkStaged(t0.Add(stagedWaitMax + time.Millisecond))
	var ids []int64
	for _, e := range st.unstages {
		ids = append(ids, e.j.ID)
	}
	if !slices.Equal(ids, []int64{10, 11, 12}) {
		t.Fatalf("asked back %v once the first had waited %v, want all three in order", ids, stagedWaitMax)
	}
	st.checkStaged(t0.Add(stagedWaitMax + time.Second))
	if len(st.unstages) != 3 {
		t.Fatalf("asked back twice: %d requests", len(st.unstages))
	}
}
