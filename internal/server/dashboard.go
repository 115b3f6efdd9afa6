package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"

	"github.com/hpcml/hpcml/internal/api"
	"github.com/hpcml/hpcml/internal/backend/local"
	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/dashboard"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/sched"
	"github.com/hpcml/hpcml/internal/store"
)

// newDashboard mounts the web dashboard on the server's own state.
func newDashboard(st store.Store, sch *sched.Scheduler, be *local.Backend, bucket *blob.Bucket, a *api.Handler, token string, log *slog.Logger) http.Handler {
	src := &dashSource{store: st, sched: sch, backend: be, bucket: bucket}
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
	backend *local.Backend
	bucket  *blob.Bucket
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
	return j, notFound(err)
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

// Log reads the tail of an attempt's log: the local file while the node
// has it, else the copy shipped to object storage.
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
	if f, err := os.Open(d.backend.LogPath(j.ID, attempt, stream)); err == nil {
		defer f.Close()
		if info, err := f.Stat(); err == nil && info.Size() > maxBytes {
			f.Seek(info.Size()-maxBytes, io.SeekStart)
		}
		return io.ReadAll(io.LimitReader(f, maxBytes))
	}
	for _, a := range j.Attempts {
		if a.Number != attempt {
			continue
		}
		key := a.StdoutURL
		if stream == "stderr" {
			key = a.StderrURL
		}
		if key == "" {
			return nil, nil
		}
		attrs, err := d.bucket.Attributes(ctx, key)
		if err != nil {
			return nil, err
		}
		off := max(0, attrs.Size-maxBytes)
		r, err := d.bucket.NewRangeReader(ctx, key, off, maxBytes, nil)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		return io.ReadAll(r)
	}
	return nil, nil
}
