// Package backend is the seam between the scheduler and the machines that
// run jobs. The scheduler decides what runs; a Backend makes it run and
// reports back through a Reporter.
package backend

import (
	"context"
	"errors"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

// ErrUnavailable marks a launch that failed because the backend cannot be
// reached (a Slurm controller that is down): nothing was submitted, and
// the scheduler holds the backend's jobs back and tries again later rather
// than failing them.
var ErrUnavailable = errors.New("backend unavailable")

// ErrDependencyGone: a launch asked the backend to hold the job until a
// dependency ends, and the backend no longer runs that dependency (it
// ended meanwhile). Nothing was launched; the scheduler decides anew.
var ErrDependencyGone = errors.New("dependency no longer on the backend")

// Reporter receives what happens to launched attempts. Calls may come
// from any goroutine and must not block for long.
type Reporter interface {
	// Queued: the attempt waits in the backend's own queue (Slurm's PD
	// state); id is the backend's name for it, reason why it waits.
	Queued(jobID int64, attempt int, id, reason string)
	// Started: the command of the attempt is running.
	Started(jobID int64, attempt int, at time.Time)
	// Finished: the attempt is over, for good or ill.
	Finished(jobID int64, attempt int, r job.Result)
}

// Backend runs attempts of jobs.
type Backend interface {
	// Name is what queues choose the backend by (job.BackendLocal, ...).
	Name() string
	// Capacity is what the scheduler may place on the backend at once.
	// Zero means the backend queues work itself (Slurm): the scheduler
	// then hands every runnable job over at once, and leaves the %N
	// throttle of arrays to the backend too.
	Capacity() job.Resources
	// Limits are what one job of queue q may ask for.
	Limits(ctx context.Context, q *job.Queue) (job.Limits, error)
	// CheckQueue reports whether q can send jobs here (for Slurm: its
	// partition, account and QOS exist); the error is for the user.
	CheckQueue(ctx context.Context, q *job.Queue) error
	// Launch starts attempt j.Attempt of j, a job of queue q. When it
	// returns nil the attempt is owned by the backend and will be
	// reported Finished exactly once. An error wrapping ErrUnavailable
	// means nothing was launched and it may be tried again.
	// j.Spec.DependsOn holds only dependencies still undecided, which
	// the scheduler hands over only to a DependencyHolder; for other
	// backends it is empty (the scheduler waited for them).
	Launch(ctx context.Context, j *job.Job, q *job.Queue) error
	// Cancel asks a launched attempt to stop (SIGTERM, then SIGKILL).
	Cancel(ctx context.Context, jobID int64, attempt int) error
	// Recover re-attaches to attempt j.Attempt of j, launched by an earlier
	// server process and recorded as j.State (STARTING or RUNNING); it will
	// be reported Finished exactly once, at once if it ended while nobody
	// watched.
	Recover(ctx context.Context, j *job.Job) error
}

// BatchLauncher is a Backend that launches several attempts of one queue
// at once better than one by one (Slurm submits the tasks of an array
// job as one array). errs[i] is the outcome of jobs[i].
type BatchLauncher interface {
	LaunchBatch(ctx context.Context, jobs []*job.Job, q *job.Queue) (errs []error)
}

// DependencyHolder is a Backend that can hold a job until attempts it
// runs itself have ended (Slurm's --dependency), so that a chain moves on
// without a round trip through the server. The scheduler launches a job
// early only when each undecided dependency is a job running on the same
// backend whose current attempt is its last (no retry can replace it).
type DependencyHolder interface {
	HoldsDependencies() bool
}

// Stager is a bounded Backend that keeps attempts handed to it beyond
// its free capacity, in order, and starts each the moment it fits. The
// scheduler may then launch up to StageAhead attempts that have not
// started yet, whether they fit or not, so that a slot freed on the node
// is filled at once instead of after a round trip through the scheduler
// (on a machine running many short jobs that round trip is most of a
// slot's idle time). It is asked at every pass, and may answer 0 (stage
// nothing now).
type Stager interface {
	StageAhead() int
	// Unstage takes back an attempt that has not begun: it then ends
	// never started (reported as usual), to be placed again. One that has
	// begun runs on.
	Unstage(ctx context.Context, jobID int64, attempt int) error
}

// ProgressReader is a Backend that can read what a launched attempt
// reports of its progress (the file HPCML_PROGRESS_FILE names, see
// job.Progress). It returns nil without error when the attempt reports
// nothing or is not one of this backend's, and an error when the report
// is unusable; neither must fail what asked for it. It is read on demand
// (a job get), so it must be quick.
type ProgressReader interface {
	Progress(ctx context.Context, jobID int64, attempt int) (*job.Progress, error)
}
