package task

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/cache"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/lazyfs"
)

// Events an attempt reports while it runs. Its end is not an event: Run
// returns.
const (
	EventStarted = "started" // the command is running
)

// Env is what attempts on a node share.
type Env struct {
	// Buckets holds the default storage bucket (logs, bare keys); other
	// buckets a job names are opened per attempt and closed at its end.
	Buckets *blob.Cache
	Log     *slog.Logger
	// Objects is the node's content-addressed cache of dataset objects
	// (nil: dataset inputs cannot be staged here).
	Objects *cache.Cache
	// DevNull, open for reading, is the commands' standard input, opened
	// once for all of a node's attempts (nil: each command opens its own).
	DevNull *os.File
	// Peak reads the starter's own peak RSS (see jobPeakRSS); nil reads
	// /proc/self/status anew each time.
	Peak *PeakReader
}

// Run carries out the attempt in dir, which the caller has claimed (its
// journal is the claim's), to its end: stage in, run, stage out, ship
// logs, record the result in the journal, which Run closes. Closing
// cancel cancels it (SIGTERM to the command's group, SIGKILL after the
// grace period). notify is called with each event. It returns the job's
// outcome as recorded in the journal; an error means the attempt dir
// itself was unusable (then the journal holds no outcome).
func Run(env Env, journal *Journal, dir string, l *Launch, cancel <-chan struct{}, notify func(event string)) (*job.Result, error) {
	r := &runner{dir: dir, cancel: cancel, objects: env.Objects, notify: notify, log: env.Log, buckets: env.Buckets,
		devNull: env.DevNull, peak: env.Peak, launch: *l, status: journal, host: osHost()}
	defer r.status.Close()
	res := &job.Result{StartedAt: time.Now().UTC()}
	r.execute(res)
	r.shipLogs(res)
	res.EndedAt = time.Now().UTC()
	if err := r.status.append(Record{Stage: StageDone, At: res.EndedAt, Result: res}); err != nil {
		return nil, fmt.Errorf("record result: %w", err)
	}
	return res, nil
}

type runner struct {
	dir     string
	cancel  <-chan struct{}
	notify  func(string)
	log     *slog.Logger
	buckets *blob.Cache
	objects *cache.Cache
	devNull *os.File
	peak    *PeakReader
	launch  Launch
	status  *Journal
	host    host // what starting the tasks of a job of several tasks needs
}

func (r *runner) cancelled() bool {
	select {
	case <-r.cancel:
		return true
	default:
		return false
	}
}

// execute stages in, runs the command and stages out, recording the
// outcome in res.
func (r *runner) execute(res *job.Result) {
	l := &r.launch
	workDir := filepath.Join(r.dir, WorkDir)
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
	var st cache.Stats
	var stager *blob.Stager
	if len(l.Inputs)+len(l.Outputs) > 0 {
		stager = blob.NewStager(l.Storage, r.buckets)
		defer stager.Close() // the buckets this attempt alone named
		if r.objects != nil {
			stager.Objects = countedCache{r.objects, &st}
		}
	}
	defer func() {
		res.CacheHits += st.Hits.Load()
		res.CacheMisses += st.Misses.Load()
	}()
	// attemptCtx bounds what serves the job while it runs (lazy inputs'
	// fetches): it ends with the attempt, or with a cancel.
	attemptCtx, endAttempt := context.WithCancel(context.Background())
	defer endAttempt()
	go func() {
		select {
		case <-r.cancel:
			endAttempt()
		case <-attemptCtx.Done():
		}
	}()
	if len(l.Inputs) > 0 {
		var mounts []*lazyfs.Mount
		// Unmounted when the attempt ends, after stage-out (an output may
		// be read from an input's path), before the logs ship.
		defer func() {
			endAttempt() // a fetch in flight gives up first
			for _, m := range mounts {
				for _, e := range m.FetchErrors() {
					r.jobNote("lazy input: %s", e)
				}
				if err := m.Unmount(); err != nil {
					r.log.Warn("unmount lazy input", "err", err)
				}
			}
		}()
		for _, in := range l.Inputs {
			var err error
			if in.ManifestKey != "" {
				var m *lazyfs.Mount
				if m, err = r.stageDataset(attemptCtx, in, workDir, &st); m != nil {
					mounts = append(mounts, m)
				}
			} else {
				_, err = stager.Download(attemptCtx, in.URL, root, in.Path)
			}
			if err != nil {
				if !r.cancelled() {
					res.Error = "stage-in: " + err.Error()
				}
				return
			}
		}
	}
	if r.cancelled() {
		res.Cancelled = true
		return
	}
	if !r.runCommand(res) {
		if res.ExitCode != nil || res.Signal != "" { // it ran: one that never did wrote nothing
			r.stageOutAfterFailure(stager, root)
		}
		return
	}
	for _, out := range l.Outputs {
		if _, err := stager.Upload(context.Background(), root, out.Path, out.URL); err != nil {
			res.Error = "stage-out: " + err.Error()
			return
		}
	}
}

// stageOutAfterFailure copies the outputs marked always that the failed
// command wrote. The attempt has failed already: what cannot be copied is
// noted in the job's stderr, not made its error.
func (r *runner) stageOutAfterFailure(stager *blob.Stager, root *os.Root) {
	for _, out := range r.launch.Outputs {
		if !out.Always {
			continue
		}
		if _, err := root.Stat(filepath.Clean(out.Path)); err != nil {
			continue // not written: nothing to keep
		}
		if _, err := stager.Upload(context.Background(), root, out.Path, out.URL); err != nil {
			r.jobNote("output %s (always) not stored after the failure: %v", out.Path, err)
		}
	}
}

// jobNote adds a line from hpcml to the job's stderr log: what the job's
// owner should know about how it ran (an input prefetched instead of
// mounted, a fetch that failed under a lazy input).
func (r *runner) jobNote(format string, args ...any) {
	f, err := os.OpenFile(filepath.Join(r.dir, StderrFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		r.log.Warn("job note", "err", err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "hpcml: "+format+"\n", args...)
}

// runCommand runs the command to its end; true if it exited 0.
func (r *runner) runCommand(res *job.Result) bool {
	l := &r.launch
	stdout, err := os.OpenFile(filepath.Join(r.dir, StdoutFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		res.Error = "open stdout log: " + err.Error()
		return false
	}
	defer stdout.Close()
	stderr, err := os.OpenFile(filepath.Join(r.dir, StderrFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		res.Error = "open stderr log: " + err.Error()
		return false
	}
	defer stderr.Close()

	// Checked here because a chdir failure in the child is reported as
	// "fork/exec <program>: no such file", which blames the program.
	if info, err := os.Stat(l.WorkDir); err != nil {
		res.Error = fmt.Sprintf("working directory %s: %v", l.WorkDir, errors.Unwrap(err))
		return false
	} else if !info.IsDir() {
		res.Error = fmt.Sprintf("working directory %s: not a directory", l.WorkDir)
		return false
	}
	prog, err := lookPath(l.Argv[0], l.Env)
	if err != nil {
		res.Error = startError(l.Argv[0], err)
		return false
	}
	argv, env := l.Argv, l.Env
	if l.Ranks.Multi() {
		// Checked here, as exec checks a plain job's: else every task
		// would fail on its own with a bare exit code.
		if err := checkProgram(prog, l.WorkDir); err != nil {
			res.Error = startError(l.Argv[0], err)
			return false
		}
		// Every task is started by a launcher (mpirun, srun, the fan-out),
		// which this process runs in place of the command.
		if argv, env, err = rankCommand(context.Background(), l, r.host); err != nil {
			res.Error = "start tasks: " + err.Error()
			return false
		}
		prog = argv[0]
	}
	cmd := exec.Command(prog, argv[1:]...)
	cmd.Args[0] = argv[0] // the program sees the name it was asked by
	cmd.Env = env
	cmd.Dir = l.WorkDir
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if r.devNull != nil {
		cmd.Stdin = r.devNull // else exec opens /dev/null itself
	}
	// Its own process group, so cancel and time-out reach every process
	// the command started; Pdeathsig so that a command cannot outlive an
	// executor killed with -9 (nobody could then collect its exit status).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		res.Error = startError(l.Argv[0], err)
		return false
	}
	// Read now, not at the end: Start returns once the child has exec'd,
	// so this bounds the peak it inherited, and the executor's own peak
	// may grow later with the other attempts it runs (see jobPeakRSS).
	starterPeak := r.peak.Peak()
	started := time.Now().UTC()
	res.StartedAt = started
	if err := r.status.append(Record{Stage: StageStarted, At: started, PID: cmd.Process.Pid}); err != nil {
		r.log.Warn("record start", "err", err)
	}
	r.notify(EventStarted)

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var limit <-chan time.Time
	if l.TimeLimit > 0 {
		t := time.NewTimer(time.Duration(l.TimeLimit))
		defer t.Stop()
		limit = t.C
	}
	cancel := r.cancel
	pgid := cmd.Process.Pid
	var waitErr error
	var kill <-chan time.Time
loop:
	for {
		select {
		case waitErr = <-done:
			break loop
		case <-limit:
			limit, cancel = nil, nil
			res.TimedOut = true
			kill = r.terminate(pgid)
		case <-cancel:
			limit, cancel = nil, nil
			res.Cancelled = true
			kill = r.terminate(pgid)
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
		res.MaxRSSBytes = jobPeakRSS(ru.Maxrss*1024, starterPeak)
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
	if err := r.status.append(Record{Stage: StageExited, At: res.EndedAt, Result: res}); err != nil {
		r.log.Warn("record exit", "err", err)
	}
	return !res.Cancelled && !res.TimedOut && res.Signal == "" && res.ExitCode != nil && *res.ExitCode == 0
}

// terminate sends SIGTERM to the group and returns when to send SIGKILL.
func (r *runner) terminate(pgid int) <-chan time.Time {
	syscall.Kill(-pgid, syscall.SIGTERM)
	return time.After(time.Duration(r.launch.KillGrace))
}

// lookPath finds prog in the PATH of the job's environment, not the
// executor's (which exec.Command would use): a job that sets PATH in its
// env must find its programs there. As with exec.LookPath, relative PATH
// entries are not searched (they would resolve against the job dir).
func lookPath(prog string, env []string) (string, error) {
	if strings.Contains(prog, "/") {
		return prog, nil
	}
	if prog == SelfProgram {
		// The node's own binary, whether or not it is on the job's PATH:
		// platform tasks (hpcml data sync --submit) run as plain jobs.
		return os.Executable()
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v // the last one wins, as in the environment exec builds
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, prog)
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &exec.Error{Name: prog, Err: exec.ErrNotFound}
}

// checkProgram reports whether prog (a path found by lookPath, or
// relative to workDir) is an executable file.
func checkProgram(prog, workDir string) error {
	p := prog
	if !filepath.IsAbs(p) {
		p = filepath.Join(workDir, p)
	}
	info, err := os.Stat(p)
	if err != nil {
		return &os.PathError{Op: "exec", Path: prog, Err: errors.Unwrap(err)}
	}
	if !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
		return &os.PathError{Op: "exec", Path: prog, Err: syscall.EACCES}
	}
	return nil
}

func startError(prog string, err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) && pe.Op == "chdir" {
		return fmt.Sprintf("working directory %s: %v", pe.Path, pe.Err)
	}
	return fmt.Sprintf("cannot run %s: %v", prog, err)
}

func tvSeconds(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }

// shipLogs copies the logs to object storage, so they outlive the node.
// Empty logs are not shipped. A failure is logged, not fatal: the local
// copy stays.
func (r *runner) shipLogs(res *job.Result) {
	l := &r.launch
	if l.Storage == "" || l.LogPrefix == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := r.buckets.Open(ctx, l.Storage)
	if err != nil {
		r.log.Warn("ship logs", "err", err)
		return
	}
	for _, s := range []struct {
		file string
		url  *string
	}{{StdoutFile, &res.StdoutURL}, {StderrFile, &res.StderrURL}} {
		path := filepath.Join(r.dir, s.file)
		// A stat first: most jobs' logs are empty, and a stat costs less
		// than an open, a stat and a close.
		// The command has ended: the size it has now is the size shipped.
		info, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) || err == nil && info.Size() == 0 {
			continue
		}
		size := int64(-1)
		if err == nil {
			size = info.Size()
		}
		f, err := os.Open(path)
		if err != nil {
			r.log.Warn("ship logs", "err", err)
			continue
		}
		key := l.LogPrefix + s.file
		_, err = blob.UploadReader(ctx, b, key, f, size)
		f.Close()
		if err != nil {
			r.log.Warn("ship logs", "err", err)
			continue
		}
		*s.url = key
	}
}
