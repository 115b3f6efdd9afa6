package store

import (
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

// BenchmarkGetJob reads one job with its attempts, as every long poll
// and `job get` does.
func BenchmarkGetJob(b *testing.B) {
	s, err := Open(b.Context(), b.TempDir()+"/db")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := b.Context()
	if err := s.CreateQueue(ctx, &job.Queue{Name: "default", Backend: "local"}); err != nil {
		b.Fatal(err)
	}
	j := &job.Job{Name: "j", Queue: "default", State: job.Running, SubmittedAt: time.Now().UTC(),
		Spec: job.Spec{Command: []string{"true"}, Queue: "default"}, Attempt: 1}
	if err := s.InsertJob(ctx, j, nil); err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	if err := s.Apply(ctx, []Change{{Job: j, Attempt: &job.Attempt{Number: 1, State: job.Running, StartedAt: &now}}}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.GetJob(ctx, j.ID); err != nil {
			b.Fatal(err)
		}
	}
}
