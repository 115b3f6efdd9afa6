package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/deploy/asyncq"
)

// What a restarted server does with the requests the previous one was
// running, and the error objects both it and the dispatch loop write.

// reconcile settles the requests a killed server was running: one whose
// result object exists succeeded (it is not run again), one whose error
// object exists failed, and any other goes back to the queue; its
// attempt stays counted (and once restarts have cut short more of its
// attempts than its max attempts, it fails instead). Storage is looked at
// before the row is touched: a request whose objects cannot be looked at
// stays as it is (requeueing it blind could run it twice) and is counted
// in left, for a later try; an error is the database's.
func (d *Dispatcher) reconcile(ctx context.Context) (left int, err error) {
	orphans, err := d.cfg.Store.OrphanedAsync(ctx, d.owner)
	if err != nil {
		return 0, err
	}
	var done, failed, requeued int
	for _, r := range orphans {
		state, msg := asyncq.Queued, ""
		if ok, err := d.resultSince(ctx, r.Output, r.SubmittedAt); err != nil {
			d.log.Warn("reconcile async request: its result object cannot be looked at; later", "id", r.ID, "err", err)
			left++
			continue
		} else if ok {
			state = asyncq.Succeeded
		} else if msg, ok, err = d.failureSince(ctx, r.Failure, r.SubmittedAt); err != nil {
			d.log.Warn("reconcile async request: its error object cannot be looked at; later", "id", r.ID, "err", err)
			left++
			continue
		} else if ok {
			state = asyncq.Failed
		}
		if state == asyncq.Queued && r.Attempts-r.Failures > max(r.MaxAttempts, 1) {
			// Interrupted by restarts more times than it may fail (each
			// attempt that did not fail was cut short by a restart, this
			// one included): a request that crashes the server must not
			// crash it for ever.
			state = asyncq.Failed
			msg = fmt.Sprintf("interrupted by %d server restarts (max attempts %d)", r.Attempts-r.Failures, r.MaxAttempts)
			if err := d.writeFailure(ctx, r, msg, 0, nil); err != nil {
				d.log.Warn("reconcile async request: its error object cannot be written; later", "id", r.ID, "err", err)
				left++
				continue
			}
		}
		if ok, err := d.cfg.Store.AdoptAsync(ctx, r.ID, r.Owner, d.owner); err != nil {
			return left, err
		} else if !ok {
			continue
		}
		now := time.Now()
		if state == asyncq.Queued {
			if _, err := d.cfg.Store.RetryAsync(ctx, r.ID, d.owner, false, "interrupted by a server restart", now); err != nil {
				return left, err
			}
			requeued++
			continue
		}
		if _, err := d.cfg.Store.FinishAsync(ctx, r.ID, d.owner, state, msg, now); err != nil {
			return left, err
		}
		d.log.Debug("async request ended", "endpoint", r.Endpoint, "id", r.ID, "state", state, "reconciled", true)
		if state == asyncq.Succeeded {
			done++
		} else {
			failed++
		}
	}
	if len(orphans) > 0 {
		d.log.Info("async requests reconciled after a restart", "succeeded", done, "failed", failed, "requeued", requeued, "left", left)
		d.pokeHooks()
	}
	return left, nil
}

// failureDoc is the error object of a failed request.
type failureDoc struct {
	InferenceID string    `json:"inference_id"`
	Endpoint    string    `json:"endpoint"`
	Error       string    `json:"error"`
	Status      int       `json:"status,omitempty"`
	Attempts    int       `json:"attempts"`
	Replica     string    `json:"replica_answer,omitempty"`
	At          time.Time `json:"at"`
}

// writeFailure writes r's error object: why it failed, the replica's
// status and the start of its answer when there was one.
func (d *Dispatcher) writeFailure(ctx context.Context, r *asyncq.Request, why string, status int, answer []byte) error {
	doc, _ := json.MarshalIndent(failureDoc{InferenceID: r.ID, Endpoint: r.Endpoint, Error: why, Status: status,
		Attempts: r.Attempts, Replica: truncate(answer, 4096), At: time.Now().UTC()}, "", "  ")
	return d.write(ctx, r.Failure, bytes.NewReader(doc))
}

// staleBefore is how much older than its request an object must be to be
// another request's: S3 keeps modification times to the second, and the
// store's clock may be a little off the server's.
const staleBefore = 2 * time.Second

// resultSince reports whether a result object exists at location that
// was not written before since (the request's submission, less
// staleBefore). An older one is another request's: a caller may reuse an
// inference id once its endpoint was deleted and made again, and that
// request's result must not pass for this one's. (Skewed further, a fresh
// result would look old and the request would run again: at least once,
// never a wrong answer.)
func (d *Dispatcher) resultSince(ctx context.Context, location string, since time.Time) (bool, error) {
	b, key, err := d.locate(ctx, location, true)
	if err != nil {
		return false, err
	}
	attrs, err := b.Attributes(ctx, key)
	if blob.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !attrs.ModTime.Before(since.Truncate(time.Second).Add(-staleBefore)), nil
}

// failureSince reads the error of a failure object written after since
// (by the time it holds, a dispatcher's clock; see resultSince). One
// without a time is not a dispatcher's: not this request's outcome.
func (d *Dispatcher) failureSince(ctx context.Context, location string, since time.Time) (string, bool, error) {
	msg, ok, at, err := d.readFailure(ctx, location)
	if err != nil || !ok || at.IsZero() || at.Before(since.Add(-staleBefore)) {
		return "", false, err
	}
	return msg, true, nil
}

// readFailure reads the error of an existing failure object, and when it
// was written.
func (d *Dispatcher) readFailure(ctx context.Context, location string) (string, bool, time.Time, error) {
	b, key, err := d.locate(ctx, location, true)
	if err != nil {
		return "", false, time.Time{}, err
	}
	data, err := b.ReadAll(ctx, key)
	if blob.IsNotFound(err) {
		return "", false, time.Time{}, nil
	}
	if err != nil {
		return "", false, time.Time{}, err
	}
	var doc failureDoc
	if json.Unmarshal(data, &doc) != nil || doc.Error == "" {
		doc.Error = "failed (see the failure object)"
	}
	return doc.Error, true, doc.At, nil
}
