package api

import (
	"errors"
	"net/http"
	"testing"

	"github.com/hpcml/hpcml/internal/job"
)

// TestOutputKey: which stored object a request for a job's output names:
// a declared file output, a file under a declared directory output; an
// output sent elsewhere is 409, a directory itself 400, anything else
// 404.
func TestOutputKey(t *testing.T) {
	j := &job.Job{ID: 3, Spec: job.Spec{Outputs: []job.Output{
		{Path: "report.json", URL: "transfers/sync-1/report.json"},
		{Path: "out/", URL: "results/run1/"},
		{Path: "out/deep", URL: "results/deep/"}, // the longest directory wins
		{Path: "model", URL: "models/m/"},        // a file or a directory: the spec does not say
		{Path: "big.bin", URL: "s3://other/big.bin?endpoint=http://127.0.0.1:9"},
		{Path: "file-out", URL: "file:///srv/elsewhere/"},
	}}}
	whole := &job.Job{ID: 4, Spec: job.Spec{Outputs: []job.Output{{Path: ".", URL: "results/all/"}}}}
	for _, c := range []struct {
		j         *job.Job
		path, key string
		status    int
	}{
		{j, "report.json", "transfers/sync-1/report.json", 0},
		{j, "out/a/b.csv", "results/run1/a/b.csv", 0},
		{j, "out/deep/x.bin", "results/deep/x.bin", 0},
		{j, "model/weights.bin", "models/m/weights.bin", 0},
		{j, "model", "models/m/model", 0}, // a file sent to a prefix lands under its name
		{j, "out", "results/run1/out", 0},
		{j, "big.bin", "", http.StatusConflict},
		{j, "file-out/x", "", http.StatusConflict},
		{j, "other.json", "", http.StatusNotFound},
		{j, "outside/x", "", http.StatusNotFound},
		{j, "report.jsonx", "", http.StatusNotFound},
		{whole, "a/b.txt", "results/all/a/b.txt", 0},
	} {
		j := c.j
		key, err := outputKey(j, c.path)
		var ae *apiError
		switch {
		case c.status == 0 && (err != nil || key != c.key):
			t.Errorf("%s: key %q (%v), want %q", c.path, key, err, c.key)
		case c.status != 0 && (!errors.As(err, &ae) || ae.status != c.status):
			t.Errorf("%s: key %q, error %v; want status %d", c.path, key, err, c.status)
		}
	}
}
