package rollout

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func stages(ss []Stage) string {
	var b []string
	for _, s := range ss {
		x := fmt.Sprintf("%s %d%% b%d g%d", s.Phase, s.Target.GreenPercent, s.Target.BlueReplicas, s.Target.GreenReplicas)
		if s.WaitReady > 0 {
			x += fmt.Sprintf(" ready%d", s.WaitReady)
		}
		if s.Bake > 0 {
			x += " bake" + FormatDuration(s.Bake)
		}
		b = append(b, x)
	}
	return strings.Join(b, " | ")
}

func TestPlan(t *testing.T) {
	tests := []struct {
		strategy string
		replicas int
		want     string
	}{
		{"all-at-once", 2, "starting-green 0% b2 g2 ready2 | finishing 100% b2 g2 | succeeded 100% b0 g2"},
		{"all-at-once:10m", 1, "starting-green 0% b1 g1 ready1 | finishing 100% b1 g1 bake10m | succeeded 100% b0 g1"},
		{"canary:10%:5m", 3, "starting-green 0% b3 g3 ready3 | shifting 10% b3 g3 bake5m | finishing 100% b3 g3 bake5m | succeeded 100% b0 g3"},
		{"linear:40%:1m", 2, "starting-green 0% b2 g2 ready2 | shifting 40% b2 g2 bake1m | shifting 80% b2 g2 bake1m | finishing 100% b2 g2 bake1m | succeeded 100% b0 g2"},
		{"rolling:2:1m", 5, "starting-green 0% b5 g2 ready2 | shifting 40% b3 g2 bake1m | starting-green 40% b3 g4 ready4 | shifting 80% b1 g4 bake1m" +
			" | starting-green 80% b1 g5 ready5 | shifting 100% b0 g5 bake1m | succeeded 100% b0 g5"},
		// A batch as large as the fleet is one batch.
		{"rolling:10", 3, "starting-green 0% b3 g3 ready3 | shifting 100% b0 g3 | succeeded 100% b0 g3"},
		// Traffic shares round, but a green replica always gets some and a
		// blue one keeps some.
		{"rolling:1", 200, ""},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s on %d", tt.strategy, tt.replicas), func(t *testing.T) {
			ss, err := Plan(mustParse(t, tt.strategy), tt.replicas)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" {
				if got := stages(ss); got != tt.want {
					t.Errorf("plan:\n got %s\nwant %s", got, tt.want)
				}
				return
			}
			if len(ss) != 2*tt.replicas+1 {
				t.Fatalf("%d stages, want %d", len(ss), 2*tt.replicas+1)
			}
			for _, s := range ss[1 : len(ss)-1] {
				if p := s.Target.GreenPercent; p < 1 || (s.Target.BlueReplicas > 0 && p > 99) {
					t.Errorf("stage %+v: green share %d%%", s, p)
				}
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	if _, err := Plan(mustParse(t, "canary:5%:1m"), 0); err == nil || !strings.Contains(err.Error(), "at least 1 replica, not 0") {
		t.Errorf("0 replicas: %v", err)
	}
	if _, err := Plan(Strategy{Kind: KindLinear}, 2); err == nil || !strings.Contains(err.Error(), "no steps") {
		t.Errorf("invalid strategy: %v", err)
	}
}

func TestDescribe(t *testing.T) {
	got := Describe(mustParse(t, "canary:10%:5m"), DefaultAlarms(), 2)
	want := `canary:10%:5m on 2 replicas:
  1. start 2 green replicas beside 2 blue, no traffic to green, until all are ready (at most 5m)
  2. 10% of traffic to green, bake 5m
  3. 100% of traffic to green, blue kept for an instant rollback, bake 5m
  4. stop blue: green (2 replicas) becomes the variant
rolls back when, over a step with at least 20 requests, green's error rate exceeds 1% or its p99 latency exceeds 1s; or when a green replica fails`
	if got != want {
		t.Errorf("Describe:\n%s\nwant:\n%s", got, want)
	}

	got = Describe(mustParse(t, "rolling:1"), Alarms{MaxErrorRate: 1, ReadyTimeout: time.Minute}, 2)
	for _, line := range []string{
		"rolling:1 on 2 replicas:",
		"  1. start 1 green replica (1 green, 2 blue, 0% of traffic to green), until ready (at most 1m)",
		"  2. stop 1 blue replica (1 green, 1 blue, 50% of traffic to green), no bake",
		"  3. start 1 green replica (2 green, 1 blue, 50% of traffic to green), until ready (at most 1m)",
		"  4. stop 1 blue replica (2 green, 0 blue, 100% of traffic to green), no bake",
		"  5. green (2 replicas) becomes the variant",
		"no alarms: rolls back only when a green replica fails or is not ready in time",
	} {
		if !strings.Contains(got, line+"\n") && !strings.HasSuffix(got, line) {
			t.Errorf("Describe lacks %q:\n%s", line, got)
		}
	}

	got = Describe(mustParse(t, "all-at-once"), Alarms{MaxErrorRate: 1, MaxP99: 200 * time.Millisecond, MinRequests: 50}, 1)
	if !strings.Contains(got, "over a step with at least 50 requests, green's p99 latency exceeds 200ms") {
		t.Errorf("latency-only alarms:\n%s", got)
	}
	if got := Describe(Strategy{}, DefaultAlarms(), 1); !strings.Contains(got, "no strategy") {
		t.Errorf("invalid strategy: %q", got)
	}
}
