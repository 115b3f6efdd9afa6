package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

func openTemp(t *testing.T) (*SQLite, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hpcml.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// mustQueue creates a queue (jobs reference their queue).
func mustQueue(t *testing.T, s *SQLite, name string, prio int) {
	t.Helper()
	if err := s.CreateQueue(t.Context(), &job.Queue{Name: name, Priority: prio, Backend: "local"}); err != nil {
		t.Fatal(err)
	}
}

func newJob(queue string, state job.State) *job.Job {
	return &job.Job{Name: "j", Queue: queue, State: state, SubmittedAt: time.Now().UTC(),
		Spec: job.Spec{Command: []string{"true"}, Queue: queue}}
}

func TestMigrationsAreVersionedAndApplyOnce(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	mustQueue(t, s, "q", 0)
	s.Close()

	// Reopening applies nothing again (a second CREATE TABLE would fail)
	// and keeps the data.
	for range 2 {
		s2, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if _, err := s2.GetQueue(ctx, "q"); err != nil {
			t.Fatalf("data lost on reopen: %v", err)
		}
		var n, maxV int
		if err := s2.r.QueryRowContext(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &maxV); err != nil {
			t.Fatal(err)
		}
		if n != len(migrations) || maxV != len(migrations) {
			t.Fatalf("schema_migrations has %d rows, max version %d; want %d", n, maxV, len(migrations))
		}
		var mode string
		if err := s2.r.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
			t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
		}
		s2.Close()
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	if _, err := s.w.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, 0)`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s2, err := Open(ctx, path); err == nil {
		s2.Close()
		t.Fatal("a database from a newer hpcml was opened")
	}
}

func TestQueues(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	q := &job.Queue{Name: "gpu", Priority: 5, MaxRunning: 2, PriceCPUHour: 0.5, PriceGBHour: 0.01, Backend: "local"}
	if err := s.CreateQueue(ctx, q); err != nil {
		t.Fatal(err)
	}
	if q.CreatedAt.IsZero() {
		t.Error("CreatedAt not set")
	}
	err := s.CreateQueue(ctx, &job.Queue{Name: "gpu", Backend: "local"})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate queue: %v, want ErrExists", err)
	}
	got, err := s.GetQueue(ctx, "gpu")
	if err != nil {
		t.Fatal(err)
	}
	// The duplicate changed nothing.
	if got.Priority != 5 || got.MaxRunning != 2 || got.PriceCPUHour != 0.5 || got.PriceGBHour != 0.01 ||
		!got.CreatedAt.Equal(q.CreatedAt.Truncate(time.Nanosecond)) {
		t.Fatalf("GetQueue = %+v, want %+v", got, q)
	}
	if _, err := s.GetQueue(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing queue: %v", err)
	}
	mustQueue(t, s, "low", -1)
	mustQueue(t, s, "a-default", 0)
	mustQueue(t, s, "b-default", 0)
	qs, err := s.ListQueues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, q := range qs {
		names = append(names, q.Name)
	}
	if want := []string{"gpu", "a-default", "b-default", "low"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("ListQueues order = %v, want %v", names, want)
	}
}

func TestInsertJobAndArrays(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	mustQueue(t, s, "default", 0)

	plain := newJob("default", job.Runnable)
	plain.Spec.Env = map[string]string{"A": "1"}
	if err := s.InsertJob(ctx, plain, nil); err != nil {
		t.Fatal(err)
	}
	if plain.ID != 1 {
		t.Fatalf("first id = %d", plain.ID)
	}

	parent := newJob("default", job.Runnable)
	parent.Spec.Array = "0-2"
	parent.ArraySize = 3
	var tasks []*job.Job
	for i := range 3 {
		tk := newJob("default", job.Runnable)
		tk.ArrayIndex = &i
		tasks = append(tasks, tk)
	}
	if err := s.InsertJob(ctx, parent, tasks); err != nil {
		t.Fatal(err)
	}
	if parent.ID != 2 {
		t.Fatalf("parent id = %d", parent.ID)
	}
	for i, tk := range tasks {
		if tk.ID != parent.ID+int64(i)+1 || tk.ParentID != parent.ID {
			t.Fatalf("task %d: id %d parent %d", i, tk.ID, tk.ParentID)
		}
	}

	got, err := s.GetJob(ctx, plain.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != job.Runnable || got.Spec.Env["A"] != "1" || !got.SubmittedAt.Equal(plain.SubmittedAt) || got.ArrayIndex != nil {
		t.Fatalf("GetJob = %+v", got)
	}
	p, err := s.GetJob(ctx, parent.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !p.IsArrayParent() || p.ArrayCounts[job.Runnable] != 3 {
		t.Fatalf("parent = %+v", p)
	}
	tk, err := s.GetArrayTask(ctx, parent.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	if tk.ID != tasks[2].ID || *tk.ArrayIndex != 2 || tk.DisplayID() != "2_2" {
		t.Fatalf("GetArrayTask = %+v", tk)
	}
	// A task stores no spec of its own: it reads its parent's, in every query.
	if tk.Spec.Array != "0-2" || len(tk.Spec.Command) == 0 {
		t.Fatalf("task spec %+v, want the parent's", tk.Spec)
	}
	listed, err := s.ListJobs(ctx, JobFilter{Parent: parent.ID})
	if err != nil || len(listed) != 3 || listed[0].Spec.Array != "0-2" {
		t.Fatalf("listed tasks %v, %v", listed, err)
	}
	active, err := s.ActiveJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range active {
		if a.ParentID == parent.ID && a.Spec.Array != "0-2" {
			t.Fatalf("active task %d has spec %+v", a.ID, a.Spec)
		}
	}
	var stored string
	if err := s.r.QueryRowContext(ctx, `SELECT spec FROM jobs WHERE id = ?`, tk.ID).Scan(&stored); err != nil || stored != "" {
		t.Fatalf("a task stored its own spec: %q, %v", stored, err)
	}
	if _, err := s.GetArrayTask(ctx, parent.ID, 9); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing task: %v", err)
	}
	if _, err := s.GetJob(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing job: %v", err)
	}

	// A job on a queue that does not exist is refused, and nothing of it stays.
	bad := newJob("nope", job.Runnable)
	if err := s.InsertJob(ctx, bad, nil); err == nil {
		t.Fatal("job on a missing queue was stored")
	}
	all, _ := s.ListJobs(ctx, JobFilter{})
	if len(all) != 2 {
		t.Fatalf("after a failed insert there are %d top-level jobs", len(all))
	}
}

func TestListJobsFilters(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	mustQueue(t, s, "default", 0)
	mustQueue(t, s, "other", 0)
	// ids 1..6: alternating queues and states.
	for i := range 6 {
		q, st := "default", job.Runnable
		if i%2 == 1 {
			q, st = "other", job.Succeeded
		}
		if err := s.InsertJob(ctx, newJob(q, st), nil); err != nil {
			t.Fatal(err)
		}
	}
	parent := newJob("default", job.Pending)
	parent.ArraySize = 2
	t0, t1 := 0, 1
	tasks := []*job.Job{newJob("default", job.Pending), newJob("default", job.Pending)}
	tasks[0].ArrayIndex, tasks[1].ArrayIndex = &t1, &t0 // stored out of index order
	if err := s.InsertJob(ctx, parent, tasks); err != nil {
		t.Fatal(err)
	}
	ids := func(js []*job.Job) []int64 {
		out := []int64{}
		for _, j := range js {
			out = append(out, j.ID)
		}
		return out
	}
	tests := []struct {
		name string
		f    JobFilter
		want []int64
	}{
		{"top level, newest first", JobFilter{}, []int64{7, 6, 5, 4, 3, 2, 1}},
		{"state", JobFilter{State: job.Succeeded}, []int64{6, 4, 2}},
		{"queue", JobFilter{Queue: "default"}, []int64{7, 5, 3, 1}},
		{"state and queue", JobFilter{Queue: "default", State: job.Pending}, []int64{7}},
		{"parent, by index", JobFilter{Parent: 7}, []int64{9, 8}},
		{"before", JobFilter{Before: 4}, []int64{3, 2, 1}},
		{"limit", JobFilter{Limit: 2}, []int64{7, 6}},
		{"page", JobFilter{Limit: 2, Before: 6}, []int64{5, 4}},
		{"nothing", JobFilter{State: job.Timeout}, []int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ListJobs(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ids(got), tt.want) {
				t.Fatalf("ListJobs(%+v) = %v, want %v", tt.f, ids(got), tt.want)
			}
		})
	}
	list, _ := s.ListJobs(ctx, JobFilter{Limit: 1})
	if list[0].ArrayCounts[job.Pending] != 2 {
		t.Fatalf("listed parent has counts %v", list[0].ArrayCounts)
	}
	counts, err := s.QueueCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Array parents are not counted; their tasks are.
	if counts["default"][job.Runnable] != 3 || counts["default"][job.Pending] != 2 || counts["other"][job.Succeeded] != 3 {
		t.Fatalf("QueueCounts = %v", counts)
	}
}

func TestApplyIsAtomic(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	mustQueue(t, s, "default", 0)
	a, b := newJob("default", job.Runnable), newJob("default", job.Runnable)
	for _, j := range []*job.Job{a, b} {
		if err := s.InsertJob(ctx, j, nil); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now().UTC().Truncate(time.Microsecond)
	end := start.Add(1500 * time.Millisecond)
	code := 0
	a.State, a.Attempt, a.StartedAt, a.EndedAt, a.ExitCode = job.Succeeded, 1, &start, &end, &code
	a.CPUSeconds, a.MaxRSSBytes, a.Cost = 1.25, 4096, 0.5
	att := &job.Attempt{Number: 1, State: job.Succeeded, StartedAt: &start, EndedAt: &end, ExitCode: &code,
		CPUSeconds: 1.25, MaxRSSBytes: 4096, StdoutURL: "jobs/1/1/stdout.log"}
	b.State, b.Reason, b.Attempt = job.Starting, "", 1
	if err := s.Apply(ctx, []Change{{Job: a, Attempt: att}, {Job: b, Attempt: &job.Attempt{Number: 1, State: job.Starting}}}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetJob(ctx, a.ID)
	if got.State != job.Succeeded || got.Attempt != 1 || *got.ExitCode != 0 || !got.StartedAt.Equal(start) ||
		!got.EndedAt.Equal(end) || got.CPUSeconds != 1.25 || got.Cost != 0.5 || len(got.Attempts) != 1 {
		t.Fatalf("job after Apply = %+v", got)
	}
	if ga := got.Attempts[0]; ga.StdoutURL != att.StdoutURL || !ga.EndedAt.Equal(end) || ga.MaxRSSBytes != 4096 {
		t.Fatalf("attempt after Apply = %+v", ga)
	}

	// The same attempt again is an update, not a second row.
	att.Reason = "again"
	if err := s.Apply(ctx, []Change{{Job: a, Attempt: att}}); err != nil {
		t.Fatal(err)
	}
	if atts, _ := s.Attempts(ctx, a.ID); len(atts) != 1 || atts[0].Reason != "again" {
		t.Fatalf("attempts after upsert = %+v", atts)
	}

	// A batch with one bad change writes nothing: b's move is rolled back
	// with the attempt of a job that does not exist.
	b.State = job.Running
	ghost := &job.Job{ID: 999, State: job.Running}
	err := s.Apply(ctx, []Change{{Job: b}, {Job: ghost, Attempt: &job.Attempt{Number: 1, State: job.Running}}})
	if err == nil {
		t.Fatal("Apply with an attempt of a missing job succeeded")
	}
	if got, _ := s.GetJob(ctx, b.ID); got.State != job.Starting {
		t.Fatalf("half of a failed Apply was written: b is %s", got.State)
	}
	if err := s.Apply(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

func TestActiveJobsAndStates(t *testing.T) {
	ctx := t.Context()
	s, _ := openTemp(t)
	mustQueue(t, s, "default", 0)
	var ids []int64
	for _, st := range job.States {
		j := newJob("default", st)
		if err := s.InsertJob(ctx, j, nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	active, err := s.ActiveJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []job.State
	for _, j := range active {
		got = append(got, j.State)
	}
	if want := []job.State{job.Pending, job.Runnable, job.Starting, job.Running}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ActiveJobs states = %v, want %v (oldest first)", got, want)
	}
	states, err := s.JobStates(ctx, append(ids, 12345))
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != len(job.States) {
		t.Fatalf("JobStates returned %d, want %d (missing ids absent)", len(states), len(job.States))
	}
	for i, id := range ids {
		if states[id] != job.States[i] {
			t.Errorf("state of %d = %s, want %s", id, states[id], job.States[i])
		}
	}
	if m, err := s.JobStates(ctx, nil); err != nil || len(m) != 0 {
		t.Fatalf("JobStates(nil) = %v, %v", m, err)
	}
}

// TestConcurrentReadsDuringWrites checks the WAL split of reader and
// writer pools: readers are never blocked into errors by a writer.
func TestConcurrentReadsDuringWrites(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s, _ := openTemp(t)
	mustQueue(t, s, "default", 0)
	done := make(chan error, 1)
	go func() {
		for range 200 {
			if err := s.InsertJob(ctx, newJob("default", job.Runnable), nil); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for {
		if _, err := s.ListJobs(ctx, JobFilter{Limit: 10}); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			all, _ := s.ListJobs(ctx, JobFilter{Limit: 1000})
			if len(all) != 200 {
				t.Fatalf("%d jobs stored, want 200", len(all))
			}
			return
		default:
		}
	}
}

// The database and its WAL are the owner's alone, even when an older
// version created the database readable by others.
func TestDatabaseIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hpcml.db")
	for _, p := range []string{path, path + "-shm"} { // as an older version left them
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustQueue(t, s, "q", 0) // a write: the WAL exists
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(p), info.Mode().Perm())
		}
	}
}
