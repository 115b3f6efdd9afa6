package deploy

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"time"

	gcblob "gocloud.dev/blob"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/deploy/asyncq"
	"github.com/hpcml/hpcml/internal/store"
)

// The dispatcher's housekeeping: ended requests past the retention, and
// inline payloads no request refers to.

const (
	defaultSweepEvery = 10 * time.Minute
	defaultOrphanAge  = time.Hour
	sweepBatch        = 200
)

// startSweep runs a sweep on its own goroutine unless one is running.
func (d *Dispatcher) startSweep(ctx context.Context) {
	if !d.sweeping.CompareAndSwap(false, true) {
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer d.sweeping.Store(false)
		d.sweep(ctx)
	}()
}

// sweep deletes what the server keeps of requests that ended more than
// Retention ago — their rows, inline payloads, and result and error
// objects where the server put them (under async/ENDPOINT/ in its
// storage; a location the caller or the endpoint named is theirs) — and
// inline payloads older than OrphanAge that no request refers to (a kill
// between storing a payload and inserting its row leaves one, and
// deleting an endpoint deletes its rows but not its payloads).
func (d *Dispatcher) sweep(ctx context.Context) {
	if d.cfg.Retention > 0 {
		n, err := d.expire(ctx, time.Now().Add(-d.cfg.Retention))
		if err != nil && ctx.Err() == nil {
			d.log.Warn("delete expired async requests", "err", err)
		}
		if n > 0 {
			d.log.Info("expired async requests deleted", "requests", n, "retention", d.cfg.Retention)
			d.countSwept("expired_requests", n)
		}
	}
	n, err := d.sweepOrphans(ctx, time.Now().Add(-d.cfg.OrphanAge))
	if err != nil && ctx.Err() == nil {
		d.log.Warn("delete orphaned async payloads", "err", err)
	}
	if n > 0 {
		d.log.Info("orphaned async payloads deleted", "objects", n)
		d.countSwept("orphaned_payloads", n)
	}
}

func (d *Dispatcher) countSwept(what string, n int) {
	if d.metrics != nil {
		d.metrics.swept.WithLabelValues(what).Add(float64(n))
	}
}

// expire deletes the requests that ended before cutoff, a batch at a
// time: their objects first, then the rows, so that a kill in between
// leaves a row to delete again rather than objects nothing names.
func (d *Dispatcher) expire(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	for ctx.Err() == nil {
		rows, err := d.cfg.Store.ExpiredAsync(ctx, cutoff, sweepBatch)
		if err != nil {
			return total, err
		}
		var ids []string
		for _, r := range rows {
			if d.deleteObjects(ctx, r) {
				ids = append(ids, r.ID)
			}
		}
		if err := d.cfg.Store.DeleteEndedAsync(ctx, ids); err != nil {
			return total, err
		}
		total += len(ids)
		if len(rows) < sweepBatch || len(ids) == 0 {
			return total, nil
		}
	}
	return total, ctx.Err()
}

// deleteObjects deletes r's objects that the server placed; false if one
// could not be deleted (the row stays, for the next sweep).
func (d *Dispatcher) deleteObjects(ctx context.Context, r *asyncq.Request) bool {
	locs := []string{r.Output, r.Failure}
	if r.Inline {
		locs = append(locs, r.Input)
	}
	own := []string{"async/" + r.Endpoint + "/input/", "async/" + r.Endpoint + "/output/", "async/" + r.Endpoint + "/failure/"}
	for _, raw := range locs {
		loc, err := blob.Resolve(raw, d.cfg.StorageURL)
		if err != nil || loc.Bucket != d.cfg.StorageURL || !slices.ContainsFunc(own, func(p string) bool { return strings.HasPrefix(loc.Key, p) }) {
			continue // not where the server puts things: the caller's or the endpoint's own path
		}
		if err := d.cfg.Storage.Delete(ctx, loc.Key); err != nil && !blob.IsNotFound(err) {
			d.log.Warn("delete an expired async request's object", "id", r.ID, "key", loc.Key, "err", err)
			return false
		}
	}
	return true
}

// sweepOrphans deletes inline payloads (async/ENDPOINT/input/ID.SUFFIX)
// older than cutoff whose request does not exist or names another object.
func (d *Dispatcher) sweepOrphans(ctx context.Context, cutoff time.Time) (int, error) {
	deleted := 0
	dirs := d.cfg.Storage.List(&gcblob.ListOptions{Prefix: "async/", Delimiter: "/"})
	for {
		dir, err := dirs.Next(ctx)
		if err == io.EOF {
			return deleted, nil
		}
		if err != nil {
			return deleted, err
		}
		if !dir.IsDir {
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(dir.Key, "async/"), "/")
		prefix := dir.Key + "input/"
		objs := d.cfg.Storage.List(&gcblob.ListOptions{Prefix: prefix})
		for {
			o, err := objs.Next(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				return deleted, err
			}
			if o.IsDir || !o.ModTime.Before(cutoff) {
				continue
			}
			id := strings.TrimPrefix(o.Key, prefix)
			if i := strings.LastIndexByte(id, '.'); i > 0 {
				id = id[:i]
			}
			r, err := d.cfg.Store.GetAsync(ctx, name, id)
			if err == nil && r.Input == o.Key {
				continue
			}
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return deleted, err
			}
			if err := d.cfg.Storage.Delete(ctx, o.Key); err != nil && !blob.IsNotFound(err) {
				return deleted, err
			}
			deleted++
		}
	}
}
