package sched

import (
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

// event is something the loop must apply. Exactly one field group is set.
type event struct {
	submitted []*job.Job

	started  bool
	launched bool // the backend took the attempt, or failed to
	finished *job.Result
	jobID    int64
	attempt  int
	at       time.Time

	cancel      int64
	cancelReply chan error

	queuesChanged bool
}

// Started implements backend.Reporter.
func (s *Scheduler) Started(jobID int64, attempt int, at time.Time) {
	s.inbox.push(event{started: true, jobID: jobID, attempt: attempt, at: at})
}

// Finished implements backend.Reporter.
func (s *Scheduler) Finished(jobID int64, attempt int, r job.Result) {
	s.inbox.push(event{finished: &r, jobID: jobID, attempt: attempt})
}
