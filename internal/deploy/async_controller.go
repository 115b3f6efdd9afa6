package deploy

import (
	"context"
	"strconv"
	"time"

	"github.com/hpcml/hpcml/internal/deploy/endpoint"
	"github.com/hpcml/hpcml/internal/store"
)

// The endpoint controller's part in asynchronous inference: replica
// flags, drain time, the backlog metric, the queue in an endpoint's
// status, and in-place changes of an async endpoint's settings.

// asyncReplicaArgs are the serve flags of an asynchronous endpoint's
// replicas: the longest processing and the largest payload any request
// may have, so that the dispatcher's own limits are the ones that apply.
func asyncReplicaArgs(e *endpoint.Endpoint) []string {
	if e.Spec.Async == nil {
		return nil
	}
	return []string{"--timeout", (endpoint.MaxAsyncTimeout + 5*time.Second).String(),
		"--max-payload", strconv.FormatInt(endpoint.MaxAsyncInputBytes, 10)}
}

// updateAsync applies an update that changes an asynchronous endpoint's
// settings (with, optionally, its replicas, weight or autoscaling);
// handled is false for any other update.
func (c *Controller) updateAsync(ctx context.Context, e *endpoint.Endpoint, req UpdateRequest) (*UpdateResult, bool, error) {
	if req.Async == nil {
		return nil, false, nil
	}
	if e.Spec.Async == nil {
		return nil, true, fieldErr("async", "endpoint %s is real-time: asynchronous settings are for endpoints created with --async", e.Name)
	}
	if req.Model != "" || req.CPUs != 0 || req.Batching != nil || req.Strategy != "" {
		return nil, true, fieldErr("async", "change the asynchronous settings and deploy a model in separate updates")
	}
	e.Spec.Async = req.Async
	if req.Replicas > 0 || req.Weight != nil || req.Autoscale != nil || req.NoAutoscale {
		res, err := c.updateInPlace(ctx, e, &e.Spec.Variants[0], req)
		return res, true, err
	}
	if err := e.Spec.Check(); err != nil {
		return nil, true, err
	}
	if !req.DryRun {
		if err := c.cfg.Store.UpdateEndpoint(ctx, e); err != nil {
			return nil, true, err
		}
	}
	return &UpdateResult{Endpoint: e, DryRun: req.DryRun}, true, nil
}

// asyncDrainTimeout is how long a draining replica of e may finish its
// requests: an asynchronous request may take the longest invocation
// timeout any request can ask for (0: the controller's default applies).
func asyncDrainTimeout(e *endpoint.Endpoint) time.Duration {
	if e.Spec.Async == nil {
		return 0
	}
	return endpoint.MaxAsyncTimeout + 30*time.Second
}

// fillAsyncQueue gives the asynchronous endpoints among sts their queue.
func (c *Controller) fillAsyncQueue(ctx context.Context, sts []*Status) error {
	var counts map[string]store.AsyncCounts
	for _, st := range sts {
		if st.Spec.Async == nil {
			continue
		}
		if counts == nil {
			var err error
			if counts, err = c.cfg.Store.AsyncBacklog(ctx); err != nil {
				return err
			}
		}
		q := counts[st.Name]
		st.AsyncQueue = &q
	}
	return nil
}

// asyncBacklog is an endpoint's backlog (queued + running), the sample of
// the backlog autoscaling metric; ok is false when it could not be
// counted, and then no sample is taken: a zero recorded for a database
// hiccup would read as an idle queue and could scale the endpoint to zero
// under load.
func (c *Controller) asyncBacklog(ctx context.Context, name string) (backlog float64, ok bool) {
	counts, err := c.cfg.Store.AsyncBacklog(ctx)
	if err != nil {
		c.log.Warn("count async backlog; no autoscaling sample this tick", "endpoint", name, "err", err)
		return 0, false
	}
	return float64(counts[name].Backlog()), true
}
