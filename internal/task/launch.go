// Package task is the in-job wrapper: the hpcml binary run as
// `hpcml __wrap DIR` for each attempt of a job. It stages inputs in, runs
// the command in its own process group, enforces the time limit, handles
// cancellation, stages outputs out, ships the logs and reports the result
// in files of the attempt dir. It outlives the server, so a server killed
// with -9 loses nothing: on restart it reads what the wrapper wrote.
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
	LockFile    = "lock"         // flock'ed by whoever owns the attempt
	WrapperFile = "wrapper.json" // the wrapper's pid
	StartedFile = "started.json" // the command has started
	ExitFile    = "exit.json"    // the command has ended (before stage-out)
	ResultFile  = "result.json"  // the attempt is over
	StdoutFile  = "stdout.log"
	StderrFile  = "stderr.log"
	WorkDir     = "work" // the job dir the command sees as HPCML_JOB_DIR
)

// File descriptors the backend passes to the wrapper.
const (
	LockFD   = 3 // the attempt lock, already held
	StatusFD = 4 // optional pipe: one line per event
)

// Status lines written to the status pipe.
const (
	StatusStarted = "started"
	StatusDone    = "done"
)

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

// Wrapper is the content of WrapperFile.
type Wrapper struct {
	PID int `json:"pid"`
}

// WriteJSON writes v to dir/name atomically: a reader sees the old file,
// or no file, or all of the new one, never part of it.
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
	if err == nil {
		err = tmp.Sync()
	}
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
