package local

import (
	"context"

	"github.com/hpcml/hpcml/internal/job"
)

// Limits: every task of a job runs on this one machine, so the whole
// allocation must fit its declared capacity.
func (b *Backend) Limits(context.Context, *job.Queue) (job.Limits, error) {
	return job.Limits{MaxNode: b.cfg.Capacity, SingleNode: true}, nil
}

// CheckQueue accepts every local queue: there is nothing outside to ask.
func (b *Backend) CheckQueue(context.Context, *job.Queue) error { return nil }
