package cli

import (
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/client/clienttest"
	"github.com/hpcml/hpcml/internal/job"
)

func TestProgressText(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		p    *job.Progress
		want string
	}{
		{"none", nil, ""},
		{"transfer", &job.Progress{Done: 1.2 * (1 << 30), Total: 2.6 * (1 << 30), Unit: "bytes", FilesDone: 3, FilesTotal: 10,
			Rate: 120 << 20, ETASeconds: 11.6, Message: "copying", UpdatedAt: now},
			"46% · 1.2 GiB of 2.6 GiB · 3 of 10 files · 120.0 MiB/s · ETA 12s · copying"},
		{"steps", &job.Progress{Done: 300, Total: 1000, Unit: "steps", Rate: 2.5, ETASeconds: 280},
			"30% · 300 of 1000 steps · 2.5 steps/s · ETA 4m40s"},
		{"fractional, no unit", &job.Progress{Done: 2.456, Total: 10}, "24% · 2.46 of 10"},
		{"past the total reads 100%", &job.Progress{Done: 12, Total: 10}, "100% · 12 of 10"},
		{"no total", &job.Progress{Done: 5 << 20, Unit: "bytes", FilesDone: 4}, "5.0 MiB · 4 files"},
		{"message only", &job.Progress{Message: "listing"}, "listing"},
		{"stale", &job.Progress{Done: 1, Total: 4, UpdatedAt: now.Add(-3 * time.Minute)}, "25% · 1 of 4 · reported 3m ago"},
	}
	for _, tt := range tests {
		if got := progressText(now, tt.p); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestJobGetProgress: a running job's report is a line of job get and
// a field of its JSON.
func TestJobGetProgress(t *testing.T) {
	srv := clienttest.NewServer(t)
	if r := runCLI(t, serverEnv(srv), "job", "submit", "--", "sleep", "60"); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	srv.SetState(1, job.Running)
	srv.Update(1, func(j *job.Job) {
		j.Progress = &job.Progress{Done: 50 << 20, Total: 100 << 20, Unit: "bytes", FilesDone: 1, FilesTotal: 2, UpdatedAt: time.Now()}
	})
	r := runCLI(t, serverEnv(srv), "job", "get", "1")
	if !regexp.MustCompile(`(?m)^Progress: +50% · 50.0 MiB of 100.0 MiB · 1 of 2 files$`).MatchString(r.stdout) {
		t.Errorf("job get:\n%s", r.stdout)
	}
	r = runCLI(t, serverEnv(srv), "job", "get", "1", "-o", "json")
	var got job.Job
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Progress == nil || got.Progress.Done != 50<<20 || got.Progress.FilesTotal != 2 {
		t.Errorf("job get -o json: %v\n%s", err, r.stdout)
	}
}

// TestStatusLineShowsProgress: `job submit --wait` (and `data sync
// --submit --wait`) on a terminal show the progress on the status line.
func TestStatusLineShowsProgress(t *testing.T) {
	now := time.Now()
	started := now.Add(-12 * time.Second)
	s := &statusLine{id: "7", now: func() time.Time { return now }, begin: now}
	s.update(&job.Job{ID: 7, State: job.Running, Attempt: 1, StartedAt: &started,
		Progress: &job.Progress{Done: 3 << 20, Total: 4 << 20, Unit: job.UnitBytes, UpdatedAt: now}})
	if got, want := s.text(), "job 7 RUNNING 0:12 · 75% · 3.0 MiB of 4.0 MiB"; got != want {
		t.Errorf("status line %q, want %q", got, want)
	}
}
