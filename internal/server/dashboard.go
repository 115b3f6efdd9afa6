package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/hpcml/hpcml/internal/analysis"
	"github.com/hpcml/hpcml/internal/api"
	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/dashboard"
	"github.com/hpcml/hpcml/internal/deploy"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/joblog"
	"github.com/hpcml/hpcml/internal/registry"
	"github.com/hpcml/hpcml/internal/sched"
	"github.com/hpcml/hpcml/internal/store"
	"github.com/hpcml/hpcml/internal/train"
)

// newDashboard mounts the web dashboard on the server's own state; the
// reports and training runs it shows are those in the server's storage.
func newDashboard(st store.Store, sch *sched.Scheduler, logs *joblog.Source, storage *blob.Bucket, a *api.Handler, token string,
	models *registry.Registry, endpoints *deploy.Controller, log *slog.Logger) http.Handler {
	src := &dashSource{store: st, sched: sch, logs: logs, reports: analysis.Reports{Bucket: storage},
		runs: train.Runs{Bucket: storage}, models: models, endpoints: endpoints}
	return dashboard.New(src, &dashAuth{api: a, key: []byte(token)}, log)
}

// dashAuth checks the same token as the API; the session cookie is keyed
// by it, so a new token logs every browser out.
type dashAuth struct {
	api *api.Handler
	key []byte
}

func (d *dashAuth) ValidToken(tok string) bool { return d.api.ValidToken(tok) }
func (d *dashAuth) SessionKey() []byte         { return d.key }

// dashSource is what the dashboard reads.
type dashSource struct {
	store   store.Store
	sched   *sched.Scheduler
	logs    *joblog.Source
	reports analysis.Reports
	runs    train.Runs
	models  *registry.Registry // dashboard_models.go
	// endpoints is the endpoint controller (dashboard_endpoints.go).
	endpoints *deploy.Controller
}

func notFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %v", dashboard.ErrNotFound, err)
	}
	return err
}

func (d *dashSource) ListJobs(ctx context.Context, f dashboard.JobFilter) ([]*job.Job, error) {
	return d.store.ListJobs(ctx, store.JobFilter{State: f.State, Queue: f.Queue, Parent: f.Parent, Limit: f.Limit})
}

func (d *dashSource) GetJob(ctx context.Context, id string) (*job.Job, error) {
	n, index, isTask, err := job.ParseID(id)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", dashboard.ErrNotFound, err)
	}
	var j *job.Job
	if isTask {
		j, err = d.store.GetArrayTask(ctx, n, index)
	} else {
		j, err = d.store.GetJob(ctx, n)
	}
	if err != nil {
		return nil, notFound(err)
	}
	// A report that cannot be read is left out, as in the API.
	if p, err := d.sched.Progress(ctx, j); err == nil {
		j.Progress = p
	}
	return j, nil
}

func (d *dashSource) ListQueues(ctx context.Context) ([]*job.Queue, error) {
	qs, err := d.store.ListQueues(ctx)
	if err != nil {
		return nil, err
	}
	counts := d.sched.Snapshot().Counts
	for _, q := range qs {
		q.Counts = counts[q.Name]
	}
	return qs, nil
}

func (d *dashSource) Capacity(ctx context.Context) (job.Capacity, error) {
	return d.sched.Snapshot().Capacity, nil
}

// Log reads the tail of an attempt's log.
func (d *dashSource) Log(ctx context.Context, id string, attempt int, stream string, maxBytes int64) ([]byte, error) {
	j, err := d.GetJob(ctx, id)
	if err != nil {
		return nil, err
	}
	if attempt <= 0 {
		attempt = j.Attempt
	}
	if attempt <= 0 {
		return nil, nil
	}
	return d.logs.Tail(ctx, j, attempt, stream, maxBytes)
}

func (d *dashSource) ListReports(ctx context.Context) ([]analysis.Summary, error) {
	return d.reports.List(ctx)
}

func (d *dashSource) GetReport(ctx context.Context, id string) (*analysis.ProfileReport, error) {
	rep, err := d.reports.Get(ctx, id)
	if errors.Is(err, analysis.ErrNoReport) {
		return nil, fmt.Errorf("%w: %v", dashboard.ErrNotFound, err)
	}
	return rep, err
}

func (d *dashSource) TrainingRuns() train.Runs { return d.runs }
