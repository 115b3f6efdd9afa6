package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
)

func TestQueueLimitAndCost(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := ctxFor(t, 20*time.Second)
	// 3600 per CPU-hour is 1 per CPU-second; 1800 per GB-hour is 0.5 per GB-second.
	q, err := s.Client.CreateQueue(ctx, &job.Queue{Name: "serial", MaxRunning: 1, PriceCPUHour: 3600, PriceGBHour: 1800})
	if err != nil {
		t.Fatal(err)
	}
	if q.Backend != "local" || q.CreatedAt.IsZero() {
		t.Fatalf("created queue = %+v", q)
	}
	var jobs []*job.Job
	for range 3 {
		spec := job.Spec{Command: []string{"sleep", "0.3"}, Queue: "serial", Resources: job.Resources{CPUs: 0.5, MemoryMB: 2048}}
		jobs = append(jobs, s.submit(spec))
	}
	for i, j := range jobs {
		jobs[i] = s.wait(j, 10*time.Second)
		expectState(t, jobs[i], job.Succeeded)
	}
	if n := maxOverlap(attemptIntervals(t, jobs...)); n != 1 {
		t.Fatalf("%d jobs of a max_running=1 queue ran at once", n)
	}
	for _, j := range jobs {
		a := j.Attempts[0]
		secs := a.EndedAt.Sub(*a.StartedAt).Seconds()
		want := secs * (0.5*1 + 2*0.5) // cpus × price + GB × price, per second
		if j.Cost <= 0 || math.Abs(j.Cost-want) > 0.01*want {
			t.Fatalf("job %d cost %v, want %v for %.3fs", j.ID, j.Cost, want, secs)
		}
		if secs < 0.3-clockSlack.Seconds() {
			t.Fatalf("sleep 0.3 ran %.3fs", secs)
		}
	}
	// Queue counts come from the scheduler's snapshot, published just
	// after the commit that a job's state is read from: a moment behind.
	var got *job.Queue
	waitUntil(t, 5*time.Second, "queue counts caught up", func() bool {
		got, err = s.Client.GetQueue(ctx, "serial")
		return err == nil && got.Counts[job.Succeeded] == 3
	})
	if got.MaxRunning != 1 || got.PriceCPUHour != 3600 {
		t.Fatalf("queue = %+v", got)
	}

	// Bad queues change nothing.
	for _, bad := range []struct {
		q      job.Queue
		status int
		field  string
	}{
		{job.Queue{Name: "serial"}, 409, ""},
		{job.Queue{Name: "has space"}, 400, "name"},
		{job.Queue{Name: "neg", PriceCPUHour: -1}, 400, "price_cpu_hour"},
		{job.Queue{Name: "neg", MaxRunning: -1}, 400, "max_running"},
		{job.Queue{Name: "k8sq", Backend: "k8s"}, 400, "backend"},
	} {
		_, err := s.Client.CreateQueue(ctx, &bad.q)
		if ae := apiError(t, err, bad.status); ae.Field != bad.field {
			t.Errorf("queue %+v: field %q, want %q", bad.q, ae.Field, bad.field)
		}
	}
	qs, err := s.Client.ListQueues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 2 {
		t.Fatalf("queues after refused creations: %+v", qs)
	}
	if _, err := s.Client.GetQueue(ctx, "nope"); !client.IsNotFound(err) {
		t.Fatalf("unknown queue: %v", err)
	}
}

func TestPriority(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "1")
	ctx := ctxFor(t, 20*time.Second)
	for _, q := range []*job.Queue{{Name: "hi", Priority: 10}, {Name: "lo", Priority: 0}} {
		if _, err := s.Client.CreateQueue(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	blocker := s.waitRunning(s.submit(job.Spec{Command: []string{"sleep", "0.5"}}))
	lo := s.submit(job.Spec{Command: []string{"true"}, Queue: "lo"})
	hi := s.submit(job.Spec{Command: []string{"sleep", "0.1"}, Queue: "hi"})
	// Both wait for the one CPU, and say so.
	if cur, _ := s.Client.GetJob(ctx, id(lo)); cur.State != job.Runnable || !strings.Contains(cur.Reason, "waiting") {
		t.Fatalf("lo while the CPU is taken: %s %q", cur.State, cur.Reason)
	}
	blocker = s.wait(blocker, 10*time.Second)
	lo, hi = s.wait(lo, 10*time.Second), s.wait(hi, 10*time.Second)
	for _, j := range []*job.Job{blocker, lo, hi} {
		expectState(t, j, job.Succeeded)
	}
	hiStart, loStart := *hi.Attempts[0].StartedAt, *lo.Attempts[0].StartedAt
	if !hiStart.Before(loStart) {
		t.Fatalf("older low-priority job started at %s, before the high-priority one at %s", loStart, hiStart)
	}
	if hiStart.Add(clockSlack).Before(*blocker.Attempts[0].EndedAt) || loStart.Add(clockSlack).Before(*hi.Attempts[0].EndedAt) {
		t.Fatal("jobs overlapped on a 1-CPU server")
	}
}

func TestCapacityNeverOversubscribed(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "2", "--memory-mb", "1000")
	ctx := ctxFor(t, 20*time.Second)
	c, err := s.Client.Capacity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Total.CPUs != 2 || c.Total.MemoryMB != 1000 {
		t.Fatalf("capacity = %+v", c)
	}
	var jobs []*job.Job
	for range 6 {
		jobs = append(jobs, s.submit(job.Spec{Command: []string{"sleep", "0.3"}, Resources: job.Resources{CPUs: 1}}))
	}
	// Memory counts too: two 600 MB jobs cannot share 1000 MB.
	for range 2 {
		jobs = append(jobs, s.submit(job.Spec{Command: []string{"sleep", "0.2"}, Resources: job.Resources{CPUs: 0.1, MemoryMB: 600}}))
	}
	for i, j := range jobs {
		jobs[i] = s.wait(j, 15*time.Second)
		expectState(t, jobs[i], job.Succeeded)
	}
	if n := maxOverlap(attemptIntervals(t, jobs[:6]...)); n > 2 {
		t.Fatalf("%d one-CPU jobs ran at once on 2 CPUs", n)
	}
	if n := maxOverlap(attemptIntervals(t, jobs[6:]...)); n > 1 {
		t.Fatalf("two 600 MB jobs ran at once in 1000 MB")
	}
	waitUntil(t, 5*time.Second, "capacity released after every job ended", func() bool {
		c, err := s.Client.Capacity(ctx)
		return err == nil && c.Used.CPUs == 0 && c.Running == 0
	})

	// More than the node has is refused at submit, and nothing is stored.
	before := s.jobCount()
	for _, bad := range []struct {
		r     job.Resources
		field string
	}{
		{job.Resources{CPUs: 3}, "resources.cpus"},
		{job.Resources{CPUs: -1}, "resources.cpus"},
		{job.Resources{CPUs: 1, MemoryMB: 1001}, "resources.memory_mb"},
		{job.Resources{CPUs: 1, GPUs: 1}, "resources.gpus"},
	} {
		_, err := s.Client.SubmitJob(ctx, &job.Spec{Command: []string{"true"}, Resources: bad.r})
		ae := apiError(t, err, 400)
		if ae.Field != bad.field || ae.Message == "" {
			t.Errorf("resources %+v: %+v", bad.r, ae)
		}
	}
	// A raw body too, so that the 400 is seen as a caller would.
	status, _, body := s.raw("POST", "/api/v1/jobs", s.Token, []byte(`{"command":["true"],"resources":{"cpus":3}}`))
	if status != 400 || !strings.Contains(string(body), `"field":"resources.cpus"`) {
		t.Fatalf("cpus=3: %d %s", status, body)
	}
	if after := s.jobCount(); after != before {
		t.Fatalf("refused jobs were stored: %d -> %d", before, after)
	}
}

// TestQueueUpdate changes a queue's settings through the API and CLI
// client: the change is stored, takes effect for waiting jobs at once,
// and bad updates are refused without changing anything.
func TestQueueUpdate(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "2")
	ctx := ctxFor(t, 30*time.Second)
	if _, err := s.Client.CreateQueue(ctx, &job.Queue{Name: "batch", MaxRunning: 1}); err != nil {
		t.Fatal(err)
	}
	first := s.submit(job.Spec{Queue: "batch", Command: []string{"sleep", "3"}})
	second := s.submit(job.Spec{Queue: "batch", Command: []string{"sleep", "3"}})
	s.waitRunning(first)
	s.waitFor(id(second), 5*time.Second, "held by the queue limit", func(j *job.Job) bool {
		return j.State == job.Runnable && strings.Contains(j.Reason, "max_running")
	})

	two, price := 2, 0.5
	q, err := s.Client.UpdateQueue(ctx, "batch", job.QueuePatch{MaxRunning: &two, PriceCPUHour: &price})
	if err != nil {
		t.Fatal(err)
	}
	if q.MaxRunning != 2 || q.PriceCPUHour != 0.5 || q.Priority != 0 {
		t.Fatalf("updated queue %+v", q)
	}
	s.waitRunning(second) // the waiting job starts under the new limit

	for _, tt := range []struct {
		name, path, body string
		status           int
		field            string
	}{
		{"unknown field", "/api/v1/queues/batch", `{"backend":"slurm"}`, 400, ""},
		{"negative limit", "/api/v1/queues/batch", `{"max_running":-1}`, 400, "max_running"},
		{"unknown queue", "/api/v1/queues/nope", `{"priority":1}`, 404, ""},
	} {
		status, _, body := s.raw("PATCH", tt.path, s.Token, []byte(tt.body))
		if status != tt.status || (tt.field != "" && !strings.Contains(string(body), `"field":"`+tt.field+`"`)) {
			t.Errorf("%s: %d %s", tt.name, status, body)
		}
	}
	if got, err := s.Client.GetQueue(ctx, "batch"); err != nil || got.MaxRunning != 2 || got.PriceCPUHour != 0.5 {
		t.Fatalf("after refused updates: %+v, %v", got, err)
	}

	// The CLI: only the flags given change.
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(binary, append(args, "--server", s.URL)...)
		cmd.Env = append(os.Environ(), "HPCML_TOKEN="+s.Token)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := cli("queue", "update", "batch", "--priority", "7"); err != nil || !strings.Contains(out, "priority 7") {
		t.Fatalf("queue update: %v: %s", err, out)
	}
	if got, _ := s.Client.GetQueue(ctx, "batch"); got.Priority != 7 || got.MaxRunning != 2 || got.PriceCPUHour != 0.5 {
		t.Fatalf("after the CLI update: %+v", got)
	}
	if out, err := cli("queue", "update", "batch"); err == nil || !strings.Contains(out, "nothing to change") {
		t.Fatalf("queue update without flags: %v: %s", err, out)
	}
}

// TestStagedJobs: once short jobs have run, the server hands the node's
// executor jobs beyond its one CPU (up to four per CPU: see the sched
// package's tests for the bound); they say so, start in order the moment
// the CPU frees, never beside the job they waited for, and one cancelled
// while staged never starts.
func TestStagedJobs(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "1")
	ctx := ctxFor(t, 60*time.Second)
	s.warmStaging()
	// A job that runs until the test opens its gate (staging looks only
	// at runs that ended), so that what is staged can be seen at leisure
	// — within the two seconds after which a staged job is taken back.
	gated := func(name string) (job.Spec, func()) {
		gate := filepath.Join(t.TempDir(), name)
		return sh(gateScript(gate)),
			func() {
				if err := os.WriteFile(gate, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
	}
	firstSpec, release := gated("first")
	first := s.waitRunning(s.submit(firstSpec))
	// Two staged, in order; two more, staged too or waiting their turn
	// (fewer are staged when a warm-up run was slow on a loaded machine).
	var staged []*job.Job
	for range 2 {
		j := s.submit(job.Spec{Command: []string{"sleep", "0.1"}})
		s.waitStaged(j)
		staged = append(staged, j)
	}
	staged = append(staged, s.submit(job.Spec{Command: []string{"sleep", "0.1"}}), s.submit(job.Spec{Command: []string{"true"}}))
	release()
	done := []*job.Job{s.wait(first, 20*time.Second)}
	for _, j := range staged {
		done = append(done, s.wait(j, 20*time.Second))
	}
	for _, j := range done {
		expectState(t, j, job.Succeeded)
	}
	if n := maxOverlap(attemptIntervals(t, done...)); n != 1 {
		t.Fatalf("%d jobs ran at once on a 1-CPU server", n)
	}
	for i := 1; i < len(done); i++ {
		if !done[i-1].Attempts[0].StartedAt.Before(*done[i].Attempts[0].StartedAt) {
			t.Fatalf("job %d started before job %d, staged or waiting ahead of it", done[i].ID, done[i-1].ID)
		}
	}

	// Cancelled while staged: it never starts, and the job behind it runs.
	// (The gated job's long run ended after the staging of this one.)
	s.warmStaging() // short runs again: the gated one was not
	blockerSpec, releaseBlocker := gated("blocker")
	blocker := s.waitRunning(s.submit(blockerSpec))
	victim := s.submit(job.Spec{Command: []string{"sleep", "5"}})
	s.waitStaged(victim)
	after := s.submit(job.Spec{Command: []string{"true"}})
	if _, err := s.Client.CancelJob(ctx, id(victim)); err != nil {
		t.Fatal(err)
	}
	// The slot frees only once the cancel has reached the node (the job
	// ends CANCELLED there, taken out of the node's queue). Freed before,
	// the node may start the job first and kill it a moment later, when
	// the cancel arrives: the API's cancel of a staged job is a request.
	v := s.wait(victim, 20*time.Second)
	releaseBlocker()
	expectState(t, v, job.Cancelled)
	if v.StartedAt != nil || (len(v.Attempts) > 0 && v.Attempts[0].StartedAt != nil) {
		t.Fatalf("the job cancelled while staged started: %+v", v)
	}
	expectState(t, s.wait(blocker, 20*time.Second), job.Succeeded)
	expectState(t, s.wait(after, 20*time.Second), job.Succeeded)
}

// TestWaitForManyJobs: GET /api/v1/jobs?ids=...&wait= answers with the
// jobs in the order asked once all have ended — plain jobs, an array
// task and an array job — and, when the wait is over first, with the
// jobs as they are then.
func TestWaitForManyJobs(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := ctxFor(t, 60*time.Second)
	slow := s.submit(job.Spec{Command: []string{"sleep", "0.5"}})
	quick := s.submit(job.Spec{Command: []string{"true"}})
	arr := s.submit(job.Spec{Command: []string{"true"}, Array: "0-1"})
	ids := []string{id(slow), id(arr) + "_1", id(quick), id(arr)}
	got, err := s.Client.WaitJobs(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := range got {
		if j.DisplayID() != ids[i] || j.State != job.Succeeded {
			t.Fatalf("job %d of the answer: %s %s, want %s SUCCEEDED", i, j.DisplayID(), j.State, ids[i])
		}
	}

	// A wait that is over first: the running job as it is, with the ended one.
	gate := filepath.Join(t.TempDir(), "gate")
	running := s.waitRunning(s.submit(sh(gateScript(gate))))
	// The ids after the running one are read once the wait is over: an
	// array task (always read from the store) and a job.
	status, _, body := s.raw("GET", fmt.Sprintf("/api/v1/jobs?ids=%s,%s_0,%s&wait=300ms", id(running), id(arr), id(quick)), s.Token, nil)
	var doc struct{ Jobs []*job.Job }
	if err := json.Unmarshal(body, &doc); status != 200 || err != nil || len(doc.Jobs) != 3 ||
		doc.Jobs[0].State != job.Running || doc.Jobs[1].State != job.Succeeded || doc.Jobs[2].State != job.Succeeded {
		t.Fatalf("a wait that ran out: %d %s", status, body)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	expectState(t, s.wait(running, 20*time.Second), job.Succeeded)
}
