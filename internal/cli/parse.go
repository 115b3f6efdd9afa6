package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hpcml/hpcml/internal/bytesize"
	"github.com/hpcml/hpcml/internal/job"
)

// parseMemoryMB reads a memory size as Slurm's --mem does: a bare number
// is MB, and K, M, G, T are binary units (bytesize), so "4G" is 4096 MB.
// Fractions round up to a whole MB: asking for a little more is safe, a
// little less may get the job killed.
func parseMemoryMB(s string) (int64, error) {
	n, err := bytesize.Parse(s, bytesize.MiB)
	if err != nil {
		return 0, err
	}
	return (n + int64(bytesize.MiB) - 1) / int64(bytesize.MiB), nil
}

// parseTimeLimit reads "1h30m", "90s" or a number of seconds, as a spec
// file's time_limit does.
func parseTimeLimit(s string) (job.Duration, error) {
	var d job.Duration
	if err := d.UnmarshalJSON([]byte(strconv.Quote(strings.TrimSpace(s)))); err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid time limit %q: must not be negative", s)
	}
	return d, nil
}

// parseEnv reads --env values: K=V, or a bare K to pass on this shell's
// value of K (as `docker run -e K` does).
func parseEnv(vals []string, lookup func(string) (string, bool)) (map[string]string, error) {
	out := make(map[string]string, len(vals))
	for _, kv := range vals {
		k, v, ok := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("--env %q: want NAME=VALUE or NAME", kv)
		}
		if !ok {
			if v, ok = lookup(k); !ok {
				return nil, fmt.Errorf("--env %s: %s is not set in this shell (use %s=VALUE)", k, k, k)
			}
		}
		out[k] = v
	}
	return out, nil
}

// parseTags reads --tag K=V values.
func parseTags(vals []string) (map[string]string, error) {
	out := make(map[string]string, len(vals))
	for _, kv := range vals {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--tag %q: want KEY=VALUE", kv)
		}
		out[k] = v
	}
	return out, nil
}

// parseInputs reads --input URL=PATH. The split is at the last '=',
// because URLs may carry '=' in their query ("s3://b/k?region=x") while
// paths inside the job dir rarely do.
func parseInputs(vals []string, mode string) ([]job.Input, error) {
	out := make([]job.Input, 0, len(vals))
	for _, v := range vals {
		i := strings.LastIndexByte(v, '=')
		if i <= 0 || i == len(v)-1 {
			if mode == job.InputLazy {
				return nil, fmt.Errorf("--lazy-input %q: want URL=PATH (e.g. dataset://images@3=data)", v)
			}
			return nil, fmt.Errorf("--input %q: want URL=PATH (e.g. s3://bucket/data/=data)", v)
		}
		out = append(out, job.Input{URL: v[:i], Path: v[i+1:], Mode: mode})
	}
	return out, nil
}

// parseOutputs reads PATH=URL stage-out values, split at the first '='
// for the same reason parseInputs splits at the last.
func parseOutputs(vals []string) ([]job.Output, error) {
	out := make([]job.Output, 0, len(vals))
	for _, v := range vals {
		p, u, ok := strings.Cut(v, "=")
		if !ok || p == "" || u == "" {
			return nil, fmt.Errorf("--output %q: want PATH=URL (e.g. results/=s3://bucket/run1/)", v)
		}
		out = append(out, job.Output{Path: p, URL: u})
	}
	return out, nil
}

// parseSignals checks --retry-signals names and writes them as "SIGKILL".
func parseSignals(vals []string) ([]string, error) {
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		n, ok := job.SignalNumber(v)
		if !ok {
			return nil, fmt.Errorf("--retry-signals: %q is not a signal", v)
		}
		out = append(out, job.SignalName(n))
	}
	return out, nil
}
