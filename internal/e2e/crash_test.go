package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
)

// recordRun is a shell prefix that appends "<job id> <attempt>" to runs:
// the file then says how often each job's command really ran.
func recordRun(runs string) string {
	return `echo "$HPCML_JOB_ID $HPCML_ATTEMPT" >> ` + runs + `; `
}

func readRuns(t *testing.T, runs string) []string {
	t.Helper()
	b, err := os.ReadFile(runs)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	slices.Sort(lines)
	return lines
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCrashWhileRunning kills the server with -9 while jobs run, lets the
// jobs finish while nobody watches, and restarts it: every job gets its
// true outcome, timings and logs, and each ran exactly once.
func TestCrashWhileRunning(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "3")
	runs := filepath.Join(t.TempDir(), "runs")
	jobs := []*job.Job{
		s.submit(sh(recordRun(runs) + "echo before; sleep 3; echo after")),
		s.submit(sh(recordRun(runs) + "sleep 3")),
		s.submit(sh(recordRun(runs) + "sleep 2; exit 7")),
	}
	for _, j := range jobs {
		s.waitRunning(j)
	}
	waitUntil(t, 5*time.Second, "all recorded", func() bool { return len(readRuns(t, runs)) == 3 })

	s.Kill9()
	if len(s.ExecutorPIDs()) == 0 {
		t.Fatal("the executor died with the server")
	}
	// The jobs go on without the server, and end while it is down.
	waitUntil(t, 10*time.Second, "finished while the server is down", func() bool {
		// The attempt's own record of its end (status.jsonl, see internal/task).
		for _, j := range jobs {
			b, _ := os.ReadFile(filepath.Join(s.jobsDir(), fmt.Sprintf("%d.1", j.ID), "status.jsonl"))
			if !strings.Contains(string(b), `"stage":"done"`) {
				return false
			}
		}
		return len(s.jobPIDs()) == 0
	})
	restartAt := time.Now()
	s.Restart()

	want := []job.State{job.Succeeded, job.Succeeded, job.Failed}
	for i, j := range jobs {
		j = s.wait(j, 10*time.Second)
		expectState(t, j, want[i])
		if j.Attempt != 1 || len(j.Attempts) != 1 {
			t.Fatalf("job %d ran %d attempts: %+v", j.ID, j.Attempt, j.Attempts)
		}
		a := j.Attempts[0]
		// True timings: from the command's start to its end, not to the
		// restart. (Wall clock, which this VM may step by a few ms.)
		if d := a.EndedAt.Sub(*a.StartedAt); d < 1900*time.Millisecond || d > 4*time.Second || !a.EndedAt.Before(restartAt) {
			t.Fatalf("job %d ran %s by its record, ending at %s (restart at %s): %+v", j.ID, d, a.EndedAt, restartAt, a)
		}
		// The job's own times are its attempt's.
		if j.StartedAt == nil || j.EndedAt == nil || !j.EndedAt.Equal(*a.EndedAt) || !j.StartedAt.Before(*a.EndedAt) {
			t.Fatalf("job %d times %v–%v, its attempt's %v–%v", j.ID, j.StartedAt, j.EndedAt, a.StartedAt, a.EndedAt)
		}
		jobs[i] = j
	}
	if j := jobs[2]; j.ExitCode == nil || *j.ExitCode != 7 || j.Reason != "exit code 7" {
		t.Fatalf("job that exited 7 while the server was down: exit %v reason %q", j.ExitCode, j.Reason)
	}
	if got := s.logs(id(jobs[0]), client.LogOptions{}); got != "before\nafter\n" {
		t.Fatalf("logs across the crash = %q", got)
	}
	var want1 []string
	for _, j := range jobs {
		want1 = append(want1, fmt.Sprintf("%d 1", j.ID))
	}
	slices.Sort(want1)
	if got := readRuns(t, runs); !slices.Equal(got, want1) {
		t.Fatalf("runs = %q, want each job once: %q", got, want1)
	}
}

// TestCrashWhileQueued kills the server with -9 twice while most of 20
// jobs wait for the single CPU: after the restarts all 20 run, once each.
func TestCrashWhileQueued(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "1")
	runs := filepath.Join(t.TempDir(), "runs")
	var jobs []*job.Job
	for range 20 {
		jobs = append(jobs, s.submit(sh(recordRun(runs)+"sleep 0.1")))
	}
	for range 2 {
		time.Sleep(300 * time.Millisecond)
		s.Kill9()
		s.Restart()
	}
	var want []string
	for _, j := range jobs {
		j = s.wait(j, 15*time.Second)
		expectState(t, j, job.Succeeded)
		want = append(want, fmt.Sprintf("%d %d", j.ID, j.Attempt))
		if j.Attempt != 1 {
			t.Errorf("job %d is on attempt %d", j.ID, j.Attempt)
		}
	}
	slices.Sort(want)
	if got := readRuns(t, runs); !slices.Equal(got, want) {
		t.Fatalf("runs (%d) = %q\nwant (%d) %q", len(got), got, len(want), want)
	}
}

// TestCrashDuringSubmitStorm kills the server while it is launching as
// fast as it can: whatever was accepted runs exactly once.
func TestCrashDuringSubmitStorm(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	runs := filepath.Join(t.TempDir(), "runs")
	var jobs []*job.Job
	for range 30 {
		jobs = append(jobs, s.submit(sh(recordRun(runs))))
	}
	s.Kill9()
	s.Restart()
	for _, j := range jobs {
		expectState(t, s.wait(j, 15*time.Second), job.Succeeded)
	}
	got := readRuns(t, runs)
	if len(got) != len(jobs) || len(slices.Compact(slices.Clone(got))) != len(jobs) {
		t.Fatalf("%d jobs, %d runs: %q", len(jobs), len(got), got)
	}
}

// TestNodeLost kills the node executor with -9 under running jobs.
func TestNodeLost(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	runs := filepath.Join(t.TempDir(), "runs")

	lost := s.waitRunning(s.submit(job.Spec{Command: []string{"sleep", "30"}}))
	spec := sh(recordRun(runs) + `if [ "$HPCML_ATTEMPT" = 1 ]; then sleep 30; fi; echo done`)
	spec.Retry = job.RetryPolicy{Attempts: 2, OnNodeLoss: true}
	retried := s.waitRunning(s.submit(spec))
	waitUntil(t, 5*time.Second, "recorded", func() bool { return len(readRuns(t, runs)) == 1 })

	s.KillExecutor()

	j := s.wait(lost, 10*time.Second)
	expectState(t, j, job.Failed)
	if !strings.HasPrefix(j.Reason, "node lost") {
		t.Fatalf("reason = %q", j.Reason)
	}
	j = s.wait(retried, 10*time.Second)
	expectState(t, j, job.Succeeded)
	if j.Attempt != 2 || j.Attempts[0].State != job.Failed || !strings.HasPrefix(j.Attempts[0].Reason, "node lost") {
		t.Fatalf("retried job: attempt %d, attempts %+v", j.Attempt, j.Attempts)
	}
	if got := s.logs(id(j), client.LogOptions{}); got != "done\n" {
		t.Fatalf("attempt 2 printed %q", got)
	}
	want := []string{fmt.Sprintf("%d 1", j.ID), fmt.Sprintf("%d 2", j.ID)}
	if got := readRuns(t, runs); !slices.Equal(got, want) {
		t.Fatalf("runs = %q, want %q", got, want)
	}
	// Nothing of the lost attempts goes on running beside the retry.
	waitUntil(t, 3*time.Second, "rid of the lost attempts' processes", func() bool { return len(s.jobPIDs()) == 0 })
	// A new executor took over.
	if len(s.ExecutorPIDs()) != 1 {
		t.Fatalf("executors: %v", s.ExecutorPIDs())
	}
}

// TestSubmitDuringRestart submits jobs while a restarted server is still
// recovering (a big backlog makes recovery take a while): every accepted
// job runs exactly once.
func TestSubmitDuringRestart(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	runs := filepath.Join(t.TempDir(), "runs")
	blocker := s.submit(job.Spec{Command: []string{"sleep", "30"}})
	backlog := job.Spec{Command: []string{"true"}, Array: "0-4999", DependsOn: []job.Dependency{{Type: job.AfterOK, JobID: blocker.ID}}}
	s.submit(backlog)

	s.Kill9()
	s.RestartNoWait()
	var (
		mu       sync.Mutex
		accepted []*job.Job
		wg       sync.WaitGroup
	)
	deadline := time.Now().Add(1500 * time.Millisecond)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				mu.Lock()
				enough := len(accepted) >= 40 // the race is at start-up; the rest only take time
				mu.Unlock()
				if enough {
					return
				}
				j, err := s.Client.SubmitJob(ctxFor(t, 5*time.Second), &job.Spec{Command: []string{recordRun(runs)}, Shell: true})
				if err != nil {
					time.Sleep(time.Millisecond) // not listening yet
					continue
				}
				mu.Lock()
				accepted = append(accepted, j)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(accepted) == 0 {
		t.Fatal("no submission was accepted")
	}
	var want []string
	for _, j := range accepted {
		j = s.wait(j, 15*time.Second)
		expectState(t, j, job.Succeeded)
		want = append(want, fmt.Sprintf("%d 1", j.ID))
	}
	slices.Sort(want)
	if got := readRuns(t, runs); !slices.Equal(got, want) {
		t.Fatalf("%d jobs accepted, %d runs; runs of more than once: %v", len(want), len(got), dups(got))
	}
}

func dups(lines []string) []string {
	var out []string
	for i := 1; i < len(lines); i++ {
		if lines[i] == lines[i-1] {
			out = append(out, lines[i])
		}
	}
	return out
}

// TestCrashWithArrayJob kills the server while an array job runs under a
// throttle, restarts it while tasks are still running, and checks that
// every task ran exactly once, the throttle held across the restart, and
// the parent ended SUCCEEDED (an array parent must never be recovered,
// queued or launched as if it were a job itself).
func TestCrashWithArrayJob(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "4")
	runs := filepath.Join(t.TempDir(), "runs")
	parent := s.submit(job.Spec{Name: "arr", Command: []string{recordRun(runs) + "sleep 1"}, Shell: true, Array: "0-5%2"})
	waitUntil(t, 10*time.Second, "two tasks running", func() bool { return len(readRuns(t, runs)) >= 2 })

	s.Kill9()
	s.Restart()
	done := s.wait(parent, 30*time.Second)
	expectState(t, done, job.Succeeded)
	if got := done.ArrayCounts[job.Succeeded]; got != 6 {
		t.Errorf("array counts %v, want 6 SUCCEEDED", done.ArrayCounts)
	}
	lines := readRuns(t, runs)
	if len(lines) != 6 {
		t.Errorf("tasks ran %d times, want 6 (one each): %q", len(lines), lines)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, fmt.Sprintf("%d_", parent.ID)) || !strings.HasSuffix(l, " 1") {
			t.Errorf("run %q: want a task id %d_N on attempt 1", l, parent.ID)
		}
	}
	tasks, err := s.Client.ListJobs(ctxFor(t, 5*time.Second), client.ListOptions{Parent: parent.ID})
	if err != nil {
		t.Fatal(err)
	}
	var full []*job.Job
	for _, tk := range tasks {
		full = append(full, s.waitID(tk.DisplayID(), 5*time.Second))
	}
	if n := maxOverlap(attemptIntervals(t, full...)); n > 2 {
		t.Errorf("%d tasks ran at once across the restart, throttle is 2", n)
	}
	waitUntil(t, 5*time.Second, "capacity released after the array ended", func() bool {
		capacity, err := s.Client.Capacity(ctxFor(t, 5*time.Second))
		return err == nil && capacity.Used.CPUs == 0
	})
}

// TestCrashWhileStaged: jobs staged on the node's executor (beyond its
// one CPU) survive a kill -9 of the server — the restarted server finds
// them queued there and they run after the job ahead, once each — and a
// kill -9 of the executor leaves them never started: they are launched
// again on a new executor and run once each.
func TestCrashWhileStaged(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "1")
	runs := filepath.Join(t.TempDir(), "runs")
	gate := filepath.Join(t.TempDir(), "gate")
	stageTwo := func() (*job.Job, []*job.Job) {
		os.Remove(gate)
		blocker := s.waitRunning(s.submit(sh(recordRun(runs) + gateScript(gate))))
		var staged []*job.Job
		for range 2 {
			j := s.submit(sh(recordRun(runs)))
			s.waitStaged(j)
			staged = append(staged, j)
		}
		return blocker, staged
	}
	ranOnce := func(jobs ...*job.Job) {
		t.Helper()
		got := readRuns(t, runs)
		for _, j := range jobs {
			if n := slices.Index(got, fmt.Sprintf("%d 1", j.ID)); n < 0 || slices.Contains(got[n+1:], got[n]) {
				t.Fatalf("job %d: runs %q, want its attempt 1 once", j.ID, got)
			}
		}
	}

	// The server dies while two jobs are staged.
	s.warmStaging()
	blocker, staged := stageTwo()
	s.Kill9()
	s.Restart()
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, j := range append([]*job.Job{blocker}, staged...) {
		expectState(t, s.wait(j, 30*time.Second), job.Succeeded)
	}
	ranOnce(append([]*job.Job{blocker}, staged...)...)

	// The executor dies while two jobs are staged: the running one is
	// lost with it, the staged ones had not begun and run on a new one.
	s.warmStaging()
	blocker, staged = stageTwo()
	s.KillExecutor()
	b := s.wait(blocker, 30*time.Second)
	expectState(t, b, job.Failed)
	if !strings.HasPrefix(b.Reason, "node lost") {
		t.Fatalf("the running job: %q", b.Reason)
	}
	for _, j := range staged {
		got := s.wait(j, 30*time.Second)
		expectState(t, got, job.Succeeded)
		if got.Attempt != 1 {
			t.Fatalf("job %d ran as attempt %d: a staged attempt that never began is launched again as itself", j.ID, got.Attempt)
		}
	}
	ranOnce(staged...)
}
