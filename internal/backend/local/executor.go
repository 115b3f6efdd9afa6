package local

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/cache"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/task"
)

// ErrExecutorRunning: another executor already serves this jobs dir.
var ErrExecutorRunning = errors.New("an executor is already running for this jobs dir")

// idleExit is how long an executor with nothing to run and nobody
// connected stays up.
const idleExit = 30 * time.Second

// Executor runs the attempts of one node. It is a separate process
// (`hpcml __executor DIR`, started by the server) so that running jobs
// outlive a server that stops or is killed; a killed executor is a lost
// node, and its attempts are reported as such.
type Executor struct {
	jobsDir string
	log     *slog.Logger

	mu       sync.Mutex
	running  map[attemptKey]*run
	conns    map[*clientConn]bool
	idleFrom time.Time
	grace    time.Duration
	// closing: the executor decided to exit; connections accepted from
	// then on are refused, so none can hand it work it would drop.
	closing bool
	// buckets holds only the default storage bucket of the attempts (the
	// server's --storage): other buckets are opened per attempt.
	buckets *blob.Cache
	objects *cache.Cache // dataset objects, shared by the node's jobs
	devNull *os.File     // every command's stdin
	peak    *task.PeakReader

	// Attempts wait in queue, in launch order, until they fit beside
	// those running (used) within capacity (the latest a server sent).
	queue    []attemptKey
	used     job.Resources
	capacity job.Resources
}

// run is an attempt this executor has claimed, queued or running.
type run struct {
	cancel    chan struct{}
	cancelled bool
	startedAt time.Time
	// startReport says "started" startedReportDelay after the command
	// started, unless the attempt ends first (see beginLocked).
	startReport *time.Timer

	waiting bool // in the queue, not begun
	need    job.Resources
	launch  *task.Launch
	journal *task.Journal
}

// clientConn is one connected server; writes go through a buffered
// channel so that a stuck client cannot stall the executor.
type clientConn struct {
	c   net.Conn
	out chan message
}

// ServeExecutor runs the executor for jobsDir until ctx ends or it has
// been idle long enough.
func ServeExecutor(ctx context.Context, jobsDir string, cacheBytes int64, log *slog.Logger) error {
	if err := checkJobsDir(jobsDir); err != nil {
		return err
	}
	objects, err := cache.New(filepath.Join(jobsDir, CacheDir), cacheBytes)
	if err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(jobsDir, executorLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("executor lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return ErrExecutorRunning
	}
	sock := filepath.Join(jobsDir, socketName)
	os.Remove(sock) // left by an executor that died; we hold the lock, so it is stale
	// Created under a umask that leaves it to us alone: a chmod after
	// Listen would leave a window in which anyone could connect.
	old := syscall.Umask(0o077)
	ln, err := net.Listen("unix", sock)
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("executor socket: %w", err)
	}
	defer ln.Close()
	os.Chmod(sock, 0o600)

	// Not closed: a command may still be starting as the executor
	// returns, and the process's exit closes it.
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return fmt.Errorf("executor: %w", err)
	}
	e := &Executor{jobsDir: jobsDir, log: log, running: map[attemptKey]*run{}, conns: map[*clientConn]bool{},
		idleFrom: time.Now(), grace: idleExit, buckets: blob.NewCache(), objects: objects, devNull: devNull,
		peak: task.NewPeakReader()}
	defer e.buckets.Close()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				e.mu.Lock()
				e.closing = true
				e.mu.Unlock()
				ln.Close()
				return
			case <-t.C:
				if e.exitIfIdle() {
					ln.Close()
					return
				}
			}
		}
	}()
	log.Info("executor ready", "jobs_dir", jobsDir, "pid", os.Getpid())
	// The connections' handlers, waited for on the way out: one may be
	// claiming an attempt dir, and whoever removes the jobs dir after the
	// executor returned must not race its last files.
	var handlers sync.WaitGroup
	defer handlers.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		// Registered here, not in serveConn, so that the idle check can
		// never miss a connection that is about to hand over work.
		if cc := e.register(c); cc != nil {
			handlers.Go(func() { e.serveConn(cc) })
		}
	}
	// On idle exit nothing runs. On ctx end (SIGTERM: the node goes down)
	// attempts still running are not waited for: their commands die with
	// this process (Pdeathsig) and the server reads them as a lost node.
	e.mu.Lock()
	for cc := range e.conns {
		cc.c.Close()
	}
	e.mu.Unlock()
	log.Info("executor exiting")
	return nil
}

// register adds a connection just accepted, or closes it if the
// executor is exiting (the client then reconnects, and starts a new
// executor).
func (e *Executor) register(c net.Conn) *clientConn {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		c.Close()
		return nil
	}
	cc := &clientConn{c: c, out: make(chan message, 4096)}
	e.conns[cc] = true
	e.send(cc, message{Event: evHello, Queues: true})
	// A server (re)connected: the shutdown_if_idle a previous one sent on
	// its way out no longer holds.
	e.grace = idleExit
	return cc
}

// exitIfIdle reports whether the executor has been idle long enough, and
// if so marks it closing in the same critical section, so that no
// connection can slip in between the check and the decision.
func (e *Executor) exitIfIdle() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.running) > 0 || len(e.conns) > 0 {
		e.idleFrom = time.Now()
		return false
	}
	if time.Since(e.idleFrom) < e.grace {
		return false
	}
	e.closing = true
	return true
}

// checkJobsDir refuses a jobs dir that others may write to: they could
// replace the socket, or the attempt dirs the executor runs commands in.
func checkJobsDir(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("jobs dir: %w", err)
	}
	if !info.IsDir() {
		return fmt.Errorf("jobs dir %s is not a directory", dir)
	}
	if info.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("jobs dir %s is writable by group or others (mode %v); make it private (chmod 700)", dir, info.Mode().Perm())
	}
	return nil
}

func (e *Executor) serveConn(cc *clientConn) {
	c := cc.c
	go func() {
		w := bufio.NewWriter(c)
		enc := json.NewEncoder(w)
		for m := range cc.out {
			enc.Encode(m)
			if len(cc.out) == 0 {
				if err := w.Flush(); err != nil {
					c.Close()
				}
			}
		}
		w.Flush()
	}()
	dec := json.NewDecoder(bufio.NewReader(c))
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			break
		}
		e.handle(cc, req)
	}
	e.mu.Lock()
	delete(e.conns, cc)
	e.idleFrom = time.Now()
	close(cc.out)
	e.mu.Unlock()
	c.Close()
}

// send queues m for one client; a client too slow to drain 4096 events
// is dropped (it will reconnect and attach). A client no longer connected
// is skipped: its channel is closed (an attempt may outlive the
// connection that launched it). Callers hold e.mu.
func (e *Executor) send(cc *clientConn, m message) {
	if !e.conns[cc] {
		return
	}
	select {
	case cc.out <- m:
	default:
		cc.c.Close()
	}
}

func (e *Executor) broadcastLocked(m message) {
	for cc := range e.conns {
		e.send(cc, m)
	}
}

func (e *Executor) dir(k attemptKey) string { return attemptDir(e.jobsDir, k.id, k.attempt) }

func (e *Executor) handle(cc *clientConn, req request) {
	k := attemptKey{req.JobID, req.Attempt}
	switch req.Op {
	case opLaunch:
		e.launch(cc, k, req)
	case opCancel:
		e.mu.Lock()
		if r := e.running[k]; r != nil && !r.cancelled {
			r.cancelled = true
			close(r.cancel)
			if r.waiting {
				e.dropLocked(k, r, &job.Result{Cancelled: true, Error: "cancelled before it started"})
			}
		}
		e.mu.Unlock()
	case opUnstage:
		// Taken back while it waits, for the server to place again (a
		// higher-priority job may deserve the slot); one that has begun
		// runs on.
		e.mu.Lock()
		if r := e.running[k]; r != nil && r.waiting {
			e.dropLocked(k, r, &job.Result{NeverStarted: true, Error: "taken back from the node's queue"})
		}
		e.mu.Unlock()
	case opAttach:
		e.mu.Lock()
		if r := e.running[k]; r != nil {
			e.answerRunning(cc, k, r)
		} else {
			e.send(cc, message{Event: evUnknown, JobID: k.id, Attempt: k.attempt})
		}
		e.mu.Unlock()
	case opShutdownIfIdle:
		e.mu.Lock()
		// Ignored while another client is connected: that is a newer
		// server, which still wants the executor.
		if len(e.conns) == 1 {
			e.grace = 0
		}
		e.mu.Unlock()
	}
}

// answerRunning tells cc that the attempt of r runs here (and since
// when, if its command started); started and done reach cc with every
// other client. Callers hold e.mu.
func (e *Executor) answerRunning(cc *clientConn, k attemptKey, r *run) {
	e.send(cc, message{Event: evRunning, JobID: k.id, Attempt: k.attempt})
	if !r.startedAt.IsZero() {
		e.send(cc, message{Event: evStarted, JobID: k.id, Attempt: k.attempt, At: r.startedAt})
	}
}

// launch claims an attempt and starts it, or queues it until it fits.
// The claim is made here, before the next request of any client is read,
// so that "this executor has read the launch" and "the attempt is
// claimed" are one event: a server that restarted and claimed the attempt
// as abandoned first makes a late launch of the old server run nothing,
// and once the executor has claimed it, the new server's claim fails and
// it attaches. A launch of an attempt that is here is answered as an
// attach; one whose claim fails (someone else's, or its dir is gone) runs
// nothing and the client is told to read the attempt's files.
func (e *Executor) launch(cc *clientConn, k attemptKey, req request) {
	e.mu.Lock()
	if r := e.running[k]; r != nil {
		e.answerRunning(cc, k, r)
		e.mu.Unlock()
		return
	}
	e.mu.Unlock()
	if req.Launch == nil {
		return
	}
	// Whether it will wait is decided before the claim, so that claim
	// and queue are one record; room for one that will not is reserved
	// here, so that the decision holds.
	e.mu.Lock()
	if e.closing {
		// Exiting: not claimed, so it reads as a launch interrupted.
		e.send(cc, message{Event: evUnknown, JobID: k.id, Attempt: k.attempt})
		e.mu.Unlock()
		return
	}
	if req.Capacity != (job.Resources{}) {
		e.capacity = req.Capacity
	}
	queued := len(e.queue) > 0 || !e.fitsLocked(req.Need)
	if !queued {
		e.used = e.used.Add(req.Need, 1)
	}
	e.mu.Unlock()
	claim := task.Claim
	if queued {
		claim = task.ClaimQueued
	}
	journal, ok, err := claim(e.dir(k), task.OwnerExecutor)
	if err != nil || !ok {
		if err != nil {
			e.log.Warn("claim attempt", "job", k.id, "attempt", k.attempt, "err", err)
		}
		e.mu.Lock()
		if !queued {
			e.used = e.used.Add(req.Need, -1)
			e.admitLocked()
		}
		e.send(cc, message{Event: evUnknown, JobID: k.id, Attempt: k.attempt})
		e.mu.Unlock()
		return
	}
	r := &run{cancel: make(chan struct{}), need: req.Need, launch: req.Launch, journal: journal}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.running[k] = r
	if !queued {
		e.beginLocked(k, r) // its room is reserved
		return
	}
	r.waiting = true
	e.queue = append(e.queue, k)
	e.admitLocked() // the queue may have emptied since the check
}

// fitsLocked: need fits beside what runs. Anything fits an idle node,
// whatever it asks (the server checked it against the node).
func (e *Executor) fitsLocked(need job.Resources) bool {
	if e.capacity == (job.Resources{}) || e.used == (job.Resources{}) {
		return true
	}
	return e.used.Add(need, 1).Within(e.capacity)
}

// admitLocked begins queued attempts, in order, while the first fits —
// not once the executor is exiting: what it would start could not be
// watched, and a new server may already have read it as never started.
func (e *Executor) admitLocked() {
	for len(e.queue) > 0 && !e.closing {
		k := e.queue[0]
		r := e.running[k]
		if !e.fitsLocked(r.need) {
			return
		}
		e.queue = e.queue[1:]
		r.waiting = false
		// From here a crash must not read as "did nothing": if that
		// cannot be recorded, the attempt does not run.
		if err := r.journal.Begin(); err != nil {
			e.dropLocked(k, r, &job.Result{Error: "record begun attempt: " + err.Error()})
			continue
		}
		e.used = e.used.Add(r.need, 1)
		e.beginLocked(k, r)
	}
}

// dropLocked ends an attempt that never began with res (its EndedAt set
// here): cancelled or taken back while queued, or unable to begin. The
// queue may move on.
func (e *Executor) dropLocked(k attemptKey, r *run, res *job.Result) {
	e.queue = slices.DeleteFunc(e.queue, func(q attemptKey) bool { return q == k })
	now := time.Now().UTC()
	res.EndedAt = now
	if err := r.journal.Drop(res); err != nil {
		e.log.Warn("record dropped attempt", "job", k.id, "attempt", k.attempt, "err", err)
		res = nil // the client reads the files
	}
	delete(e.running, k)
	e.broadcastLocked(message{Event: evDone, JobID: k.id, Attempt: k.attempt, At: now, Result: res})
	e.admitLocked()
}

// startedReportDelay is how long after its command started an attempt is
// said to have started. One that ends sooner is said only to be done, and
// its done event carries the start (Result.StartedAt): for a trivial job
// the server then makes one state change where it would have made two.
// A job shows RUNNING that much later; its recorded start is exact.
const startedReportDelay = 20 * time.Millisecond

// beginLocked runs an attempt whose room the caller has added to used.
func (e *Executor) beginLocked(k attemptKey, r *run) {
	go func() {
		notify := func(ev string) {
			if ev != task.EventStarted {
				return
			}
			m := message{Event: ev, JobID: k.id, Attempt: k.attempt, At: time.Now().UTC()}
			e.mu.Lock()
			defer e.mu.Unlock()
			r.startedAt = m.At
			r.startReport = time.AfterFunc(startedReportDelay, func() {
				e.mu.Lock()
				defer e.mu.Unlock()
				if e.running[k] == r { // not ended meanwhile (its done went out)
					e.broadcastLocked(m)
				}
			})
		}
		env := task.Env{Buckets: e.buckets, Objects: e.objects, DevNull: e.devNull, Peak: e.peak, Log: e.log.With("job", k.id, "attempt", k.attempt)}
		res, err := task.Run(env, r.journal, e.dir(k), r.launch, r.cancel, notify)
		if err != nil {
			e.log.Error("attempt failed to run", "job", k.id, "attempt", k.attempt, "err", err)
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		if r.startReport != nil {
			r.startReport.Stop()
		}
		delete(e.running, k)
		e.used = e.used.Add(r.need, -1)
		e.broadcastLocked(message{Event: evDone, JobID: k.id, Attempt: k.attempt, At: time.Now().UTC(), Result: res})
		e.admitLocked()
	}()
}
