package local

import (
	"time"

	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/task"
)

// The server and the node's executor talk over a unix socket in the jobs
// dir, one JSON object per line. Requests name attempts by job id and
// attempt number only; the executor derives the dir itself, so a client
// cannot point it at an arbitrary path.
const (
	socketName   = "executor.sock"
	executorLock = "executor.lock"
	executorLog  = "executor.log"
)

// Requests.
const (
	opLaunch         = "launch"           // run an attempt (its dir exists, unclaimed)
	opCancel         = "cancel"           // cancel a running attempt
	opAttach         = "attach"           // is this attempt running? (after a server restart)
	opUnstage        = "unstage"          // take back an attempt still queued (it ends never started)
	opShutdownIfIdle = "shutdown_if_idle" // exit as soon as nothing runs and nobody is connected
)

// Events. started and done go to every client; running and unknown answer
// the client that asked.
const (
	// hello is the executor's first word on a connection; Queues says it
	// keeps attempts beyond its capacity until they fit (an executor of an
	// older version, still running its jobs across an upgrade, says
	// nothing, and is never handed more than fits).
	evHello   = "hello"
	evStarted = "started"
	evDone    = "done"
	evRunning = "running" // attached: started/done will follow
	evUnknown = "unknown" // not running here: its files tell how it ended
)

type request struct {
	Op      string       `json:"op"`
	JobID   int64        `json:"id,omitempty"`
	Attempt int          `json:"attempt,omitempty"`
	Launch  *task.Launch `json:"launch,omitempty"` // with opLaunch
	// With opLaunch: what the attempt holds while it runs, and the node's
	// capacity. An attempt that does not fit beside those running waits in
	// the executor, in launch order, and starts the moment it fits: the
	// server hands over a few more than fit (Backend.StageAhead), so that
	// a slot freed is filled without a round trip through it. A zero
	// capacity (an older server) starts every attempt at once.
	Need     job.Resources `json:"need,omitzero"`
	Capacity job.Resources `json:"capacity,omitzero"`
}

type message struct {
	Event   string    `json:"event"`
	JobID   int64     `json:"id"`
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at,omitzero"`
	Queues  bool      `json:"queues,omitempty"` // with hello
	// Result: with done, the outcome the executor recorded in the
	// attempt's journal, so that the server need not read it back. Without
	// one (the attempt dir was unusable, or unknown) the files tell.
	Result *job.Result `json:"result,omitempty"`
}
