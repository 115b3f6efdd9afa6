package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/hpcml/hpcml/internal/analysis"
)

// PutProfileReport stores a profile report under its id.
func (c *Client) PutProfileReport(ctx context.Context, r *analysis.ProfileReport) (*analysis.Summary, error) {
	var out analysis.Summary
	if err := c.do(ctx, http.MethodPut, "/api/v1/reports/"+analysis.KindProfile+"/"+url.PathEscape(r.ID), nil, r, &out, 0); err != nil {
		return nil, fmt.Errorf("store report %s: %w", r.ID, err)
	}
	return &out, nil
}

// GetProfileReport reads a stored profile report.
func (c *Client) GetProfileReport(ctx context.Context, id string) (*analysis.ProfileReport, error) {
	var out analysis.ProfileReport
	if err := c.do(ctx, http.MethodGet, "/api/v1/reports/"+analysis.KindProfile+"/"+url.PathEscape(id), nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("get report %s: %w", id, err)
	}
	return &out, nil
}

// ListReports lists stored profile reports, newest first.
func (c *Client) ListReports(ctx context.Context) ([]analysis.Summary, error) {
	var out []analysis.Summary
	if err := c.do(ctx, http.MethodGet, "/api/v1/reports", url.Values{"kind": {analysis.KindProfile}}, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("list reports: %w", err)
	}
	return out, nil
}
