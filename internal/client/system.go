package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/hpcml/hpcml/internal/job"
)

// Capacity returns what the backend can run at once and what running jobs hold.
func (c *Client) Capacity(ctx context.Context) (*job.Capacity, error) {
	var out job.Capacity
	if err := c.do(ctx, http.MethodGet, "/api/v1/capacity", nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("capacity: %w", err)
	}
	return &out, nil
}

// Health returns nil if the server is up. It needs no token, so it tells a
// server that is down from a token that is wrong.
func (c *Client) Health(ctx context.Context) error {
	if err := c.do(ctx, http.MethodGet, "/healthz", nil, nil, nil, 0); err != nil {
		return fmt.Errorf("health: %w", err)
	}
	return nil
}
