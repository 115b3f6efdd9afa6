// Package task runs one attempt of a job on a node: it stages inputs in,
// runs the command in its own process group, enforces the time limit,
// handles cancellation, stages outputs out, ships the logs and records
// every step in files of the attempt dir. It runs inside the node's
// executor (see internal/backend/local), which outlives the server, so a
// server killed with -9 loses nothing: on restart it reads the files.
package task

import (
	"github.com/hpcml/hpcml/internal/job"
)

// Files of an attempt dir. Few on purpose: creating files is most of
// what a trivial job costs the node.
const (
	// StatusFile is the attempt's progress, one JSON record per line,
	// appended. Creating it (O_EXCL) is also how an attempt is claimed.
	StatusFile = "status.jsonl"
	StdoutFile = "stdout.log"
	StderrFile = "stderr.log"
	WorkDir    = "work" // the job dir the command sees as HPCML_JOB_DIR
)

// Owners that may claim an attempt dir.
const (
	OwnerExecutor  = "executor"
	OwnerAbandoned = "abandoned" // a restarted server gave up a launch that never ran
)

// Launch is what the backend tells the executor to do (in the launch
// request itself: no file to create).
type Launch struct {
	JobID     int64        `json:"job_id"`
	Attempt   int          `json:"attempt"`
	Argv      []string     `json:"argv"`
	Env       []string     `json:"env"`
	WorkDir   string       `json:"workdir"`
	TimeLimit job.Duration `json:"time_limit"`
	KillGrace job.Duration `json:"kill_grace"`
	Inputs    []job.Input  `json:"inputs,omitempty"`
	Outputs   []job.Output `json:"outputs,omitempty"`
	// Storage is the bucket URL bare keys resolve against; LogPrefix is
	// where the logs go in it ("jobs/42/1/").
	Storage   string `json:"storage"`
	LogPrefix string `json:"log_prefix"`
}
