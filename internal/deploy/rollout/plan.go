package rollout

import (
	"fmt"
	"strings"
	"time"
)

// Stage is one stage of a deployment that goes well, for
// `endpoint update --dry-run` and history displays.
type Stage struct {
	Phase  Phase  `json:"phase"`
	Step   int    `json:"step"`
	Target Target `json:"target"`
	// WaitReady is how many green replicas must be ready before the stage
	// ends (starting-green), Bake how long the stage holds its traffic
	// split once they are (shifting, finishing).
	WaitReady int           `json:"wait_ready,omitempty"`
	Bake      time.Duration `json:"bake,omitempty"`
}

// Plan lists the stages a deployment of s on a variant of replicas
// replicas goes through when nothing goes wrong, ending with the
// succeeded stage. It is made by running Next on an ideal fleet (every
// replica ready at once, no errors), so it cannot disagree with what Next
// does.
func Plan(s Strategy, replicas int) ([]Stage, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if replicas < 1 {
		return nil, fmt.Errorf("a deployment needs at least 1 replica, not %d", replicas)
	}
	now := time.Unix(0, 0).UTC()
	obs := Observation{Now: now, Replicas: replicas}
	var st State
	var out []Stage
	a := DefaultAlarms()
	p := plan{s, replicas}
	// Each round adds a stage; the bound only guards against a bug.
	for range 4*p.steps() + 4 {
		next, tgt := Next(s, a, st, obs)
		if next.Phase != st.Phase || next.Step != st.Step {
			stage := Stage{Phase: next.Phase, Step: next.Step, Target: tgt}
			switch next.Phase {
			case PhaseStartingGreen:
				stage.WaitReady = p.greenWanted(next.Step)
			case PhaseShifting, PhaseFinishing:
				stage.Bake = p.bake(next.Step)
			}
			out = append(out, stage)
		}
		if next.Phase.Terminal() {
			if next.Phase != PhaseSucceeded {
				return out, fmt.Errorf("plan of %s ended %s: %s", s, next.Phase, next.Reason)
			}
			return out, nil
		}
		// The ideal fleet: what was asked for is ready; bakes elapse.
		obs.BlueReady, obs.GreenReady = tgt.BlueReplicas, tgt.GreenReplicas
		if next.Phase == PhaseShifting || next.Phase == PhaseFinishing {
			obs.Now = next.Since.Add(p.bake(next.Step))
			next.Watched, next.LastTick = p.bake(next.Step), obs.Now // watched all along
		}
		st = next
	}
	return out, fmt.Errorf("plan of %s does not end", s)
}

// Describe is a plan in words: one numbered line per stage, then the
// alarms. Example, for canary:10%:5m on 2 replicas:
//
//	canary:10%:5m on 2 replicas:
//	  1. start 2 green replicas beside 2 blue, no traffic to green, until all are ready (at most 5m)
//	  2. 10% of traffic to green, bake 5m
//	  3. 100% of traffic to green, blue kept for an instant rollback, bake 5m
//	  4. stop blue: green (2 replicas) becomes the variant
//	rolls back when, over a step with at least 20 requests, green's error rate exceeds 1% or its p99 latency exceeds 1s
func Describe(s Strategy, a Alarms, replicas int) string {
	stages, err := Plan(s, replicas)
	if err != nil {
		return fmt.Sprintf("%s on %d replicas: %v", s, replicas, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s on %d replica%s:\n", s, replicas, plural(replicas))
	timeout := FormatDuration(a.readyTimeout())
	rolling := s.Kind == KindRolling
	prev := Target{BlueReplicas: replicas}
	for i, st := range stages {
		t := st.Target
		fmt.Fprintf(&b, "  %d. ", i+1)
		switch st.Phase {
		case PhaseStartingGreen:
			if !rolling {
				fmt.Fprintf(&b, "start %d green replica%s beside %d blue, no traffic to green, until all are ready (at most %s)",
					t.GreenReplicas, plural(t.GreenReplicas), t.BlueReplicas, timeout)
			} else {
				add := t.GreenReplicas - prev.GreenReplicas
				fmt.Fprintf(&b, "start %d green replica%s (%d green, %d blue, %d%% of traffic to green), until ready (at most %s)",
					add, plural(add), t.GreenReplicas, t.BlueReplicas, t.GreenPercent, timeout)
			}
		case PhaseShifting, PhaseFinishing:
			if rolling {
				drop := prev.BlueReplicas - t.BlueReplicas
				fmt.Fprintf(&b, "stop %d blue replica%s (%d green, %d blue, %d%% of traffic to green)", drop, plural(drop), t.GreenReplicas, t.BlueReplicas, t.GreenPercent)
			} else {
				fmt.Fprintf(&b, "%d%% of traffic to green", t.GreenPercent)
				if st.Phase == PhaseFinishing {
					b.WriteString(", blue kept for an instant rollback")
				}
			}
			if st.Bake > 0 {
				fmt.Fprintf(&b, ", bake %s", FormatDuration(st.Bake))
			} else {
				b.WriteString(", no bake")
			}
		case PhaseSucceeded:
			if prev.BlueReplicas > 0 {
				b.WriteString("stop blue: ")
			}
			fmt.Fprintf(&b, "green (%d replica%s) becomes the variant", t.GreenReplicas, plural(t.GreenReplicas))
		}
		b.WriteString("\n")
		prev = t
	}
	b.WriteString(a.describe())
	return b.String()
}

func (a Alarms) describe() string {
	var alarms []string
	if a.MaxErrorRate < 1 {
		alarms = append(alarms, "green's error rate exceeds "+percent(a.MaxErrorRate))
	}
	if a.MaxP99 > 0 {
		who := "green's"
		if len(alarms) > 0 {
			who = "its"
		}
		alarms = append(alarms, who+" p99 latency exceeds "+FormatDuration(a.MaxP99))
	}
	if len(alarms) == 0 {
		return "no alarms: rolls back only when a green replica fails or is not ready in time"
	}
	return fmt.Sprintf("rolls back when, over a step with at least %d request%s, %s; or when a green replica fails",
		max(a.MinRequests, 1), plural(max(a.MinRequests, 1)), strings.Join(alarms, " or "))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
