// Package backend is the seam between the scheduler and the machines that
// run jobs. The scheduler decides what runs; a Backend makes it run and
// reports back through a Reporter.
package backend

import (
	"context"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

// Reporter receives what happens to launched attempts. Calls may come
// from any goroutine and must not block for long.
type Reporter interface {
	// Started: the command of the attempt is running.
	Started(jobID int64, attempt int, at time.Time)
	// Finished: the attempt is over, for good or ill.
	Finished(jobID int64, attempt int, r job.Result)
}

// Backend runs attempts of jobs.
type Backend interface {
	Name() string
	// Capacity is what the backend may run at once (one node for local).
	Capacity() job.Resources
	// Launch starts attempt j.Attempt of j. When it returns nil the attempt
	// is owned by the backend and will be reported Finished exactly once.
	Launch(ctx context.Context, j *job.Job) error
	// Cancel asks a launched attempt to stop (SIGTERM, then SIGKILL).
	Cancel(ctx context.Context, jobID int64, attempt int) error
	// Recover re-attaches to attempt j.Attempt of j, launched by an earlier
	// server process and recorded as j.State (STARTING or RUNNING); it will
	// be reported Finished exactly once, at once if it ended while nobody
	// watched.
	Recover(ctx context.Context, j *job.Job) error
}
