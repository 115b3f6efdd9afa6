// Package local is the Backend that runs jobs on this machine. Each
// attempt runs under its own wrapper process (`hpcml __wrap DIR`, see
// internal/task) that outlives the server.
//
// Ownership of an attempt is an flock on DIR/lock: the backend takes it
// before it forks the wrapper and hands it down as fd 3, so at every
// instant either the server or the wrapper holds it. A restarted server
// that can take the lock knows no wrapper is alive, and the files the
// wrapper wrote tell how far it got; one that cannot take it re-attaches.
package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hpcml/hpcml/internal/backend"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/task"
)

// Config of the local backend.
type Config struct {
	// JobsDir holds one directory per job attempt.
	JobsDir string
	// Executable is the hpcml binary that wraps each attempt.
	Executable string
	// Storage is the bucket URL for logs, outputs and bare input keys.
	Storage   string
	Capacity  job.Resources
	KillGrace time.Duration
	// BaseEnv is the environment every job starts from.
	BaseEnv []string
}

// Backend runs attempts as local processes.
type Backend struct {
	cfg Config
	rep backend.Reporter
	log *slog.Logger

	mu      sync.Mutex
	wrapper map[attemptKey]int // live wrapper pids this process knows of
	// cancelled remembers cancels that arrived before the wrapper's pid
	// was known, so a launch racing a cancel still gets cancelled.
	cancelled map[attemptKey]bool
}

type attemptKey struct {
	id      int64
	attempt int
}

var _ backend.Backend = (*Backend)(nil)

// New returns a local backend reporting to rep.
func New(cfg Config, rep backend.Reporter, log *slog.Logger) (*Backend, error) {
	if err := os.MkdirAll(cfg.JobsDir, 0o700); err != nil {
		return nil, fmt.Errorf("create jobs dir: %w", err)
	}
	return &Backend{cfg: cfg, rep: rep, log: log, wrapper: map[attemptKey]int{}, cancelled: map[attemptKey]bool{}}, nil
}

// Name is "local".
func (b *Backend) Name() string { return "local" }

// Capacity is the declared capacity of this machine.
func (b *Backend) Capacity() job.Resources { return b.cfg.Capacity }

// AttemptDir is where an attempt's files live.
func (b *Backend) AttemptDir(jobID int64, attempt int) string {
	return filepath.Join(b.cfg.JobsDir, strconv.FormatInt(jobID, 10), strconv.Itoa(attempt))
}

// Launch prepares the attempt dir and starts the wrapper.
func (b *Backend) Launch(ctx context.Context, j *job.Job) error {
	dir := b.AttemptDir(j.ID, j.Attempt)
	// A dir left by a launch that never started (see Recover) is reused.
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear attempt dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, task.WorkDir), 0o755); err != nil {
		return fmt.Errorf("create attempt dir: %w", err)
	}
	l := b.launchSpec(j, dir)
	if err := task.WriteJSON(dir, task.LaunchFile, l); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(dir, task.LockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("create lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("lock attempt dir: %w", err)
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("status pipe: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(dir, "wrapper.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		statusR.Close()
		statusW.Close()
		return fmt.Errorf("wrapper log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(b.cfg.Executable, "__wrap", dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{lock, statusW} // fds 3 and 4
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	// Its own session: a Ctrl-C or kill of the server's process group
	// must not reach running jobs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	statusW.Close()
	if err != nil {
		statusR.Close()
		return fmt.Errorf("start wrapper: %w", err)
	}
	b.track(attemptKey{j.ID, j.Attempt}, cmd.Process.Pid)
	go b.watchChild(attemptKey{j.ID, j.Attempt}, dir, cmd, statusR)
	return nil
}

func (b *Backend) launchSpec(j *job.Job, dir string) task.Launch {
	s := &j.Spec
	argv := s.Command
	if s.Shell {
		argv = []string{"/bin/sh", "-c", strings.Join(s.Command, " ")}
	}
	workDir := filepath.Join(dir, task.WorkDir)
	cwd := workDir
	if s.WorkDir != "" {
		if filepath.IsAbs(s.WorkDir) {
			cwd = s.WorkDir
		} else {
			cwd = filepath.Join(workDir, s.WorkDir)
		}
	}
	return task.Launch{
		JobID:     j.ID,
		Attempt:   j.Attempt,
		Argv:      argv,
		Env:       task.JobEnv(b.cfg.BaseEnv, j, workDir),
		WorkDir:   cwd,
		TimeLimit: s.TimeLimit,
		KillGrace: job.Duration(b.cfg.KillGrace),
		Inputs:    s.Inputs,
		Outputs:   s.Outputs,
		Storage:   b.cfg.Storage,
		LogPrefix: fmt.Sprintf("jobs/%d/%d/", j.ID, j.Attempt),
	}
}

// track records a live wrapper and delivers a cancel that came early.
func (b *Backend) track(key attemptKey, pid int) {
	b.mu.Lock()
	b.wrapper[key] = pid
	early := b.cancelled[key]
	b.mu.Unlock()
	if early {
		syscall.Kill(pid, syscall.SIGTERM)
	}
}

// watchChild follows a wrapper this process started.
func (b *Backend) watchChild(key attemptKey, dir string, cmd *exec.Cmd, status *os.File) {
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		if sc.Text() == task.StatusStarted {
			var st task.Started
			if ok, _ := task.ReadJSON(dir, task.StartedFile, &st); ok {
				b.rep.Started(key.id, key.attempt, st.At)
			}
		}
	}
	cmd.Wait() // reap; the outcome is in the files
	b.finish(key, dir)
}

// finish reports the end of an attempt from what its wrapper wrote.
func (b *Backend) finish(key attemptKey, dir string) {
	b.mu.Lock()
	delete(b.wrapper, key)
	delete(b.cancelled, key)
	b.mu.Unlock()
	b.rep.Finished(key.id, key.attempt, readOutcome(dir))
}

// readOutcome reads how an attempt whose wrapper is gone ended.
func readOutcome(dir string) job.Result {
	var r job.Result
	if ok, err := task.ReadJSON(dir, task.ResultFile, &r); ok && err == nil {
		return r
	}
	if ok, err := task.ReadJSON(dir, task.ExitFile, &r); ok && err == nil {
		// The command ended but the wrapper died while staging out.
		r.NodeLost = true
		r.Error = fmt.Sprintf("job wrapper lost after the command ended (%s)", describeExit(&r))
		return r
	}
	var st task.Started
	if ok, _ := task.ReadJSON(dir, task.StartedFile, &st); ok {
		return job.Result{StartedAt: st.At, EndedAt: time.Now().UTC(), NodeLost: true,
			Error: "job wrapper lost while the command ran"}
	}
	var w task.Wrapper
	if ok, _ := task.ReadJSON(dir, task.WrapperFile, &w); ok {
		// It was staging in: nothing of the command ran, but staging may
		// have had effects, so this counts as a lost node, not a relaunch.
		return job.Result{EndedAt: time.Now().UTC(), NodeLost: true, Error: "job wrapper lost before the command started"}
	}
	return job.Result{NeverStarted: true, Error: "launch interrupted before the wrapper ran"}
}

func describeExit(r *job.Result) string {
	if r.Signal != "" {
		return "killed by " + r.Signal
	}
	if r.ExitCode != nil {
		return fmt.Sprintf("exit code %d", *r.ExitCode)
	}
	return "unknown status"
}

// Recover re-attaches to an attempt started by an earlier server.
func (b *Backend) Recover(ctx context.Context, jobID int64, attempt int) error {
	key := attemptKey{jobID, attempt}
	dir := b.AttemptDir(jobID, attempt)
	lock, err := os.OpenFile(filepath.Join(dir, task.LockFile), os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		// The server died before the launch got this far.
		go b.rep.Finished(jobID, attempt, job.Result{NeverStarted: true, Error: "launch interrupted"})
		return nil
	}
	if err != nil {
		return fmt.Errorf("recover job %d attempt %d: %w", jobID, attempt, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		// Nobody holds it: the wrapper is gone (or never ran).
		lock.Close()
		go b.finish(key, dir)
		return nil
	}
	var w task.Wrapper
	if ok, _ := task.ReadJSON(dir, task.WrapperFile, &w); ok {
		b.track(key, w.PID)
	}
	var st task.Started
	if ok, _ := task.ReadJSON(dir, task.StartedFile, &st); ok {
		b.rep.Started(jobID, attempt, st.At)
	}
	go func() {
		// Blocks until the wrapper exits and the kernel drops its lock.
		defer lock.Close()
		for {
			err := syscall.Flock(int(lock.Fd()), syscall.LOCK_SH)
			if err != syscall.EINTR {
				break
			}
		}
		if st.PID == 0 {
			if ok, _ := task.ReadJSON(dir, task.StartedFile, &st); ok {
				b.rep.Started(jobID, attempt, st.At)
			}
		}
		b.finish(key, dir)
	}()
	return nil
}

// Cancel signals the attempt's wrapper, which terminates the command's
// process group and reports the attempt as cancelled.
func (b *Backend) Cancel(ctx context.Context, jobID int64, attempt int) error {
	key := attemptKey{jobID, attempt}
	b.mu.Lock()
	pid, ok := b.wrapper[key]
	if !ok {
		b.cancelled[key] = true // delivered by track once the pid is known
	}
	b.mu.Unlock()
	if !ok {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("cancel job %d: %w", jobID, err)
	}
	return nil
}

// LogPath is the local file of an attempt's stream ("stdout" or "stderr").
func (b *Backend) LogPath(jobID int64, attempt int, stream string) string {
	name := task.StdoutFile
	if stream == "stderr" {
		name = task.StderrFile
	}
	return filepath.Join(b.AttemptDir(jobID, attempt), name)
}
