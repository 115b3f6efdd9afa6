package client

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/hpcml/hpcml/internal/job"
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
	if err := job.CheckOutputPath(path); err != nil {
		return nil, err
	}
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return c.openStream(ctx, p+"/outputs/"+strings.Join(segs, "/"), nil, "*/*", fmt.Sprintf("output %s of job %s", path, id), true)
}
