package sched

import (
	"sync"

	"github.com/hpcml/hpcml/internal/job"
)

// endWaiters lets callers wait for particular jobs to end without
// re-reading the store at every commit (a long poll per job would
// otherwise cost two queries per scheduler turn), and hands them the
// job's final record when the loop holds all of it. It also keeps the
// final records of the jobs that ended last: an ended job never changes,
// and the job a client asks about is most often one that just ended.
type endWaiters struct {
	mu sync.Mutex
	m  map[int64][]*EndWait
	// active holds the jobs the loop tracks whose end has not been
	// committed: a long poll on one of them need not read it before
	// waiting. A job the loop has not taken in yet is simply not there.
	active map[int64]struct{}
	// recent holds the final records of the last recentEnds jobs that
	// ended (those finalRecord could build); order is its ring of ids.
	recent map[int64]*job.Job
	order  []int64
	next   int
}

// recentEnds bounds the ended jobs kept in memory, and recentSpecMax
// what one may hold: a record keeps its job's spec, which may be up to a
// request's size (inline scripts, long environments), so a job with a
// bigger spec is left to the store. At most ~64 MiB in all, ~2 KB each
// for most jobs.
const (
	recentEnds    = 4096
	recentSpecMax = 16 << 10
)

// specSize is about how many bytes a spec holds.
func specSize(s *job.Spec) int {
	n := len(s.Name) + len(s.Queue) + len(s.WorkDir) + len(s.Array) + 256*(len(s.Inputs)+len(s.Outputs)+len(s.DependsOn))
	for _, a := range s.Command {
		n += len(a)
	}
	for k, v := range s.Env {
		n += len(k) + len(v)
	}
	for k, v := range s.Tags {
		n += len(k) + len(v)
	}
	return n
}

// EndedJob is the final record of job id if it ended lately, as the store
// would return it, or nil (then the store has it, or it has not ended).
// Each call returns its own copy.
func (s *Scheduler) EndedJob(id int64) *job.Job {
	w := &s.ended
	w.mu.Lock()
	defer w.mu.Unlock()
	if j := w.recent[id]; j != nil {
		cp := *j
		return &cp
	}
	return nil
}

// remember keeps j as a recent end, dropping the oldest. Callers hold mu.
func (w *endWaiters) remember(j *job.Job) {
	if w.recent == nil {
		w.recent = make(map[int64]*job.Job, recentEnds)
		w.order = make([]int64, recentEnds)
	}
	if old := w.order[w.next]; old != 0 {
		delete(w.recent, old)
	}
	w.order[w.next] = j.ID
	w.next = (w.next + 1) % recentEnds
	w.recent[j.ID] = j
}

// EndWait is one caller's registration for the end of one job.
type EndWait struct {
	// Ended is closed once the job has reached a terminal state in the
	// store.
	Ended <-chan struct{}
	// Active: when registered, the job existed and had not ended in the
	// store, so that reading it first would tell nothing new. When false,
	// nothing is known of it.
	Active bool

	ch    chan struct{}
	final *job.Job // set before ch closes
	drop  func()
}

// Final is the job as committed at its end, as the store would return it,
// or nil when the caller must read the store (the loop does not hold all
// of it: an array parent's counts, the earlier attempts of a retried
// job). Valid once Ended is closed; each registration has its own copy.
func (w *EndWait) Final() *job.Job { return w.final }

// Release drops the registration.
func (w *EndWait) Release() { w.drop() }

// EndSignal registers for the end of job id. Register before reading the
// job, so that an end in between is not missed.
func (s *Scheduler) EndSignal(id int64) *EndWait {
	w := &s.ended
	ew := &EndWait{ch: make(chan struct{})}
	ew.Ended = ew.ch
	w.mu.Lock()
	if w.m == nil {
		w.m = map[int64][]*EndWait{}
	}
	w.m[id] = append(w.m[id], ew)
	_, ew.Active = w.active[id]
	w.mu.Unlock()
	ew.drop = func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		list := w.m[id]
		for i, c := range list {
			if c == ew {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(w.m, id)
		} else {
			w.m[id] = list
		}
	}
	return ew
}

// update records the jobs the loop took in (entered), then wakes the
// waiters of jobs whose end was just committed (ended), in that order: a
// job may enter and end in one turn. It runs on the loop, which owns the
// entries.
func (w *endWaiters) update(entered []int64, ended []*entry) {
	if len(entered) == 0 && len(ended) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.active == nil {
		w.active = map[int64]struct{}{}
	}
	for _, id := range entered {
		w.active[id] = struct{}{}
	}
	for _, e := range ended {
		id := e.j.ID
		delete(w.active, id)
		rec := finalRecord(e)
		if rec != nil && specSize(&rec.Spec) <= recentSpecMax {
			w.remember(rec)
		}
		for _, ew := range w.m[id] {
			if rec != nil {
				cp := *rec
				ew.final = &cp
			}
			close(ew.ch)
		}
		delete(w.m, id)
	}
}

// finalRecord is what the store returns for an ended job, built from the
// loop's entry, or nil if the entry does not hold all of it. Its Spec is
// shared with the entry, which no longer changes: readers must not
// modify it.
func finalRecord(e *entry) *job.Job {
	if !e.ownAttempts || e.j.IsArrayParent() || e.j.Attempt > 1 || (e.j.Attempt == 1) != (e.attempt != nil) ||
		e.attempt != nil && e.attempt.Number != 1 {
		return nil
	}
	j := *e.j
	j.Attempts = nil
	if e.attempt != nil {
		j.Attempts = []job.Attempt{*e.attempt}
	}
	return &j
}
