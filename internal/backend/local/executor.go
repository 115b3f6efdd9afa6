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
	"sync"
	"syscall"
	"time"

	"github.com/hpcml/hpcml/internal/blob"
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
	buckets  *blob.Cache
}

type run struct {
	cancel    chan struct{}
	cancelled bool
	startedAt time.Time
}

// clientConn is one connected server; writes go through a buffered
// channel so that a stuck client cannot stall the executor.
type clientConn struct {
	c   net.Conn
	out chan message
}

// ServeExecutor runs the executor for jobsDir until ctx ends or it has
// been idle long enough.
func ServeExecutor(ctx context.Context, jobsDir string, log *slog.Logger) error {
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
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("executor socket: %w", err)
	}
	defer ln.Close()
	os.Chmod(sock, 0o600)

	e := &Executor{jobsDir: jobsDir, log: log, running: map[attemptKey]*run{}, conns: map[*clientConn]bool{},
		idleFrom: time.Now(), grace: idleExit, buckets: blob.NewCache()}
	defer e.buckets.Close()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				ln.Close()
				return
			case <-t.C:
				if e.idleFor() {
					ln.Close()
					return
				}
			}
		}
	}()
	log.Info("executor ready", "jobs_dir", jobsDir, "pid", os.Getpid())
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		go e.serveConn(c)
	}
	// Let attempts still running finish before exiting (only reached idle,
	// or on ctx end, where the caller wants out anyway).
	log.Info("executor exiting")
	return nil
}

func (e *Executor) idleFor() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.running) > 0 || len(e.conns) > 0 {
		e.idleFrom = time.Now()
		return false
	}
	return time.Since(e.idleFrom) >= e.grace
}

func (e *Executor) serveConn(c net.Conn) {
	cc := &clientConn{c: c, out: make(chan message, 4096)}
	e.mu.Lock()
	e.conns[cc] = true
	e.mu.Unlock()
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
// is dropped (it will reconnect and attach).
func (e *Executor) send(cc *clientConn, m message) {
	select {
	case cc.out <- m:
	default:
		cc.c.Close()
	}
}

func (e *Executor) broadcast(m message) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for cc := range e.conns {
		e.send(cc, m)
	}
}

func (e *Executor) dir(k attemptKey) string { return attemptDir(e.jobsDir, k.id, k.attempt) }

func (e *Executor) handle(cc *clientConn, req request) {
	k := attemptKey{req.JobID, req.Attempt}
	switch req.Op {
	case opLaunch:
		e.launch(cc, k, req.Launch)
	case opCancel:
		e.mu.Lock()
		if r := e.running[k]; r != nil && !r.cancelled {
			r.cancelled = true
			close(r.cancel)
		}
		e.mu.Unlock()
	case opAttach:
		e.mu.Lock()
		r := e.running[k]
		var started time.Time
		if r != nil {
			started = r.startedAt
		}
		e.mu.Unlock()
		if r == nil {
			e.mu.Lock()
			e.send(cc, message{Event: evUnknown, JobID: k.id, Attempt: k.attempt})
			e.mu.Unlock()
			return
		}
		e.mu.Lock()
		e.send(cc, message{Event: evRunning, JobID: k.id, Attempt: k.attempt})
		if !started.IsZero() {
			e.send(cc, message{Event: evStarted, JobID: k.id, Attempt: k.attempt, At: started})
		}
		e.mu.Unlock()
	case opShutdownIfIdle:
		e.mu.Lock()
		e.grace = 0
		e.mu.Unlock()
	}
}

// launch claims and starts an attempt. A launch of an attempt already
// claimed runs nothing: if it runs here the client hears from it anyway;
// if not, the client is told to read its files.
func (e *Executor) launch(cc *clientConn, k attemptKey, l *task.Launch) {
	e.mu.Lock()
	if _, dup := e.running[k]; dup || l == nil {
		e.mu.Unlock()
		return
	}
	r := &run{cancel: make(chan struct{})}
	e.running[k] = r
	e.mu.Unlock()
	go func() {
		notify := func(ev string) {
			if ev != task.EventStarted {
				return // done is sent below, after the attempt leaves the running set
			}
			m := message{Event: ev, JobID: k.id, Attempt: k.attempt, At: time.Now().UTC()}
			e.mu.Lock()
			r.startedAt = m.At
			e.mu.Unlock()
			e.broadcast(m)
		}
		env := task.Env{Buckets: e.buckets, Log: e.log.With("job", k.id, "attempt", k.attempt)}
		err := task.Run(env, e.dir(k), l, r.cancel, notify)
		e.mu.Lock()
		delete(e.running, k)
		e.mu.Unlock()
		switch {
		case errors.Is(err, task.ErrClaimed):
			e.mu.Lock()
			e.send(cc, message{Event: evUnknown, JobID: k.id, Attempt: k.attempt})
			e.mu.Unlock()
			return
		case err != nil:
			e.log.Error("attempt failed to run", "job", k.id, "attempt", k.attempt, "err", err)
		}
		e.broadcast(message{Event: evDone, JobID: k.id, Attempt: k.attempt, At: time.Now().UTC()})
	}()
}
