// Package store persists hpcml's metadata. One interface, Store, is what
// the rest of the system sees; the implementation is SQLite in WAL mode
// (modernc.org/sqlite, pure Go) with versioned migrations.
package store

import (
	"context"
	"errors"

	"github.com/hpcml/hpcml/internal/dataset"
	"github.com/hpcml/hpcml/internal/job"
)

// Errors callers act on.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// JobFilter selects jobs for ListJobs. The zero value lists top-level jobs
// (array parents but not their tasks), newest first.
type JobFilter struct {
	State  job.State
	Queue  string
	Parent int64 // list the tasks of this array job
	Limit  int   // default 100, at most 1000
	Before int64 // only ids below this (paging)
}

// Change is one job's new mutable columns and, optionally, the attempt to
// insert or update. Changes are applied together in one transaction.
type Change struct {
	Job     *job.Job
	Attempt *job.Attempt
}

// Store is the metadata persistence seam.
type Store interface {
	CreateQueue(ctx context.Context, q *job.Queue) error
	GetQueue(ctx context.Context, name string) (*job.Queue, error)
	// UpdateQueue writes q's priority, limit and prices; ErrNotFound if
	// there is no queue of that name.
	UpdateQueue(ctx context.Context, q *job.Queue) error
	ListQueues(ctx context.Context) ([]*job.Queue, error)
	// QueueCounts counts non-parent jobs by queue and state.
	QueueCounts(ctx context.Context) (map[string]map[job.State]int, error)

	// InsertJob stores a job and, for an array, its tasks, assigning ids.
	InsertJob(ctx context.Context, j *job.Job, tasks []*job.Job) error
	GetJob(ctx context.Context, id int64) (*job.Job, error)
	GetArrayTask(ctx context.Context, parent int64, index int) (*job.Job, error)
	ListJobs(ctx context.Context, f JobFilter) ([]*job.Job, error)
	// JobStates returns the states of the given jobs; missing ids are absent.
	JobStates(ctx context.Context, ids []int64) (map[int64]job.State, error)
	// ActiveJobs returns every job not in a terminal state, oldest first.
	ActiveJobs(ctx context.Context) ([]*job.Job, error)
	Attempts(ctx context.Context, id int64) ([]job.Attempt, error)
	Apply(ctx context.Context, changes []Change) error

	// AddDatasetVersion stores v as the next version of its dataset
	// (creating the dataset), setting v.Version, unless the latest version
	// has v's digest: then it returns that one and false.
	AddDatasetVersion(ctx context.Context, v *dataset.Version) (*dataset.Version, bool, error)
	// GetDataset reads a dataset with its versions, newest first.
	GetDataset(ctx context.Context, name string) (*dataset.Dataset, error)
	// ListDatasets lists datasets by name, each with its latest version.
	ListDatasets(ctx context.Context) ([]*dataset.Dataset, error)

	ModelStore
	EndpointStore
	AsyncStore

	Close() error
}
