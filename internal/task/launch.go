// Package task runs one attempt of a job on a node: it stages inputs in,
// runs the command in its own process group, enforces the time limit,
// handles cancellation, stages outputs out, ships the logs and records
// every step in files of the attempt dir. It runs inside the node's
// executor (see internal/backend/local), which outlives the server, so a
// server killed with -9 loses nothing: on restart it reads the files.
package task

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

// Files of an attempt dir. The wrapper writes each JSON file atomically.
const (
	LaunchFile  = "launch.json"  // what to run (written by the backend)
	ClaimFile   = "claim"        // created (O_EXCL) by whoever owns the attempt
	StartedFile = "started.json" // the command has started
	ExitFile    = "exit.json"    // the command has ended (before stage-out)
	ResultFile  = "result.json"  // the attempt is over
	StdoutFile  = "stdout.log"
	StderrFile  = "stderr.log"
	WorkDir     = "work" // the job dir the command sees as HPCML_JOB_DIR
)

// Owners that may claim an attempt dir.
const (
	OwnerExecutor  = "executor"
	OwnerAbandoned = "abandoned" // a restarted server gave up a launch that never ran
)

// Claim makes owner the one owner of an attempt: exactly one Claim on a
// dir succeeds, whoever comes first.
func Claim(dir, owner string) (bool, error) {
	f, err := os.OpenFile(filepath.Join(dir, ClaimFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, err = f.WriteString(owner)
	return true, errors.Join(err, f.Close())
}

// Launch is what the backend tells the wrapper to do.
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

// Started is the content of StartedFile.
type Started struct {
	PID int       `json:"pid"`
	At  time.Time `json:"at"`
}

// WriteJSON writes v to dir/name atomically: a reader sees the old file,
// or no file, or all of the new one, never part of it. There is no fsync:
// the files must survive a killed process, which the page cache does, and
// the metadata store makes the same trade (synchronous=NORMAL).
func WriteJSON(dir, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// ReadJSON reads dir/name into v; ok is false if the file does not exist.
func ReadJSON(dir, name string, v any) (ok bool, err error) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("%s: %w", name, err)
	}
	return true, nil
}
