package sched

import "sync"

// endWaiters lets callers wait for particular jobs to end without
// re-reading the store at every commit (a long poll per job would
// otherwise cost two queries per scheduler turn).
type endWaiters struct {
	mu sync.Mutex
	m  map[int64][]chan struct{}
}

// EndSignal returns a channel that is closed once job id has reached a
// terminal state in the store, and a func that drops the registration.
// Register before reading the job, so that an end in between is not missed.
func (s *Scheduler) EndSignal(id int64) (<-chan struct{}, func()) {
	w := &s.ended
	ch := make(chan struct{})
	w.mu.Lock()
	if w.m == nil {
		w.m = map[int64][]chan struct{}{}
	}
	w.m[id] = append(w.m[id], ch)
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
	}
}

// notify wakes the waiters of jobs that ended (after their commit).
func (w *endWaiters) notify(ids []int64) {
	if len(ids) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		for _, c := range w.m[id] {
			close(c)
		}
		delete(w.m, id)
	}
}
