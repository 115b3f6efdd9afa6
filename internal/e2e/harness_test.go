// Package e2e tests hpcml end to end: the real binary, started as
// `hpcml server`, with its real node executor running real processes.
// Nothing under test is mocked; assertions are on what the server reports
// and on what the jobs left on disk.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
)

// binary is the hpcml binary built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: go env GOMOD:", err)
		return 1
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	dir, err := os.MkdirTemp("", "hpcml-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "hpcml")
	args := []string{"build", "-o", binary}
	if os.Getenv("HPCML_E2E_RACE") != "" {
		// The server and executor under the race detector; their reports
		// go to server.log / executor.log (see checkRaces).
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./cmd/hpcml")...)
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build hpcml:", err)
		return 1
	}
	return m.Run()
}

// server is one `hpcml server` subprocess on its own data dir.
type server struct {
	t       *testing.T
	Client  *client.Client
	URL     string
	DataDir string
	Token   string

	addr string
	args []string
	env  []string // added to the server's environment
	cmd  *exec.Cmd
	exit chan struct{} // closed when cmd has been waited for
}

// startServer starts `hpcml server` on a fresh data dir and a free
// loopback port, waits for /healthz, and stops the server, its node
// executor and any job it left running when the test ends.
func startServer(t *testing.T, extraArgs ...string) *server {
	t.Helper()
	return startServerEnv(t, nil, extraArgs...)
}

// startServerEnv is startServer with variables added to the server's
// environment (KEY=VALUE).
func startServerEnv(t *testing.T, env []string, extraArgs ...string) *server {
	t.Helper()
	s := &server{t: t, DataDir: t.TempDir(), args: extraArgs, env: env}
	// Registered after TempDir, so it runs before the dir is removed.
	t.Cleanup(s.cleanup)
	s.start()
	return s
}

// cli runs the hpcml CLI against this server and returns its output;
// a non-zero exit fails the test.
func (s *server) cli(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(binary, append(args, "--server", s.URL)...)
	cmd.Env = append(os.Environ(), "HPCML_TOKEN="+s.Token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("hpcml %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// use makes the server's helpers report to t (a subtest, run while the
// parent waits) until the returned func is called: a helper failing a
// parent test from a subtest would panic.
func (s *server) use(t *testing.T) func() {
	prev := s.t
	s.t = t
	return func() { s.t = prev }
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (s *server) start() {
	t := s.t
	t.Helper()
	for try := 0; ; try++ {
		if s.addr == "" || try > 0 {
			s.addr = freeAddr(t)
		}
		if s.startOnce() {
			return
		}
		if try == 2 {
			t.Fatalf("server did not come up; log:\n%s", s.logTail())
		}
	}
}

// startOnce starts the process and waits for it to answer; false if it
// exited first (e.g. the port was taken in the meantime).
func (s *server) startOnce() bool {
	t := s.t
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(s.DataDir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"server", "--data-dir", s.DataDir, "--listen", s.addr, "--log-level", "debug"}, s.args...)
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A token in the server's environment must never reach a job.
	cmd.Env = append(append(os.Environ(), "HPCML_TOKEN=server-env-secret-must-not-leak"), s.env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd = cmd
	exit := make(chan struct{})
	s.exit = exit
	go func() { cmd.Wait(); close(exit) }()

	s.URL = "http://" + s.addr
	deadline := time.Now().Add(15 * time.Second)
	hc := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-exit:
			return false
		default:
		}
		resp, err := hc.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				tok, err := os.ReadFile(filepath.Join(s.DataDir, "token"))
				if err != nil {
					t.Fatal(err)
				}
				s.Token = strings.TrimSpace(string(tok))
				s.Client = client.New(s.URL, s.Token)
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server did not answer /healthz in 15s; log:\n%s", s.logTail())
	return false
}

// Kill9 kills the server with SIGKILL, as a crash would.
func (s *server) Kill9() {
	s.t.Helper()
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exit
}

// Restart starts the server again on the same data dir and address.
func (s *server) Restart() {
	s.t.Helper()
	select {
	case <-s.exit:
	default:
		s.t.Fatal("Restart of a server that is still running")
	}
	if !s.startOnce() {
		s.t.Fatalf("server did not restart; log:\n%s", s.logTail())
	}
}

// RestartNoWait starts the server again without waiting for it to answer,
// so that requests can race its start-up.
func (s *server) RestartNoWait() {
	s.t.Helper()
	logf, err := os.OpenFile(filepath.Join(s.DataDir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	args := append([]string{"server", "--data-dir", s.DataDir, "--listen", s.addr, "--log-level", "debug"}, s.args...)
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd = cmd
	exit := make(chan struct{})
	s.exit = exit
	go func() { cmd.Wait(); close(exit) }()
}

// Stop stops the server: SIGTERM, then SIGKILL if it has not exited in 5s.
func (s *server) Stop() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exit:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exit:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.exit
	}
}

func (s *server) jobsDir() string { return filepath.Join(s.DataDir, "jobs") }

// ExecutorPIDs finds this server's node executor: the process whose
// command line is `<binary> __executor <data-dir>/jobs [cache bytes]`.
func (s *server) ExecutorPIDs() []int {
	want := []string{binary, "__executor", s.jobsDir()}
	return findProcs(func(pid int) bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			return false
		}
		args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		return len(args) >= len(want) && len(args) <= len(want)+1 && slices.Equal(args[:len(want)], want)
	})
}

// jobPIDs finds processes of this server's jobs, by the HPCML_JOB_DIR
// every job's environment holds.
func (s *server) jobPIDs() []int {
	prefix := []byte("\x00HPCML_JOB_DIR=" + s.jobsDir() + "/")
	return findProcs(func(pid int) bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		return err == nil && bytes.Contains(append([]byte{0}, b...), prefix)
	})
}

func findProcs(match func(pid int) bool) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if match(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// KillExecutor kills the node executor with SIGKILL (a lost node) and
// waits until it is gone.
func (s *server) KillExecutor() {
	s.t.Helper()
	pids := s.ExecutorPIDs()
	if len(pids) == 0 {
		s.t.Fatal("no executor is running")
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	waitGone(pids, 5*time.Second)
}

func waitGone(pids []int, d time.Duration) {
	deadline := time.Now().Add(d)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			// A zombie is gone for our purposes: it runs nothing.
			st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil || strings.Contains(string(st), ") Z ") {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (s *server) cleanup() {
	s.Stop()
	for _, pid := range s.ExecutorPIDs() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, pid := range s.jobPIDs() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, f := range []string{filepath.Join(s.DataDir, "server.log"), filepath.Join(s.jobsDir(), "executor.log")} {
		if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			s.t.Errorf("data race in %s:\n%s", filepath.Base(f), b[bytes.Index(b, []byte("WARNING: DATA RACE")):])
		}
	}
	if s.t.Failed() {
		s.t.Logf("server log:\n%s", s.logTail())
		if b, err := os.ReadFile(filepath.Join(s.jobsDir(), "executor.log")); err == nil {
			s.t.Logf("executor log:\n%s", tail(b, 40))
		}
	}
}

func (s *server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.DataDir, "server.log"))
	return tail(b, 60)
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// --- job helpers ---

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func (s *server) submit(spec job.Spec) *job.Job {
	s.t.Helper()
	j, err := s.Client.SubmitJob(ctxFor(s.t, 10*time.Second), &spec)
	if err != nil {
		s.t.Fatalf("submit %v: %v", spec.Command, err)
	}
	return j
}

// sh is a spec running script with /bin/sh.
func sh(script string) job.Spec { return job.Spec{Command: []string{script}, Shell: true} }

func id(j *job.Job) string { return j.DisplayID() }

// wait waits for a job to end, at most d.
func (s *server) wait(j *job.Job, d time.Duration) *job.Job {
	s.t.Helper()
	return s.waitID(id(j), d)
}

func (s *server) waitID(jid string, d time.Duration) *job.Job {
	s.t.Helper()
	got, err := s.Client.WaitJob(ctxFor(s.t, d), jid)
	if err != nil {
		cur, _ := s.Client.GetJob(context.Background(), jid)
		s.t.Fatalf("wait for job %s: %v (now %+v)", jid, err, cur)
	}
	return got
}

// waitFor polls a job until cond holds, at most d.
func (s *server) waitFor(jid string, d time.Duration, what string, cond func(*job.Job) bool) *job.Job {
	s.t.Helper()
	deadline := time.Now().Add(d)
	var last *job.Job
	for time.Now().Before(deadline) {
		j, err := s.Client.GetJob(ctxFor(s.t, 5*time.Second), jid)
		if err == nil {
			last = j
			if cond(j) {
				return j
			}
			if j.State.Terminal() {
				s.t.Fatalf("job %s ended %s (%s) while waiting for it to be %s", jid, j.State, j.Reason, what)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("job %s not %s after %s: %+v", jid, what, d, last)
	return nil
}

func (s *server) waitRunning(j *job.Job) *job.Job {
	s.t.Helper()
	return s.waitFor(id(j), 10*time.Second, "RUNNING", func(j *job.Job) bool { return j.State == job.Running })
}

// warmStaging runs 8 trivial jobs to their end: staging starts once the
// last 8 runs on the node were short (see docs/jobs.md, Staged jobs).
func (s *server) warmStaging() {
	s.t.Helper()
	for range 8 {
		expectState(s.t, s.wait(s.submit(job.Spec{Command: []string{"true"}}), 20*time.Second), job.Succeeded)
	}
}

// waitStaged waits for j to be STARTING, staged on the node.
func (s *server) waitStaged(j *job.Job) *job.Job {
	s.t.Helper()
	return s.waitFor(id(j), 5*time.Second, "staged", func(j *job.Job) bool {
		return j.State == job.Starting && strings.Contains(j.Reason, "staged")
	})
}

// gateScript is a shell loop that ends once the file gate exists.
func gateScript(gate string) string { return "while [ ! -e " + gate + " ]; do sleep 0.02; done" }

func (s *server) logs(jid string, opts client.LogOptions) string {
	s.t.Helper()
	rc, err := s.Client.Logs(ctxFor(s.t, 10*time.Second), jid, opts)
	if err != nil {
		s.t.Fatalf("logs of %s: %v", jid, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		s.t.Fatalf("read logs of %s: %v", jid, err)
	}
	return string(b)
}

func (s *server) jobCount() int {
	s.t.Helper()
	js, err := s.Client.ListJobs(ctxFor(s.t, 5*time.Second), client.ListOptions{Limit: 1000})
	if err != nil {
		s.t.Fatal(err)
	}
	return len(js)
}

func expectState(t *testing.T, j *job.Job, want job.State) {
	t.Helper()
	if j.State != want {
		t.Fatalf("job %s is %s (%s), want %s", j.DisplayID(), j.State, j.Reason, want)
	}
}

// interval is when one attempt's command ran.
type interval struct{ start, end time.Time }

func attemptIntervals(t *testing.T, jobs ...*job.Job) []interval {
	t.Helper()
	var out []interval
	for _, j := range jobs {
		for _, a := range j.Attempts {
			if a.StartedAt == nil || a.EndedAt == nil {
				t.Fatalf("job %s attempt %d has no timings: %+v", j.DisplayID(), a.Number, a)
			}
			if a.EndedAt.Before(*a.StartedAt) {
				t.Fatalf("job %s attempt %d ends before it starts", j.DisplayID(), a.Number)
			}
			out = append(out, interval{*a.StartedAt, *a.EndedAt})
		}
	}
	return out
}

// clockSlack is how far apart two timestamps must be to count: they are
// wall-clock readings, which this VM may step by a few milliseconds.
const clockSlack = 5 * time.Millisecond

// maxOverlap is the largest number of intervals running at one instant.
func maxOverlap(iv []interval) int {
	type edge struct {
		at time.Time
		d  int
	}
	var edges []edge
	for _, i := range iv {
		edges = append(edges, edge{i.start.Add(clockSlack), +1}, edge{i.end.Add(-clockSlack), -1})
	}
	// Ends before starts at the same instant: touching is not overlapping.
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.d - b.d
	})
	cur, best := 0, 0
	for _, e := range edges {
		cur += e.d
		best = max(best, cur)
	}
	return best
}

// raw sends an HTTP request; token "" sends no Authorization header.
func (s *server) raw(method, path, token string, body []byte) (int, http.Header, []byte) {
	s.t.Helper()
	req, err := http.NewRequestWithContext(ctxFor(s.t, 10*time.Second), method, s.URL+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func apiError(t *testing.T, err error, status int) *client.APIError {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an API error", err, err)
	}
	if ae.Status != status {
		t.Fatalf("status %d (%v), want %d", ae.Status, err, status)
	}
	return ae
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
