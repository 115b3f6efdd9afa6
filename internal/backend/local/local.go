// Package local is the Backend that runs jobs on this machine.
//
// Attempts run inside the node's executor, a separate long-lived process
// (`hpcml __executor DIR`) that the backend starts on demand and talks to
// over a unix socket. Running jobs therefore outlive the server; a
// restarted server re-attaches to them. Every step an attempt takes is
// also written to its dir (see internal/task), so whatever is not running
// any more can be read back from the files.
//
// Who owns an attempt is decided once, by creating its status file with
// O_EXCL: the executor claims it before running it, and a restarted server that finds
// an unclaimed launch claims it as abandoned before launching it again.
// So a launch message delayed across a server crash can never run an
// attempt twice.
package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hpcml/hpcml/internal/backend"
	"github.com/hpcml/hpcml/internal/backend/attemptdir"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/task"
)

// Config of the local backend.
type Config struct {
	// JobsDir holds one directory per job attempt, and the executor's socket.
	JobsDir string
	// Executable is the hpcml binary, started as the executor.
	Executable string
	// Storage is the bucket URL for logs, outputs and bare input keys.
	Storage   string
	Capacity  job.Resources
	KillGrace time.Duration
	// BaseEnv is the environment every job starts from.
	BaseEnv []string
	// CacheBytes bounds the node's dataset object cache (<JobsDir>/cache).
	CacheBytes int64
}

// CacheDir is the node's dataset object cache, under the jobs dir.
const CacheDir = "cache"

// Backend runs attempts through the node's executor.
type Backend struct {
	cfg Config
	rep backend.Reporter
	log *slog.Logger

	mu       sync.Mutex
	conn     net.Conn
	enc      *json.Encoder
	inflight map[attemptKey]bool // launched or attached, not yet reported done
	closed   bool
	// queues: the executor connected now keeps attempts beyond its
	// capacity until they fit (its hello said so): staging is safe.
	queues atomic.Bool
}

type attemptKey struct {
	id      int64
	attempt int
}

var (
	_ backend.Backend        = (*Backend)(nil)
	_ backend.BatchLauncher  = (*Backend)(nil)
	_ backend.ProgressReader = (*Backend)(nil)
)

// New returns a local backend reporting to rep.
func New(cfg Config, rep backend.Reporter, log *slog.Logger) (*Backend, error) {
	if err := os.MkdirAll(cfg.JobsDir, 0o700); err != nil {
		return nil, fmt.Errorf("create jobs dir: %w", err)
	}
	// The executor would refuse it; say so now rather than at each launch.
	if err := checkJobsDir(cfg.JobsDir); err != nil {
		return nil, err
	}
	if err := attemptdir.Spread(cfg.JobsDir); err != nil {
		log.Warn("attempt dirs will be made in their parent's block group", "err", err)
	}
	return &Backend{cfg: cfg, rep: rep, log: log, inflight: map[attemptKey]bool{}}, nil
}

// Name is "local".
func (b *Backend) Name() string { return "local" }

// Capacity is the declared capacity of this machine.
func (b *Backend) Capacity() job.Resources { return b.cfg.Capacity }

func attemptDir(jobsDir string, id int64, attempt int) string {
	return attemptdir.Path(jobsDir, id, attempt)
}

// AttemptDir is where an attempt's files live.
func (b *Backend) AttemptDir(jobID int64, attempt int) string {
	return attemptDir(b.cfg.JobsDir, jobID, attempt)
}

// Launch prepares the attempt dir and hands the attempt to the executor.
func (b *Backend) Launch(ctx context.Context, j *job.Job, q *job.Queue) error {
	return b.LaunchBatch(ctx, []*job.Job{j}, q)[0]
}

// LaunchBatch prepares the attempts' dirs one after the other and hands
// the attempts to the executor in one write (backend.BatchLauncher): while
// short jobs stream through, a turn of the scheduler launches several,
// and one goroutine, one write and one wakeup of the executor for all of
// them cost less than one each (and mkdirs in one dir at once only
// contend for its lock).
func (b *Backend) LaunchBatch(ctx context.Context, jobs []*job.Job, _ *job.Queue) []error {
	errs := make([]error, len(jobs))
	reqs := make([]request, 0, len(jobs))
	reqJob := make([]int, 0, len(jobs)) // the index in jobs of each of reqs
	for i, j := range jobs {
		dir := b.AttemptDir(j.ID, j.Attempt)
		if errs[i] = makeAttemptDir(dir); errs[i] != nil {
			continue
		}
		l := task.Describe(j, dir, task.Site{Storage: b.cfg.Storage, KillGrace: job.Duration(b.cfg.KillGrace),
			BaseEnv: b.cfg.BaseEnv, Launcher: task.LauncherLocal})
		reqs = append(reqs, request{Op: opLaunch, JobID: j.ID, Attempt: j.Attempt, Launch: &l,
			Need: j.Spec.Allocation(), Capacity: b.cfg.Capacity})
		reqJob = append(reqJob, i)
	}
	n, err := b.send(ctx, reqs, true)
	for _, i := range reqJob[n:] {
		errs[i] = err
	}
	return errs
}

// StageAhead: four attempts per core may wait in the executor for a slot
// (see backend.Stager): enough to cover the scheduler's round trip and
// its commit batching while trivial jobs stream through (with two, the
// slots of a burst of `true` stood empty a tenth of the time), and few
// enough that a higher-priority job submitted later waits behind little
// (the scheduler also bounds them by time: stagedWorkPerCPU).
// Nothing is staged on an executor that has not said it queues.
func (b *Backend) StageAhead() int {
	if !b.queues.Load() {
		return 0
	}
	return 4 * max(1, int(math.Ceil(b.cfg.Capacity.CPUs)))
}

// makeAttemptDir creates an attempt's dir and its work dir: two mkdirs
// in the common case (this runs once per job).
func makeAttemptDir(dir string) error {
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrExist) {
		// Left by a launch that was abandoned (see Recover): made anew.
		if err = os.RemoveAll(dir); err != nil {
			return fmt.Errorf("clear attempt dir: %w", err)
		}
		err = os.Mkdir(dir, 0o755)
	}
	if errors.Is(err, fs.ErrNotExist) {
		// The jobs dir itself is gone: made again, spread again.
		if err = os.MkdirAll(dir, 0o755); err == nil {
			attemptdir.Spread(filepath.Dir(dir))
		}
	}
	if err == nil {
		err = os.Mkdir(filepath.Join(dir, task.WorkDir), 0o755)
	}
	if err != nil {
		return fmt.Errorf("create attempt dir: %w", err)
	}
	return nil
}

// Unstage asks the executor to take back an attempt still queued.
func (b *Backend) Unstage(ctx context.Context, jobID int64, attempt int) error {
	return b.request(ctx, request{Op: opUnstage, JobID: jobID, Attempt: attempt}, false)
}

// Recover re-attaches to an attempt launched by an earlier server.
func (b *Backend) Recover(ctx context.Context, j *job.Job) error {
	jobID, attempt := j.ID, j.Attempt
	dir := b.AttemptDir(jobID, attempt)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if j.State == job.Running {
			// It ran, and its dir is gone with its journal (a wiped
			// scratch dir): a lost node, not a launch to repeat.
			go b.rep.Finished(jobID, attempt, job.Result{NodeLost: true, EndedAt: time.Now().UTC(),
				Error: "job dir vanished while the job ran"})
			return nil
		}
		// The server died before the launch created it: nothing ran.
		go b.rep.Finished(jobID, attempt, job.Result{NeverStarted: true, Error: "launch interrupted"})
		return nil
	}
	status, abandoned, err := task.Claim(dir, task.OwnerAbandoned)
	if err != nil {
		return fmt.Errorf("recover job %d attempt %d: %w", jobID, attempt, err)
	}
	if abandoned {
		status.Close()
		// The executor never took it: nothing ran, so it may run again.
		go b.rep.Finished(jobID, attempt, job.Result{NeverStarted: true, Error: "launch interrupted"})
		return nil
	}
	return b.request(ctx, request{Op: opAttach, JobID: jobID, Attempt: attempt}, true)
}

// Cancel asks the executor to stop an attempt.
func (b *Backend) Cancel(ctx context.Context, jobID int64, attempt int) error {
	return b.request(ctx, request{Op: opCancel, JobID: jobID, Attempt: attempt}, false)
}

// Close tells the executor to exit once it is idle, and disconnects.
// Running jobs go on.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if b.conn == nil {
		return nil
	}
	b.enc.Encode(request{Op: opShutdownIfIdle})
	return b.conn.Close()
}

// Progress reads what an attempt reports of its progress in its dir.
func (b *Backend) Progress(ctx context.Context, jobID int64, attempt int) (*job.Progress, error) {
	return task.ReadProgress(b.AttemptDir(jobID, attempt))
}

// LogPath is the local file of an attempt's stream ("stdout" or "stderr").
func (b *Backend) LogPath(jobID int64, attempt int, stream string) string {
	name := task.StdoutFile
	if stream == "stderr" {
		name = task.StderrFile
	}
	return filepath.Join(b.AttemptDir(jobID, attempt), name)
}

// request sends one request to the executor (see send).
func (b *Backend) request(ctx context.Context, req request, track bool) error {
	_, err := b.send(ctx, []request{req}, track)
	return err
}

// send writes reqs to the executor in one write, connecting (and starting
// it) if needed, and writes what was not written once more on a new
// connection if the write fails. It returns how many of reqs, from the
// first, were handed over, and the error that kept the rest back.
//
// Requests that track an attempt are in flight from the moment a
// connection takes them, so that a lost connection re-attaches them: the
// executor may have read one that a failed write had written whole, and
// the attach says whether it runs (if not, the attempt never started and
// is launched again). A request not yet written is not in flight when a
// connection is made, or that connection's attach would come ahead of
// it — answered "unknown", read as "never started" while the launch that
// follows runs the command.
func (b *Backend) send(ctx context.Context, reqs []request, track bool) (sent int, err error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	ends := make([]int, len(reqs)) // where each request's line ends in buf
	for i, r := range reqs {
		if err := enc.Encode(r); err != nil {
			return 0, fmt.Errorf("encode %s request: %w", r.Op, err)
		}
		ends[i] = buf.Len()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for try := 0; sent < len(reqs); try++ {
		if b.conn == nil {
			if err := b.connectLocked(ctx); err != nil {
				return sent, err
			}
		}
		if track {
			for _, r := range reqs[sent:] {
				b.inflight[attemptKey{r.JobID, r.Attempt}] = true
			}
		}
		from := 0
		if sent > 0 {
			from = ends[sent-1]
		}
		n, err := b.conn.Write(buf.Bytes()[from:])
		written := sent
		for written < len(reqs) && ends[written] <= from+n {
			written++
		}
		if err == nil {
			return len(reqs), nil
		}
		if track {
			for _, r := range reqs[written:] {
				delete(b.inflight, attemptKey{r.JobID, r.Attempt})
			}
		}
		sent = written
		b.conn.Close()
		b.conn = nil
		if try == 1 {
			return sent, fmt.Errorf("talk to executor: %w", err)
		}
	}
	return sent, nil
}

// connectLocked dials the executor, starting one if none answers, then
// re-attaches every attempt in flight (their reports may have been lost
// with the old connection).
func (b *Backend) connectLocked(ctx context.Context) error {
	if b.closed {
		return errors.New("backend closed")
	}
	sock := filepath.Join(b.cfg.JobsDir, socketName)
	conn, err := net.Dial("unix", sock)
	if err != nil {
		deadline := time.Now().Add(10 * time.Second)
		var started time.Time
		for {
			// Started again while the socket does not answer: the one
			// started before may have met an executor that was exiting
			// (still holding the lock), and given up.
			if time.Since(started) >= 500*time.Millisecond {
				if err := b.startExecutor(); err != nil {
					return err
				}
				started = time.Now()
			}
			conn, err = net.Dial("unix", sock)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("executor did not come up (see %s): %w", filepath.Join(b.cfg.JobsDir, executorLog), err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	b.conn, b.enc = conn, json.NewEncoder(conn)
	b.queues.Store(false) // until this executor's hello says otherwise
	go b.readEvents(conn)
	for k := range b.inflight {
		if err := b.enc.Encode(request{Op: opAttach, JobID: k.id, Attempt: k.attempt}); err != nil {
			return fmt.Errorf("attach to executor: %w", err)
		}
	}
	return nil
}

func (b *Backend) startExecutor() error {
	logf, err := os.OpenFile(filepath.Join(b.cfg.JobsDir, executorLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("executor log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(b.cfg.Executable, "__executor", b.cfg.JobsDir, strconv.FormatInt(b.cfg.CacheBytes, 10))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = executorEnv(os.Environ())
	// Its own session: a Ctrl-C or kill of the server's process group
	// must not reach running jobs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start executor: %w", err)
	}
	b.log.Info("started executor", "pid", cmd.Process.Pid)
	go cmd.Wait() // reap it if it exits while we run
	return nil
}

// executorEnv is the server's environment minus hpcml's own variables:
// staging and log shipping need what the storage SDKs read (AWS_*, HOME
// and its config files, proxies), but HPCML_TOKEN must never reach the
// executor, nor through it a job.
func executorEnv(environ []string) []string {
	env := make([]string, 0, len(environ))
	for _, kv := range environ {
		if strings.HasPrefix(kv, "HPCML_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// readEvents turns the executor's events into reports until the
// connection ends; then it reconnects, which re-attaches what is in flight.
func (b *Backend) readEvents(conn net.Conn) {
	dec := json.NewDecoder(bufio.NewReader(conn))
	for {
		var m message
		if err := dec.Decode(&m); err != nil {
			break
		}
		k := attemptKey{m.JobID, m.Attempt}
		switch m.Event {
		case evHello:
			b.queues.Store(m.Queues)
		case evStarted:
			b.rep.Started(m.JobID, m.Attempt, m.At)
		case evDone, evUnknown:
			b.mu.Lock()
			tracked := b.inflight[k]
			delete(b.inflight, k)
			b.mu.Unlock()
			if tracked && m.Event == evDone && m.Result != nil {
				b.rep.Finished(m.JobID, m.Attempt, *m.Result)
			} else if tracked {
				dir := b.AttemptDir(m.JobID, m.Attempt)
				r := readOutcome(dir)
				if r.NodeLost && r.Error == errLostRunning {
					// Before the job may be retried: nothing of this attempt may go on.
					if n := killStrays(dir); n > 0 {
						b.log.Warn("killed processes left by a lost attempt", "job", m.JobID, "attempt", m.Attempt, "processes", n)
					}
				}
				b.rep.Finished(m.JobID, m.Attempt, r)
			}
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != conn || b.closed {
		return
	}
	b.conn = nil
	if len(b.inflight) == 0 {
		return
	}
	b.log.Warn("lost the executor; reconnecting", "in_flight", len(b.inflight))
	if err := b.connectLocked(context.Background()); err != nil {
		b.log.Error("reconnect to executor", "err", err)
	}
}

const errLostRunning = "executor lost while the command ran"

// readOutcome reads how an attempt that no executor runs any more ended.
func readOutcome(dir string) job.Result {
	st, err := task.ReadStatus(dir)
	switch {
	case err != nil:
		return job.Result{EndedAt: time.Now().UTC(), NodeLost: true, Error: "read attempt status: " + err.Error()}
	case st.Done != nil && st.Done.Result != nil:
		return *st.Done.Result
	case st.Exited != nil && st.Exited.Result != nil:
		// The command ended but the executor died while staging out.
		r := *st.Exited.Result
		r.NodeLost = true
		r.Error = fmt.Sprintf("executor lost after the command ended (%s)", describeExit(&r))
		return r
	case st.Started != nil:
		return job.Result{StartedAt: st.Started.At, EndedAt: time.Now().UTC(), NodeLost: true, Error: errLostRunning}
	case st.Owner == task.OwnerExecutor && st.Waiting:
		// Claimed, then queued until it would fit, and never begun.
		return job.Result{NeverStarted: true, Error: "executor lost while the attempt waited for room"}
	case st.Owner == task.OwnerExecutor:
		// It was staging in: nothing of the command ran, but staging may
		// have had effects, so this counts as a lost node, not a relaunch.
		return job.Result{EndedAt: time.Now().UTC(), NodeLost: true, Error: "executor lost before the command started"}
	}
	return job.Result{NeverStarted: true, Error: "launch interrupted"}
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
