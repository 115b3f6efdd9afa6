package sched

import (
	"sync"

	"github.com/hpcml/hpcml/internal/job"
)

// endWaiters lets callers wait for particular jobs to end without
// re-reading the store at every commit (a long poll per job would
// otherwise cost two queries per scheduler turn), and hands them the
// job's final record when the loop holds all of it (see ended.go).
type endWaiters struct {
	mu sync.Mutex
	m  map[int64][]*EndWait
	// active holds the jobs the loop tracks whose end has not been
	// committed: a long poll on one of them need not read it before
	// waiting. A job the loop has not taken in yet is simply not there.
	active map[int64]struct{}
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
	final *job.Job // set before ch closes; shared, copied by Final
	drop  func()
}

// Final is the job as committed at its end, as the store would return it,
// or nil when the caller must read the store (the loop does not hold all
// of it: an array parent's counts, the earlier attempts of a retried
// job). Valid once Ended is closed; each call returns its own copy.
func (w *EndWait) Final() *job.Job {
	if w.final == nil {
		return nil
	}
	cp := *w.final
	return &cp
}

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
// waiters of jobs whose end was just committed (ended, with finals[i] the
// record of ended[i] or nil), in that order: a job may enter and end in
// one turn.
func (w *endWaiters) update(entered []int64, ended []*entry, finals []*job.Job) {
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
	for i, e := range ended {
		id := e.j.ID
		delete(w.active, id)
		for _, ew := range w.m[id] {
			ew.final = finals[i]
			close(ew.ch)
		}
		delete(w.m, id)
	}
}
