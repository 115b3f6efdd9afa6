package task

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/job"
)

// Wrap runs the attempt described in dir and returns the process exit
// status for the wrapper itself (0 unless the attempt dir is unusable: the
// job's own outcome is in ResultFile, not in the wrapper's status).
func Wrap(dir string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("attempt_dir", dir)
	w := &wrapper{dir: dir, log: log}
	if f := os.NewFile(StatusFD, "status"); f != nil {
		w.status = bufio.NewWriter(f)
	}
	if err := w.run(); err != nil {
		log.Error("wrapper failed", "err", err)
		return 1
	}
	return 0
}

type wrapper struct {
	dir    string
	log    *slog.Logger
	status *bufio.Writer
	launch Launch
}

// notify tells the backend about an event if it is listening; a server
// that died is not an error.
func (w *wrapper) notify(event string) {
	if w.status == nil {
		return
	}
	w.status.WriteString(event + "\n")
	if err := w.status.Flush(); err != nil {
		w.status = nil
	}
}

func (w *wrapper) run() error {
	// Cancellation (SIGTERM from the backend) must be caught from the very
	// start, so that a cancel during staging is not lost.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	signal.Ignore(syscall.SIGPIPE)

	if err := WriteJSON(w.dir, WrapperFile, Wrapper{PID: os.Getpid()}); err != nil {
		return err
	}
	if ok, err := ReadJSON(w.dir, LaunchFile, &w.launch); !ok || err != nil {
		return fmt.Errorf("read %s: %v", LaunchFile, err)
	}
	res := &job.Result{StartedAt: time.Now().UTC()}
	w.execute(res, sigs)
	w.shipLogs(res)
	res.EndedAt = time.Now().UTC()
	if err := WriteJSON(w.dir, ResultFile, res); err != nil {
		return err
	}
	w.notify(StatusDone)
	return nil
}

// execute stages in, runs the command and stages out, recording the
// outcome in res.
func (w *wrapper) execute(res *job.Result, sigs <-chan os.Signal) {
	l := &w.launch
	ctx, cancel := context.WithCancel(context.Background())
	watching := make(chan struct{})
	stopWatching := func() { cancel(); <-watching }
	defer stopWatching()
	go func() {
		// A cancel while staging stops the staging.
		defer close(watching)
		select {
		case <-sigs:
			res.Cancelled = true
			cancel()
		case <-ctx.Done():
		}
	}()

	workDir := filepath.Join(w.dir, WorkDir)
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		res.Error = "create job dir: " + err.Error()
		return
	}
	root, err := os.OpenRoot(workDir)
	if err != nil {
		res.Error = "open job dir: " + err.Error()
		return
	}
	defer root.Close()
	stager := blob.NewStager(l.Storage)
	defer stager.Close()
	for _, in := range l.Inputs {
		if _, err := stager.Download(ctx, in.URL, root, in.Path); err != nil {
			if !res.Cancelled {
				res.Error = "stage-in: " + err.Error()
			}
			return
		}
	}
	// Staging is over: stop the watcher, so signals go to the command now.
	stopWatching()
	if res.Cancelled {
		return
	}

	exitOK := w.runCommand(res, sigs)
	if exitOK {
		for _, out := range l.Outputs {
			if _, err := stager.Upload(context.Background(), root, out.Path, out.URL); err != nil {
				res.Error = "stage-out: " + err.Error()
				return
			}
		}
	}
}

// runCommand runs the command to its end; true if it exited 0.
func (w *wrapper) runCommand(res *job.Result, sigs <-chan os.Signal) bool {
	l := &w.launch
	stdout, err := os.OpenFile(filepath.Join(w.dir, StdoutFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		res.Error = "open stdout log: " + err.Error()
		return false
	}
	defer stdout.Close()
	stderr, err := os.OpenFile(filepath.Join(w.dir, StderrFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		res.Error = "open stderr log: " + err.Error()
		return false
	}
	defer stderr.Close()

	cmd := exec.Command(l.Argv[0], l.Argv[1:]...)
	cmd.Env = l.Env
	cmd.Dir = l.WorkDir
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Its own process group, so cancel and time-out reach every process
	// the command started; Pdeathsig so that the command does not outlive
	// a wrapper killed with -9 (its result could then never be reported).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Pdeathsig fires when the forking thread exits: keep this one.
	runtime.LockOSThread()
	if err := cmd.Start(); err != nil {
		res.Error = startError(l.Argv[0], err)
		return false
	}
	started := time.Now().UTC()
	res.StartedAt = started
	if err := WriteJSON(w.dir, StartedFile, Started{PID: cmd.Process.Pid, At: started}); err != nil {
		w.log.Warn("record start", "err", err)
	}
	w.notify(StatusStarted)

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var limit <-chan time.Time
	if l.TimeLimit > 0 {
		t := time.NewTimer(time.Duration(l.TimeLimit))
		defer t.Stop()
		limit = t.C
	}
	pgid := cmd.Process.Pid
	var waitErr error
	var kill <-chan time.Time
loop:
	for {
		select {
		case waitErr = <-done:
			break loop
		case <-limit:
			limit = nil
			if !res.Cancelled {
				res.TimedOut = true
			}
			kill = w.terminate(pgid)
		case <-sigs:
			if !res.TimedOut && !res.Cancelled {
				res.Cancelled = true
				kill = w.terminate(pgid)
			}
		case <-kill:
			syscall.Kill(-pgid, syscall.SIGKILL)
			kill = nil
		}
	}
	// Whatever the command left running in its group ends with it, as under Slurm.
	syscall.Kill(-pgid, syscall.SIGKILL)

	st := cmd.ProcessState
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		res.CPUSeconds = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
		res.MaxRSSBytes = ru.Maxrss * 1024
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		res.Signal = job.SignalName(ws.Signal())
	} else {
		code := st.ExitCode()
		res.ExitCode = &code
	}
	if waitErr != nil && res.ExitCode == nil && res.Signal == "" {
		res.Error = "wait: " + waitErr.Error()
	}
	res.EndedAt = time.Now().UTC()
	if err := WriteJSON(w.dir, ExitFile, res); err != nil {
		w.log.Warn("record exit", "err", err)
	}
	return !res.Cancelled && !res.TimedOut && res.Signal == "" && res.ExitCode != nil && *res.ExitCode == 0
}

// terminate sends SIGTERM to the group and returns when to send SIGKILL.
func (w *wrapper) terminate(pgid int) <-chan time.Time {
	syscall.Kill(-pgid, syscall.SIGTERM)
	return time.After(time.Duration(w.launch.KillGrace))
}

func startError(prog string, err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) && pe.Op == "chdir" {
		return fmt.Sprintf("working directory %s: %v", pe.Path, pe.Err)
	}
	return fmt.Sprintf("cannot run %s: %v", prog, err)
}

func tvSeconds(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }

// shipLogs copies the logs to object storage, so they survive the node.
func (w *wrapper) shipLogs(res *job.Result) {
	l := &w.launch
	if l.Storage == "" || l.LogPrefix == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := blob.Open(ctx, l.Storage)
	if err != nil {
		w.log.Warn("ship logs", "err", err)
		return
	}
	defer b.Close()
	for _, s := range []struct {
		file string
		url  *string
	}{{StdoutFile, &res.StdoutURL}, {StderrFile, &res.StderrURL}} {
		f, err := os.Open(filepath.Join(w.dir, s.file))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			w.log.Warn("ship logs", "err", err)
			continue
		}
		key := l.LogPrefix + s.file
		_, err = blob.UploadReader(ctx, b, key, f)
		f.Close()
		if err != nil {
			w.log.Warn("ship logs", "err", err)
			continue
		}
		*s.url = key
	}
}
