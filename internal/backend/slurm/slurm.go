// Package slurm is the Backend that runs jobs on a Slurm cluster.
//
// It drives Slurm through its client commands (sbatch --parsable, squeue,
// scontrol, scancel), which every cluster has and which authenticate
// with munge like any user's; slurmrestd is not needed. Each attempt is
// one Slurm job (or one task of a Slurm array) whose batch script execs
// the hpcml binary as the job wrapper (`hpcml __slurm-task DIR`): it
// stages in, runs the command (through srun for several tasks), stages
// out, ships the logs and writes its journal into the attempt dir, just
// as the local executor does. Attempt dirs live under a directory that
// the server and the nodes share (a cluster file system).
//
// The server learns what happens from two sources: the attempt's journal
// (started, done, with the exact exit status) and squeue (waiting
// reasons, and the fate of jobs whose wrapper could not say: node
// failure, preemption, a batch script that never ran). Every Slurm job
// carries "hpcml:<instance>:<attempt key>" as its comment, so a restarted
// server finds the jobs it submitted and never submits an attempt twice;
// the wrapper claims its attempt dir with O_EXCL, so even a duplicate
// Slurm job could not run the command twice.
package slurm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hpcml/hpcml/internal/backend"
	"github.com/hpcml/hpcml/internal/backend/attemptdir"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/task"
)

// Config of the Slurm backend.
type Config struct {
	// Dir holds one directory per attempt. It must be visible at the same
	// path on the server and on every node (a shared file system).
	Dir string
	// Executable is the hpcml binary as the nodes see it.
	Executable string
	// Storage is the bucket URL for logs, outputs and bare input keys.
	Storage   string
	KillGrace time.Duration
	// Bin is the directory of the Slurm commands ("" = PATH).
	Bin string
	// Env is the environment of the Slurm commands; sbatch exports it
	// into each job, so it must hold no secret of the server's.
	Env []string
	// Poll is how often attempt journals are read; QueuePoll how often
	// squeue is asked.
	Poll, QueuePoll time.Duration
	// CommandTimeout bounds one Slurm command.
	CommandTimeout time.Duration
}

// Backend submits attempts to Slurm and watches them.
type Backend struct {
	cfg      Config
	rep      backend.Reporter
	log      *slog.Logger
	cmd      commands
	instance string
	// submit bounds concurrent sbatch calls: a burst of launches must not
	// start hundreds of processes against the controller at once.
	submit chan struct{}

	mu       sync.Mutex
	inflight map[key]*attempt
	limits   map[string]cachedLimits // by partition
}

type key struct {
	id      int64
	attempt int
}

type cachedLimits struct {
	lim job.Limits
	at  time.Time
}

var (
	_ backend.Backend          = (*Backend)(nil)
	_ backend.BatchLauncher    = (*Backend)(nil)
	_ backend.DependencyHolder = (*Backend)(nil)
	_ backend.ProgressReader   = (*Backend)(nil)
)

// New returns a Slurm backend reporting to rep. Run must be started for
// it to watch its jobs.
func New(cfg Config, rep backend.Reporter, log *slog.Logger) (*Backend, error) {
	if cfg.Poll <= 0 {
		cfg.Poll = 250 * time.Millisecond
	}
	if cfg.QueuePoll <= 0 {
		cfg.QueuePoll = 2 * time.Second
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = 10 * time.Second
	}
	// Paths go into the batch script and --output (where Slurm expands
	// % and \\): refuse what quoting would have to bend over backwards for.
	for _, p := range []string{cfg.Dir, cfg.Executable} {
		if !filepath.IsAbs(p) || strings.ContainsAny(p, "'\n\x00%\\") {
			return nil, fmt.Errorf("slurm backend: %q must be an absolute path without quotes, newlines, %% or \\", p)
		}
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, arraysDir), 0o755); err != nil {
		return nil, fmt.Errorf("create slurm jobs dir: %w", err)
	}
	inst, err := instanceID(cfg.Dir)
	if err != nil {
		return nil, err
	}
	return &Backend{
		cfg: cfg, rep: rep, log: log, instance: inst,
		cmd:      commands{bin: cfg.Bin, env: cfg.Env, timeout: cfg.CommandTimeout},
		submit:   make(chan struct{}, 4),
		inflight: map[key]*attempt{},
		limits:   map[string]cachedLimits{},
	}, nil
}

// instanceID names this server's jobs in their Slurm comment, so that
// two hpcml servers on one cluster never take each other's jobs. It is
// made once and kept in the jobs dir.
func instanceID(dir string) (string, error) {
	path := filepath.Join(dir, "instance")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 6)
	rand.Read(buf)
	id := hex.EncodeToString(buf)
	if err := writeFileAtomic(path, []byte(id+"\n")); err != nil {
		return "", fmt.Errorf("slurm backend instance id: %w", err)
	}
	return id, nil
}

// Name is "slurm".
func (b *Backend) Name() string { return job.BackendSlurm }

// Capacity is zero: Slurm queues and places work itself.
func (b *Backend) Capacity() job.Resources { return job.Resources{} }

// limitsTTL: node shapes change rarely; submissions must not each ask.
const (
	limitsTTL     = 30 * time.Second
	limitsRetry   = 5 * time.Second // after a failed read
	limitsTimeout = 3 * time.Second
)

// Limits are the largest node of q's partition and its node count. When
// the controller cannot be reached nothing is known and nothing is
// refused: the job waits and Slurm judges it at submission.
func (b *Backend) Limits(ctx context.Context, q *job.Queue) (job.Limits, error) {
	b.mu.Lock()
	c, ok := b.limits[q.Partition]
	b.mu.Unlock()
	if ok && time.Since(c.at) < limitsTTL {
		return c.lim, nil
	}
	// A submission waits for this: a controller that does not answer
	// soon is taken as down, and asked again only after a while.
	ctx, cancel := context.WithTimeout(ctx, limitsTimeout)
	defer cancel()
	lim, err := b.readLimits(ctx, q.Partition)
	at := time.Now()
	if err != nil {
		b.log.Warn("read slurm partition limits; not checking submissions against them for now", "partition", q.Partition, "err", err)
		lim, at = job.Limits{}, at.Add(limitsRetry-limitsTTL)
	}
	b.mu.Lock()
	b.limits[q.Partition] = cachedLimits{lim: lim, at: at}
	b.mu.Unlock()
	return lim, nil
}

func (b *Backend) readLimits(ctx context.Context, partition string) (job.Limits, error) {
	args := []string{"show", "partition", "-o"}
	if partition != "" {
		args = append(args, partition)
	}
	out, err := b.cmd.run(ctx, nil, "scontrol", args...)
	if err != nil {
		return job.Limits{}, err
	}
	var nodes string
	for _, line := range strings.Split(string(out), "\n") {
		f := fields(line)
		if partition == "" && f["Default"] != "YES" {
			continue
		}
		nodes = f["Nodes"]
		break
	}
	if nodes == "" || nodes == "(null)" {
		return job.Limits{}, fmt.Errorf("partition %q has no nodes", partition)
	}
	out, err = b.cmd.run(ctx, nil, "scontrol", "show", "node", "-o", nodes)
	if err != nil {
		return job.Limits{}, err
	}
	var lim job.Limits
	for _, line := range strings.Split(string(out), "\n") {
		f := fields(line)
		if f["NodeName"] == "" {
			continue
		}
		lim.MaxNodes++
		cpus, _ := strconv.ParseFloat(f["CPUTot"], 64)
		mem, _ := strconv.ParseInt(f["RealMemory"], 10, 64)
		lim.MaxNode.CPUs = max(lim.MaxNode.CPUs, cpus)
		lim.MaxNode.MemoryMB = max(lim.MaxNode.MemoryMB, mem)
		lim.MaxNode.GPUs = max(lim.MaxNode.GPUs, gpus(f["Gres"]))
	}
	return lim, nil
}

// gpus counts the GPUs in a Gres string such as "gpu:a100:4(S:0-1),nic:1".
func gpus(gres string) int {
	n := 0
	for _, g := range strings.Split(gres, ",") {
		if i := strings.IndexByte(g, '('); i >= 0 {
			g = g[:i]
		}
		parts := strings.Split(g, ":")
		if parts[0] != "gpu" || len(parts) < 2 {
			continue
		}
		c, _ := strconv.Atoi(parts[len(parts)-1])
		n += c
	}
	return n
}

// fields splits one line of `scontrol show -o` into its Key=Value pairs.
func fields(line string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Fields(line) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// CheckQueue checks that q's partition exists. Account and QOS need
// Slurm's accounting database to be checked, so Slurm checks them when
// a job is submitted (and the job fails with its message).
func (b *Backend) CheckQueue(ctx context.Context, q *job.Queue) error {
	if q.Partition == "" {
		return nil
	}
	_, err := b.cmd.run(ctx, nil, "scontrol", "show", "partition", "-o", q.Partition)
	var ce *commandError
	if errors.As(err, &ce) {
		return &job.FieldError{Field: "partition", Message: fmt.Sprintf("slurm partition %q does not exist (%s)", q.Partition, lastLine(ce.msg))}
	}
	return err
}

// AttemptDir is where an attempt's files live.
func (b *Backend) AttemptDir(jobID int64, attempt int) string {
	return attemptdir.Path(b.cfg.Dir, jobID, attempt)
}

// Janitor removes old attempt dirs of ended attempts and, beside them,
// the task maps of array submissions (read only when a task starts).
func (b *Backend) Janitor(keep time.Duration, ended attemptdir.EndedFunc) *attemptdir.Janitor {
	return &attemptdir.Janitor{Root: b.cfg.Dir, Keep: keep, Ended: ended, Log: b.log, Also: func(cutoff time.Time) {
		arrays := filepath.Join(b.cfg.Dir, arraysDir)
		entries, _ := os.ReadDir(arrays)
		for _, e := range entries {
			if d := filepath.Join(arrays, e.Name()); attemptdir.LastTouched(d).Before(cutoff) {
				os.RemoveAll(d)
			}
		}
	}}
}

// writeFileAtomic writes a small file whole or not at all.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Progress reads what an attempt reports of its progress in its dir,
// which the nodes write on the shared file system.
func (b *Backend) Progress(ctx context.Context, jobID int64, attempt int) (*job.Progress, error) {
	return task.ReadProgress(b.AttemptDir(jobID, attempt))
}

// LogPath is the file of an attempt's stream ("stdout" or "stderr").
func (b *Backend) LogPath(jobID int64, attempt int, stream string) string {
	name := task.StdoutFile
	if stream == "stderr" {
		name = task.StderrFile
	}
	return filepath.Join(b.AttemptDir(jobID, attempt), name)
}
