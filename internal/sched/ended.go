package sched

import (
	"sync"

	"github.com/hpcml/hpcml/internal/job"
)

// recentEnds keeps the final records of the jobs that ended last: an
// ended job never changes, and the job a client asks about is most often
// one that just ended, so its get need not read the store.
type recentEnds struct {
	mu    sync.Mutex
	byID  map[int64]*job.Job
	order []int64 // ring of the ids in byID
	next  int
}

// recentEndsMax bounds the ended jobs kept in memory, and recentSpecMax
// what one may hold: a record keeps its job's spec, which may be up to a
// request's size (inline scripts, long environments), so a job with a
// bigger spec is left to the store. At most ~64 MiB in all, ~2 KB each
// for most jobs.
const (
	recentEndsMax = 4096
	recentSpecMax = 16 << 10
)

// EndedJob is the final record of job id if it ended lately, as the store
// would return it, or nil (then the store has it, or it has not ended).
// Each call returns its own copy.
func (s *Scheduler) EndedJob(id int64) *job.Job {
	r := &s.recent
	r.mu.Lock()
	defer r.mu.Unlock()
	if j := r.byID[id]; j != nil {
		cp := *j
		return &cp
	}
	return nil
}

// add keeps the records (nil ones skipped, as are big specs), dropping
// the oldest.
func (r *recentEnds) add(finals []*job.Job) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, j := range finals {
		if j == nil || specSize(&j.Spec) > recentSpecMax {
			continue
		}
		if r.byID == nil {
			r.byID = make(map[int64]*job.Job, recentEndsMax)
			r.order = make([]int64, recentEndsMax)
		}
		if old := r.order[r.next]; old != 0 {
			delete(r.byID, old)
		}
		r.order[r.next] = j.ID
		r.next = (r.next + 1) % recentEndsMax
		r.byID[j.ID] = j
	}
}

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

// finalRecords are what the store returns for each ended job, built from
// the loop's entries: nil where the entry does not hold all of it. Their
// Specs are shared with the entries, which no longer change: readers
// must not modify them.
func finalRecords(ended []*entry) []*job.Job {
	finals := make([]*job.Job, len(ended))
	for i, e := range ended {
		if !e.ownAttempts || e.j.IsArrayParent() || e.j.Attempt > 1 || (e.j.Attempt == 1) != (e.attempt != nil) {
			continue
		}
		j := *e.j
		j.Attempts = nil
		if e.attempt != nil {
			j.Attempts = []job.Attempt{*e.attempt}
		}
		finals[i] = &j
	}
	return finals
}
