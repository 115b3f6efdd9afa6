package sched

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hpcml/hpcml/internal/backend"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/store"
)

// turn is one iteration of the loop: apply, schedule, commit, act.
func (s *Scheduler) turn(ctx context.Context, events []event) {
	st := s.state
	for _, ev := range events {
		s.apply(ctx, st, ev)
	}
	s.resolveDependencies(ctx, st)
	for id := range st.dirtyParents {
		if p := st.jobs[id]; p != nil {
			st.deriveParent(p)
		}
	}
	clear(st.dirtyParents)
	st.checkStaged(time.Now())
	if st.schedule {
		s.schedulePass(st)
	}
	// A parent may move again after the pass started its tasks.
	for id := range st.dirtyParents {
		if p := st.jobs[id]; p != nil {
			st.deriveParent(p)
		}
	}
	clear(st.dirtyParents)

	if changes := st.changes(); len(changes) > 0 {
		if err := s.store.Apply(ctx, changes); err != nil {
			// Nothing is launched or cancelled on state the store does not
			// have; the same changes are tried again shortly.
			s.log.Error("write job changes; will retry", "err", err, "jobs", len(changes))
			st.retryAt = time.After(time.Second)
			return
		}
	}
	clear(st.dirty)
	clear(st.dirtyAttempt)
	ended := make([]*entry, 0, len(st.gone))
	for _, e := range st.gone {
		ended = append(ended, e)
		if s.metrics != nil && !e.j.IsArrayParent() {
			s.metrics.finished.WithLabelValues(string(e.j.State)).Inc()
		}
	}
	clear(st.gone)
	s.publish(st) // at once, so readers of the store and of the snapshot agree as soon as possible
	st.superseded = st.superseded[:0]
	s.launchAll(ctx, st, st.launch)
	st.launch = st.launch[:0]
	for _, e := range st.cancels {
		if err := e.pool.b.Cancel(ctx, e.j.ID, e.j.Attempt); err != nil {
			s.log.Warn("cancel job", "job", e.j.ID, "err", err)
		}
	}
	st.cancels = st.cancels[:0]
	for _, e := range st.unstages {
		if err := e.pool.stager.Unstage(ctx, e.j.ID, e.j.Attempt); err != nil {
			s.log.Warn("take a staged job back; will ask again", "job", e.j.ID, "err", err)
			e.unstaging = false
			st.wakeAt(time.Now().Add(time.Second))
		}
	}
	st.unstages = st.unstages[:0]
	for _, r := range st.replies {
		r.ch <- r.err
	}
	st.replies = st.replies[:0]
	finals := finalRecords(ended)
	s.recent.add(finals)
	s.ended.update(st.entered, ended, finals)
	st.entered = st.entered[:0]
	s.broadcast()
}

// launchAll hands attempts to their backends. Launching is slow (a
// process start, an sbatch), so it runs beside the loop; the outcome of
// each comes back as a launched event. Attempts of one queue on a
// backend that launches in batches (Slurm arrays) go together.
func (s *Scheduler) launchAll(ctx context.Context, st *state, entries []*entry) {
	type group struct {
		p    *pool
		q    *job.Queue
		jobs []*job.Job
		seqs []uint64
	}
	var groups []*group
	byQueue := map[string]*group{}
	for _, e := range entries {
		cp := *e.j // the loop goes on changing e.j
		// The backend sees only the dependencies it must hold the job on.
		cp.Spec.DependsOn = e.heldOn
		q := st.queues[cp.Queue]
		if _, batch := e.pool.b.(backend.BatchLauncher); !batch {
			groups = append(groups, &group{p: e.pool, q: q, jobs: []*job.Job{&cp}, seqs: []uint64{e.launchSeq}})
			continue
		}
		g := byQueue[cp.Queue]
		if g == nil {
			g = &group{p: e.pool, q: q}
			byQueue[cp.Queue] = g
			groups = append(groups, g)
		}
		g.jobs = append(g.jobs, &cp)
		g.seqs = append(g.seqs, e.launchSeq)
	}
	for _, g := range groups {
		qcp := *g.q
		prev, done := g.p.lastLaunch, make(chan struct{})
		g.p.lastLaunch = done
		go func() {
			defer close(done)
			if prev != nil {
				<-prev // the batches of one backend launch one after the other, in order
			}
			var errs []error
			if bl, ok := g.p.b.(backend.BatchLauncher); ok {
				errs = bl.LaunchBatch(ctx, g.jobs, &qcp)
			} else {
				errs = []error{g.p.b.Launch(ctx, g.jobs[0], &qcp)}
			}
			for i, j := range g.jobs {
				s.inbox.push(event{launched: true, jobID: j.ID, attempt: j.Attempt, launchErr: errs[i], launchSeq: g.seqs[i]})
			}
		}()
	}
}

func (s *Scheduler) apply(ctx context.Context, st *state, ev event) {
	switch {
	case ev.submitted != nil:
		for _, j := range ev.submitted { // the parent of an array comes first
			e := &entry{j: j, ownAttempts: true}
			if j.IsArrayParent() {
				e.tasks = map[job.State]int{j.State: j.ArraySize}
			} else {
				st.count(j.Queue, j.State, +1)
			}
			st.track(e)
		}
	case ev.started:
		e := st.jobs[ev.jobID]
		if e == nil || e.j.Attempt != ev.attempt || e.j.State != job.Starting {
			return
		}
		at := ev.at
		e.j.StartedAt = &at
		e.attempt.StartedAt = &at
		e.attempt.State = job.Running
		st.dirtyAttempt[e.j.ID] = true
		st.setState(e, job.Running, runningReason(e.j))
		st.doneStarting(e)
		if s.metrics != nil && e.j.Attempt == 1 {
			s.metrics.submitToStart.Observe(at.Sub(e.j.SubmittedAt).Seconds())
		}
	case ev.launched:
		e := st.jobs[ev.jobID]
		// The sequence tells this launch from an earlier one of the same
		// attempt number (given back and launched again meanwhile).
		if e == nil || e.j.Attempt != ev.attempt || !e.launching || e.launchSeq != ev.launchSeq {
			return
		}
		e.launching = false
		s.launched(st, e, ev.launchErr)
	case ev.queued:
		e := st.jobs[ev.jobID]
		if e == nil || e.j.Attempt != ev.attempt || e.j.State != job.Starting {
			return
		}
		if e.attempt.BackendID != ev.backendID {
			e.attempt.BackendID = ev.backendID
			st.dirtyAttempt[e.j.ID] = true
			st.dirty[e.j.ID] = true
		}
		st.setState(e, job.Starting, ev.reason)
	case ev.finished != nil:
		e := st.jobs[ev.jobID]
		if e == nil || e.j.Attempt != ev.attempt || !e.j.State.Active() {
			s.log.Debug("report for an attempt not running", "job", ev.jobID, "attempt", ev.attempt)
			return
		}
		s.finish(st, e, ev.finished)
	case ev.cancel != 0:
		st.replies = append(st.replies, reply{ch: ev.cancelReply, err: s.cancel(ctx, st, ev.cancel)})
	case ev.queuesChanged:
		if err := s.loadQueues(ctx, st); err != nil {
			s.log.Error("reload queues", "err", err)
		}
		st.reprioritise()
		st.schedule = true
	}
}

// launched applies the outcome of handing an attempt to its backend.
func (s *Scheduler) launched(st *state, e *entry, err error) {
	j := e.j
	switch {
	case err == nil:
		e.pool.markUp()
		if (j.CancelRequested || e.failWith != "") && j.State.Active() {
			st.cancels = append(st.cancels, e) // held back while launching
		}
	case errors.Is(err, backend.ErrDependencyGone) && !j.CancelRequested:
		// A dependency ended before the backend could hold the job on it:
		// nothing was launched; decide again, on the dependency's outcome.
		st.release(e)
		st.giveBack(e, job.Pending, "not launched: "+err.Error())
		// Not held again: the backend's word may run ahead of the
		// dependency's end reaching the loop, and a retry now would spin.
		e.early, e.heldOn, e.failWith, e.noHold = false, nil, "", true
		st.setState(e, job.Pending, ReasonDependency)
		st.recheck[j.ID] = true
	case errors.Is(err, backend.ErrUnavailable) && !j.CancelRequested:
		// Nothing was submitted: the same attempt waits for the backend.
		e.pool.markDown(time.Now(), err.Error())
		st.release(e)
		st.giveBack(e, job.Runnable, "not launched: "+err.Error())
		st.setState(e, job.Runnable, err.Error())
	default:
		now := time.Now().UTC()
		s.finish(st, e, &job.Result{EndedAt: now, Error: "launch: " + err.Error(), NeverStarted: errors.Is(err, backend.ErrUnavailable)})
	}
}

// finish applies the end of an attempt: retry, or a final state.
func (s *Scheduler) finish(st *state, e *entry, r *job.Result) {
	j, a := e.j, e.attempt
	if s.metrics != nil {
		s.metrics.cacheHits.Add(float64(r.CacheHits))
		s.metrics.cacheMisses.Add(float64(r.CacheMisses))
		// A job that ends moments after it started may be reported
		// started only by its end (the local executor's done carries it).
		if j.State == job.Starting && j.Attempt == 1 && !r.StartedAt.IsZero() {
			s.metrics.submitToStart.Observe(r.StartedAt.Sub(j.SubmittedAt).Seconds())
		}
	}
	if e.unstaging && r.NeverStarted && e.pool != nil {
		// Taken back: the jobs it waited behind were not short after
		// all. No more staging until short runs are the rule again.
		e.pool.nRuns = 0
	}
	st.release(e)
	st.dirtyAttempt[j.ID] = true
	if r.NeverStarted && !j.CancelRequested && e.failWith == "" {
		// Nothing ran: launch the same attempt again.
		st.giveBack(e, job.Runnable, "relaunched: "+r.Error)
		st.setState(e, job.Runnable, ReasonResources)
		return
	}
	state, reason := r.Outcome()
	if j.CancelRequested && (state != job.Succeeded || r.NeverStarted) {
		state, reason = job.Cancelled, "cancelled by user"
	} else if e.failWith != "" && (state != job.Succeeded || r.NeverStarted) {
		state, reason = job.Failed, e.failWith
	}
	if r.StartedAt.IsZero() && a.StartedAt != nil {
		r.StartedAt = *a.StartedAt
	}
	if !r.StartedAt.IsZero() {
		a.StartedAt = &r.StartedAt
		if !r.EndedAt.IsZero() {
			ended := r.EndedAt
			a.EndedAt = &ended
			if e.pool != nil {
				e.pool.ran(r.EndedAt.Sub(r.StartedAt))
			}
			if q := st.queues[j.Queue]; q != nil {
				j.Cost += q.Cost(j.Spec.Allocation(), r.EndedAt.Sub(r.StartedAt))
			}
		}
	}
	if a.EndedAt == nil {
		now := time.Now().UTC()
		a.EndedAt = &now
	}
	a.State, a.Reason = state, reason
	a.ExitCode, a.Signal = r.ExitCode, r.Signal
	a.CPUSeconds, a.MaxRSSBytes = r.CPUSeconds, r.MaxRSSBytes
	a.StdoutURL, a.StderrURL = r.StdoutURL, r.StderrURL
	if r.Interrupted {
		a.Interrupted = true
		j.Interruptions++
	}
	j.ExitCode, j.Signal = r.ExitCode, r.Signal
	j.CPUSeconds += r.CPUSeconds
	j.MaxRSSBytes = max(j.MaxRSSBytes, r.MaxRSSBytes)
	if !j.CancelRequested && e.failWith == "" && j.Spec.Retry.ShouldRetry(j.Attempt, r) {
		st.setState(e, job.Runnable, fmt.Sprintf("retrying: attempt %d of %d failed (%s)", j.Attempt, j.Spec.Retry.Attempts, reason))
		return
	}
	// The job's times are its last attempt's, not when the server heard of
	// them: after a restart, an end (or a start it never saw) is reported
	// long after it happened.
	if j.StartedAt == nil && a.StartedAt != nil {
		started := *a.StartedAt
		j.StartedAt = &started
	}
	ended := *a.EndedAt
	j.EndedAt = &ended
	st.setState(e, state, reason)
}

// cancel handles a user's cancel of id.
func (s *Scheduler) cancel(ctx context.Context, st *state, id int64) error {
	e := st.jobs[id]
	if g := st.gone[id]; e == nil && g != nil {
		// Ended in this very turn, not yet written.
		return conflict(fmt.Sprintf("job %d already ended (%s)", id, g.j.State))
	}
	if e == nil {
		states, err := s.store.JobStates(ctx, []int64{id})
		if err != nil {
			return err
		}
		if sst, ok := states[id]; ok {
			return conflict(fmt.Sprintf("job %d already ended (%s)", id, sst))
		}
		return fmt.Errorf("job %d: %w", id, ErrNotFound)
	}
	if e.j.IsArrayParent() {
		for _, t := range st.jobs {
			if t.j.ParentID == id {
				s.cancelOne(st, t)
			}
		}
		st.dirtyParents[id] = true
		return nil
	}
	s.cancelOne(st, e)
	return nil
}

func (s *Scheduler) cancelOne(st *state, e *entry) {
	j := e.j
	switch {
	case j.State == job.Pending || j.State == job.Runnable:
		st.setState(e, job.Cancelled, "cancelled by user")
	case j.State.Active() && !j.CancelRequested:
		j.CancelRequested = true
		st.setState(e, j.State, ReasonCancelling)
		if !e.launching { // else sent once the backend has the attempt
			st.cancels = append(st.cancels, e)
		}
	}
}

// resolveDependencies moves pending jobs whose dependencies are decided.
// A job it fails ends, which rechecks the jobs waiting for it in turn:
// it runs until nothing is left to recheck, so a chain of dependents
// fails in one turn rather than stalling at its second link.
func (s *Scheduler) resolveDependencies(ctx context.Context, st *state) {
	var retry []int64
	for len(st.recheck) > 0 {
		batch := st.recheck
		st.recheck = map[int64]bool{}
		retry = append(retry, s.resolveBatch(ctx, st, batch)...)
	}
	for _, id := range retry { // a store error: on the next turn
		st.recheck[id] = true
	}
}

// resolveBatch rechecks the jobs of batch; it returns those whose
// dependencies could not be read.
func (s *Scheduler) resolveBatch(ctx context.Context, st *state, batch map[int64]bool) (retry []int64) {
	for id := range batch {
		e := st.jobs[id]
		if e == nil {
			continue
		}
		// held: launched before its dependencies ended, to a backend that
		// holds it until they do.
		held := e.early && e.j.State.Active()
		if e.j.State != job.Pending && !held {
			continue
		}
		ok, failed, storeErr := true, "", false
		var undecided []job.Dependency
		for _, d := range e.j.Spec.DependsOn {
			depState, err := s.depState(ctx, st, d.JobID)
			if err != nil {
				// Not parked on the dependency (which may have ended
				// already): checked again on the next turn.
				s.log.Error("read dependency state", "job", id, "dependency", d.JobID, "err", err)
				ok, storeErr = false, true
				continue
			}
			sat, decided := d.Satisfied(depState)
			if !decided {
				ok = false
				undecided = append(undecided, d)
				continue
			}
			if !sat {
				failed = fmt.Sprintf("dependency %s:%d can never be satisfied (job %d ended %s)", d.Type, d.JobID, d.JobID, depState)
				break
			}
		}
		switch {
		case failed != "" && held:
			s.failHeld(st, e, failed)
		case failed != "":
			st.setState(e, job.Failed, failed)
		case ok && !held:
			st.setState(e, job.Runnable, ReasonResources)
		case ok:
			// The backend runs it now, by itself.
		case storeErr:
			retry = append(retry, id)
		default:
			if !held && st.canHold(e, undecided) {
				s.startHeld(st, e, undecided)
			}
			// Wait for an undecided dependency; its end rechecks this job.
			w := undecided[len(undecided)-1].JobID
			st.waiters[w] = append(st.waiters[w], id)
		}
	}
	return retry
}

// canHold reports whether e, waiting for undecided, can be handed to its
// backend now, to be held there until they end: the backend does that
// (Slurm's --dependency), and each undecided dependency is a job running
// on it whose current attempt is its last (a retry would be a new
// backend job that the held one does not wait for).
func (st *state) canHold(e *entry, undecided []job.Dependency) bool {
	p := e.pool
	if p == nil || e.noHold || p.down(time.Now()) {
		return false
	}
	if h, ok := p.b.(backend.DependencyHolder); !ok || !h.HoldsDependencies() {
		return false
	}
	if q := st.queues[e.j.Queue]; q != nil && q.MaxRunning > 0 && st.running[q.Name] >= q.MaxRunning {
		return false
	}
	for _, d := range undecided {
		de := st.jobs[d.JobID]
		if de == nil || de.pool != p || de.j.IsArrayParent() || !de.j.State.Active() || de.launching ||
			de.attempt == nil || de.attempt.BackendID == "" || de.j.CancelRequested || de.failWith != "" ||
			de.j.Spec.Retry.Attempts > de.j.Attempt {
			return false
		}
	}
	return true
}

// startHeld launches e before its dependencies have ended; its backend
// holds it until they do.
func (s *Scheduler) startHeld(st *state, e *entry, undecided []job.Dependency) {
	e.early, e.heldOn = true, undecided
	s.start(st, e)
	st.setState(e, job.Starting, ReasonDependency+" (held by "+e.pool.b.Name()+")")
}

// failHeld ends a held job whose dependency can never be satisfied: the
// backend is told to drop it, and its end is recorded as this failure.
func (s *Scheduler) failHeld(st *state, e *entry, reason string) {
	if e.failWith != "" {
		return
	}
	e.failWith = reason
	st.setState(e, e.j.State, reason)
	if !e.launching { // else sent once the backend has it
		st.cancels = append(st.cancels, e)
	}
}

func (s *Scheduler) depState(ctx context.Context, st *state, id int64) (job.State, error) {
	if e := st.jobs[id]; e != nil {
		return e.j.State, nil
	}
	if e := st.gone[id]; e != nil {
		return e.j.State, nil
	}
	if sst, ok := st.ended[id]; ok {
		return sst, nil
	}
	states, err := s.store.JobStates(ctx, []int64{id})
	if err != nil {
		return "", err
	}
	sst, ok := states[id]
	if !ok {
		return "", errors.New("job does not exist")
	}
	st.ended[id] = sst
	return sst, nil
}

// schedulePass starts runnable jobs, pool by pool, in priority order
// while they fit, never beyond a bounded pool's capacity, a queue's
// max_running or (on bounded pools) an array's throttle. When a queue's
// first waiting job does not fit, the rest of that queue waits too, so
// small jobs cannot starve a big one. An unbounded pool (Slurm) gets
// every runnable job: its own scheduler decides the rest.
func (s *Scheduler) schedulePass(st *state) {
	st.schedule = false
	now := time.Now()
	for _, p := range st.pools {
		if p.down(now) {
			for _, e := range p.runq.items {
				st.setState(e, job.Runnable, p.downReason)
			}
			st.wakeAt(p.downUntil)
			continue
		}
		if p.full() {
			continue
		}
		s.schedulePool(st, p)
	}
}

func (s *Scheduler) schedulePool(st *state, p *pool) {
	blocked := map[string]bool{}
	// A copy: starting a job takes it out of the run queue.
	for _, e := range slices.Clone(p.runq.items) {
		j := e.j
		q := st.queues[j.Queue]
		switch {
		case blocked[j.Queue]:
			st.setState(e, job.Runnable, ReasonPriority)
		case q != nil && q.MaxRunning > 0 && st.running[j.Queue] >= q.MaxRunning:
			st.setState(e, job.Runnable, ReasonQueueLimit)
		case p.bounded && st.throttled(e):
			st.setState(e, job.Runnable, ReasonThrottle)
		case !p.fits(j.Spec.Allocation()):
			st.setState(e, job.Runnable, ReasonResources)
			blocked[j.Queue] = true
		default:
			s.start(st, e)
			if p.full() {
				// Full. The jobs not visited keep the reason of the last pass
				// that reached them, which is cheaper than visiting thousands
				// of waiting jobs every time one slot frees.
				return
			}
		}
	}
}

func (st *state) throttled(e *entry) bool {
	p := st.parentOf(e)
	return p != nil && p.throttle > 0 && p.active >= p.throttle
}

// start moves a job to STARTING on a new attempt and queues its launch.
func (s *Scheduler) start(st *state, e *entry) {
	j := e.j
	if e.attempt != nil && st.dirtyAttempt[j.ID] {
		// The previous attempt ended in this turn (a retry) and is not
		// written yet: keep a copy of its final record for the commit.
		prev := *e.attempt
		st.superseded = append(st.superseded, store.Change{Job: j, Attempt: &prev})
	}
	j.Attempt++
	e.attempt = &job.Attempt{Number: j.Attempt, State: job.Starting}
	st.dirtyAttempt[j.ID] = true
	j.ExitCode, j.Signal = nil, ""
	// A backend that was unreachable says so until a launch gets through.
	reason := e.pool.downReason
	staged := reason == "" && !e.pool.free(j.Spec.Allocation())
	if staged {
		reason = ReasonStaged
	}
	st.setState(e, job.Starting, reason)
	st.allocate(e)
	if staged {
		st.stage(e)
	}
	e.launching = true
	st.launchSeq++
	e.launchSeq = st.launchSeq
	st.launch = append(st.launch, e)
}

// publish stores a snapshot for readers outside the loop.
func (s *Scheduler) publish(st *state) {
	counts := make(map[string]map[job.State]int, len(st.counts))
	for q, m := range st.counts {
		c := make(map[job.State]int, len(m))
		for k, v := range m {
			if v != 0 {
				c[k] = v
			}
		}
		counts[q] = c
	}
	running := 0
	for _, n := range st.running {
		running += n
	}
	var total, used job.Resources
	for _, p := range st.pools {
		if p.bounded {
			total, used = total.Add(p.total, 1), used.Add(p.used, 1)
			// Staged jobs hold their share in the pool's books, but do
			// not run: what is reported is what runs.
			for _, e := range p.staged {
				used = used.Add(e.j.Spec.Allocation(), -1)
				running--
			}
		}
	}
	s.snapshot.Store(&Snapshot{
		Capacity: job.Capacity{
			Total:   total,
			Used:    used,
			Running: running,
		},
		Counts: counts,
	})
}

// runningReason: once running, a job's waiting reason is over; only a
// pending cancel is still worth saying.
func runningReason(j *job.Job) string {
	if j.CancelRequested {
		return ReasonCancelling
	}
	return ""
}
