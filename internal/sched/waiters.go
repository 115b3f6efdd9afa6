package sched

import "sync"

// endWaiters lets callers wait for particular jobs to end without
// re-reading the store at every commit (a long poll per job would
// otherwise cost two queries per scheduler turn).
type endWaiters struct {
	mu sync.Mutex
	m  map[int64][]chan struct{}
	// active holds the jobs the loop tracks whose end has not been
	// committed: a long poll on one of them need not read it before
	// waiting. A job the loop has not taken in yet is simply not there.
	active map[int64]struct{}
}

// EndSignal returns a channel that is closed once job id has reached a
// terminal state in the store, and a func that drops the registration.
// Register before reading the job, so that an end in between is not
// missed. active reports that the job exists and had not ended in the
// store when the signal was registered, so that reading it first tells
// nothing new; when false, nothing is known of it.
func (s *Scheduler) EndSignal(id int64) (ended <-chan struct{}, release func(), active bool) {
	w := &s.ended
	ch := make(chan struct{})
	w.mu.Lock()
	if w.m == nil {
		w.m = map[int64][]chan struct{}{}
	}
	w.m[id] = append(w.m[id], ch)
	_, active = w.active[id]
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		list := w.m[id]
		for i, c := range list {
			if c == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(w.m, id)
		} else {
			w.m[id] = list
		}
	}, active
}

// update records the jobs the loop took in (entered), then wakes the
// waiters of jobs whose end was just committed (ended), in that order: a
// job may enter and end in one turn.
func (w *endWaiters) update(entered, ended []int64) {
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
	for _, id := range ended {
		delete(w.active, id)
		for _, c := range w.m[id] {
			close(c)
		}
		delete(w.m, id)
	}
}
