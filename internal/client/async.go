package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/deploy"
)

// AsyncOptions are an asynchronous invocation's settings.
type AsyncOptions struct {
	ContentType string
	Accept      string
	// InputLocation names the payload in storage (a URL or a key in the
	// server's storage) instead of a body.
	InputLocation string
	// Webhook overrides the endpoint's.
	Webhook string
	// Timeout is the request's processing limit (0: the endpoint's).
	Timeout time.Duration
	// InferenceID, if set, is the request's id (the server makes one
	// otherwise): submitting it again is refused with 409, so a retry
	// after a lost answer cannot queue the request twice.
	InferenceID string
}

// InvokeAsync queues a request on an asynchronous endpoint through the
// gateway: body (nil with an InputLocation) is the payload. It returns
// once the request is stored (202).
func (c *Client) InvokeAsync(ctx context.Context, name string, body io.Reader, o AsyncOptions) (*deploy.AsyncAccepted, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if body == nil {
		body = http.NoBody
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint(asyncPath(name), nil), body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	h := req.Header
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	if o.ContentType != "" {
		h.Set("Content-Type", o.ContentType)
	}
	if o.Accept != "" {
		h.Set("Accept", o.Accept)
	}
	if o.InputLocation != "" {
		h.Set(deploy.HeaderInputLocation, o.InputLocation)
	}
	if o.Webhook != "" {
		h.Set(deploy.HeaderWebhook, o.Webhook)
	}
	if o.InferenceID != "" {
		h.Set(deploy.HeaderInferenceID, o.InferenceID)
	}
	if o.Timeout > 0 {
		h.Set(deploy.HeaderInvocationTimeout, strconv.Itoa(int((o.Timeout+time.Second-1)/time.Second)))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(req, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return nil, fmt.Errorf("invoke endpoint %s asynchronously: %w", name, gatewayError(resp))
	}
	var out deploy.AsyncAccepted
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxErrorBytes)).Decode(&out); err != nil {
		return nil, fmt.Errorf("invoke endpoint %s asynchronously: decode answer: %w", name, err)
	}
	return &out, nil
}

// GetAsync reads an asynchronous request's status.
func (c *Client) GetAsync(ctx context.Context, name, id string) (*deploy.AsyncStatus, error) {
	var out deploy.AsyncStatus
	if err := c.do(ctx, http.MethodGet, "/api/v1"+asyncPath(name)+"/"+url.PathEscape(id), nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("get asynchronous request %s of %s: %w", id, name, err)
	}
	return &out, nil
}

// ListAsync lists an asynchronous endpoint's requests, newest first
// (status "" for all, limit 0 for the server's default).
func (c *Client) ListAsync(ctx context.Context, name, status string, limit int) ([]*deploy.AsyncStatus, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out []*deploy.AsyncStatus
	if err := c.do(ctx, http.MethodGet, "/api/v1"+asyncPath(name), q, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("list asynchronous requests of %s: %w", name, err)
	}
	return out, nil
}

// AsyncOutput streams a succeeded request's result object to w.
func (c *Client) AsyncOutput(ctx context.Context, name, id string, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint(asyncPath(name)+"/"+url.PathEscape(id)+"/output", nil), nil)
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, c.transportError(req, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("output of asynchronous request %s: %w", id, gatewayError(resp))
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("read output of %s: %w", id, err)
	}
	return n, nil
}

func asyncPath(name string) string {
	return "/endpoints/" + url.PathEscape(name) + "/async-invocations"
}

// gatewayError reads the gateway's {"error": "..."} into an *APIError.
func gatewayError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	var doc struct {
		Error string `json:"error"`
	}
	ae := &APIError{Status: resp.StatusCode, Code: fmt.Sprintf("http_%d", resp.StatusCode)}
	if json.Unmarshal(body, &doc) == nil && doc.Error != "" {
		ae.Message = doc.Error
	} else {
		ae.Message = strings.TrimSpace(string(body))
	}
	return ae
}
