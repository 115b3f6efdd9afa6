package job

import (
	"fmt"
	"slices"
	"time"
)

// Result is what the job wrapper reports when an attempt ends.
type Result struct {
	StartedAt   time.Time `json:"started_at"`
	EndedAt     time.Time `json:"ended_at"`
	ExitCode    *int      `json:"exit_code,omitempty"`
	Signal      string    `json:"signal,omitempty"`
	CPUSeconds  float64   `json:"cpu_seconds"`
	MaxRSSBytes int64     `json:"max_rss_bytes"`
	TimedOut    bool      `json:"timed_out,omitempty"`
	Cancelled   bool      `json:"cancelled,omitempty"`
	// Error is why the attempt failed outside the command: it could not be
	// started, staging failed, or the wrapper was lost.
	Error string `json:"error,omitempty"`
	// NodeLost: the wrapper died without reporting (the node went away).
	NodeLost bool `json:"node_lost,omitempty"`
	// Interrupted: the machine took the attempt away (node failure,
	// preemption); it counts in the job's interruptions and is retried
	// like a lost node.
	Interrupted bool `json:"interrupted,omitempty"`
	// NeverStarted: the wrapper was lost before it ran anything, so the
	// attempt may be launched again without running anything twice.
	NeverStarted bool `json:"never_started,omitempty"`
	// Dataset objects staged from the node's cache, and fetched into it.
	CacheHits   int64  `json:"cache_hits,omitempty"`
	CacheMisses int64  `json:"cache_misses,omitempty"`
	StdoutURL   string `json:"stdout_url,omitempty"`
	StderrURL   string `json:"stderr_url,omitempty"`
}

// Outcome is the state and reason an attempt's result leads to, before
// retries are considered.
func (r *Result) Outcome() (State, string) {
	switch {
	case r.Cancelled:
		return Cancelled, "cancelled by user"
	case r.TimedOut:
		return Timeout, "time limit reached"
	case r.NodeLost:
		return Failed, "node lost: " + r.Error
	case r.Error != "":
		return Failed, r.Error
	case r.Signal != "":
		return Failed, "killed by " + r.Signal
	case r.ExitCode != nil && *r.ExitCode != 0:
		return Failed, fmt.Sprintf("exit code %d", *r.ExitCode)
	}
	return Succeeded, ""
}

// ShouldRetry decides whether a failed attempt is tried again.
func (p RetryPolicy) ShouldRetry(attempt int, r *Result) bool {
	state, _ := r.Outcome()
	if state != Failed || attempt >= p.Attempts {
		return false
	}
	if len(p.OnExitCodes) == 0 && len(p.OnSignals) == 0 && !p.OnNodeLoss {
		return true
	}
	switch {
	case r.NodeLost:
		return p.OnNodeLoss
	case r.Signal != "":
		return slices.Contains(p.OnSignals, r.Signal)
	case r.ExitCode != nil:
		return slices.Contains(p.OnExitCodes, *r.ExitCode)
	}
	return false
}
