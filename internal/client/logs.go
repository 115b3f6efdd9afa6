package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// LogOptions chooses which log Logs returns.
type LogOptions struct {
	// Stream is "stdout" (the default) or "stderr".
	Stream string
	// Attempt is the attempt number; 0 means the latest.
	Attempt int
	// Follow keeps the stream open until the attempt ends.
	Follow bool
}

// Logs opens a job's log. The caller must close the reader. Without
// Follow, only the wait for the response headers is bounded by the
// client's timeout, since a large log may take longer than that to read;
// with Follow nothing but ctx bounds it.
func (c *Client) Logs(ctx context.Context, id string, opts LogOptions) (io.ReadCloser, error) {
	p, err := jobPath(id)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if opts.Stream != "" {
		q.Set("stream", opts.Stream)
	}
	if opts.Attempt > 0 {
		q.Set("attempt", strconv.Itoa(opts.Attempt))
	}
	if opts.Follow {
		q.Set("follow", "true")
	}
	return c.openStream(ctx, p+"/logs", q, "text/plain", "logs of job "+id, !opts.Follow)
}

// openStream sends a GET whose body the caller reads at its own pace and
// must close. With boundHeaders only the wait for the response headers is
// bounded by the client's timeout (a large body may take longer than that
// to read); otherwise nothing but ctx bounds it. A failure to get an
// answer is wrapped as what's.
func (c *Client) openStream(ctx context.Context, path string, q url.Values, accept, what string, boundHeaders bool) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	var headerTimer *time.Timer
	if boundHeaders {
		headerTimer = time.AfterFunc(c.timeout, cancel)
	}
	req, err := c.newRequest(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", accept)
	resp, err := c.send(req)
	if headerTimer != nil && !headerTimer.Stop() {
		// The timer fired: ctx is cancelled, so whatever arrived is
		// unusable; report the timeout it was rather than "canceled".
		if err == nil {
			resp.Body.Close()
		}
		err = fmt.Errorf("no answer from %s in %s: %w", c.BaseURL(), c.timeout, context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}, nil
}

// cancelOnClose releases the request's context when the body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
