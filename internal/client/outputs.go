package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	pathpkg "path"
	"path/filepath"
	"strings"
	"time"
)

// JobOutput opens a file job id stored as an output in the server's
// storage (path as the job's spec names it, or a file under an output
// directory). The caller must close the reader. Only the wait for the
// response headers is bounded by the client's timeout: a large output
// may take longer than that to read.
func (c *Client) JobOutput(ctx context.Context, id, path string) (io.ReadCloser, error) {
	p, err := jobPath(id)
	if err != nil {
		return nil, err
	}
	// Refused here, not sent: the server's router would redirect a path
	// with . or .. elements to wherever it leads — another job's.
	if path == "." || !filepath.IsLocal(path) || pathpkg.Clean(path) != path {
		return nil, fmt.Errorf("output path %q: a relative path without . or .. elements", path)
	}
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	ctx, cancel := context.WithCancel(ctx)
	headerTimer := time.AfterFunc(c.timeout, cancel)
	req, err := c.newRequest(ctx, http.MethodGet, p+"/outputs/"+strings.Join(segs, "/"), nil, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", "*/*")
	resp, err := c.send(req)
	if !headerTimer.Stop() {
		if err == nil {
			resp.Body.Close()
		}
		err = fmt.Errorf("no answer from %s in %s: %w", c.BaseURL(), c.timeout, context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("output %s of job %s: %w", path, id, err)
	}
	return &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}, nil
}
