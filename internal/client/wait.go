package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

// DefaultWaitPoll is how long each long-poll of WaitJob asks the server
// to hold the request; the server caps it at 60s.
const DefaultWaitPoll = 30 * time.Second

// Bounds on how WatchJob paces itself when the server answers early (an
// older server that ignores wait) or is briefly gone (a restart).
const (
	minPollGap       = 200 * time.Millisecond
	maxPollGap       = 5 * time.Second
	maxTransientErrs = 10
)

// WaitJob blocks until the job is in a terminal state and returns it.
func (c *Client) WaitJob(ctx context.Context, id string) (*job.Job, error) {
	return c.WatchJob(ctx, id, DefaultWaitPoll, nil)
}

// WatchJob is WaitJob with a choice of long-poll length and a callback
// that sees the job at once and then after every poll (e.g. to show its
// state while waiting). A shorter poll shows state changes sooner at the
// cost of more requests.
func (c *Client) WatchJob(ctx context.Context, id string, poll time.Duration, fn func(*job.Job)) (*job.Job, error) {
	var j *job.Job
	// With a callback, the first request does not wait, so that the
	// caller can show the job's state straight away.
	err := longPoll(ctx, poll, fn != nil, func(wait time.Duration) (bool, error) {
		got, err := c.getJob(ctx, id, wait)
		if err != nil {
			return false, err
		}
		j = got
		if fn != nil {
			fn(j)
		}
		return j.State.Terminal(), nil
	})
	if err != nil {
		return nil, fmt.Errorf("wait for job %s: %w", id, err)
	}
	return j, nil
}

// WaitJobs blocks until every one of the jobs has ended and returns them
// in the order of ids: one long poll for up to idsPerRequest jobs at a
// time (GET /api/v1/jobs?ids=...&wait=...), each asking again only for
// those still active. An id that names no job fails it (IsNotFound).
func (c *Client) WaitJobs(ctx context.Context, ids []string) ([]*job.Job, error) {
	out := make([]*job.Job, len(ids))
	for from := 0; from < len(ids); from += idsPerRequest {
		chunk := ids[from:min(from+idsPerRequest, len(ids))]
		pending := make([]int, len(chunk)) // indices into chunk still active
		for i := range pending {
			pending[i] = i
		}
		err := longPoll(ctx, DefaultWaitPoll, false, func(wait time.Duration) (bool, error) {
			ask := make([]string, len(pending))
			for k, i := range pending {
				ask[k] = chunk[i]
			}
			got, err := c.jobsByID(ctx, ask, wait)
			if err != nil {
				return false, err
			}
			still := pending[:0]
			for k, i := range pending {
				out[from+i] = got[k]
				if !got[k].State.Terminal() {
					still = append(still, i)
				}
			}
			pending = still
			return len(pending) == 0, nil
		})
		if err != nil {
			return nil, fmt.Errorf("wait for jobs: %w", err)
		}
	}
	return out, nil
}

// idsPerRequest keeps a request's URL under 4 KB (proxies refuse long
// ones: nginx's default is 8 KB); the server takes up to 1,000.
const idsPerRequest = 250

// longPoll calls fetch with the wait to ask of the server until it says
// done. If the server held a request for less than half the poll (an
// older one that ignores wait), the next waits for a gap that doubles.
// A server restart must not fail a wait (a killed server resumes its
// jobs), so unreachable-server and 502/503/504 answers are retried with
// backoff; only after maxTransientErrs in a row is the error returned.
// With first, the first request does not wait.
func longPoll(ctx context.Context, poll time.Duration, first bool, fetch func(wait time.Duration) (done bool, err error)) error {
	if poll <= 0 {
		poll = DefaultWaitPoll
	}
	gap := minPollGap
	failures := 0
	wait := poll
	if first {
		wait = 0
	}
	for {
		start := time.Now()
		done, err := fetch(wait)
		asked := wait
		wait = poll
		switch {
		case err == nil:
			failures = 0
			if done {
				return nil
			}
			// A server that held the request for most of the poll is
			// doing the waiting; one that answered at once is not, and
			// must not be asked again in a tight loop.
			if asked == 0 || time.Since(start) >= poll/2 {
				gap = minPollGap
				continue
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case transient(err) && failures < maxTransientErrs:
			failures++
		default:
			return err
		}
		if err := sleep(ctx, gap); err != nil {
			return err
		}
		gap = min(gap*2, maxPollGap)
	}
}

// transient reports whether an error may go away by itself.
func transient(err error) bool {
	var ue *UnreachableError
	if errors.As(err, &ue) {
		return true
	}
	var ae *APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
	}
	return false
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
