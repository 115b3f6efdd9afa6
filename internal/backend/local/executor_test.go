package local

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/job"
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
	for {
		var m message
		if err := tc.dec.Decode(&m); err != nil {
			tc.t.Fatalf("read executor event: %v", err)
		}
		if m.Event != evHello {
			return m
		}
	}
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
			if m.Event != evHello {
				evs = append(evs, m.Event)
			}
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
	e.launch(cur, k, request{Launch: l})
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
	e.launch(cc, k, request{Launch: l})
	if _, abandoned, err := task.Claim(dir, task.OwnerAbandoned); err != nil || abandoned {
		t.Fatalf("the attempt could still be abandoned after the launch returned (%v)", err)
	}

	gone := attemptKey{3, 1} // its dir does not exist
	e.launch(cc, gone, request{Launch: l})
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

// TestQueueBeyondCapacity: attempts handed over beyond the node's
// capacity wait in the executor, in launch order, and each starts the
// moment one ends; one cancelled while it waits never starts, ends
// cancelled, and its journal says so; an executor that dies while one
// waits leaves it readable as never started.
func TestQueueBeyondCapacity(t *testing.T) {
	jobs := startTestExecutor(t)
	tc := dialTest(t, jobs)
	one := job.Resources{CPUs: 1}
	launch := func(id int64, argv ...string) {
		dir := attemptDir(jobs, id, 1)
		if err := makeAttemptDir(dir); err != nil {
			t.Fatal(err)
		}
		l := &task.Launch{JobID: id, Attempt: 1, WorkDir: filepath.Join(dir, task.WorkDir), Argv: argv, Env: []string{"PATH=/usr/bin:/bin"}}
		tc.send(request{Op: opLaunch, JobID: id, Attempt: 1, Launch: l, Need: one, Capacity: one})
	}
	launch(1, "sleep", "0.3")
	launch(2, "sleep", "0.1")
	launch(3, "sleep", "5") // cancelled while it waits
	launch(4, "true")
	tc.send(request{Op: opCancel, JobID: 3, Attempt: 1})

	var order []string
	for done := 0; done < 4; {
		m := tc.next()
		switch m.Event {
		case evStarted:
			order = append(order, fmt.Sprintf("start %d", m.JobID))
		case evDone:
			done++
			// A command that ended within startedReportDelay is said to
			// have started by its done alone.
			if start := fmt.Sprintf("start %d", m.JobID); m.Result != nil && !m.Result.StartedAt.IsZero() && !slices.Contains(order, start) {
				order = append(order, start)
			}
			order = append(order, fmt.Sprintf("done %d", m.JobID))
			if m.JobID == 3 && (m.Result == nil || !m.Result.Cancelled || !m.Result.StartedAt.IsZero()) {
				t.Fatalf("the cancelled waiting attempt ended with %+v", m.Result)
			}
		}
	}
	// Job 3's end may come at any point after the cancel; the others run
	// one at a time, in launch order.
	var others []string
	for _, o := range order {
		if !strings.HasSuffix(o, " 3") {
			others = append(others, o)
		}
	}
	want := []string{"start 1", "done 1", "start 2", "done 2", "start 4", "done 4"}
	if !slices.Equal(others, want) {
		t.Fatalf("events %v, want %v around job 3's", order, want)
	}
	if slices.Contains(order, "start 3") {
		t.Fatal("the cancelled waiting attempt started")
	}
	st, err := task.ReadStatus(attemptDir(jobs, 3, 1))
	if err != nil || st.Started != nil || st.Done == nil || !st.Done.Result.Cancelled || st.Waiting != true {
		t.Fatalf("journal of the cancelled waiting attempt: %+v %v", st, err)
	}
	if r := readOutcome(attemptDir(jobs, 2, 1)); r.NeverStarted || r.ExitCode == nil || *r.ExitCode != 0 {
		t.Fatalf("an attempt that waited, then ran, reads %+v", r)
	}

	// The journal of an attempt claimed and queued by an executor that
	// then died: nothing ran, so it may be launched again.
	dir := attemptDir(jobs, 9, 1)
	if err := makeAttemptDir(dir); err != nil {
		t.Fatal(err)
	}
	j, ok, err := task.ClaimQueued(dir, task.OwnerExecutor)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	j.Close()
	if r := readOutcome(dir); !r.NeverStarted {
		t.Fatalf("a queued attempt of a dead executor reads %+v, want never started", r)
	}
}

// TestHelloSaysItQueues: an executor's first word on every connection
// says it queues attempts beyond its capacity; the backend stages nothing
// until it has heard it (an older executor, still running across an
// upgrade, would run staged attempts at once).
func TestHelloSaysItQueues(t *testing.T) {
	jobs := startTestExecutor(t)
	tc := dialTest(t, jobs)
	tc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var m message
	if err := tc.dec.Decode(&m); err != nil || m.Event != evHello || !m.Queues {
		t.Fatalf("first message %+v (%v), want a hello that queues", m, err)
	}
	b := &Backend{cfg: Config{Capacity: job.Resources{CPUs: 2}}}
	if n := b.StageAhead(); n != 0 {
		t.Fatalf("stages %d before any hello", n)
	}
	b.queues.Store(true)
	if n := b.StageAhead(); n != 8 {
		t.Fatalf("stages %d on 2 CPUs, want 8", n)
	}
}

// TestQueueMovesOnWhenItsHeadGoes: a queued attempt that does not fit
// holds those behind it (launch order), until it is cancelled: then the
// next starts at once, beside the one running. One taken back (unstage)
// ends never started, its journal saying it waited and did nothing.
func TestQueueMovesOnWhenItsHeadGoes(t *testing.T) {
	jobs := startTestExecutor(t)
	tc := dialTest(t, jobs)
	capacity := job.Resources{CPUs: 2}
	launch := func(id int64, cpus float64, argv ...string) {
		dir := attemptDir(jobs, id, 1)
		if err := makeAttemptDir(dir); err != nil {
			t.Fatal(err)
		}
		l := &task.Launch{JobID: id, Attempt: 1, WorkDir: filepath.Join(dir, task.WorkDir), Argv: argv, Env: []string{"PATH=/usr/bin:/bin"}}
		tc.send(request{Op: opLaunch, JobID: id, Attempt: 1, Launch: l, Need: job.Resources{CPUs: cpus}, Capacity: capacity})
	}
	launch(1, 1, "sleep", "1")
	launch(2, 2, "true") // waits for the whole node
	launch(3, 1, "true") // waits behind it, though it would fit
	launch(4, 2, "true") // taken back below
	expect := func(event string, id int64) message {
		t.Helper()
		for {
			m := tc.next()
			if m.JobID == id && m.Event == event {
				return m
			}
			// A command that ended within startedReportDelay is said to
			// have started by its done alone.
			if event == evStarted && m.JobID == id && m.Event == evDone && m.Result != nil && !m.Result.StartedAt.IsZero() {
				return m
			}
			if m.JobID == 1 && m.Event == evDone {
				t.Fatalf("job 1 ended before job %d's %s", id, event)
			}
		}
	}
	expect(evStarted, 1)
	tc.send(request{Op: opCancel, JobID: 2, Attempt: 1})
	expect(evStarted, 3) // beside job 1, before it ends
	tc.send(request{Op: opUnstage, JobID: 4, Attempt: 1})
	m := expect(evDone, 4)
	if m.Result == nil || !m.Result.NeverStarted || !m.Result.StartedAt.IsZero() {
		t.Fatalf("the attempt taken back ended with %+v", m.Result)
	}
	st, err := task.ReadStatus(attemptDir(jobs, 4, 1))
	if err != nil || !st.Waiting || st.Done == nil || !st.Done.Result.NeverStarted || st.Started != nil {
		t.Fatalf("journal of the attempt taken back: %+v %v", st, err)
	}
	if r := readOutcome(attemptDir(jobs, 4, 1)); !r.NeverStarted {
		t.Fatalf("it reads %+v", r)
	}
}

// TestStartedIsSaidOnlyOfJobsStillRunning: an attempt still running
// startedReportDelay after its command started is said to have started,
// before its end; one that ended sooner is said only to be done, and the
// done carries when it started.
func TestStartedIsSaidOnlyOfJobsStillRunning(t *testing.T) {
	jobs := startTestExecutor(t)
	tc := dialTest(t, jobs)
	launch := func(id int64, argv ...string) {
		dir := attemptDir(jobs, id, 1)
		if err := makeAttemptDir(dir); err != nil {
			t.Fatal(err)
		}
		l := &task.Launch{JobID: id, Attempt: 1, WorkDir: filepath.Join(dir, task.WorkDir), Argv: argv, Env: []string{"PATH=/usr/bin:/bin"}}
		tc.send(request{Op: opLaunch, JobID: id, Attempt: 1, Launch: l})
	}
	launch(1, "sleep", "0.3")
	events := map[int64][]message{}
	for done := 0; done < 1; {
		m := tc.next()
		events[m.JobID] = append(events[m.JobID], m)
		if m.Event == evDone {
			done++
		}
	}
	if got := events[1]; len(got) != 2 || got[0].Event != evStarted || got[1].Event != evDone ||
		got[1].Result == nil || got[1].Result.StartedAt.IsZero() || got[0].At.Sub(got[1].Result.StartedAt).Abs() > 100*time.Millisecond {
		t.Fatalf("a 0.3 s job: %+v, want started, then done carrying about the same start", got)
	}
	// `true` ends within the delay on an idle machine; on a loaded one it
	// may not, and is then said to start like any other.
	launch(2, "true")
	var got []message
	for {
		m := tc.next()
		got = append(got, m)
		if m.Event == evDone {
			break
		}
	}
	last := got[len(got)-1]
	if last.Result == nil || last.Result.StartedAt.IsZero() {
		t.Fatalf("done of a short job %+v: want it to carry the start", last)
	}
	if len(got) == 2 && got[0].Event != evStarted {
		t.Fatalf("a short job's events %+v", got)
	}
	if len(got) > 2 {
		t.Fatalf("a short job's events %+v: more than started and done", got)
	}
}
