package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
)

// TestJobLifecycle runs the basic outcomes of one attempt on one server:
// success with logs and accounting, a missing program, exit codes,
// retries, argv vs shell, and the job's environment.
func TestJobLifecycle(t *testing.T) {
	t.Parallel()
	s := startServer(t)

	t.Run("echo hello", func(t *testing.T) {
		s := s.with(t)
		j := s.submit(job.Spec{Command: []string{"echo", "hello"}})
		if j.State != job.Runnable || j.Queue != "default" || j.Name != "echo" {
			t.Fatalf("submitted job = %+v", j)
		}
		j = s.wait(j, 10*time.Second)
		expectState(t, j, job.Succeeded)
		if j.ExitCode == nil || *j.ExitCode != 0 || j.Signal != "" || j.Attempt != 1 || j.Reason != "" {
			t.Fatalf("finished job = %+v", j)
		}
		if len(j.Attempts) != 1 {
			t.Fatalf("attempts = %+v", j.Attempts)
		}
		a := j.Attempts[0]
		if a.Number != 1 || a.State != job.Succeeded || a.StartedAt == nil || a.EndedAt == nil ||
			a.StartedAt.Before(j.SubmittedAt) || a.EndedAt.Before(*a.StartedAt) {
			t.Fatalf("attempt = %+v (submitted %s)", a, j.SubmittedAt)
		}
		if j.StartedAt == nil || j.EndedAt == nil || j.EndedAt.Before(*j.StartedAt) {
			t.Fatalf("job timings: started %v ended %v", j.StartedAt, j.EndedAt)
		}
		if j.MaxRSSBytes < 0 || j.CPUSeconds < 0 { // an echo's peak is below the executor's: 0 (task.jobPeakRSS)
			t.Fatalf("usage not recorded: cpu %v rss %v", j.CPUSeconds, j.MaxRSSBytes)
		}
		if j.Cost != 0 {
			t.Fatalf("cost on the free default queue = %v", j.Cost)
		}
		if got := s.logs(id(j), client.LogOptions{}); got != "hello\n" {
			t.Fatalf("logs = %q", got)
		}
		key := fmt.Sprintf("jobs/%d/1/stdout.log", j.ID)
		if a.StdoutURL != key {
			t.Fatalf("stdout_url = %q, want %q", a.StdoutURL, key)
		}
		stored, err := os.ReadFile(filepath.Join(s.DataDir, "objects", key))
		if err != nil || string(stored) != "hello\n" {
			t.Fatalf("stored stdout = %q, %v", stored, err)
		}
		if a.StderrURL != "" {
			t.Fatalf("an empty stderr was shipped: %q", a.StderrURL)
		}
	})

	t.Run("CPU time", func(t *testing.T) {
		s := s.with(t)
		// The shell's children count too (their usage reaches it on wait).
		j := s.wait(s.submit(sh(`i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; /bin/true`)), 15*time.Second)
		expectState(t, j, job.Succeeded)
		if j.CPUSeconds < 0.05 || j.Attempts[0].CPUSeconds != j.CPUSeconds {
			t.Fatalf("cpu_seconds = %v (attempt %v) for a busy loop", j.CPUSeconds, j.Attempts[0].CPUSeconds)
		}
	})

	t.Run("missing program", func(t *testing.T) {
		s := s.with(t)
		for _, argv := range [][]string{{"/nonexistent/prog"}, {"hpcml-no-such-command"}} {
			j := s.wait(s.submit(job.Spec{Command: argv}), 10*time.Second)
			expectState(t, j, job.Failed)
			if !strings.Contains(j.Reason, "no such file") && !strings.Contains(j.Reason, "not found") {
				t.Fatalf("%v: reason %q does not carry the OS error", argv, j.Reason)
			}
			if !strings.Contains(j.Reason, argv[0]) {
				t.Fatalf("reason %q does not name the program", j.Reason)
			}
		}
	})

	t.Run("exit code", func(t *testing.T) {
		s := s.with(t)
		j := s.wait(s.submit(sh("exit 3")), 10*time.Second)
		expectState(t, j, job.Failed)
		if j.Reason != "exit code 3" || j.ExitCode == nil || *j.ExitCode != 3 {
			t.Fatalf("job = %s %q exit %v", j.State, j.Reason, j.ExitCode)
		}
	})

	t.Run("retry on exit code until attempts run out", func(t *testing.T) {
		s := s.with(t)
		spec := sh("exit 3")
		spec.Retry = job.RetryPolicy{Attempts: 3, OnExitCodes: []int{3}}
		j := s.wait(s.submit(spec), 15*time.Second)
		expectState(t, j, job.Failed)
		if j.Attempt != 3 || len(j.Attempts) != 3 || j.Reason != "exit code 3" {
			t.Fatalf("job = attempt %d, %d attempts, reason %q", j.Attempt, len(j.Attempts), j.Reason)
		}
		for i, a := range j.Attempts {
			if a.Number != i+1 || a.State != job.Failed || a.ExitCode == nil || *a.ExitCode != 3 {
				t.Fatalf("attempt %d = %+v", i+1, a)
			}
		}
		// Another exit code is not retried.
		spec = sh("exit 4")
		spec.Retry = job.RetryPolicy{Attempts: 3, OnExitCodes: []int{3}}
		j = s.wait(s.submit(spec), 10*time.Second)
		if j.State != job.Failed || j.Attempt != 1 {
			t.Fatalf("exit 4 with retry on 3: %s after %d attempts", j.State, j.Attempt)
		}
	})

	t.Run("fails then succeeds", func(t *testing.T) {
		s := s.with(t)
		marker := filepath.Join(t.TempDir(), "tried")
		spec := sh(fmt.Sprintf(`if [ -e %s ]; then echo second; exit 0; fi; touch %s; echo first; exit 1`, marker, marker))
		spec.Retry = job.RetryPolicy{Attempts: 3}
		j := s.wait(s.submit(spec), 15*time.Second)
		expectState(t, j, job.Succeeded)
		if j.Attempt != 2 || len(j.Attempts) != 2 || j.Attempts[0].State != job.Failed || j.Attempts[1].State != job.Succeeded {
			t.Fatalf("attempts = %+v", j.Attempts)
		}
		if got := s.logs(id(j), client.LogOptions{Attempt: 1}); got != "first\n" {
			t.Fatalf("attempt 1 logs = %q", got)
		}
		if got := s.logs(id(j), client.LogOptions{}); got != "second\n" {
			t.Fatalf("latest logs = %q", got)
		}
	})

	t.Run("argv is not a shell", func(t *testing.T) {
		s := s.with(t)
		j := s.wait(s.submit(job.Spec{Command: []string{"echo", "$HOME;ls", "`id`", "a b"}}), 10*time.Second)
		expectState(t, j, job.Succeeded)
		if got := s.logs(id(j), client.LogOptions{}); got != "$HOME;ls `id` a b\n" {
			t.Fatalf("argv was interpreted: %q", got)
		}
		// With shell: true the same text is a shell command.
		j = s.wait(s.submit(sh(`echo "$HPCML_JOB_ID"; echo two`)), 10*time.Second)
		if got := s.logs(id(j), client.LogOptions{}); got != fmt.Sprintf("%d\ntwo\n", j.ID) {
			t.Fatalf("shell job printed %q", got)
		}
	})

	t.Run("environment", func(t *testing.T) {
		s := s.with(t)
		spec := job.Spec{Command: []string{"env"}, Env: map[string]string{"FOO": "bar baz", "EMPTY": ""}}
		j := s.wait(s.submit(spec), 10*time.Second)
		expectState(t, j, job.Succeeded)
		env := map[string]string{}
		sc := bufio.NewScanner(strings.NewReader(s.logs(id(j), client.LogOptions{})))
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), "=")
			env[k] = v
		}
		want := map[string]string{
			"FOO": "bar baz", "EMPTY": "", "HPCML_JOB_ID": strconv.FormatInt(j.ID, 10), "HPCML_ATTEMPT": "1",
			"HPCML_QUEUE": "default", "HPCML_JOB_NAME": "env", "HPCML_CPUS": "1",
		}
		for k, v := range want {
			if got, ok := env[k]; !ok || got != v {
				t.Errorf("%s = %q (set %v), want %q", k, got, ok, v)
			}
		}
		if _, ok := env["HPCML_TOKEN"]; ok {
			t.Error("the server's HPCML_TOKEN reached the job")
		}
		if _, ok := env["HPCML_ARRAY_INDEX"]; ok {
			t.Error("a plain job has HPCML_ARRAY_INDEX")
		}
		if dir := env["HPCML_JOB_DIR"]; !strings.HasPrefix(dir, s.DataDir) {
			t.Errorf("HPCML_JOB_DIR = %q", dir)
		}
	})

	t.Run("PATH of the job finds its program", func(t *testing.T) {
		s := s.with(t)
		bin := t.TempDir()
		if err := os.WriteFile(filepath.Join(bin, "hpcml-e2e-tool"), []byte("#!/bin/sh\necho tool ran\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		spec := job.Spec{Command: []string{"hpcml-e2e-tool"}, Env: map[string]string{"PATH": bin + ":/usr/bin:/bin"}}
		j := s.wait(s.submit(spec), 10*time.Second)
		expectState(t, j, job.Succeeded)
		if got := s.logs(id(j), client.LogOptions{}); got != "tool ran\n" {
			t.Fatalf("logs = %q", got)
		}
	})

	t.Run("workdir", func(t *testing.T) {
		s := s.with(t)
		dir := t.TempDir()
		spec := job.Spec{Command: []string{"pwd"}, WorkDir: dir}
		j := s.wait(s.submit(spec), 10*time.Second)
		expectState(t, j, job.Succeeded)
		if got := s.logs(id(j), client.LogOptions{}); got != dir+"\n" {
			t.Fatalf("pwd = %q, want %q", got, dir)
		}
		j = s.wait(s.submit(job.Spec{Command: []string{"pwd"}, WorkDir: "/nonexistent/dir"}), 10*time.Second)
		expectState(t, j, job.Failed)
		if !strings.Contains(j.Reason, "/nonexistent/dir") || !strings.Contains(j.Reason, "no such file") {
			t.Fatalf("reason = %q", j.Reason)
		}
	})
}

// with returns a copy of s bound to a subtest, so that helpers fail the
// subtest rather than the parent.
func (s *server) with(t *testing.T) *server {
	c := *s
	c.t = t
	return &c
}

func TestArrayJob(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	runs := filepath.Join(t.TempDir(), "runs")
	spec := sh(`echo "index $HPCML_ARRAY_INDEX of $HPCML_ARRAY_JOB_ID as $HPCML_JOB_ID"; echo "$HPCML_JOB_ID" >> ` + runs + `; sleep 0.2`)
	spec.Array = "0-9%2"
	p := s.submit(spec)
	if p.ArraySize != 10 || p.ArrayCounts[job.Runnable] != 10 {
		t.Fatalf("parent at submit = %+v", p)
	}
	p = s.wait(p, 20*time.Second)
	expectState(t, p, job.Succeeded)
	if p.ArrayCounts[job.Succeeded] != 10 || len(p.ArrayCounts) != 1 {
		t.Fatalf("array_counts = %v", p.ArrayCounts)
	}
	tasks, err := s.Client.ListJobs(ctxFor(t, 5*time.Second), client.ListOptions{Parent: p.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 10 {
		t.Fatalf("%d tasks", len(tasks))
	}
	var full []*job.Job
	for i, tk := range tasks {
		if tk.ArrayIndex == nil || *tk.ArrayIndex != i || tk.ParentID != p.ID {
			t.Fatalf("task %d = %+v", i, tk)
		}
		tk, err := s.Client.GetJob(ctxFor(t, 5*time.Second), tk.DisplayID())
		if err != nil {
			t.Fatal(err)
		}
		expectState(t, tk, job.Succeeded)
		full = append(full, tk)
		want := fmt.Sprintf("index %d of %d as %d_%d\n", i, p.ID, p.ID, i)
		if got := s.logs(tk.DisplayID(), client.LogOptions{}); got != want {
			t.Fatalf("task %d logs = %q, want %q", i, got, want)
		}
	}
	if n := maxOverlap(attemptIntervals(t, full...)); n > 2 {
		t.Fatalf("%d tasks ran at once under a %%2 throttle", n)
	}
	// Each task ran once, and nothing else ran (the parent only groups them).
	lines := strings.Fields(readFile(t, runs))
	var want []string
	for i := range 10 {
		want = append(want, fmt.Sprintf("%d_%d", p.ID, i))
	}
	slices.Sort(lines)
	slices.Sort(want)
	if !slices.Equal(lines, want) {
		t.Fatalf("runs = %q, want each of the 10 tasks once", lines)
	}
	// The parent's logs are its tasks'.
	_, err = s.Client.Logs(ctxFor(t, 5*time.Second), id(p), client.LogOptions{})
	apiError(t, err, 400)
}

func TestDependencies(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	failing := s.submit(sh("sleep 0.3; exit 1"))
	succeeding := s.submit(sh("sleep 0.3"))
	dep := func(typ job.DependencyType, on *job.Job) job.Spec {
		spec := job.Spec{Command: []string{"echo", "ran"}}
		spec.DependsOn = []job.Dependency{{Type: typ, JobID: on.ID}}
		return spec
	}
	okOnFail := s.submit(dep(job.AfterOK, failing))
	if okOnFail.State != job.Pending || okOnFail.Reason == "" {
		t.Fatalf("dependent job at submit: %s %q", okOnFail.State, okOnFail.Reason)
	}
	anyOnFail := s.submit(dep(job.AfterAny, failing))
	notOKOnFail := s.submit(dep(job.AfterNotOK, failing))
	notOKOnOK := s.submit(dep(job.AfterNotOK, succeeding))
	chained := s.submit(dep(job.AfterOK, succeeding))

	// While the dependency runs, the dependent says what it waits for.
	cur, err := s.Client.GetJob(ctxFor(t, 5*time.Second), id(chained))
	if err != nil {
		t.Fatal(err)
	}
	if !cur.State.Terminal() && (cur.State != job.Pending || !strings.Contains(cur.Reason, "dependenc")) {
		t.Fatalf("waiting dependent: %s %q", cur.State, cur.Reason)
	}

	j := s.wait(okOnFail, 10*time.Second)
	expectState(t, j, job.Failed)
	if !strings.Contains(j.Reason, fmt.Sprintf("afterok:%d", failing.ID)) || j.Attempt != 0 {
		t.Fatalf("afterok on a failed job: reason %q, attempt %d", j.Reason, j.Attempt)
	}
	expectState(t, s.wait(anyOnFail, 10*time.Second), job.Succeeded)
	expectState(t, s.wait(notOKOnFail, 10*time.Second), job.Succeeded)
	j = s.wait(notOKOnOK, 10*time.Second)
	expectState(t, j, job.Failed)
	if !strings.Contains(j.Reason, fmt.Sprintf("afternotok:%d", succeeding.ID)) {
		t.Fatalf("afternotok on a succeeded job: reason %q", j.Reason)
	}
	b := s.wait(chained, 10*time.Second)
	expectState(t, b, job.Succeeded)
	a := s.wait(succeeding, 10*time.Second)
	if b.Attempts[0].StartedAt.Add(clockSlack).Before(*a.Attempts[0].EndedAt) {
		t.Fatalf("B started at %s, before A ended at %s", b.Attempts[0].StartedAt, a.Attempts[0].EndedAt)
	}

	// A dependency on a job that already ended is decided at once.
	late := s.wait(s.submit(dep(job.AfterOK, a)), 10*time.Second)
	expectState(t, late, job.Succeeded)
}

func TestCancel(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--kill-grace", "1s")

	t.Run("running", func(t *testing.T) {
		s := s.with(t)
		j := s.waitRunning(s.submit(job.Spec{Command: []string{"sleep", "30"}}))
		start := time.Now()
		if _, err := s.Client.CancelJob(ctxFor(t, 5*time.Second), id(j)); err != nil {
			t.Fatal(err)
		}
		j = s.wait(j, 5*time.Second)
		expectState(t, j, job.Cancelled)
		if j.Signal != "SIGTERM" || j.Reason != "cancelled by user" {
			t.Fatalf("cancelled job: signal %q reason %q", j.Signal, j.Reason)
		}
		t.Logf("cancelled in %s", time.Since(start))
	})

	t.Run("ignores SIGTERM", func(t *testing.T) {
		s := s.with(t)
		j := s.waitRunning(s.submit(sh(`trap "" TERM; echo ready; sleep 30`)))
		// The trap is set once "ready" is printed; before that a SIGTERM
		// would still end the shell.
		deadline := time.Now().Add(5 * time.Second)
		for s.logs(id(j), client.LogOptions{}) != "ready\n" {
			if time.Now().After(deadline) {
				t.Fatal("job never printed ready")
			}
			time.Sleep(20 * time.Millisecond)
		}
		start := time.Now()
		if _, err := s.Client.CancelJob(ctxFor(t, 5*time.Second), id(j)); err != nil {
			t.Fatal(err)
		}
		j = s.wait(j, 8*time.Second)
		took := time.Since(start)
		expectState(t, j, job.Cancelled)
		if j.Signal != "SIGKILL" {
			t.Fatalf("a job ignoring SIGTERM ended by %q", j.Signal)
		}
		if took < time.Second {
			t.Fatalf("SIGKILL came %s after the cancel, before the 1s grace", took)
		}
	})

	t.Run("pending", func(t *testing.T) {
		s := s.with(t)
		blocker := s.submit(job.Spec{Command: []string{"sleep", "30"}})
		spec := job.Spec{Command: []string{"echo", "never"}, DependsOn: []job.Dependency{{Type: job.AfterOK, JobID: blocker.ID}}}
		dep := s.submit(spec)
		got, err := s.Client.CancelJob(ctxFor(t, 5*time.Second), id(dep))
		if err != nil {
			t.Fatal(err)
		}
		if got.State != job.Cancelled || got.Attempt != 0 {
			t.Fatalf("a pending job is not cancelled at once: %s attempt %d", got.State, got.Attempt)
		}
		// The blocker is unaffected; cancel it too.
		if b, _ := s.Client.GetJob(ctxFor(t, 5*time.Second), id(blocker)); b.State.Terminal() {
			t.Fatalf("blocker ended: %+v", b)
		}
		s.Client.CancelJob(ctxFor(t, 5*time.Second), id(blocker))
		expectState(t, s.wait(blocker, 5*time.Second), job.Cancelled)
	})

	t.Run("while launching", func(t *testing.T) {
		// 40 tasks start at once, so their launches queue up on the way to
		// the executor; cancels that overtake a launch must not be lost.
		s := s.with(t)
		spec := job.Spec{Command: []string{"sleep", "30"}, Array: "0-39", Resources: job.Resources{CPUs: 0.01}}
		p := s.submit(spec)
		if _, err := s.Client.CancelJob(ctxFor(t, 5*time.Second), id(p)); err != nil {
			t.Fatal(err)
		}
		p = s.wait(p, 10*time.Second)
		expectState(t, p, job.Cancelled)
		if p.ArrayCounts[job.Cancelled] != 40 {
			t.Fatalf("array_counts = %v", p.ArrayCounts)
		}
	})

	t.Run("finished", func(t *testing.T) {
		s := s.with(t)
		j := s.wait(s.submit(job.Spec{Command: []string{"true"}}), 10*time.Second)
		_, err := s.Client.CancelJob(ctxFor(t, 5*time.Second), id(j))
		ae := apiError(t, err, 409)
		if ae.Code != "conflict" || !strings.Contains(ae.Message, "SUCCEEDED") {
			t.Fatalf("cancel of a finished job: %+v", ae)
		}
		if again, _ := s.Client.GetJob(ctxFor(t, 5*time.Second), id(j)); again.State != job.Succeeded {
			t.Fatalf("a refused cancel changed the job: %s", again.State)
		}
		_, err = s.Client.CancelJob(ctxFor(t, 5*time.Second), "999999")
		apiError(t, err, 404)
	})

	t.Run("array", func(t *testing.T) {
		s := s.with(t)
		spec := job.Spec{Command: []string{"sleep", "30"}, Array: "0-3"}
		p := s.submit(spec)
		s.waitFor(id(p), 10*time.Second, "RUNNING", func(j *job.Job) bool { return j.State == job.Running })
		if _, err := s.Client.CancelJob(ctxFor(t, 5*time.Second), id(p)); err != nil {
			t.Fatal(err)
		}
		p = s.wait(p, 8*time.Second)
		expectState(t, p, job.Cancelled)
		if p.ArrayCounts[job.Cancelled] != 4 {
			t.Fatalf("array_counts = %v", p.ArrayCounts)
		}
	})
}

func TestTimeLimit(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--kill-grace", "1s")
	spec := job.Spec{Command: []string{"sleep", "30"}, TimeLimit: job.Duration(time.Second)}
	start := time.Now()
	j := s.wait(s.submit(spec), 10*time.Second)
	expectState(t, j, job.Timeout)
	if j.Reason != "time limit reached" || j.Signal != "SIGTERM" {
		t.Fatalf("timed-out job: reason %q signal %q", j.Reason, j.Signal)
	}
	if took := time.Since(start); took < time.Second {
		t.Fatalf("ended after %s, before its 1s limit", took)
	}
	// A time-out is never retried.
	spec.Retry = job.RetryPolicy{Attempts: 3}
	spec.TimeLimit = job.Duration(200 * time.Millisecond)
	j = s.wait(s.submit(spec), 10*time.Second)
	if j.State != job.Timeout || j.Attempt != 1 {
		t.Fatalf("time-out with retries: %s after %d attempts", j.State, j.Attempt)
	}
}

func TestInputsOutputs(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	objects := filepath.Join(s.DataDir, "objects")
	if err := os.MkdirAll(filepath.Join(objects, "in", "dir", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(objects, "in", "data.txt"), []byte("hello world\n"), 0o644)
	os.WriteFile(filepath.Join(objects, "in", "dir", "a.txt"), []byte("a\n"), 0o644)
	os.WriteFile(filepath.Join(objects, "in", "dir", "sub", "b.txt"), []byte("b\n"), 0o644)

	t.Run("stage in and out", func(t *testing.T) {
		s := s.with(t)
		spec := sh(`tr a-z A-Z < data.txt > out.txt && mkdir -p res && cat tree/a.txt tree/sub/b.txt > res/ab.txt`)
		spec.Inputs = []job.Input{{URL: "in/data.txt", Path: "data.txt"}, {URL: "in/dir/", Path: "tree"}}
		spec.Outputs = []job.Output{{Path: "out.txt", URL: "results/out.txt"}, {Path: "res", URL: "results/res/"}}
		j := s.wait(s.submit(spec), 10*time.Second)
		expectState(t, j, job.Succeeded)
		for key, want := range map[string]string{"results/out.txt": "HELLO WORLD\n", "results/res/ab.txt": "a\nb\n"} {
			got, err := os.ReadFile(filepath.Join(objects, key))
			if err != nil || string(got) != want {
				t.Errorf("%s = %q, %v; want %q", key, got, err, want)
			}
		}
	})

	t.Run("file URL", func(t *testing.T) {
		s := s.with(t)
		elsewhere := t.TempDir()
		os.WriteFile(filepath.Join(elsewhere, "x.txt"), []byte("x\n"), 0o644)
		spec := job.Spec{Command: []string{"cp", "x.txt", "y.txt"}}
		spec.Inputs = []job.Input{{URL: "file://" + elsewhere + "/x.txt", Path: "x.txt"}}
		spec.Outputs = []job.Output{{Path: "y.txt", URL: "file://" + elsewhere + "/y.txt"}}
		expectState(t, s.wait(s.submit(spec), 10*time.Second), job.Succeeded)
		if got, err := os.ReadFile(filepath.Join(elsewhere, "y.txt")); err != nil || string(got) != "x\n" {
			t.Fatalf("y.txt = %q, %v", got, err)
		}
	})

	t.Run("escaping paths are refused at submit", func(t *testing.T) {
		s := s.with(t)
		before := s.jobCount()
		tests := []struct {
			edit  func(*job.Spec)
			field string
		}{
			{func(sp *job.Spec) { sp.Outputs = []job.Output{{Path: "../escape", URL: "results/x"}} }, "outputs[0].path"},
			{func(sp *job.Spec) { sp.Outputs = []job.Output{{Path: "/etc/passwd", URL: "results/x"}} }, "outputs[0].path"},
			{func(sp *job.Spec) { sp.Inputs = []job.Input{{URL: "in/data.txt", Path: "../../x"}} }, "inputs[0].path"},
			{func(sp *job.Spec) { sp.Outputs = []job.Output{{Path: "out", URL: "../outside"}} }, "outputs[0].url"},
			{func(sp *job.Spec) { sp.Inputs = []job.Input{{URL: "../../token", Path: "t"}} }, "inputs[0].url"},
			{func(sp *job.Spec) { sp.Inputs = []job.Input{{URL: "ftp://host/x", Path: "t"}} }, "inputs[0].url"},
		}
		for _, tt := range tests {
			spec := job.Spec{Command: []string{"true"}}
			tt.edit(&spec)
			_, err := s.Client.SubmitJob(ctxFor(t, 5*time.Second), &spec)
			if ae := apiError(t, err, 400); ae.Field != tt.field {
				t.Errorf("field = %q (%v), want %q", ae.Field, err, tt.field)
			}
		}
		if after := s.jobCount(); after != before {
			t.Fatalf("refused submissions stored jobs: %d -> %d", before, after)
		}
		if _, err := os.Stat(filepath.Join(s.DataDir, "escape")); err == nil {
			t.Fatal("something was written outside the job dir")
		}
	})

	t.Run("missing input", func(t *testing.T) {
		s := s.with(t)
		spec := job.Spec{Command: []string{"echo", "never"}}
		spec.Inputs = []job.Input{{URL: "in/missing.txt", Path: "m.txt"}}
		j := s.wait(s.submit(spec), 10*time.Second)
		expectState(t, j, job.Failed)
		if !strings.Contains(j.Reason, "stage-in") || !strings.Contains(j.Reason, "missing.txt") {
			t.Fatalf("reason = %q", j.Reason)
		}
	})

	t.Run("outputs of a failed command", func(t *testing.T) {
		s := s.with(t)
		// The report is kept (always), the result is not; an always
		// output the command never wrote is skipped without an error.
		spec := sh(`echo partial > result.txt; echo '{"failed":1}' > report.json; exit 3`)
		spec.Outputs = []job.Output{{Path: "result.txt", URL: "results/failed/result.txt"},
			{Path: "report.json", URL: "results/failed/report.json", Always: true},
			{Path: "never-written", URL: "results/failed/nw", Always: true}}
		j := s.wait(s.submit(spec), 10*time.Second)
		expectState(t, j, job.Failed)
		if j.Reason != "exit code 3" {
			t.Fatalf("reason = %q, want the command's exit (the outputs after a failure add none)", j.Reason)
		}
		if got, err := os.ReadFile(filepath.Join(objects, "results/failed/report.json")); err != nil || string(got) != "{\"failed\":1}\n" {
			t.Fatalf("the always output: %q %v", got, err)
		}
		for _, key := range []string{"results/failed/result.txt", "results/failed/nw"} {
			if _, err := os.Stat(filepath.Join(objects, key)); !os.IsNotExist(err) {
				t.Fatalf("%s stored after a failure: %v", key, err)
			}
		}
		// A command that never started wrote nothing: an input at the
		// always output's path is not stored as if it had.
		never := job.Spec{Command: []string{"no-such-program-hpcml"}}
		never.Inputs = []job.Input{{URL: "in/data.txt", Path: "report.json"}}
		never.Outputs = []job.Output{{Path: "report.json", URL: "results/never/report.json", Always: true}}
		j = s.wait(s.submit(never), 10*time.Second)
		expectState(t, j, job.Failed)
		if _, err := os.Stat(filepath.Join(objects, "results/never/report.json")); !os.IsNotExist(err) {
			t.Fatalf("an always output of a command that never started was stored: %v", err)
		}
	})

	t.Run("missing output", func(t *testing.T) {
		s := s.with(t)
		spec := job.Spec{Command: []string{"true"}}
		spec.Outputs = []job.Output{{Path: "never-written", URL: "results/nw"}}
		j := s.wait(s.submit(spec), 10*time.Second)
		expectState(t, j, job.Failed)
		if !strings.Contains(j.Reason, "stage-out") || !strings.Contains(j.Reason, "never-written") {
			t.Fatalf("reason = %q", j.Reason)
		}
	})
}

func TestLogs(t *testing.T) {
	t.Parallel()
	s := startServer(t)

	t.Run("5 MB", func(t *testing.T) {
		s := s.with(t)
		const size = 5 << 20
		j := s.wait(s.submit(sh(fmt.Sprintf(`head -c %d /dev/zero | tr '\0' a; echo err >&2`, size))), 15*time.Second)
		expectState(t, j, job.Succeeded)
		got := s.logs(id(j), client.LogOptions{})
		if len(got) != size || strings.Trim(got, "a") != "" {
			t.Fatalf("logs: %d bytes, want %d", len(got), size)
		}
		if got := s.logs(id(j), client.LogOptions{Stream: "stderr"}); got != "err\n" {
			t.Fatalf("stderr = %q", got)
		}
		// Once the node's copy is gone, the logs come from object storage.
		key := fmt.Sprintf("jobs/%d/1/stdout.log", j.ID)
		if info, err := os.Stat(filepath.Join(s.DataDir, "objects", key)); err != nil || info.Size() != size {
			t.Fatalf("stored log: %v, %v", info, err)
		}
		if err := os.RemoveAll(filepath.Join(s.DataDir, "jobs", fmt.Sprintf("%d.1", j.ID))); err != nil {
			t.Fatal(err)
		}
		if got := s.logs(id(j), client.LogOptions{}); len(got) != size {
			t.Fatalf("logs from storage: %d bytes, want %d", len(got), size)
		}
	})

	t.Run("follow", func(t *testing.T) {
		s := s.with(t)
		j := s.submit(sh(`for i in 1 2 3 4 5 6 7 8 9 10; do echo line$i; sleep 0.1; done`))
		// Follow from the moment of submission: the stream waits for the
		// job to start, then streams until it ends.
		rc, err := s.Client.Logs(ctxFor(t, 15*time.Second), id(j), client.LogOptions{Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		sc := bufio.NewScanner(rc)
		var lines []string
		var firstAt time.Time
		for sc.Scan() {
			if firstAt.IsZero() {
				firstAt = time.Now()
			}
			lines = append(lines, sc.Text())
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		end := time.Now()
		if len(lines) != 10 || lines[0] != "line1" || lines[9] != "line10" {
			t.Fatalf("followed lines = %q", lines)
		}
		// Streamed live: the first line came well before the last.
		if end.Sub(firstAt) < 500*time.Millisecond {
			t.Fatalf("lines arrived all at once (%s apart): not followed live", end.Sub(firstAt))
		}
		cur, _ := s.Client.GetJob(ctxFor(t, 5*time.Second), id(j))
		if !cur.State.Terminal() && cur.State != job.Running {
			t.Fatalf("stream ended while the job is %s", cur.State)
		}
		expectState(t, s.wait(j, 5*time.Second), job.Succeeded)
	})

	t.Run("errors", func(t *testing.T) {
		s := s.with(t)
		j := s.wait(s.submit(job.Spec{Command: []string{"true"}}), 10*time.Second)
		_, err := s.Client.Logs(ctxFor(t, 5*time.Second), id(j), client.LogOptions{Attempt: 2})
		apiError(t, err, 400)
		_, err = s.Client.Logs(ctxFor(t, 5*time.Second), id(j), client.LogOptions{Stream: "stdin"})
		apiError(t, err, 400)
		_, err = s.Client.Logs(ctxFor(t, 5*time.Second), "999999", client.LogOptions{})
		apiError(t, err, 404)
		// No output at all is an empty log, not an error.
		if got := s.logs(id(j), client.LogOptions{}); got != "" {
			t.Fatalf("logs of true = %q", got)
		}
	})
}
