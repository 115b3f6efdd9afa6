package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hpcml/hpcml/internal/deploy"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
)

// CreateEndpoint creates an endpoint; its replicas start at once.
func (c *Client) CreateEndpoint(ctx context.Context, req deploy.CreateRequest) (*deploy.Status, error) {
	var out deploy.Status
	if err := c.do(ctx, http.MethodPost, "/api/v1/endpoints", nil, req, &out, 0); err != nil {
		return nil, fmt.Errorf("create endpoint %s: %w", req.Name, err)
	}
	return &out, nil
}

// ListEndpoints lists endpoints with their variants' status.
func (c *Client) ListEndpoints(ctx context.Context) ([]*deploy.Status, error) {
	var out []*deploy.Status
	if err := c.do(ctx, http.MethodGet, "/api/v1/endpoints", nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	return out, nil
}

// GetEndpoint reads an endpoint with its replicas, traffic, running
// deployment and scale events.
func (c *Client) GetEndpoint(ctx context.Context, name string) (*deploy.Status, error) {
	var out deploy.Status
	if err := c.do(ctx, http.MethodGet, "/api/v1/endpoints/"+url.PathEscape(name), nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("get endpoint %s: %w", name, err)
	}
	return &out, nil
}

// UpdateEndpoint starts a deployment or changes an endpoint in place.
func (c *Client) UpdateEndpoint(ctx context.Context, name string, req deploy.UpdateRequest) (*deploy.UpdateResult, error) {
	var out deploy.UpdateResult
	if err := c.do(ctx, http.MethodPatch, "/api/v1/endpoints/"+url.PathEscape(name), nil, req, &out, 0); err != nil {
		return nil, fmt.Errorf("update endpoint %s: %w", name, err)
	}
	return &out, nil
}

// DeleteEndpoint deletes an endpoint (its replicas drain and stop).
func (c *Client) DeleteEndpoint(ctx context.Context, name string) (*endpoint.Endpoint, error) {
	var out endpoint.Endpoint
	if err := c.do(ctx, http.MethodDelete, "/api/v1/endpoints/"+url.PathEscape(name), nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("delete endpoint %s: %w", name, err)
	}
	return &out, nil
}

// EndpointHistory lists an endpoint's deployments, newest first.
func (c *Client) EndpointHistory(ctx context.Context, name string, limit int) ([]*endpoint.Deployment, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out []*endpoint.Deployment
	if err := c.do(ctx, http.MethodGet, "/api/v1/endpoints/"+url.PathEscape(name)+"/deployments", q, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("history of endpoint %s: %w", name, err)
	}
	return out, nil
}

// Invocation is a call through the gateway and its answer.
type Invocation struct {
	Status  int
	Header  http.Header
	Body    []byte
	Variant string // the variant that answered
}

// InvokeEndpoint sends body to the gateway: path is "invocations" or an
// OIP path ("v2/models/NAME/infer"); variant, if not empty, targets one.
// Any answer, error statuses included, is returned as it came.
func (c *Client) InvokeEndpoint(ctx context.Context, name, path, contentType string, body []byte, variant string) (*Invocation, error) {
	return c.InvokeEndpointTo(ctx, name, path, contentType, body, Target{Variant: variant})
}

// Target is what a request to an endpoint targets besides its path.
type Target struct {
	// Variant, if not empty, targets one production variant.
	Variant string
	// Model is a multi-model endpoint's target model (NAME, NAME:VERSION
	// or NAME:ALIAS), sent as X-Hpcml-Target-Model.
	Model string
}

// InvokeEndpointTo is InvokeEndpoint with a Target.
func (c *Client) InvokeEndpointTo(ctx context.Context, name, path, contentType string, body []byte, t Target) (*Invocation, error) {
	method := http.MethodPost
	if body == nil {
		method = http.MethodGet
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := c.endpoint("/endpoints/"+url.PathEscape(name)+"/"+strings.TrimPrefix(path, "/"), nil)
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if t.Variant != "" {
		req.Header.Set(deploy.HeaderTargetVariant, t.Variant)
	}
	if t.Model != "" {
		req.Header.Set(deploy.HeaderTargetModel, t.Model)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(req, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("read answer of endpoint %s: %w", name, err)
	}
	return &Invocation{Status: resp.StatusCode, Header: resp.Header, Body: data, Variant: resp.Header.Get(deploy.HeaderInvokedVariant)}, nil
}
