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
	// ProgressFile is where the job may report its progress, replacing
	// the file whole each time (job.Progress; HPCML_PROGRESS_FILE names
	// it). Not created by hpcml: a job that reports nothing has none.
	ProgressFile = "progress.json"
)

// SelfProgram, as a job's program, is the hpcml binary running the job.
const SelfProgram = "hpcml"

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
	// Ranks: how many copies of Argv run, and how they are started. The
	// zero value is one plain process, as for any job of one task.
	Ranks Ranks `json:"ranks,omitzero"`
}

// Launchers of a job of several tasks.
const (
	// LauncherLocal: every task runs on this machine, under mpirun for
	// MPI jobs, else under hpcml's own fan-out (`hpcml __rank --fanout`).
	LauncherLocal = "local"
	// LauncherSlurm: the wrapper runs in the batch step of a Slurm
	// allocation, on its first node, and starts the tasks with srun.
	LauncherSlurm = "slurm"
)

// Ranks is the task layout of an attempt (job.Spec's nodes,
// tasks_per_node and type) and who starts the tasks.
type Ranks struct {
	Nodes        int    `json:"nodes,omitempty"`
	TasksPerNode int    `json:"tasks_per_node,omitempty"`
	MPI          bool   `json:"mpi,omitempty"`
	Launcher     string `json:"launcher,omitempty"`
}

// Tasks is how many copies of the command run: at least 1.
func (r Ranks) Tasks() int { return max(r.Nodes, 1) * max(r.TasksPerNode, 1) }

// Multi reports whether the command is started through a launcher
// (mpirun, srun or the fan-out) rather than run directly. An MPI job of
// one task still is: it needs mpirun, or srun --mpi, to set up its world.
func (r Ranks) Multi() bool { return r.Tasks() > 1 || r.MPI }
