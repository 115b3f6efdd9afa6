package sched

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

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
	ended := make([]int64, 0, len(st.gone))
	for id, e := range st.gone {
		ended = append(ended, id)
		if s.metrics != nil && !e.j.IsArrayParent() {
			s.metrics.finished.WithLabelValues(string(e.j.State)).Inc()
		}
	}
	clear(st.gone)
	s.publish(st) // at once, so readers of the store and of the snapshot agree as soon as possible
	st.superseded = st.superseded[:0]
	for _, j := range st.launch {
		s.launch(ctx, j)
	}
	st.launch = st.launch[:0]
	for _, j := range st.cancels {
		if err := s.backend.Cancel(ctx, j.ID, j.Attempt); err != nil {
			s.log.Warn("cancel job", "job", j.ID, "err", err)
		}
	}
	st.cancels = st.cancels[:0]
	for _, r := range st.replies {
		r.ch <- r.err
	}
	st.replies = st.replies[:0]
	s.ended.notify(ended)
	s.broadcast()
}

// launch hands one attempt to the backend. Launching is slow (a process
// start), so it runs beside the loop; a failure comes back as an event.
func (s *Scheduler) launch(ctx context.Context, j *job.Job) {
	cp := *j
	go func() {
		err := s.backend.Launch(ctx, &cp)
		// Before Finished, so that the loop sees them in this order.
		s.inbox.push(event{launched: true, jobID: cp.ID, attempt: cp.Attempt})
		if err != nil {
			s.Finished(cp.ID, cp.Attempt, job.Result{EndedAt: time.Now().UTC(), Error: "launch: " + err.Error()})
		}
	}()
}

func (s *Scheduler) apply(ctx context.Context, st *state, ev event) {
	switch {
	case ev.submitted != nil:
		for _, j := range ev.submitted { // the parent of an array comes first
			e := &entry{j: j}
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
		st.setState(e, job.Running, e.j.Reason)
		if s.metrics != nil && e.j.Attempt == 1 {
			s.metrics.submitToStart.Observe(at.Sub(e.j.SubmittedAt).Seconds())
		}
	case ev.launched:
		e := st.jobs[ev.jobID]
		if e == nil || e.j.Attempt != ev.attempt || !e.launching {
			return
		}
		e.launching = false
		if e.j.CancelRequested && e.j.State.Active() {
			st.cancels = append(st.cancels, e.j) // held back while launching
		}
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

// finish applies the end of an attempt: retry, or a final state.
func (s *Scheduler) finish(st *state, e *entry, r *job.Result) {
	j, a := e.j, e.attempt
	st.release(e)
	st.dirtyAttempt[j.ID] = true
	if r.NeverStarted && !j.CancelRequested {
		// Nothing ran: launch the same attempt again.
		a.State, a.Reason = job.Runnable, "relaunched: "+r.Error
		j.Attempt--
		st.setState(e, job.Runnable, ReasonResources)
		return
	}
	state, reason := r.Outcome()
	if j.CancelRequested && (state != job.Succeeded || r.NeverStarted) {
		state, reason = job.Cancelled, "cancelled by user"
	}
	if r.StartedAt.IsZero() && a.StartedAt != nil {
		r.StartedAt = *a.StartedAt
	}
	if !r.StartedAt.IsZero() {
		a.StartedAt = &r.StartedAt
		if !r.EndedAt.IsZero() {
			ended := r.EndedAt
			a.EndedAt = &ended
			if q := st.queues[j.Queue]; q != nil {
				j.Cost += q.Cost(j.Spec.Resources, r.EndedAt.Sub(r.StartedAt))
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
	j.ExitCode, j.Signal = r.ExitCode, r.Signal
	j.CPUSeconds += r.CPUSeconds
	j.MaxRSSBytes = max(j.MaxRSSBytes, r.MaxRSSBytes)
	if !j.CancelRequested && j.Spec.Retry.ShouldRetry(j.Attempt, r) {
		st.setState(e, job.Runnable, fmt.Sprintf("retrying: attempt %d of %d failed (%s)", j.Attempt, j.Spec.Retry.Attempts, reason))
		return
	}
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
			st.cancels = append(st.cancels, j)
		}
	}
}

// resolveDependencies moves pending jobs whose dependencies are decided.
func (s *Scheduler) resolveDependencies(ctx context.Context, st *state) {
	if len(st.recheck) == 0 {
		return
	}
	var retry []int64
	for id := range st.recheck {
		e := st.jobs[id]
		if e == nil || e.j.State != job.Pending {
			continue
		}
		ok, failed, waitingOn, storeErr := true, "", int64(0), false
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
				waitingOn = d.JobID
				continue
			}
			if !sat {
				failed = fmt.Sprintf("dependency %s:%d can never be satisfied (job %d ended %s)", d.Type, d.JobID, d.JobID, depState)
				break
			}
		}
		switch {
		case failed != "":
			st.setState(e, job.Failed, failed)
		case ok:
			st.setState(e, job.Runnable, ReasonResources)
		case storeErr:
			retry = append(retry, id)
		default:
			// Wait for the undecided dependency; its end rechecks this job.
			st.waiters[waitingOn] = append(st.waiters[waitingOn], id)
		}
	}
	clear(st.recheck)
	for _, id := range retry {
		st.recheck[id] = true
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

// schedulePass starts runnable jobs in priority order while they fit,
// never beyond the declared capacity, a queue's max_running or an
// array's throttle. When a queue's first waiting job does not fit, the
// rest of that queue waits too, so small jobs cannot starve a big one.
func (s *Scheduler) schedulePass(st *state) {
	st.schedule = false
	if st.usedMilli >= st.total.MilliCPUs() {
		return // full: every job asks for some CPU, so nothing can start
	}
	blocked := map[string]bool{}
	// A copy: starting a job takes it out of the run queue.
	for _, e := range slices.Clone(st.runq.items) {
		j := e.j
		q := st.queues[j.Queue]
		switch {
		case blocked[j.Queue]:
			st.setState(e, job.Runnable, ReasonPriority)
		case q != nil && q.MaxRunning > 0 && st.running[j.Queue] >= q.MaxRunning:
			st.setState(e, job.Runnable, ReasonQueueLimit)
		case st.throttled(e):
			st.setState(e, job.Runnable, ReasonThrottle)
		case !st.fits(j.Spec.Resources):
			st.setState(e, job.Runnable, ReasonResources)
			blocked[j.Queue] = true
		default:
			s.start(st, e)
			if st.usedMilli >= st.total.MilliCPUs() {
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
	st.setState(e, job.Starting, "")
	st.allocate(e)
	e.launching = true
	st.launch = append(st.launch, j)
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
	s.snapshot.Store(&Snapshot{
		Capacity: job.Capacity{
			Total:   st.total,
			Used:    job.Resources{CPUs: float64(st.usedMilli) / 1000, MemoryMB: st.usedMem, GPUs: st.usedGPUs},
			Running: running,
		},
		Counts: counts,
	})
}
