package slurm

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/cache"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/task"
)

// RunWrapper is `hpcml __slurm-task [--array] DIR`, the batch script of
// every hpcml job on Slurm. It runs on the allocation's first node: it
// claims the attempt dir (so that a duplicate Slurm job runs nothing),
// then runs the attempt exactly as the local executor does, and stops it
// when Slurm sends SIGTERM (scancel, time limit, preemption). It returns
// the process exit status; the attempt's own outcome is in its journal.
func RunWrapper(args []string, log *slog.Logger) int {
	array := len(args) == 2 && args[0] == "--array"
	if !(len(args) == 1 && args[0] != "--array" || array) {
		fmt.Fprintln(os.Stderr, "usage: hpcml __slurm-task [--array] DIR")
		return 2
	}
	dir := args[len(args)-1]
	if array {
		var err error
		if dir, err = arrayTaskDir(dir, os.Getenv("SLURM_ARRAY_TASK_ID")); err != nil {
			fmt.Fprintln(os.Stderr, "hpcml job wrapper:", err)
			return 1
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, launchFile))
	if err != nil {
		fmt.Fprintln(os.Stderr, "hpcml job wrapper: read launch:", err)
		return 1
	}
	var l task.Launch
	if err := json.Unmarshal(data, &l); err != nil {
		fmt.Fprintln(os.Stderr, "hpcml job wrapper: read launch:", err)
		return 1
	}
	journal, ok, err := task.Claim(dir, "slurm:"+os.Getenv("SLURM_JOB_ID"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "hpcml job wrapper:", err)
		return 1
	}
	if !ok {
		fmt.Fprintf(os.Stderr, "hpcml job wrapper: attempt %s was claimed by another run; nothing to do\n", dir)
		return 0
	}
	// The node's environment (with Slurm's variables) first, then
	// hpcml's and the job's: later entries win.
	l.Env = append(nodeEnv(os.Environ()), l.Env...)

	cancel := make(chan struct{})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		close(cancel)
	}()
	buckets := blob.NewCache()
	defer buckets.Close()
	// Node-local: the node's temporary dir (Slurm's TmpFS), shared by the
	// node's jobs across allocations.
	objects, err := cache.New(filepath.Join(os.TempDir(), "hpcml-cache"), nodeCacheBytes)
	if err != nil {
		log.Warn("no dataset cache on this node", "err", err)
		objects = nil
	}
	env := task.Env{Buckets: buckets, Objects: objects, Log: log.With("job", l.JobID, "attempt", l.Attempt)}
	res, err := task.Run(env, journal, dir, &l, cancel, func(string) {})
	if err != nil {
		fmt.Fprintln(os.Stderr, "hpcml job wrapper:", err)
		return 1
	}
	return exitStatus(res)
}

// exitStatus is the batch script's exit status for the attempt's outcome:
// Slurm's own dependencies read it (afterok starts a held job when it is
// 0), so a failed command must not end the script with 0 — else a job
// hpcml holds behind a failed one could start before hpcml cancels it.
// A command's exit code passes through, a signal is 128+its number (as a
// shell reports it), any other failure is 1.
func exitStatus(r *job.Result) int {
	if state, _ := r.Outcome(); state == job.Succeeded {
		return 0
	}
	if r.Error != "" {
		return 1
	}
	if sig, ok := job.SignalNumber(r.Signal); ok && r.Signal != "" {
		return 128 + int(sig)
	}
	if r.ExitCode != nil && *r.ExitCode > 0 && *r.ExitCode < 256 {
		return *r.ExitCode
	}
	return 1
}

// nodeCacheBytes bounds a Slurm node's dataset cache.
const nodeCacheBytes = 10 << 30

// nodeEnv is the wrapper's environment minus hpcml's own variables.
func nodeEnv(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "HPCML_") {
			out = append(out, kv)
		}
	}
	return out
}

// arrayTaskDir finds the attempt dir of array task index in an array
// submission's task map.
func arrayTaskDir(sub, index string) (string, error) {
	if index == "" {
		return "", errors.New("SLURM_ARRAY_TASK_ID is not set: not an array task")
	}
	m, err := readTaskMap(sub)
	if err != nil {
		return "", err
	}
	name, ok := m[index]
	if !ok || !attemptDirRE.MatchString(name) {
		return "", fmt.Errorf("array task %s is not in %s", index, filepath.Join(sub, tasksFile))
	}
	// Attempt dirs are siblings of the arrays dir.
	return filepath.Join(filepath.Dir(filepath.Dir(sub)), name), nil
}

// attemptDirRE is the name of an attempt dir: "<job id>.<attempt>".
var attemptDirRE = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)

func readTaskMap(sub string) (map[string]string, error) {
	data, err := os.ReadFile(filepath.Join(sub, tasksFile))
	if err != nil {
		return nil, fmt.Errorf("read array task map: %w", err)
	}
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("read array task map: %w", err)
	}
	return m, nil
}
