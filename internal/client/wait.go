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
//
// A server restart must not fail a wait (a killed server resumes its
// jobs), so unreachable-server and 502/503/504 answers are retried with
// backoff; only after maxTransientErrs in a row is the error returned.
func (c *Client) WatchJob(ctx context.Context, id string, poll time.Duration, fn func(*job.Job)) (*job.Job, error) {
	if poll <= 0 {
		poll = DefaultWaitPoll
	}
	gap := minPollGap
	failures := 0
	// With a callback, the first request does not wait, so that the
	// caller can show the job's state straight away.
	wait := poll
	if fn != nil {
		wait = 0
	}
	for {
		start := time.Now()
		j, err := c.getJob(ctx, id, wait)
		first := wait == 0
		wait = poll
		switch {
		case err == nil:
			failures = 0
			if fn != nil {
				fn(j)
			}
			if j.State.Terminal() {
				return j, nil
			}
			// A server that held the request for most of the poll is
			// doing the waiting; one that answered at once is not, and
			// must not be asked again in a tight loop.
			if first || time.Since(start) >= poll/2 {
				gap = minPollGap
				continue
			}
		case ctx.Err() != nil:
			return nil, fmt.Errorf("wait for job %s: %w", id, ctx.Err())
		case transient(err) && failures < maxTransientErrs:
			failures++
		default:
			return nil, fmt.Errorf("wait for job %s: %w", id, err)
		}
		if err := sleep(ctx, gap); err != nil {
			return nil, fmt.Errorf("wait for job %s: %w", id, err)
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
