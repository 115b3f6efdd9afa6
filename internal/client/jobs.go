package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

// SubmitJob submits spec; for an array job it returns the parent.
func (c *Client) SubmitJob(ctx context.Context, spec *job.Spec) (*job.Job, error) {
	var j job.Job
	if err := c.do(ctx, http.MethodPost, "/api/v1/jobs", nil, spec, &j, 0); err != nil {
		return nil, fmt.Errorf("submit job: %w", err)
	}
	return &j, nil
}

// GetJob returns a job ("42") or an array task ("41_3") with its attempts.
func (c *Client) GetJob(ctx context.Context, id string) (*job.Job, error) {
	return c.getJob(ctx, id, 0)
}

// getJob asks for a job, with wait > 0 letting the server hold the answer
// until the job ends or wait passes.
func (c *Client) getJob(ctx context.Context, id string, wait time.Duration) (*job.Job, error) {
	p, err := jobPath(id)
	if err != nil {
		return nil, err
	}
	var q url.Values
	timeout := c.timeout
	if wait > 0 {
		q = url.Values{"wait": {wait.String()}}
		timeout += wait
	}
	var j job.Job
	if err := c.do(ctx, http.MethodGet, p, q, nil, &j, timeout); err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	return &j, nil
}

// jobsByID gets the jobs ids names, in that order; with wait > 0 the
// server answers once all have ended or wait is over.
func (c *Client) jobsByID(ctx context.Context, ids []string, wait time.Duration) ([]*job.Job, error) {
	for _, id := range ids {
		if _, err := jobPath(id); err != nil {
			return nil, err
		}
	}
	q := url.Values{"ids": {strings.Join(ids, ",")}}
	timeout := c.timeout
	if wait > 0 {
		q.Set("wait", wait.String())
		timeout += wait
	}
	var out struct {
		Jobs []*job.Job `json:"jobs"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v1/jobs", q, nil, &out, timeout); err != nil {
		return nil, err
	}
	// A server from before ?ids= answers with its newest jobs instead.
	if len(out.Jobs) != len(ids) {
		return nil, fmt.Errorf("asked for %d jobs by id, got %d (a server that lists jobs by id is needed)", len(ids), len(out.Jobs))
	}
	for i, j := range out.Jobs {
		if !isJob(j, ids[i]) {
			return nil, fmt.Errorf("asked for job %s, got another (a server that lists jobs by id is needed)", ids[i])
		}
	}
	return out.Jobs, nil
}

// isJob reports whether j is the job raw names ("42", or "41_3" for a
// task, which its own id names too).
func isJob(j *job.Job, raw string) bool {
	n, index, isTask, err := job.ParseID(raw)
	switch {
	case err != nil || j == nil:
		return false
	case isTask:
		return j.ParentID == n && j.ArrayIndex != nil && *j.ArrayIndex == index
	}
	return j.ID == n
}

// ListOptions filters ListJobs. Zero values mean no filter.
type ListOptions struct {
	State string
	Queue string
	// Parent lists the tasks of this array job.
	Parent int64
	// Limit caps the number of jobs (server default 100, at most 1000).
	Limit int
	// Before pages backwards: only jobs with a smaller id.
	Before int64
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	if o.State != "" {
		q.Set("state", o.State)
	}
	if o.Queue != "" {
		q.Set("queue", o.Queue)
	}
	if o.Parent > 0 {
		q.Set("parent", strconv.FormatInt(o.Parent, 10))
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Before > 0 {
		q.Set("before", strconv.FormatInt(o.Before, 10))
	}
	return q
}

// ListJobs returns jobs, newest first.
func (c *Client) ListJobs(ctx context.Context, filter ListOptions) ([]*job.Job, error) {
	var out struct {
		Jobs []*job.Job `json:"jobs"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v1/jobs", filter.query(), nil, &out, 0); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return out.Jobs, nil
}

// CancelJob asks the server to cancel a job (every task, for an array
// parent) and returns the job as it is now: cancellation is asynchronous,
// so its state is usually not yet CANCELLED.
func (c *Client) CancelJob(ctx context.Context, id string) (*job.Job, error) {
	p, err := jobPath(id)
	if err != nil {
		return nil, err
	}
	var j job.Job
	if err := c.do(ctx, http.MethodPost, p+"/cancel", nil, nil, &j, 0); err != nil {
		return nil, fmt.Errorf("cancel job %s: %w", id, err)
	}
	return &j, nil
}

// jobPath validates a job id before it goes into a URL, so that a typo
// gets a clear error here rather than a confusing 404 (or another route).
func jobPath(id string) (string, error) {
	if _, _, _, err := job.ParseID(id); err != nil {
		return "", err
	}
	return "/api/v1/jobs/" + url.PathEscape(id), nil
}
