// Package sched decides what runs where. One goroutine (the loop) owns
// every active job in memory; API calls and backend reports reach it as
// events. Each turn of the loop applies a batch of events, runs one
// scheduling pass, writes every change in one transaction, and only then
// launches or cancels anything — so the database always knows at least as
// much as the machines, and a restart can reconcile the two.
package sched

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hpcml/hpcml/internal/backend"
	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/dataset"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/store"
)

// Errors the API maps to status codes.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// conflict is an ErrConflict that reads as its own message.
type conflict string

func (c conflict) Error() string        { return string(c) }
func (c conflict) Is(target error) bool { return target == ErrConflict }

// Scheduler is the job controller.
type Scheduler struct {
	store    store.Store
	backends map[string]backend.Backend // by name
	log      *slog.Logger
	metrics  *Metrics
	inbox    *inbox

	// Owned by the loop goroutine.
	state *state

	// changed is closed and replaced after every commit, to wake waiters.
	changedMu sync.Mutex
	changed   chan struct{}
	// ended wakes those waiting for particular jobs to end.
	ended  endWaiters
	recent recentEnds

	snapshot atomic.Pointer[Snapshot]
	// queueDefs are copies of the queues the loop has loaded (queues are
	// never deleted, so a name in it always exists).
	queueDefs atomic.Pointer[map[string]job.Queue]
	// recovered is closed once Run has read the store: Submit waits for
	// it, so that a job is either recovered or submitted, never both
	// (both would put two entries for one job in the loop).
	recovered chan struct{}
}

// New returns a scheduler; call Run to start it. The backend must report
// to the scheduler (it is a backend.Reporter).
func New(st store.Store, log *slog.Logger, m *Metrics) *Scheduler {
	s := &Scheduler{store: st, log: log, metrics: m, inbox: newInbox(), changed: make(chan struct{}), recovered: make(chan struct{}),
		backends: map[string]backend.Backend{}}
	s.snapshot.Store(&Snapshot{})
	return s
}

// AddBackend attaches a backend (which needs the scheduler as its
// Reporter, hence the two steps). Call before Run.
func (s *Scheduler) AddBackend(b backend.Backend) {
	s.backends[b.Name()] = b
	// Until Run publishes, readers see the capacity rather than zero.
	var total job.Resources
	for _, b := range s.backends {
		c := b.Capacity()
		total.CPUs, total.MemoryMB, total.GPUs = total.CPUs+c.CPUs, total.MemoryMB+c.MemoryMB, total.GPUs+c.GPUs
	}
	s.snapshot.Store(&Snapshot{Capacity: job.Capacity{Total: total}})
}

// Backends names the backends this scheduler runs.
func (s *Scheduler) Backends() []string {
	names := make([]string, 0, len(s.backends))
	for n := range s.backends {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// CheckQueue reports whether q can be used on this server: its backend
// runs here and accepts it. The error names the field at fault.
func (s *Scheduler) CheckQueue(ctx context.Context, q *job.Queue) error {
	b := s.backends[q.Backend]
	if b == nil {
		return &job.FieldError{Field: "backend", Message: fmt.Sprintf("backend %q is not configured on this server (it runs: %s)",
			q.Backend, strings.Join(s.Backends(), ", "))}
	}
	return b.CheckQueue(ctx, q)
}

// queue reads a queue definition. The loop's copies spare the submit path
// a store read; a queue created a moment ago may not be among them yet,
// so the store is asked then.
func (s *Scheduler) queue(ctx context.Context, name string) (*job.Queue, error) {
	if known := s.queueDefs.Load(); known != nil {
		if q, ok := (*known)[name]; ok {
			return &q, nil
		}
	}
	q, err := s.store.GetQueue(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &job.FieldError{Field: "queue", Message: fmt.Sprintf("queue %q does not exist", name)}
	}
	return q, err
}

// limits are what a job of queue q may ask for.
func (s *Scheduler) limits(ctx context.Context, q *job.Queue) (job.Limits, error) {
	b := s.backends[q.Backend]
	if b == nil {
		return job.Limits{}, nil // the job waits, RUNNABLE, saying why
	}
	return b.Limits(ctx, q)
}

// Changed returns a channel closed at the next commit.
func (s *Scheduler) Changed() <-chan struct{} {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	return s.changed
}

func (s *Scheduler) broadcast() {
	s.changedMu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.changedMu.Unlock()
}

// Snapshot is a consistent view of the scheduler for metrics and the UI.
type Snapshot struct {
	Capacity job.Capacity
	// Counts of runnable units (jobs and array tasks) by queue and state,
	// terminal ones included.
	Counts map[string]map[job.State]int
}

// Snapshot returns the latest view; never nil.
func (s *Scheduler) Snapshot() *Snapshot { return s.snapshot.Load() }

// Run recovers state from the store and backend, then schedules until ctx
// ends.
func (s *Scheduler) Run(ctx context.Context) error {
	if len(s.backends) == 0 {
		return errors.New("scheduler has no backend")
	}
	st, err := s.recover(ctx)
	if err != nil {
		return fmt.Errorf("recover scheduler state: %w", err)
	}
	s.state = st
	close(s.recovered)
	s.turn(ctx, nil) // schedule what was waiting before the restart
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.inbox.signal:
		case <-st.retryAt:
			st.retryAt = nil
		case <-st.wake:
			st.wake = nil
			st.schedule = true
		}
		// Jobs wait for room: throughput counts, not a few milliseconds
		// of latency, so events gather for one commit rather than paying
		// a commit (most of a turn's cost) for each. Otherwise the loop
		// turns at once.
		if gap := time.Since(last); gap < minTurnGap && st.backlogged() {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(minTurnGap - gap):
			}
		}
		last = time.Now()
		s.turn(ctx, s.inbox.drain())
	}
}

// minTurnGap is the least time between the starts of two turns while
// jobs wait for room: at most that much is added to what waits on the
// loop then (a launch, a job's end seen), which staged launches hide.
const minTurnGap = 5 * time.Millisecond

// backlogged: runnable jobs wait for room on a machine that is full
// (not for a queue's limit, nor for an unbounded or unreachable backend).
func (st *state) backlogged() bool {
	for _, p := range st.pools {
		if len(p.runq.items) > 0 && p.cpuFull() {
			return true
		}
	}
	return false
}

// Submit validates spec, stores the job (and array tasks) and hands it to
// the loop. The returned job is durable.
func (s *Scheduler) Submit(ctx context.Context, spec *job.Spec) (*job.Job, error) {
	if spec.Queue == "" {
		spec.Queue = job.DefaultQueue
	}
	q, err := s.queue(ctx, spec.Queue)
	if err != nil {
		return nil, err
	}
	lim, err := s.limits(ctx, q)
	if err != nil {
		return nil, err
	}
	if err := spec.Normalize(lim); err != nil {
		return nil, err
	}
	select {
	case <-s.recovered:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// Object URLs are checked now rather than by the job's wrapper: an
	// output key escaping the storage root would otherwise be found out
	// only after the job had done its work.
	for i, in := range spec.Inputs {
		if ref, ok := in.DatasetRef(); ok {
			if err := s.resolveDataset(ctx, &spec.Inputs[i], ref); err != nil {
				return nil, &job.FieldError{Field: fmt.Sprintf("inputs[%d].url", i), Message: err.Error()}
			}
			continue
		}
		spec.Inputs[i].ManifestKey = "" // the server's to set
		if _, err := blob.Resolve(in.URL, ""); err != nil {
			return nil, &job.FieldError{Field: fmt.Sprintf("inputs[%d].url", i), Message: err.Error()}
		}
	}
	for i, out := range spec.Outputs {
		loc, err := blob.Resolve(out.URL, "")
		if err == nil && loc.Bucket == "" && (loc.Key == "." || loc.Key == "./") {
			err = fmt.Errorf("%q is the whole of the server's storage: name a prefix in it (results/run1/)", out.URL)
		}
		if err != nil {
			return nil, &job.FieldError{Field: fmt.Sprintf("outputs[%d].url", i), Message: err.Error()}
		}
	}
	if len(spec.DependsOn) > 0 {
		ids := make([]int64, len(spec.DependsOn))
		for i, d := range spec.DependsOn {
			ids[i] = d.JobID
		}
		states, err := s.store.JobStates(ctx, ids)
		if err != nil {
			return nil, err
		}
		for i, d := range spec.DependsOn {
			if _, ok := states[d.JobID]; !ok {
				return nil, &job.FieldError{Field: fmt.Sprintf("depends_on[%d].job_id", i),
					Message: fmt.Sprintf("job %d does not exist", d.JobID)}
			}
		}
	}
	now := time.Now().UTC()
	initial, reason := job.Runnable, ReasonResources
	if len(spec.DependsOn) > 0 {
		initial, reason = job.Pending, ReasonDependency
	}
	parent := &job.Job{Name: spec.Name, Queue: spec.Queue, State: initial, Reason: reason, SubmittedAt: now, Spec: *spec}
	var tasks []*job.Job
	if spec.Array != "" {
		indices, _, _ := job.ParseArray(spec.Array) // validated by Normalize
		parent.ArraySize = len(indices)
		tasks = make([]*job.Job, len(indices))
		for i, idx := range indices {
			idx := idx
			tasks[i] = &job.Job{Name: spec.Name, Queue: spec.Queue, State: initial, Reason: reason,
				ArrayIndex: &idx, SubmittedAt: now, Spec: *spec}
		}
	}
	if err := s.store.InsertJob(ctx, parent, tasks); err != nil {
		return nil, fmt.Errorf("store job: %w", err)
	}
	if s.metrics != nil {
		s.metrics.submitted.Add(float64(max(1, len(tasks))))
	}
	// The loop owns the jobs from now on: the caller gets a copy, so that
	// encoding it races with nothing the loop changes.
	out := *parent
	s.inbox.push(event{submitted: append([]*job.Job{parent}, tasks...)})
	if out.IsArrayParent() {
		out.ArrayCounts = map[job.State]int{initial: len(tasks)}
	}
	return &out, nil
}

// resolveDataset pins a dataset input to one version (the latest, if
// none is named) and its manifest, so that the job reads the same bytes
// whenever it runs.
func (s *Scheduler) resolveDataset(ctx context.Context, in *job.Input, ref string) error {
	r, err := dataset.ParseRef(ref)
	if err != nil {
		return err
	}
	d, err := s.store.GetDataset(ctx, r.Name)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("dataset %s does not exist", r.Name)
	}
	if err != nil {
		return err
	}
	for _, v := range d.Versions {
		if v.Version == r.Version || r.Version == 0 {
			in.URL = fmt.Sprintf("%s%s@%d", job.DatasetScheme, v.Dataset, v.Version)
			in.ManifestKey = v.ManifestKey
			return nil
		}
	}
	return fmt.Errorf("dataset %s has no version %d", r.Name, r.Version)
}

// Cancel cancels a job (every task of an array job). It returns once the
// cancellation is recorded; the job itself may take the grace period to stop.
func (s *Scheduler) Cancel(ctx context.Context, id int64) error {
	reply := make(chan error, 1)
	s.inbox.push(event{cancel: id, cancelReply: reply})
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// QueuesChanged tells the loop to reload queue definitions.
func (s *Scheduler) QueuesChanged() { s.inbox.push(event{queuesChanged: true}) }
