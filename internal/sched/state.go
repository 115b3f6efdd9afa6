package sched

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hpcml/hpcml/internal/backend"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/store"
)

// Reasons shown for waiting jobs. They are stable strings, so that a job
// waiting for long is not rewritten on every pass.
const (
	ReasonDependency = "waiting for dependencies"
	ReasonResources  = "waiting for resources"
	ReasonPriority   = "waiting behind higher-priority jobs of its queue"
	ReasonQueueLimit = "queue at its max_running limit"
	ReasonThrottle   = "array at its %N throttle"
	ReasonCancelling = "cancelling"
	ReasonNoBackend  = "its queue's backend is not configured on this server"
	// ReasonStaged: handed to the node ahead of a free slot (backend.Stager).
	ReasonStaged = "staged on the node: starts when a slot frees"
)

// entry is an active job as the loop sees it.
type entry struct {
	j       *job.Job
	attempt *job.Attempt // the current attempt, once there is one
	prio    int          // its queue's priority, the first sort key of the run queue
	pool    *pool        // where its queue sends it
	// Array parents: tasks by state and how many hold resources.
	tasks    map[job.State]int
	active   int
	throttle int

	// launching: the attempt is being handed to the backend; a cancel
	// must wait for that (see the launched event), or it would overtake
	// the launch and be lost.
	launching bool
	launchSeq uint64 // the launch in flight, told from earlier ones of the same attempt number
	// unstarted: it holds resources in its pool but has not started yet
	// (counted in pool.unstarted). stagedAt: when it was launched beyond
	// the free capacity (zero if it was not); unstaging: asked back.
	unstarted bool
	stagedAt  time.Time
	unstaging bool
	// ownAttempts: e.attempt is the only attempt row the store holds for
	// the job (nil: none) — true for jobs submitted to this loop until
	// an attempt number is given back.
	ownAttempts bool

	// early: launched before its dependencies ended, to a backend that
	// holds it on heldOn (see canHold); failWith, once a dependency can
	// never be satisfied, is the failure its end is recorded as.
	early    bool
	heldOn   []job.Dependency
	failWith string
	noHold   bool // the backend refused to hold it once: wait here instead
}

// state is everything the loop owns.
type state struct {
	jobs   map[int64]*entry
	queues map[string]*job.Queue
	pools  map[string]*pool // by backend name
	// waiters maps a job to the pending jobs that depend on it.
	waiters map[int64][]int64
	// ended caches the final state of jobs that left memory, for dependencies.
	ended   map[int64]job.State
	running map[string]int // per queue: jobs holding resources
	counts  map[string]map[job.State]int

	dirty        map[int64]bool // jobs to write
	dirtyAttempt map[int64]bool // and their current attempt
	dirtyParents map[int64]bool // array parents to re-derive
	recheck      map[int64]bool // pending jobs whose dependencies moved
	// gone holds this turn's jobs that reached a terminal state (and so
	// left jobs) until they are written.
	gone map[int64]*entry
	// entered holds the jobs tracked since the waiters last heard of it.
	entered []int64
	// superseded holds attempts that ended this turn and were replaced by
	// a new attempt of the same job (a retry started in the same pass)
	// before being written; without it their final record would be lost.
	superseded []store.Change
	launch     []*entry
	cancels    []*entry
	unstages   []*entry // staged too long: asked back from the node
	launchSeq  uint64   // last launch handed out (entry.launchSeq)
	replies    []reply
	schedule   bool             // something may now fit
	retryAt    <-chan time.Time // set after a failed commit
	// wake schedules a pass at wakeTime (a backend's backoff ending).
	wake     <-chan time.Time
	wakeTime time.Time
}

type reply struct {
	ch  chan error
	err error
}

func newState(backends map[string]backend.Backend) *state {
	pools := make(map[string]*pool, len(backends))
	for name, b := range backends {
		pools[name] = newPool(b)
	}
	return &state{
		jobs: map[int64]*entry{}, queues: map[string]*job.Queue{}, pools: pools,
		waiters: map[int64][]int64{}, ended: map[int64]job.State{}, running: map[string]int{},
		counts: map[string]map[job.State]int{}, dirty: map[int64]bool{}, dirtyAttempt: map[int64]bool{},
		dirtyParents: map[int64]bool{}, recheck: map[int64]bool{}, gone: map[int64]*entry{},
	}
}

// recover rebuilds the loop's state from the store and re-attaches the
// backend to every attempt that was launched.
func (s *Scheduler) recover(ctx context.Context) (*state, error) {
	st := newState(s.backends)
	if err := s.loadQueues(ctx, st); err != nil {
		return nil, err
	}
	counts, err := s.store.QueueCounts(ctx)
	if err != nil {
		return nil, err
	}
	st.counts = counts
	active, err := s.store.ActiveJobs(ctx)
	if err != nil {
		return nil, err
	}
	// Parents first: tracking a task that holds an attempt counts it
	// against its parent's throttle.
	var parents, others []*entry
	for _, j := range active {
		e := &entry{j: j}
		if j.IsArrayParent() {
			full, err := s.store.GetJob(ctx, j.ID)
			if err != nil {
				return nil, err
			}
			e.tasks = full.ArrayCounts
			parents = append(parents, e)
			continue
		}
		if j.Attempt > 0 {
			attempts, err := s.store.Attempts(ctx, j.ID)
			if err != nil {
				return nil, err
			}
			for i := range attempts {
				if attempts[i].Number == j.Attempt {
					e.attempt = &attempts[i]
				}
			}
			if e.attempt == nil {
				e.attempt = &job.Attempt{Number: j.Attempt, State: j.State}
			}
		}
		others = append(others, e)
	}
	for _, e := range parents {
		st.track(e)
	}
	for _, e := range others {
		if !st.track(e) {
			continue
		}
		if e.pool == nil {
			return nil, fmt.Errorf("job %d of queue %s holds an attempt on backend %q, which this server does not run",
				e.j.ID, e.j.Queue, st.queues[e.j.Queue].Backend)
		}
		if err := e.pool.b.Recover(ctx, e.j); err != nil {
			return nil, err
		}
		if e.j.CancelRequested {
			st.cancels = append(st.cancels, e)
		}
	}
	st.schedule = true
	s.publish(st)
	return st, nil
}

func (s *Scheduler) loadQueues(ctx context.Context, st *state) error {
	qs, err := s.store.ListQueues(ctx)
	if err != nil {
		return err
	}
	st.queues = map[string]*job.Queue{}
	defs := make(map[string]job.Queue, len(qs))
	for _, q := range qs {
		st.queues[q.Name] = q
		defs[q.Name] = *q
	}
	s.queueDefs.Store(&defs)
	return nil
}

// track takes an active job into the loop's state according to its
// state: the one way in, for submitted and recovered jobs alike. An array
// parent only mirrors its tasks: it is never queued, launched or
// recovered itself, and must be tracked before its tasks. track reports
// whether the job holds an attempt (STARTING or RUNNING), whose resources
// it then counts as used.
func (st *state) track(e *entry) (holdsAttempt bool) {
	j := e.j
	st.jobs[j.ID] = e
	st.entered = append(st.entered, j.ID)
	if q := st.queues[j.Queue]; q != nil {
		e.pool = st.pools[q.Backend]
	}
	if j.IsArrayParent() {
		if e.tasks == nil {
			e.tasks = map[job.State]int{}
		}
		_, e.throttle, _ = job.ParseArray(j.Spec.Array)
		return false
	}
	switch j.State {
	case job.Pending:
		st.recheck[j.ID] = true
	case job.Runnable:
		st.makeRunnable(e)
	case job.Starting, job.Running:
		st.allocate(e)
		if j.State == job.Starting && j.Reason == ReasonStaged && e.pool != nil && e.pool.stager != nil {
			st.stage(e) // recovered: asked back like any other if it waits too long
		}
		if len(j.Spec.DependsOn) > 0 {
			// It may have been launched early, held by its backend on
			// dependencies that ended while nobody watched: see again.
			e.early = true
			st.recheck[j.ID] = true
		}
		return true
	}
	return false
}

// doneStarting: e's attempt no longer waits to start (it started, or ended
// without starting), which leaves room to stage another.
func (st *state) doneStarting(e *entry) {
	if e.unstarted {
		e.unstarted = false
		e.pool.unstarted--
		e.pool.unstartedMilli -= e.j.Spec.Allocation().MilliCPUs()
		st.schedule = true
	}
	if !e.stagedAt.IsZero() {
		e.stagedAt, e.unstaging = time.Time{}, false
		e.pool.staged = slices.DeleteFunc(e.pool.staged, func(x *entry) bool { return x == e })
	}
}

// giveBack records why e's current attempt did not run (its row keeps
// state and reason) and gives its number back, for the next launch to
// use again.
func (st *state) giveBack(e *entry, state job.State, reason string) {
	e.attempt.State, e.attempt.Reason = state, reason
	st.dirtyAttempt[e.j.ID] = true
	e.j.Attempt--
	e.ownAttempts = false // the store may hold a row this entry does not
}

// stage records that e was launched beyond its pool's free capacity.
func (st *state) stage(e *entry) {
	e.stagedAt = time.Now()
	e.pool.staged = append(e.pool.staged, e)
	st.wakeAt(e.stagedAt.Add(stagedWaitMax))
}

// stagedWaitMax is how long a staged job may wait to start before it is
// asked back. With at most stagedWorkPerCPU staged per core, one waits
// about a second at most when all goes as it should.
const stagedWaitMax = 2 * time.Second

// checkStaged asks back the staged jobs that have not started within
// stagedWaitMax: the jobs ahead of them are not short after all, and the
// slot they wait for should go by priority. The jobs staged after one
// asked back are asked back with it, whatever their own wait: left on the
// node, they would start before it, ahead of their turn. (One that has
// begun staging in on the node runs on; see finish for what an attempt
// taken back does to staging.)
func (st *state) checkStaged(now time.Time) {
	for _, p := range st.pools {
		// p.staged is in staging order: from the first one due, all go.
		first := -1
		for i, e := range p.staged {
			if e.unstaging {
				continue
			}
			if due := e.stagedAt.Add(stagedWaitMax); now.Before(due) {
				st.wakeAt(due)
				continue
			}
			first = i
			break
		}
		if first < 0 {
			continue
		}
		rest := p.staged[first:]
		if slices.ContainsFunc(rest, func(e *entry) bool { return e.launching && !e.unstaging }) {
			// A take-back request must not overtake the launch it takes
			// back, nor leave a later launch to arrive ahead of the jobs
			// taken back: all of them wait for the launches to be sent.
			st.wakeAt(now.Add(100 * time.Millisecond))
			continue
		}
		for _, e := range rest {
			if !e.unstaging {
				e.unstaging = true
				st.unstages = append(st.unstages, e)
			}
		}
	}
}

func (st *state) parentOf(e *entry) *entry {
	if e.j.ParentID == 0 {
		return nil
	}
	return st.jobs[e.j.ParentID]
}

func (st *state) allocate(e *entry) {
	if e.pool != nil {
		e.pool.hold(e.j.Spec.Allocation(), +1)
		if e.j.State == job.Starting {
			e.unstarted = true
			e.pool.unstarted++
			e.pool.unstartedMilli += e.j.Spec.Allocation().MilliCPUs()
		}
	}
	st.running[e.j.Queue]++
	if p := st.parentOf(e); p != nil {
		p.active++
	}
}

func (st *state) release(e *entry) {
	if e.pool != nil {
		e.pool.hold(e.j.Spec.Allocation(), -1)
	}
	st.doneStarting(e)
	st.running[e.j.Queue]--
	if p := st.parentOf(e); p != nil {
		p.active--
	}
	st.schedule = true
}

// setState is the one place a job changes state: it checks the move,
// keeps the counts and sets, and marks what must be written.
func (st *state) setState(e *entry, to job.State, reason string) {
	j := e.j
	from := j.State
	if to == job.Runnable && e.pool == nil && !j.IsArrayParent() {
		reason = ReasonNoBackend
		if q := st.queues[j.Queue]; q != nil {
			reason = fmt.Sprintf("queue %s sends jobs to backend %q, which this server does not run", q.Name, q.Backend)
		}
	}
	if from != to {
		if !e.j.IsArrayParent() {
			if err := job.CheckMove(from, to); err != nil {
				panic(fmt.Sprintf("job %d: %v", j.ID, err)) // a scheduler bug, not a user error
			}
			st.count(j.Queue, from, -1)
			st.count(j.Queue, to, +1)
			if p := st.parentOf(e); p != nil {
				p.tasks[from]--
				p.tasks[to]++
				st.dirtyParents[p.j.ID] = true
			}
		}
		if from == job.Runnable && !j.IsArrayParent() && e.pool != nil {
			e.pool.runq.remove(e) // before the state changes: the key must still match
		}
		j.State = to
		// An array parent only mirrors its tasks: it must never join the
		// sets the scheduler starts jobs from, or it would be launched
		// itself (running the command once more and dropping its
		// throttle) when its tasks derive it back to RUNNABLE.
		if !j.IsArrayParent() {
			switch to {
			case job.Runnable:
				st.makeRunnable(e)
			}
		}
		if to.Terminal() {
			now := time.Now().UTC()
			if j.EndedAt == nil {
				j.EndedAt = &now
			}
			delete(st.jobs, j.ID)
			st.gone[j.ID] = e
			if len(st.ended) > maxEndedCache {
				clear(st.ended) // the store answers for the rest
			}
			st.ended[j.ID] = to
			for _, w := range st.waiters[j.ID] {
				st.recheck[w] = true
			}
			delete(st.waiters, j.ID)
		}
	}
	if j.Reason != reason || from != to {
		j.Reason = reason
		st.dirty[j.ID] = true
	}
}

// wakeAt makes the loop run a scheduling pass at t (or earlier).
func (st *state) wakeAt(t time.Time) {
	if st.wake == nil || t.Before(st.wakeTime) {
		st.wake, st.wakeTime = time.After(time.Until(t)), t
	}
}

func (st *state) count(queue string, s job.State, d int) {
	m := st.counts[queue]
	if m == nil {
		m = map[job.State]int{}
		st.counts[queue] = m
	}
	m[s] += d
}

// deriveParent sets an array parent's state from its tasks' states.
func (st *state) deriveParent(p *entry) {
	t := p.tasks
	total := 0
	for _, n := range t {
		total += n
	}
	var to job.State
	reason := ""
	switch {
	case t[job.Succeeded] == total:
		to = job.Succeeded
	case t[job.Succeeded]+t[job.Failed]+t[job.Cancelled]+t[job.Timeout] == total:
		if t[job.Failed]+t[job.Timeout] > 0 {
			to = job.Failed
			reason = fmt.Sprintf("%d of %d tasks failed", t[job.Failed]+t[job.Timeout], total)
		} else {
			to = job.Cancelled
			reason = "cancelled by user"
		}
	case t[job.Running] > 0:
		to = job.Running
	case t[job.Starting] > 0:
		to = job.Starting
	case t[job.Runnable] > 0:
		to, reason = job.Runnable, ReasonResources
	default:
		to, reason = job.Pending, ReasonDependency
	}
	if to == job.Running || to == job.Starting {
		if p.j.StartedAt == nil {
			now := time.Now().UTC()
			p.j.StartedAt = &now
			st.dirty[p.j.ID] = true
		}
	}
	st.setState(p, to, reason)
}

// makeRunnable puts e in its pool's run queue. A job whose queue's
// backend this server does not run stays RUNNABLE, saying so.
func (st *state) makeRunnable(e *entry) {
	if q := st.queues[e.j.Queue]; q != nil {
		e.prio = q.Priority
	}
	if e.pool == nil {
		return // setState gives the reason
	}
	e.pool.runq.add(e)
	st.schedule = true
}

// reprioritise refreshes the run queues after queue definitions changed.
func (st *state) reprioritise() {
	for _, p := range st.pools {
		for _, e := range p.runq.items {
			if q := st.queues[e.j.Queue]; q != nil {
				e.prio = q.Priority
			}
		}
		p.runq.resort()
	}
}

// maxEndedCache bounds the memory of ended jobs' states.
const maxEndedCache = 100_000

func (st *state) lookup(id int64) *entry {
	if e := st.jobs[id]; e != nil {
		return e
	}
	return st.gone[id]
}

// changes lists what must be written.
func (st *state) changes() []store.Change {
	out := make([]store.Change, 0, len(st.superseded)+len(st.dirty))
	out = append(out, st.superseded...) // first: a newer attempt's row may follow
	for id := range st.dirty {
		e := st.lookup(id)
		if e == nil {
			continue
		}
		c := store.Change{Job: e.j}
		if st.dirtyAttempt[id] {
			c.Attempt = e.attempt
		}
		out = append(out, c)
	}
	return out
}
