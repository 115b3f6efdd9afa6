// Package autoscale decides how many replicas an endpoint variant should
// run: target tracking as in AWS Application Auto Scaling, on the
// variant's in-flight requests or requests per second per replica. It
// does no I/O and keeps no state: everything is in its arguments.
//
// # How the controller uses it
//
// Every tick (about once a second) the controller samples the variant's
// total metric (the sum over its ready replicas of the requests in flight
// at that moment, or the requests per second it completed since the last
// sample) and keeps the samples of the last Policy.History() in memory.
// It then calls Desired with the variant's current replica count (the
// count it asks for, not the count that is ready) and the times of the
// variant's last scale-out and scale-in (persisted with the scale events;
// zero times if there were none). When desired differs from current, it
// records a scale event (from, to, the reason, the time) and changes the
// fleet; otherwise it does nothing (reason then says why, for display).
// Samples are not persisted: after a restart Desired holds until enough
// history has been gathered again, which is the conservative choice.
// While a deployment runs on the variant, the controller does not call
// Desired at all (the rollout pins the fleet size).
//
// # The decision
//
//   - Scale out: the average of the samples over Window, divided by
//     Target, rounded up, is the replica count wanted, clamped to
//     [Min, Max]. When it is above current and ScaleOutCooldown has
//     passed since the last scale-out, it is taken at once (as AWS does,
//     in proportion to the metric, "as fast as it can"). A scale-in does
//     not delay a scale-out.
//   - Scale in is deliberately slower, as in AWS (whose scale-in alarm
//     wants 15 one-minute data points under 90 % of the target where
//     scale-out wants 3 above it): the average is taken over the longer
//     ScaleInWindow, compared with 90 % of Target (so a fleet sitting just
//     under its target does not flap), it waits for ScaleInCooldown since
//     the last scale event of either kind, and each scale-in removes at
//     most half the surplus (rounded up: 8 → 1 goes 8, 4, 2, 1), so a
//     quiet minute does not take away all capacity at once.
//   - No decision without history: a window needs a sample at least as
//     old as the window itself, so that an empty buffer or one just
//     started after a restart never scales anything.
//   - A current count outside [Min, Max] (the policy was changed) is
//     brought inside at once, history or not.
package autoscale

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Metrics.
const (
	MetricInFlight = "inflight" // requests in flight, summed over replicas
	MetricRPS      = "rps"      // requests per second, summed over replicas
	// MetricBacklog is an asynchronous endpoint's queue: requests queued
	// or running. It alone allows Min 0 (scale to zero): its requests
	// wait in the queue while a replica starts.
	MetricBacklog = "backlog"
)

// Defaults for the windows, and the scale-in margin.
const (
	DefaultWindow = 30 * time.Second
	// ScaleInWindowFactor: ScaleInWindow defaults to this × Window (AWS
	// looks at 15 minutes before scaling in, 3 before scaling out).
	ScaleInWindowFactor = 5
	// ScaleInMargin: scale in only to a size that would run at most this
	// fraction of Target.
	ScaleInMargin = 0.9
)

// Policy is a target tracking policy.
type Policy struct {
	// Min and Max bound the replica count; Min is at least 1 but for
	// MetricBacklog (a real-time request finds no replica to hold it
	// while one starts; a queued one waits).
	Min, Max int
	// Metric is MetricInFlight or MetricRPS; Target the value per replica
	// to keep it at.
	Metric string
	Target float64
	// ScaleOutCooldown: time after a scale-out before another scale-out;
	// ScaleInCooldown: time after any scale event before a scale-in.
	ScaleOutCooldown, ScaleInCooldown time.Duration
	// Window is what scale-out averages over (0: DefaultWindow);
	// ScaleInWindow what scale-in averages over (0: ScaleInWindowFactor ×
	// Window).
	Window, ScaleInWindow time.Duration
}

// Validate checks a policy, naming what is wrong.
func (p Policy) Validate() error {
	switch {
	case p.Min < 0 || p.Min == 0 && p.Metric != MetricBacklog:
		return fmt.Errorf("min replicas %d: want at least 1 (scale to zero is for metric %s only: real-time requests would fail while a replica starts)",
			p.Min, MetricBacklog)
	case p.Max < max(p.Min, 1):
		return fmt.Errorf("max replicas %d is below min %d (or 1)", p.Max, p.Min)
	case p.Metric != MetricInFlight && p.Metric != MetricRPS && p.Metric != MetricBacklog:
		return fmt.Errorf("metric %q: want %s, %s or %s", p.Metric, MetricInFlight, MetricRPS, MetricBacklog)
	case math.IsNaN(p.Target) || math.IsInf(p.Target, 0) || p.Target <= 0:
		return fmt.Errorf("target %v: want a number above 0 (%s per replica)", p.Target, metricName(p.Metric))
	case p.ScaleOutCooldown < 0:
		return fmt.Errorf("scale-out cooldown %s is negative", p.ScaleOutCooldown)
	case p.ScaleInCooldown < 0:
		return fmt.Errorf("scale-in cooldown %s is negative", p.ScaleInCooldown)
	case p.Window < 0:
		return fmt.Errorf("window %s is negative", p.Window)
	case p.ScaleInWindow < 0:
		return fmt.Errorf("scale-in window %s is negative", p.ScaleInWindow)
	}
	return nil
}

func (p Policy) windows() (out, in time.Duration) {
	out = p.Window
	if out <= 0 {
		out = DefaultWindow
	}
	in = p.ScaleInWindow
	if in <= 0 {
		in = ScaleInWindowFactor * out
	}
	return out, in
}

// History is how much history the controller must keep for Desired: the
// longer window, plus a little so that a sample as old as the window is
// there.
func (p Policy) History() time.Duration {
	out, in := p.windows()
	return max(out, in) + 5*time.Second
}

// Sample is the variant's total metric at At.
type Sample struct {
	At    time.Time
	Value float64
}

// Desired is the replica count the variant should run, and why. A scale
// event is desired != current; otherwise reason says why nothing changes.
func Desired(p Policy, current int, window []Sample, lastOut, lastIn, now time.Time) (desired int, reason string) {
	if err := p.Validate(); err != nil {
		return current, "invalid policy: " + err.Error()
	}
	if current < p.Min {
		return p.Min, fmt.Sprintf("%d replicas below min %d → %d replicas", current, p.Min, p.Min)
	}
	if current > p.Max {
		return p.Max, fmt.Sprintf("%d replicas above max %d → %d replicas", current, p.Max, p.Max)
	}
	name := metricName(p.Metric)
	outW, inW := p.windows()
	if current == 0 {
		return fromZero(p, window)
	}

	avg, err := average(window, now, outW)
	if err != nil {
		return current, "holding: " + err.Error()
	}
	perReplica := avg / float64(current)
	wantOut := p.clamp(ceil(avg / p.Target))
	if wantOut > current {
		if left := p.ScaleOutCooldown - now.Sub(lastOut); left > 0 {
			return current, fmt.Sprintf("holding: %s %.3g per replica over %s > target %g wants %d replicas; scale-out cooldown %s left",
				name, perReplica, short(outW), p.Target, wantOut, short(left))
		}
		r := fmt.Sprintf("%s %.3g per replica over %s > target %g → %d replicas", name, perReplica, short(outW), p.Target, wantOut)
		if wantOut == p.Max && ceil(avg/p.Target) > p.Max {
			r += fmt.Sprintf(" (max; %d wanted)", ceil(avg/p.Target))
		}
		return wantOut, r
	}

	avgIn, err := average(window, now, inW)
	if err != nil {
		return current, fmt.Sprintf("steady: %s %.3g per replica (target %g); too little history to scale in: %s", name, perReplica, p.Target, err)
	}
	perReplicaIn := avgIn / float64(current)
	wantIn := p.clamp(ceil(avgIn / (ScaleInMargin * p.Target)))
	if wantIn >= current {
		r := fmt.Sprintf("steady: %s %.3g per replica over %s, %.3g over %s (target %g)", name, perReplica, short(outW), perReplicaIn, short(inW), p.Target)
		if current == p.Min {
			r += fmt.Sprintf(", at min %d", p.Min)
		} else if current == p.Max {
			r += fmt.Sprintf(", at max %d", p.Max)
		}
		return current, r
	}
	last := lastOut
	if lastIn.After(last) {
		last = lastIn
	}
	to := max(current-(current-wantIn+1)/2, wantOut, p.Min)
	if to >= current {
		return current, fmt.Sprintf("steady: %s %.3g per replica over %s would allow %d replicas, but %.3g over the last %s needs %d",
			name, perReplicaIn, short(inW), wantIn, perReplica, short(outW), wantOut)
	}
	if left := p.ScaleInCooldown - now.Sub(last); left > 0 {
		return current, fmt.Sprintf("holding: %s %.3g per replica over %s < %g%% of target %g would allow %d replicas; scale-in cooldown %s left",
			name, perReplicaIn, short(inW), 100*ScaleInMargin, p.Target, to, short(left))
	}
	r := fmt.Sprintf("%s %.3g per replica over %s < %g%% of target %g → %d replicas", name, perReplicaIn, short(inW), 100*ScaleInMargin, p.Target, to)
	if to != wantIn {
		r += fmt.Sprintf(" (gradually, towards %d)", wantIn)
	}
	return to, r
}

// fromZero decides for a fleet scaled to zero: the latest sample alone
// counts, so that the first queued request starts a replica at once
// rather than after a window of history (nothing serves it meanwhile).
func fromZero(p Policy, window []Sample) (int, string) {
	var last *Sample
	for i := range window {
		if last == nil || !window[i].At.Before(last.At) {
			last = &window[i]
		}
	}
	if last == nil || !(last.Value > 0) {
		return 0, "steady: scaled to zero, nothing queued"
	}
	want := p.clamp(max(ceil(last.Value/p.Target), 1))
	return want, fmt.Sprintf("%s %.3g with no replica → %d replicas (scale from zero)", metricName(p.Metric), last.Value, want)
}

var errNoSamples = errors.New("no samples")

// average is the mean of the samples in (now-w, now]. It needs a sample
// at or before now-w, proof that the history covers the whole window.
func average(samples []Sample, now time.Time, w time.Duration) (float64, error) {
	if len(samples) == 0 {
		return 0, errNoSamples
	}
	from := now.Add(-w)
	var sum float64
	var n int
	covered := false
	oldest := now
	for _, s := range samples {
		if s.At.After(now) {
			continue
		}
		if s.At.Before(oldest) {
			oldest = s.At
		}
		if !s.At.After(from) {
			covered = true
			continue
		}
		if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
			continue
		}
		sum += max(s.Value, 0)
		n++
	}
	if !covered {
		return 0, fmt.Errorf("%s of history, %s needed", short(now.Sub(oldest)), short(w))
	}
	if n == 0 {
		return 0, fmt.Errorf("no samples in the last %s", short(w))
	}
	return sum / float64(n), nil
}

// ceil rounds up, forgiving float noise (4.0000000001 / 2 is 2 replicas,
// not 3).
func ceil(x float64) int {
	return int(math.Ceil(x - 1e-9))
}

func (p Policy) clamp(n int) int { return min(max(n, p.Min), p.Max) }

func metricName(m string) string {
	if m == MetricRPS {
		return "req/s"
	}
	if m == MetricBacklog {
		return "backlog"
	}
	return "in-flight"
}

func short(d time.Duration) string {
	d = d.Round(100 * time.Millisecond)
	s := d.String()
	if len(s) > 3 && s[len(s)-3:] == "m0s" {
		s = s[:len(s)-2]
	}
	return s
}
