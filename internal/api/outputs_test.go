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
		{Path: "model", URL: "models/m/"},
		{Path: "big.bin", URL: "s3://other/big.bin?endpoint=http://127.0.0.1:9"},
	}}}
	for _, c := range []struct {
		path, key string
		status    int
	}{
		{"report.json", "transfers/sync-1/report.json", 0},
		{"out/a/b.csv", "results/run1/a/b.csv", 0},
		{"model/weights.bin", "models/m/weights.bin", 0},
		{"out", "", http.StatusBadRequest},
		{"model", "", http.StatusBadRequest},
		{"big.bin", "", http.StatusConflict},
		{"other.json", "", http.StatusNotFound},
		{"outside/x", "", http.StatusNotFound},
		{"report.jsonx", "", http.StatusNotFound},
	} {
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
