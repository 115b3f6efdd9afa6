package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultTimeout bounds a call that returns a whole document. It is
// generous because a loaded server on a 2-core machine can be slow, yet
// short enough that a hung server does not hang a script.
const DefaultTimeout = 30 * time.Second

// maxResponseBytes bounds a decoded JSON document: a list of 1000 jobs with
// their specs is a few MB, so this only stops a runaway server.
const maxResponseBytes = 256 << 20

// Client talks to one hpcml server. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	token   string
	hc      *http.Client
	timeout time.Duration
}

// Option changes how New builds a Client.
type Option func(*Client)

// WithHTTPClient makes the client send its requests through hc (its
// Timeout should be zero: the client sets deadlines per call, and a
// client-wide timeout would cut log streams).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTimeout sets the deadline of calls that return a whole document.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// New returns a client of the server at baseURL ("http://127.0.0.1:8080";
// a bare "host:port" means http) that authenticates with token.
func New(baseURL, token string, opts ...Option) *Client {
	c := &Client{
		base:    parseBase(baseURL),
		token:   token,
		timeout: DefaultTimeout,
	}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		// A transport of our own rather than http.DefaultTransport, so
		// that nothing else in the process shares (or mutates) it.
		c.hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return c
}

// BaseURL is the server's address as the client uses it.
func (c *Client) BaseURL() string { return c.base.String() }

// parseBase accepts what users type: with or without scheme and trailing
// slash. An unparsable URL is kept as given so that the first request
// fails with an error that names it.
func parseBase(raw string) *url.URL {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		raw = DefaultServer
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return &url.URL{Opaque: raw}
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u
}

// endpoint joins the base URL, an API path and a query. path is already
// escaped: callers escape user input (job ids, queue names) with
// url.PathEscape as they build it.
func (c *Client) endpoint(path string, q url.Values) string {
	s := c.base.String() + path
	if len(q) > 0 {
		s += "?" + q.Encode()
	}
	return s
}

// newRequest builds a request with auth and, if body is not nil, a JSON body.
func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(path, q), rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "hpcml-client")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// do sends a request that returns a JSON document and decodes it into out
// (unless out is nil). timeout 0 means the client's default.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = c.timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := c.newRequest(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		// Drain so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
		return nil
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes))
	if err := dec.Decode(out); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("%s %s: %w", method, req.URL.Path, ctxErr)
		}
		return fmt.Errorf("%s %s: decode response: %w", method, req.URL.Path, err)
	}
	return nil
}

// send performs req and turns transport failures and non-2xx answers into
// errors; on success the caller owns resp.Body.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.transportError(req, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}
