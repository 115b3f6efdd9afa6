package autoscale

import (
	"math"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

const s = time.Second

// flat is one sample a second with value v over the last span (inclusive
// of now-span, so the history covers span).
func flat(v float64, span time.Duration) []Sample {
	var out []Sample
	for d := span; d >= 0; d -= s {
		out = append(out, Sample{At: now.Add(-d), Value: v})
	}
	return out
}

// then is a over the older part of the last span and b over the last recent.
func then(a float64, span time.Duration, b float64, recent time.Duration) []Sample {
	out := flat(a, span)
	for i := range out {
		if now.Sub(out[i].At) < recent {
			out[i].Value = b
		}
	}
	return out
}

var pol = Policy{Min: 1, Max: 8, Metric: MetricInFlight, Target: 2,
	ScaleOutCooldown: 30 * s, ScaleInCooldown: 60 * s, Window: 10 * s} // scale-in window 50s

func TestDesired(t *testing.T) {
	long := 60 * s
	var zero time.Time
	tests := []struct {
		name            string
		p               Policy
		current         int
		samples         []Sample
		lastOut, lastIn time.Time
		want            int
		reason          string
	}{
		{"no samples", pol, 2, nil, zero, zero, 2, "holding: no samples"},
		{"window too short", pol, 2, flat(100, 5*s), zero, zero, 2, "holding: 5s of history, 10s needed"},
		{"only samples from the future", pol, 2, []Sample{{now.Add(time.Minute), 100}}, zero, zero, 2, "holding: 0s of history"},
		{"scale out", pol, 2, flat(15, long), zero, zero, 8, "in-flight 7.5 per replica over 10s > target 2 → 8 replicas"},
		{"scale out in proportion", pol, 2, flat(5, long), zero, zero, 3, "in-flight 2.5 per replica over 10s > target 2 → 3 replicas"},
		{"scale out clamped to max", pol, 2, flat(40, long), zero, zero, 8, "→ 8 replicas (max; 20 wanted)"},
		{"scale out as soon as the window allows", pol, 2, flat(15, 10*s), zero, zero, 8, "→ 8 replicas"},
		{"scale-out cooldown", pol, 2, flat(15, long), now.Add(-10 * s), zero, 2, "wants 8 replicas; scale-out cooldown 20s left"},
		{"scale-out cooldown over", pol, 2, flat(15, long), now.Add(-30 * s), zero, 8, "→ 8 replicas"},
		{"a scale-in does not delay a scale-out", pol, 2, flat(15, long), now.Add(-time.Hour), now.Add(-s), 8, "→ 8 replicas"},
		{"at max already", pol, 8, flat(100, long), zero, zero, 8, "steady: in-flight 12.5 per replica over 10s, 12.5 over 50s (target 2), at max 8"},
		{"on target", pol, 4, flat(8, long), zero, zero, 4, "steady: in-flight 2 per replica over 10s, 2 over 50s (target 2)"},
		// 5.8 in flight would fit 3 replicas at 1.93 each, but not under
		// 90 % of the target (1.8): no scale-in.
		{"scale-in margin", pol, 4, flat(5.8, long), zero, zero, 4, "steady"},
		{"scale in past the margin", pol, 4, flat(5.4, long), zero, zero, 3, "in-flight 1.35 per replica over 50s < 90% of target 2 → 3 replicas"},
		{"scale in gradually", pol, 8, flat(0.5, long), zero, zero, 4, "→ 4 replicas (gradually, towards 1)"},
		{"scale in gradually, odd surplus", pol, 4, flat(0, long), zero, zero, 2, "→ 2 replicas (gradually, towards 1)"},
		{"scale in the last one", pol, 2, flat(0, long), zero, zero, 1, "→ 1 replicas"},
		{"scale in to min", Policy{Min: 2, Max: 8, Metric: MetricInFlight, Target: 2, Window: 10 * s}, 3, flat(0, long), zero, zero, 2, "→ 2 replicas"},
		{"at min", pol, 1, flat(0, long), zero, zero, 1, "steady: in-flight 0 per replica over 10s, 0 over 50s (target 2), at min 1"},
		{"scale in needs the long window", pol, 8, flat(0, 20*s), zero, zero, 8, "too little history to scale in: 20s of history, 50s needed"},
		{"scale-in cooldown after a scale-out", pol, 8, flat(0, long), now.Add(-40 * s), zero, 8, "would allow 4 replicas; scale-in cooldown 20s left"},
		{"scale-in cooldown after a scale-in", pol, 8, flat(0, long), zero, now.Add(-59 * s), 8, "scale-in cooldown 1s left"},
		{"scale-in cooldown over", pol, 8, flat(0, long), now.Add(-2 * time.Minute), now.Add(-60 * s), 4, "→ 4 replicas"},
		// The long window is quiet but the last 10 s are not: the scale-in
		// stops at what the recent load needs.
		{"recent load limits a scale-in", pol, 8, then(0, long, 11, 10*s), zero, zero, 6, "→ 6 replicas (gradually, towards 2)"},
		{"recent load holds the fleet", pol, 4, then(0, long, 8, 10*s), zero, zero, 4, "steady: in-flight 0.4 per replica over 50s would allow 1 replicas, but 2 over the last 10s needs 4"},
		// A burst in the last 10 s scales out even though the long window is quiet.
		{"a recent burst scales out", pol, 2, then(0, long, 20, 10*s), zero, zero, 8, "in-flight 10 per replica over 10s"},
		// An old burst, outside the windows, counts for nothing.
		{"old samples are ignored", pol, 2, then(1000, 10*time.Minute, 0, 2*time.Minute), zero, zero, 1, "→ 1 replicas"},
		{"below min, no history needed", Policy{Min: 3, Max: 8, Metric: MetricInFlight, Target: 2}, 1, nil, zero, zero, 3, "1 replicas below min 3 → 3 replicas"},
		{"above max, during a cooldown", pol, 12, flat(100, long), now, now, 8, "12 replicas above max 8 → 8 replicas"},
		{"rps", Policy{Min: 1, Max: 10, Metric: MetricRPS, Target: 100, Window: 10 * s}, 2, flat(450, long), zero, zero, 5, "req/s 225 per replica over 10s > target 100 → 5 replicas"},
		// 4.0000000001/2 is 2 replicas, not 3.
		{"float noise", pol, 2, flat(4.0000000001, long), zero, zero, 2, "steady"},
		{"bad samples are skipped", pol, 1, append(flat(4, long), Sample{now, math.NaN()}, Sample{now, math.Inf(1)}), zero, zero, 2, "→ 2 replicas"},
		{"negative samples count as 0", pol, 1, append(flat(4, long)[:60], Sample{now, -1000}), zero, zero, 2, "in-flight 3.6 per replica"},
		{"invalid policy", Policy{Min: 0, Max: 2, Metric: MetricInFlight, Target: 1}, 2, flat(100, long), zero, zero, 2, "invalid policy: min replicas 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := Desired(tt.p, tt.current, tt.samples, tt.lastOut, tt.lastIn, now)
			if got != tt.want {
				t.Errorf("Desired = %d (%s), want %d", got, reason, tt.want)
			}
			if !strings.Contains(reason, tt.reason) {
				t.Errorf("reason %q, want one containing %q", reason, tt.reason)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := Policy{Min: 1, Max: 4, Metric: MetricRPS, Target: 50}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid policy: %v", err)
	}
	tests := []struct {
		name string
		edit func(*Policy)
		want string
	}{
		{"min 0", func(p *Policy) { p.Min = 0 }, "min replicas 0: want at least 1 (scale to zero is for metric backlog only"},
		{"min below 0", func(p *Policy) { p.Min, p.Metric = -1, MetricBacklog }, "min replicas -1"},
		{"max below min", func(p *Policy) { p.Min, p.Max = 3, 2 }, "max replicas 2 is below min 3"},
		{"unknown metric", func(p *Policy) { p.Metric = "cpu" }, `metric "cpu": want inflight, rps or backlog`},
		{"empty metric", func(p *Policy) { p.Metric = "" }, `metric ""`},
		{"target 0", func(p *Policy) { p.Target = 0 }, "target 0: want a number above 0 (req/s per replica)"},
		{"negative target", func(p *Policy) { p.Target = -1 }, "target -1"},
		{"NaN target", func(p *Policy) { p.Target = math.NaN() }, "target NaN"},
		{"infinite target", func(p *Policy) { p.Target = math.Inf(1) }, "target +Inf"},
		{"negative scale-out cooldown", func(p *Policy) { p.ScaleOutCooldown = -s }, "scale-out cooldown -1s is negative"},
		{"negative scale-in cooldown", func(p *Policy) { p.ScaleInCooldown = -s }, "scale-in cooldown -1s is negative"},
		{"negative window", func(p *Policy) { p.Window = -s }, "window -1s is negative"},
		{"negative scale-in window", func(p *Policy) { p.ScaleInWindow = -s }, "scale-in window -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ok
			tt.edit(&p)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestHistory(t *testing.T) {
	for _, tt := range []struct {
		p    Policy
		want time.Duration
	}{
		{Policy{}, 5*DefaultWindow + 5*s},
		{Policy{Window: 10 * s}, 55 * s},
		{Policy{Window: 10 * s, ScaleInWindow: 20 * s}, 25 * s},
		{Policy{Window: 2 * time.Minute, ScaleInWindow: time.Minute}, 125 * s},
	} {
		if got := tt.p.History(); got != tt.want {
			t.Errorf("%+v.History() = %s, want %s", tt.p, got, tt.want)
		}
	}
}

// A whole load cycle, as the controller runs it: a tick a second, load
// of 12 in flight for two minutes, then none. The fleet goes straight up
// to what the load needs, then down in halving steps spaced by the
// scale-in cooldown, and never changes otherwise.
func TestLoadCycle(t *testing.T) {
	p := Policy{Min: 1, Max: 5, Metric: MetricInFlight, Target: 2,
		ScaleOutCooldown: 20 * s, ScaleInCooldown: 30 * s, Window: 5 * s, ScaleInWindow: 20 * s}
	start := now
	replicas := 1
	var lastOut, lastIn time.Time
	var samples []Sample
	type event struct {
		at       time.Duration
		from, to int
	}
	var events []event
	for i := 0; i <= 400; i++ {
		t1 := start.Add(time.Duration(i) * s)
		load := 0.0
		if i >= 10 && i < 130 {
			load = 12
		}
		samples = append(samples, Sample{t1, load})
		// Keep what the policy says is needed, as the controller does.
		for len(samples) > 0 && t1.Sub(samples[0].At) > p.History() {
			samples = samples[1:]
		}
		want, reason := Desired(p, replicas, samples, lastOut, lastIn, t1)
		if want == replicas {
			continue
		}
		if reason == "" || strings.HasPrefix(reason, "holding") || strings.HasPrefix(reason, "steady") {
			t.Errorf("t=%ds: %d → %d with reason %q", i, replicas, want, reason)
		}
		events = append(events, event{time.Duration(i) * s, replicas, want})
		if want > replicas {
			lastOut = t1
		} else {
			lastIn = t1
		}
		replicas = want
	}
	// Up: the 5 s window's average rises with the load: at 10 s one
	// loaded sample of five asks for ceil(2.4/2) = 2 replicas; the
	// scale-out cooldown holds until 30 s, when the full load asks for
	// 6, clamped to 5. Down: the load stops at 130 s; at 137 s the 20 s
	// scale-in window holds 12 loaded samples of 20 (7.2 in flight), just
	// under 90 % of the target for 4 replicas (4 × 1.8): 5 → 4. Then
	// every 30 s (the scale-in cooldown), half the surplus: 4 → 2 → 1.
	want := []event{{10 * s, 1, 2}, {30 * s, 2, 5}, {137 * s, 5, 4}, {167 * s, 4, 2}, {197 * s, 2, 1}}
	if len(events) != len(want) {
		t.Fatalf("events %v, want %v", events, want)
	}
	for i := range want {
		if events[i] != want[i] {
			t.Errorf("event %d: %+v, want %+v", i, events[i], want[i])
		}
	}
}
