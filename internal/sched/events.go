package sched

import (
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

// event is something the loop must apply. Exactly one field group is set.
type event struct {
	submitted []*job.Job

	started   bool
	launched  bool   // the backend took the attempt, or failed to
	launchErr error  // why it failed to
	launchSeq uint64 // which launch of the attempt number (see entry.launchSeq)
	queued    bool   // the attempt waits in the backend's queue
	backendID string
	reason    string
	finished  *job.Result
	jobID     int64
	attempt   int
	at        time.Time

	cancel      int64
	cancelReply chan error

	queuesChanged bool
}

// Started implements backend.Reporter.
func (s *Scheduler) Started(jobID int64, attempt int, at time.Time) {
	s.inbox.push(event{started: true, jobID: jobID, attempt: attempt, at: at})
}

// Queued implements backend.Reporter.
func (s *Scheduler) Queued(jobID int64, attempt int, id, reason string) {
	s.inbox.push(event{queued: true, jobID: jobID, attempt: attempt, backendID: id, reason: reason})
}

// Finished implements backend.Reporter.
func (s *Scheduler) Finished(jobID int64, attempt int, r job.Result) {
	s.inbox.push(event{finished: &r, jobID: jobID, attempt: attempt})
}
