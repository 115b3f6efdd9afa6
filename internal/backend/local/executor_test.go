package local

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/task"
)

// startTestExecutor runs ServeExecutor in-process on a fresh jobs dir until
// the test ends, and returns the dir.
func startTestExecutor(t *testing.T) string {
	t.Helper()
	jobs := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- ServeExecutor(ctx, jobs, 1<<20, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("executor: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("executor did not exit after its context ended")
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("unix", filepath.Join(jobs, socketName))
		if err == nil {
			c.Close()
			return jobs
		}
		select {
		case err := <-errc:
			t.Fatalf("executor exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("executor did not come up: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type testClient struct {
	t   *testing.T
	c   net.Conn
	enc *json.Encoder
	dec *json.Decoder
}

func dialTest(t *testing.T, jobs string) *testClient {
	t.Helper()
	c, err := net.Dial("unix", filepath.Join(jobs, socketName))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &testClient{t: t, c: c, enc: json.NewEncoder(c), dec: json.NewDecoder(bufio.NewReader(c))}
}

func (tc *testClient) send(req request) {
	tc.t.Helper()
	if err := tc.enc.Encode(req); err != nil {
		tc.t.Fatal(err)
	}
}

func (tc *testClient) next() message {
	tc.t.Helper()
	tc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var m message
	if err := tc.dec.Decode(&m); err != nil {
		tc.t.Fatalf("read executor event: %v", err)
	}
	return m
}

// abandonedAttempt creates the dir of an attempt that a restarted server
// has already claimed as abandoned.
func abandonedAttempt(t *testing.T, jobs string, id int64, attempt int) *task.Launch {
	t.Helper()
	dir := attemptDir(jobs, id, attempt)
	if err := os.MkdirAll(filepath.Join(dir, task.WorkDir), 0o755); err != nil {
		t.Fatal(err)
	}
	st, ok, err := task.Claim(dir, task.OwnerAbandoned)
	if err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	st.Close()
	return &task.Launch{JobID: id, Attempt: attempt, Argv: []string{"true"}, WorkDir: filepath.Join(dir, task.WorkDir)}
}

func TestLaunchOfAbandonedAttemptIsAnsweredUnknown(t *testing.T) {
	jobs := startTestExecutor(t)
	c := dialTest(t, jobs)
	l := abandonedAttempt(t, jobs, 7, 1)
	c.send(request{Op: opLaunch, JobID: 7, Attempt: 1, Launch: l})
	if m := c.next(); m.Event != evUnknown || m.JobID != 7 || m.Attempt != 1 {
		t.Fatalf("got %+v, want unknown for 7.1", m)
	}
	if _, err := os.Stat(filepath.Join(attemptDir(jobs, 7, 1), task.StdoutFile)); err == nil {
		t.Fatal("the abandoned attempt ran")
	}
	// Launches whose connection is gone by the time the claim fails must
	// not bring the executor down (it used to send on a closed channel).
	for i := 1; i <= 50; i++ {
		lc := dialTest(t, jobs)
		lc.send(request{Op: opLaunch, JobID: 8, Attempt: i, Launch: abandonedAttempt(t, jobs, 8, i)})
		lc.c.Close()
	}
	c.send(request{Op: opAttach, JobID: 9, Attempt: 1})
	if m := c.next(); m.Event != evUnknown || m.JobID != 9 {
		t.Fatalf("got %+v, want unknown for 9.1", m)
	}
}

func TestExecutorRefusesSharedJobsDir(t *testing.T) {
	jobs := t.TempDir()
	if err := os.Chmod(jobs, 0o770); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := ServeExecutor(ctx, jobs, 1<<20, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("got %v, want a refusal of the group-writable jobs dir", err)
	}
	if _, err := New(Config{JobsDir: jobs}, nil, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("the backend accepted a group-writable jobs dir")
	}
}

func TestSocketIsPrivate(t *testing.T) {
	jobs := startTestExecutor(t)
	info, err := os.Stat(filepath.Join(jobs, socketName))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		t.Fatalf("socket mode %v", perm)
	}
}

// newTestExecutor is an Executor without a socket, and clients whose
// events are read straight from their queue.
func newTestExecutor(t *testing.T) *Executor {
	return &Executor{jobsDir: t.TempDir(), log: slog.New(slog.DiscardHandler), running: map[attemptKey]*run{},
		conns: map[*clientConn]bool{}, idleFrom: time.Now(), grace: idleExit, buckets: blob.NewCache()}
}

func (e *Executor) testConn(t *testing.T) *clientConn {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return e.register(a)
}

func queued(cc *clientConn) []string {
	var evs []string
	for {
		select {
		case m := <-cc.out:
			evs = append(evs, m.Event)
		default:
			return evs
		}
	}
}

func TestDuplicateLaunch(t *testing.T) {
	e := newTestExecutor(t)
	old, cur := e.testConn(t), e.testConn(t)
	k := attemptKey{1, 1}
	l := &task.Launch{JobID: 1, Attempt: 1, Argv: []string{"true"}}

	// Running here (claimed) and started: a second launch is answered
	// like an attach and runs nothing.
	r := &run{cancel: make(chan struct{}), startedAt: time.Now()}
	e.running[k] = r
	e.launch(cur, k, l)
	if got := queued(cur); len(got) != 2 || got[0] != evRunning || got[1] != evStarted {
		t.Fatalf("events %v, want [running started]", got)
	}
	if got := queued(old); len(got) != 0 {
		t.Fatalf("the other client was told %v", got)
	}
}

// A launch whose claim fails runs nothing and tells only its sender to
// read the files; the claim is made before the launch returns, so a
// server's later claim of the same attempt as abandoned fails.
func TestLaunchClaimsBeforeReturning(t *testing.T) {
	e := newTestExecutor(t)
	cc := e.testConn(t)
	k := attemptKey{2, 1}
	dir := e.dir(k)
	if err := os.MkdirAll(filepath.Join(dir, task.WorkDir), 0o755); err != nil {
		t.Fatal(err)
	}
	l := &task.Launch{JobID: 2, Attempt: 1, Argv: []string{"sleep", "0.2"}, Env: []string{"PATH=/usr/bin:/bin"},
		WorkDir: filepath.Join(dir, task.WorkDir)}
	e.launch(cc, k, l)
	if _, abandoned, err := task.Claim(dir, task.OwnerAbandoned); err != nil || abandoned {
		t.Fatalf("the attempt could still be abandoned after the launch returned (%v)", err)
	}

	gone := attemptKey{3, 1} // its dir does not exist
	e.launch(cc, gone, l)
	e.mu.Lock()
	_, running := e.running[gone]
	e.mu.Unlock()
	if running {
		t.Fatal("an attempt without a dir is running")
	}
	evs := queued(cc)
	if len(evs) == 0 || evs[len(evs)-1] != evUnknown {
		t.Fatalf("events %v, want unknown last", evs)
	}
	// Let the claimed attempt finish before its dir is removed.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		e.mu.Lock()
		_, running := e.running[k]
		e.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the attempt did not end")
		}
	}
}

func TestSendToClosedConnIsNoop(t *testing.T) {
	e := newTestExecutor(t)
	cc := e.testConn(t)
	e.mu.Lock()
	delete(e.conns, cc)
	close(cc.out)
	e.send(cc, message{Event: evUnknown}) // panicked: send on closed channel
	e.mu.Unlock()
}

func TestIdleExit(t *testing.T) {
	e := newTestExecutor(t)
	e.idleFrom = time.Now().Add(-time.Hour)
	cc := e.testConn(t)
	if e.exitIfIdle() {
		t.Fatal("exiting with a client connected")
	}
	// The last client leaves asking for an exit.
	e.handle(cc, request{Op: opShutdownIfIdle})
	e.mu.Lock()
	delete(e.conns, cc)
	e.mu.Unlock()
	// A new server connects before the idle check: grace is back.
	cc2 := e.testConn(t)
	if e.grace != idleExit {
		t.Fatalf("grace %v after a new connection", e.grace)
	}
	e.handle(cc2, request{Op: opShutdownIfIdle})
	if e.grace != 0 {
		t.Fatal("shutdown_if_idle of the only client ignored")
	}
	// shutdown_if_idle from an old connection while a newer one is
	// connected is ignored.
	e.testConn(t) // resets grace
	e.handle(cc2, request{Op: opShutdownIfIdle})
	if e.grace != idleExit {
		t.Fatal("shutdown_if_idle honoured while another client is connected")
	}

	// Once it decided to exit, new connections are refused.
	e2 := newTestExecutor(t)
	e2.grace = 0
	if !e2.exitIfIdle() {
		t.Fatal("not exiting when idle")
	}
	if e2.testConn(t) != nil || len(e2.conns) != 0 {
		t.Fatal("a connection was registered by an exiting executor")
	}
}

func TestExecutorEnvDropsHPCMLVariables(t *testing.T) {
	got := executorEnv([]string{"PATH=/bin", "HPCML_TOKEN=secret", "AWS_PROFILE=x", "HOME=/h", "HPCML_DATA_DIR=/d"})
	want := []string{"PATH=/bin", "AWS_PROFILE=x", "HOME=/h"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestDoneCarriesTheRecordedResult: commands read an empty stdin (the
// executor's one /dev/null, shared by every attempt, not a pipe that
// could block them), and the done event carries the outcome exactly as
// the attempt's journal records it.
func TestDoneCarriesTheRecordedResult(t *testing.T) {
	jobs := startTestExecutor(t)
	tc := dialTest(t, jobs)
	for id := int64(1); id <= 3; id++ {
		dir := attemptDir(jobs, id, 1)
		if err := makeAttemptDir(dir); err != nil {
			t.Fatal(err)
		}
		l := &task.Launch{JobID: id, Attempt: 1, WorkDir: filepath.Join(dir, task.WorkDir),
			Argv: []string{"sh", "-c", "n=$(wc -c); echo $n; exit $((n + 2))"}, Env: []string{"PATH=/usr/bin:/bin"}}
		tc.send(request{Op: opLaunch, JobID: id, Attempt: 1, Launch: l})
	}
	for done := 0; done < 3; {
		m := tc.next()
		if m.Event != evDone {
			continue
		}
		done++
		if m.Result == nil || m.Result.ExitCode == nil || *m.Result.ExitCode != 2 {
			t.Fatalf("job %d: done with %+v, want exit code 2 (no byte read from stdin)", m.JobID, m.Result)
		}
		st, err := task.ReadStatus(attemptDir(jobs, m.JobID, 1))
		if err != nil || st.Done == nil {
			t.Fatalf("job %d: journal %+v %v", m.JobID, st, err)
		}
		got, _ := json.Marshal(m.Result)
		want, _ := json.Marshal(st.Done.Result)
		if string(got) != string(want) {
			t.Fatalf("job %d: done carried\n%s\nthe journal has\n%s", m.JobID, got, want)
		}
	}
}
