package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/hpcml/hpcml/internal/job"
)

// CreateQueue creates a queue and returns it as stored.
func (c *Client) CreateQueue(ctx context.Context, q *job.Queue) (*job.Queue, error) {
	var out job.Queue
	if err := c.do(ctx, http.MethodPost, "/api/v1/queues", nil, q, &out, 0); err != nil {
		return nil, fmt.Errorf("create queue %s: %w", q.Name, err)
	}
	return &out, nil
}

// UpdateQueue changes some settings of a queue and returns it as it now is.
func (c *Client) UpdateQueue(ctx context.Context, name string, p job.QueuePatch) (*job.Queue, error) {
	if name == "" {
		return nil, fmt.Errorf("update queue: no queue name")
	}
	var out job.Queue
	if err := c.do(ctx, http.MethodPatch, "/api/v1/queues/"+url.PathEscape(name), nil, p, &out, 0); err != nil {
		return nil, fmt.Errorf("update queue %s: %w", name, err)
	}
	return &out, nil
}

// GetQueue returns a queue with its job counts by state.
func (c *Client) GetQueue(ctx context.Context, name string) (*job.Queue, error) {
	if name == "" {
		return nil, fmt.Errorf("get queue: no queue name")
	}
	var out job.Queue
	if err := c.do(ctx, http.MethodGet, "/api/v1/queues/"+url.PathEscape(name), nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("get queue %s: %w", name, err)
	}
	return &out, nil
}

// ListQueues returns every queue.
func (c *Client) ListQueues(ctx context.Context) ([]*job.Queue, error) {
	var out struct {
		Queues []*job.Queue `json:"queues"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v1/queues", nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	return out.Queues, nil
}
