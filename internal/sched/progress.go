package sched

import (
	"context"

	"github.com/hpcml/hpcml/internal/backend"
	"github.com/hpcml/hpcml/internal/job"
)

// Progress is what j's current attempt last reported of its progress, if
// j is STARTING or RUNNING on a backend that can read it (a
// backend.ProgressReader); nil otherwise. An error means a report is
// there but unusable: the caller shows the job without it.
func (s *Scheduler) Progress(ctx context.Context, j *job.Job) (*job.Progress, error) {
	if (j.State != job.Starting && j.State != job.Running) || j.IsArrayParent() || j.Attempt < 1 {
		return nil, nil
	}
	// Every backend is asked, not only that of the job's queue: a queue
	// may have been moved to another backend while the job ran. Job ids
	// are unique across backends, so at most one has the attempt.
	var firstErr error
	for _, name := range s.Backends() {
		pr, ok := s.backends[name].(backend.ProgressReader)
		if !ok {
			continue
		}
		p, err := pr.Progress(ctx, j.ID, j.Attempt)
		if p != nil {
			return p, nil
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}
