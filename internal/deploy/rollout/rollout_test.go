package rollout

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func mustParse(t testing.TB, s string) Strategy {
	t.Helper()
	st, err := ParseStrategy(s)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

var testAlarms = Alarms{MaxErrorRate: 0.01, MaxP99: time.Second, MinRequests: 20, ReadyTimeout: 5 * time.Minute}

// want is the expected State; Reason is matched as a substring.
func checkState(t *testing.T, got, want State) {
	t.Helper()
	if got.Phase != want.Phase || got.Step != want.Step || got.Replicas != want.Replicas || !got.Since.Equal(want.Since) || got.Abort != want.Abort ||
		got.Watched != want.Watched || !got.LastTick.Equal(want.LastTick) {
		t.Errorf("state = %+v\n        want %+v", got, want)
	}
	if (want.Reason == "") != (got.Reason == "") || !strings.Contains(got.Reason, want.Reason) {
		t.Errorf("reason = %q, want one containing %q", got.Reason, want.Reason)
	}
}

func TestNextTransitions(t *testing.T) {
	canary := mustParse(t, "canary:10%:5m")
	all := mustParse(t, "all-at-once")
	rolling := mustParse(t, "rolling:2:1m")
	m := time.Minute
	ok := Window{Requests: 100}
	// st is a State as Next makes it on entering a phase.
	st := func(ph Phase, step int, since time.Duration) State {
		s := State{Phase: ph, Step: step, Since: at(since), Replicas: 3}
		if !ph.Terminal() {
			s.LastTick = s.Since
		}
		return s
	}
	// watched is s after ticks that watched it for d, the last at last.
	watched := func(s State, d, last time.Duration) State { s.Watched, s.LastTick = d, at(last); return s }
	gap := MaxTickGap
	sec := time.Second
	withReason := func(s State, r string) State { s.Reason = r; return s }
	tests := []struct {
		name string
		s    Strategy
		in   State
		obs  Observation
		want State
		tgt  Target
	}{
		// Starting.
		{"start", canary, State{}, Observation{Now: at(0), Replicas: 3, BlueReady: 3},
			st(PhaseStartingGreen, 0, 0), Target{0, 3, 3}},
		{"start with no replicas", canary, State{}, Observation{Now: at(0), Replicas: 0},
			State{Phase: PhaseFailed, Since: at(0), Reason: "variant has 0 replicas"}, Target{0, 0, 0}},
		{"start with an invalid strategy", Strategy{Kind: KindCanary}, State{}, Observation{Now: at(0), Replicas: 3, BlueReady: 3},
			withReason(st(PhaseFailed, 0, 0), "invalid strategy: canary strategy has no steps"), Target{0, 3, 0}},
		{"start with green already ready", all, State{}, Observation{Now: at(0), Replicas: 3, BlueReady: 3, GreenReady: 3},
			st(PhaseFinishing, 0, 0), Target{100, 3, 3}},
		{"green partly ready", canary, st(PhaseStartingGreen, 0, 0), Observation{Now: at(m), BlueReady: 3, GreenReady: 2},
			watched(st(PhaseStartingGreen, 0, 0), gap, m), Target{0, 3, 3}},
		// Green takes no traffic yet: its (impossible) errors are not judged.
		{"errors before traffic are not judged", canary, st(PhaseStartingGreen, 0, 0), Observation{Now: at(m), BlueReady: 3, GreenReady: 2, Green: Window{Requests: 100, Errors: 100}},
			watched(st(PhaseStartingGreen, 0, 0), gap, m), Target{0, 3, 3}},
		{"green ready", canary, st(PhaseStartingGreen, 0, 0), Observation{Now: at(m), BlueReady: 3, GreenReady: 3},
			st(PhaseShifting, 0, m), Target{10, 3, 3}},
		{"green ready, all-at-once", all, st(PhaseStartingGreen, 0, 0), Observation{Now: at(m), BlueReady: 3, GreenReady: 3},
			st(PhaseFinishing, 0, m), Target{100, 3, 3}},
		{"green not ready yet", canary, watched(st(PhaseStartingGreen, 0, 0), 5*m-2*sec, 5*m-2*sec), Observation{Now: at(5*m - sec), BlueReady: 3, GreenReady: 1},
			watched(st(PhaseStartingGreen, 0, 0), 5*m-sec, 5*m-sec), Target{0, 3, 3}},
		// The server was down for 18 minutes: the restarted controller
		// gets its ticks before the deadline expires.
		{"downtime does not expire the deadline", canary, watched(st(PhaseStartingGreen, 0, 0), 2*m, 2*m), Observation{Now: at(20 * m), BlueReady: 3, GreenReady: 1},
			watched(st(PhaseStartingGreen, 0, 0), 2*m+gap, 20*m), Target{0, 3, 3}},
		{"green not ready in time", canary, watched(st(PhaseStartingGreen, 0, 0), 5*m-sec, 5*m-sec), Observation{Now: at(5 * m), BlueReady: 3, GreenReady: 1},
			withReason(st(PhaseFailed, 0, 5*m), "green not ready after 5m: 1 of 3 replicas ready"), Target{0, 3, 0}},
		{"green fails while starting", canary, st(PhaseStartingGreen, 0, 0), Observation{Now: at(m), BlueReady: 3, GreenReady: 2, GreenFailed: "replica 42 exited with status 2"},
			withReason(st(PhaseFailed, 0, m), "green replica failed while starting: replica 42 exited with status 2"), Target{0, 3, 0}},

		// Baking a step.
		{"first tick of a bake", canary, st(PhaseShifting, 0, 0), Observation{Now: at(sec), BlueReady: 3, GreenReady: 3, Green: ok},
			watched(st(PhaseShifting, 0, 0), sec, sec), Target{10, 3, 3}},
		{"baking", canary, watched(st(PhaseShifting, 0, 0), 5*m-2*sec, 5*m-2*sec), Observation{Now: at(5*m - sec), BlueReady: 3, GreenReady: 3, Green: ok},
			watched(st(PhaseShifting, 0, 0), 5*m-sec, 5*m-sec), Target{10, 3, 3}},
		{"bake done", canary, watched(st(PhaseShifting, 0, 0), 5*m-sec, 5*m-sec), Observation{Now: at(5 * m), BlueReady: 3, GreenReady: 3, Green: ok},
			st(PhaseFinishing, 1, 5*m), Target{100, 3, 3}},
		// The server was down for 10 minutes: the step still owes most
		// of its bake, and green is watched for it.
		{"downtime is not bake time", canary, watched(st(PhaseShifting, 0, 0), 4*m, 4*m), Observation{Now: at(14 * m), BlueReady: 3, GreenReady: 3},
			watched(st(PhaseShifting, 0, 0), 4*m+MaxTickGap, 14*m), Target{10, 3, 3}},
		{"bake done with too few requests to judge", canary, watched(st(PhaseShifting, 0, 0), 5*m-sec, 5*m-sec), Observation{Now: at(5 * m), BlueReady: 3, GreenReady: 3, Green: Window{Requests: 19, Errors: 19, P99: time.Hour}},
			st(PhaseFinishing, 1, 5*m), Target{100, 3, 3}},
		{"bake done but green not all ready", canary, watched(st(PhaseShifting, 0, 0), 5*m, 6*m-sec), Observation{Now: at(6 * m), BlueReady: 3, GreenReady: 2, Green: ok},
			watched(st(PhaseShifting, 0, 0), 5*m+sec, 6*m), Target{10, 3, 3}},
		{"green not all ready long after the bake", canary, watched(st(PhaseShifting, 0, 0), 10*m-sec, 10*m-sec), Observation{Now: at(10 * m), BlueReady: 3, GreenReady: 2, Green: ok},
			withReason(st(PhaseRolledBack, 0, 10*m), "green has 2 of 3 replicas ready 5m after step 1's bake time"), Target{0, 3, 0}},
		{"error alarm", canary, st(PhaseShifting, 0, 0), Observation{Now: at(m), BlueReady: 3, GreenReady: 3, Green: Window{Requests: 20, Errors: 1}},
			withReason(st(PhaseRolledBack, 0, m), "green error rate 5% (1 of 20 requests) above 1%"), Target{0, 3, 0}},
		{"errors below min requests", canary, st(PhaseShifting, 0, 0), Observation{Now: at(sec), BlueReady: 3, GreenReady: 3, Green: Window{Requests: 19, Errors: 5}},
			watched(st(PhaseShifting, 0, 0), sec, sec), Target{10, 3, 3}},
		{"error rate at the threshold is not above it", canary, st(PhaseShifting, 0, 0), Observation{Now: at(sec), BlueReady: 3, GreenReady: 3, Green: Window{Requests: 100, Errors: 1}},
			watched(st(PhaseShifting, 0, 0), sec, sec), Target{10, 3, 3}},
		{"error rate just above the threshold", canary, st(PhaseShifting, 0, 0), Observation{Now: at(m), BlueReady: 3, GreenReady: 3, Green: Window{Requests: 199, Errors: 2}},
			withReason(st(PhaseRolledBack, 0, m), "green error rate 1.01% (2 of 199 requests) above 1%"), Target{0, 3, 0}},
		{"latency alarm", canary, st(PhaseShifting, 0, 0), Observation{Now: at(m), BlueReady: 3, GreenReady: 3, Green: Window{Requests: 20, P99: 1500 * time.Millisecond}},
			withReason(st(PhaseRolledBack, 0, m), "green p99 latency 1.5s above 1s (20 requests)"), Target{0, 3, 0}},
		{"latency below min requests", canary, st(PhaseShifting, 0, 0), Observation{Now: at(sec), BlueReady: 3, GreenReady: 3, Green: Window{Requests: 19, P99: time.Hour}},
			watched(st(PhaseShifting, 0, 0), sec, sec), Target{10, 3, 3}},
		{"latency at the threshold", canary, st(PhaseShifting, 0, 0), Observation{Now: at(sec), BlueReady: 3, GreenReady: 3, Green: Window{Requests: 500, P99: time.Second}},
			watched(st(PhaseShifting, 0, 0), sec, sec), Target{10, 3, 3}},
		{"green replica fails while serving", canary, st(PhaseShifting, 0, 0), Observation{Now: at(m), BlueReady: 3, GreenReady: 2, GreenFailed: "killed by signal 9", Green: ok},
			withReason(st(PhaseRolledBack, 0, m), "green replica failed: killed by signal 9"), Target{0, 3, 0}},
		// A blue replica is down (being replaced): the rollback waits for it.
		{"alarm with blue short", canary, st(PhaseShifting, 0, 0), Observation{Now: at(m), BlueReady: 2, GreenReady: 3, Green: Window{Requests: 20, Errors: 20}},
			withReason(st(PhaseRollingBack, 0, m), "green error rate 100% (20 of 20 requests) above 1%"), Target{0, 3, 0}},
		{"a clock that went back is no progress", canary, st(PhaseShifting, 0, 10*m), Observation{Now: at(0), BlueReady: 3, GreenReady: 3, Green: ok},
			st(PhaseShifting, 0, 10*m), Target{10, 3, 3}},

		// The final bake.
		{"finishing", canary, st(PhaseFinishing, 1, 0), Observation{Now: at(sec), BlueReady: 3, GreenReady: 3, Green: ok},
			watched(st(PhaseFinishing, 1, 0), sec, sec), Target{100, 3, 3}},
		{"finished", canary, watched(st(PhaseFinishing, 1, 0), 5*m-sec, 5*m-sec), Observation{Now: at(5 * m), BlueReady: 3, GreenReady: 3, Green: ok},
			st(PhaseSucceeded, 1, 5*m), Target{100, 0, 3}},
		{"all-at-once without bake finishes on the next tick", all, st(PhaseFinishing, 0, 0), Observation{Now: at(time.Second), BlueReady: 3, GreenReady: 3},
			st(PhaseSucceeded, 0, time.Second), Target{100, 0, 3}},
		{"alarm in the final bake", canary, st(PhaseFinishing, 1, 0), Observation{Now: at(4 * m), BlueReady: 3, GreenReady: 3, Green: Window{Requests: 1000, P99: 2 * time.Second}},
			withReason(st(PhaseRolledBack, 1, 4*m), "green p99 latency 2s above 1s (1000 requests)"), Target{0, 3, 0}},

		// Rolling back.
		{"rolling back, blue still short", canary, withReason(st(PhaseRollingBack, 0, 0), "x"), Observation{Now: at(m), BlueReady: 2},
			withReason(watched(st(PhaseRollingBack, 0, 0), gap, m), "x"), Target{0, 3, 0}},
		{"rolled back", canary, withReason(st(PhaseRollingBack, 0, 0), "x"), Observation{Now: at(m), BlueReady: 3},
			withReason(st(PhaseRolledBack, 0, m), "x"), Target{0, 3, 0}},
		{"rollback stops waiting for blue", canary, withReason(watched(st(PhaseRollingBack, 0, 0), 5*m-sec, 5*m-sec), "x"), Observation{Now: at(5 * m), BlueReady: 2},
			withReason(st(PhaseRolledBack, 0, 5*m), "x; blue had 2 of 3 replicas ready when the rollback stopped waiting for it"), Target{0, 3, 0}},

		// Terminal phases stay put whatever is observed.
		{"succeeded stays", canary, st(PhaseSucceeded, 1, 0), Observation{Now: at(m), GreenFailed: "x", Green: Window{Requests: 100, Errors: 100}},
			st(PhaseSucceeded, 1, 0), Target{100, 0, 3}},
		{"rolled-back stays", canary, withReason(st(PhaseRolledBack, 0, 0), "x"), Observation{Now: at(m)},
			withReason(st(PhaseRolledBack, 0, 0), "x"), Target{0, 3, 0}},
		{"failed stays", canary, withReason(st(PhaseFailed, 0, 0), "x"), Observation{Now: at(m), GreenReady: 3},
			withReason(st(PhaseFailed, 0, 0), "x"), Target{0, 3, 0}},

		// Storage from elsewhere.
		{"unknown phase", canary, st("paused", 0, 0), Observation{Now: at(m), BlueReady: 3},
			withReason(st(PhaseRolledBack, 0, m), `unknown phase "paused"`), Target{0, 3, 0}},
		{"stored strategy became invalid", Strategy{Kind: "blue"}, st(PhaseShifting, 0, 0), Observation{Now: at(m), BlueReady: 3},
			withReason(st(PhaseRolledBack, 0, m), `invalid strategy: unknown strategy kind "blue"`), Target{0, 3, 0}},

		// Rolling, 3 replicas in batches of 2, 1m bake.
		{"rolling start", rolling, State{}, Observation{Now: at(0), Replicas: 3, BlueReady: 3},
			st(PhaseStartingGreen, 0, 0), Target{0, 3, 2}},
		{"rolling first batch ready", rolling, st(PhaseStartingGreen, 0, 0), Observation{Now: at(m), BlueReady: 3, GreenReady: 2},
			st(PhaseShifting, 0, m), Target{67, 1, 2}},
		{"rolling first batch baked", rolling, watched(st(PhaseShifting, 0, 0), m-sec, m-sec), Observation{Now: at(m), BlueReady: 1, GreenReady: 2, Green: ok},
			st(PhaseStartingGreen, 1, m), Target{67, 1, 3}},
		{"rolling second batch ready", rolling, st(PhaseStartingGreen, 1, 0), Observation{Now: at(m), BlueReady: 1, GreenReady: 3, Green: ok},
			st(PhaseShifting, 1, m), Target{100, 0, 3}},
		{"rolling done", rolling, watched(st(PhaseShifting, 1, 0), m-sec, m-sec), Observation{Now: at(m), GreenReady: 3, Green: ok},
			st(PhaseSucceeded, 1, m), Target{100, 0, 3}},
		{"rolling first batch fails to start", rolling, st(PhaseStartingGreen, 0, 0), Observation{Now: at(m), BlueReady: 3, GreenFailed: "oom"},
			withReason(st(PhaseFailed, 0, m), "green replica failed while starting: oom"), Target{0, 3, 0}},
		// Later batches start while earlier green replicas serve: a failure
		// or an alarm then is a rollback, not a failure to start.
		{"rolling second batch fails to start", rolling, st(PhaseStartingGreen, 1, 0), Observation{Now: at(m), BlueReady: 1, GreenReady: 2, GreenFailed: "oom"},
			withReason(st(PhaseRollingBack, 1, m), "green replica failed: oom"), Target{0, 3, 0}},
		{"rolling second batch too slow", rolling, watched(st(PhaseStartingGreen, 1, 0), 5*m-sec, 5*m-sec), Observation{Now: at(5 * m), BlueReady: 1, GreenReady: 2, Green: ok},
			withReason(st(PhaseRollingBack, 1, 5*m), "green not ready after 5m: 2 of 3 replicas ready"), Target{0, 3, 0}},
		{"rolling alarm while a batch starts", rolling, st(PhaseStartingGreen, 1, 0), Observation{Now: at(m), BlueReady: 1, GreenReady: 2, Green: Window{Requests: 50, Errors: 10}},
			withReason(st(PhaseRollingBack, 1, m), "green error rate 20% (10 of 50 requests)"), Target{0, 3, 0}},
		// Blue is gone after the last batch: green keeps the traffic until
		// blue has a ready replica again.
		{"rolling alarm with no blue left", rolling, st(PhaseShifting, 1, 0), Observation{Now: at(30 * time.Second), GreenReady: 3, Green: Window{Requests: 50, P99: 3 * time.Second}},
			withReason(st(PhaseRollingBack, 1, 30*time.Second), "green p99 latency 3s above 1s"), Target{100, 3, 3}},
		{"rolling back from the first batch with no blue left", rolling, withReason(st(PhaseRollingBack, 0, 0), "x"), Observation{Now: at(m), GreenReady: 2},
			withReason(watched(st(PhaseRollingBack, 0, 0), gap, m), "x"), Target{100, 3, 2}},
		{"rolling back, a blue replica is back", rolling, withReason(st(PhaseRollingBack, 1, 0), "x"), Observation{Now: at(m), BlueReady: 1, GreenReady: 3},
			withReason(watched(st(PhaseRollingBack, 1, 0), gap, m), "x"), Target{0, 3, 0}},
		{"rolling rolled back", rolling, withReason(st(PhaseRollingBack, 1, 0), "x"), Observation{Now: at(2 * m), BlueReady: 3},
			withReason(st(PhaseRolledBack, 1, 2*m), "x"), Target{0, 3, 0}},
		{"rolling rollback gives up on blue", rolling, withReason(watched(st(PhaseRollingBack, 1, 0), 5*m-sec, 5*m-sec), "x"), Observation{Now: at(5 * m), GreenReady: 3},
			withReason(st(PhaseRolledBack, 1, 5*m), "blue had 0 of 3 replicas ready"), Target{0, 3, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, tgt := Next(tt.s, testAlarms, tt.in, tt.obs)
			checkState(t, got, tt.want)
			if tgt != tt.tgt {
				t.Errorf("target = %+v, want %+v", tgt, tt.tgt)
			}
			// Pure: the same input, the same output.
			again, tgt2 := Next(tt.s, testAlarms, tt.in, tt.obs)
			if !reflect.DeepEqual(again, got) || tgt2 != tgt {
				t.Errorf("second call gave %+v %+v, first %+v %+v", again, tgt2, got, tgt)
			}
		})
	}
}

func TestAlarmsCheck(t *testing.T) {
	tests := []struct {
		name string
		a    Alarms
		w    Window
		want string // "" = not tripped
	}{
		{"empty window", testAlarms, Window{}, ""},
		{"clean", testAlarms, Window{Requests: 1000, P99: 10 * time.Millisecond}, ""},
		{"min requests 0 judges the first request", Alarms{MaxErrorRate: 0.01}, Window{Requests: 1, Errors: 1}, "green error rate 100% (1 of 1 requests) above 1%"},
		{"min requests 0 but no request", Alarms{MaxErrorRate: 0}, Window{}, ""},
		{"max error rate 0 tolerates no error", Alarms{MinRequests: 10}, Window{Requests: 10000, Errors: 1}, "green error rate 0.01% (1 of 10000 requests) above 0%"},
		{"max error rate 1 is off", Alarms{MaxErrorRate: 1}, Window{Requests: 10, Errors: 10}, ""},
		{"max p99 0 is off", Alarms{MaxErrorRate: 1}, Window{Requests: 10, P99: time.Hour}, ""},
		{"errors checked before latency", testAlarms, Window{Requests: 20, Errors: 20, P99: time.Hour}, "error rate"},
		{"latency rounds for display", testAlarms, Window{Requests: 20, P99: 1234567 * time.Microsecond}, "green p99 latency 1.2346s above 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			why, bad := tt.a.Check(tt.w)
			if bad != (tt.want != "") || !strings.Contains(why, tt.want) {
				t.Errorf("Check(%+v) = %q, %v; want %q", tt.w, why, bad, tt.want)
			}
		})
	}
}

func TestAlarmsValidate(t *testing.T) {
	if err := DefaultAlarms().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	for _, tt := range []struct {
		a    Alarms
		want string
	}{
		{Alarms{MaxErrorRate: -0.1}, "max error rate -0.1"},
		{Alarms{MaxP99: -time.Second}, "max p99 -1s is negative"},
		{Alarms{MinRequests: -1}, "min requests -1"},
		{Alarms{ReadyTimeout: -time.Second}, "ready timeout -1s"},
	} {
		if err := tt.a.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.a, err, tt.want)
		}
	}
}

// A zero ReadyTimeout (alarms stored by an older version) is the default
// 5m, not "no time at all".
func TestZeroReadyTimeoutIsTheDefault(t *testing.T) {
	s := mustParse(t, "canary:10%:1m")
	st := State{Phase: PhaseStartingGreen, Since: at(0), Replicas: 2, Watched: DefaultReadyTimeout - 2*time.Second, LastTick: at(DefaultReadyTimeout - 2*time.Second)}
	a := Alarms{MaxErrorRate: 0.01}
	if got, _ := Next(s, a, st, Observation{Now: at(DefaultReadyTimeout - time.Second), BlueReady: 2}); got.Phase != PhaseStartingGreen {
		t.Errorf("before the default timeout: %+v", got)
	}
	if got, _ := Next(s, a, st, Observation{Now: at(DefaultReadyTimeout - 2*time.Second + MaxTickGap), BlueReady: 2}); got.Phase != PhaseFailed {
		t.Errorf("at the default timeout: %+v", got)
	}
}

func TestAbort(t *testing.T) {
	canary := mustParse(t, "canary:10%:5m")
	m := time.Minute
	// Not started: ends as failed, blue left alone at the observed size.
	st := Abort(State{}, "cancelled by the user")
	got, tgt := Next(canary, testAlarms, st, Observation{Now: at(0), Replicas: 2, BlueReady: 2})
	checkState(t, got, State{Phase: PhaseFailed, Since: at(0), Replicas: 2, Reason: "cancelled by the user"})
	if tgt != (Target{0, 2, 0}) {
		t.Errorf("target %+v", tgt)
	}
	// Green starting, no traffic yet: failed.
	st = Abort(State{Phase: PhaseStartingGreen, Since: at(0), Replicas: 2}, "")
	got, _ = Next(canary, testAlarms, st, Observation{Now: at(m), BlueReady: 2, GreenReady: 2})
	if got.Phase != PhaseFailed || got.Reason != "aborted" {
		t.Errorf("abort while starting: %+v", got)
	}
	// Serving: rolled back.
	st = Abort(State{Phase: PhaseShifting, Since: at(0), Replicas: 2}, "endpoint deleted")
	got, tgt = Next(canary, testAlarms, st, Observation{Now: at(m), BlueReady: 2, GreenReady: 2})
	if got.Phase != PhaseRolledBack || got.Reason != "endpoint deleted" || tgt != (Target{0, 2, 0}) {
		t.Errorf("abort while shifting: %+v %+v", got, tgt)
	}
	// The first reason wins; terminal states do not change.
	if st2 := Abort(st, "again"); st2.Abort != "endpoint deleted" {
		t.Errorf("second abort replaced the reason: %+v", st2)
	}
	done := State{Phase: PhaseSucceeded, Since: at(0), Replicas: 2}
	if st2 := Abort(done, "late"); !reflect.DeepEqual(st2, done) {
		t.Errorf("abort changed a terminal state: %+v", st2)
	}
}

// The controller aborts when it cannot read the stored strategy: the
// abort's reason, not the (zero) strategy's, is what the history shows.
func TestAbortOfAnUnreadableStrategy(t *testing.T) {
	st := Abort(State{}, "unreadable strategy: bogus")
	got, tgt := Next(Strategy{}, testAlarms, st, Observation{Now: at(0), Replicas: 2, BlueReady: 2})
	if got.Phase != PhaseFailed || got.Reason != "unreadable strategy: bogus" || tgt != (Target{0, 2, 0}) {
		t.Errorf("got %+v %+v", got, tgt)
	}
	st = Abort(State{Phase: PhaseShifting, Since: at(0), LastTick: at(0), Replicas: 2}, "unreadable strategy: bogus")
	got, tgt = Next(Strategy{}, testAlarms, st, Observation{Now: at(time.Second), BlueReady: 2, GreenReady: 2})
	if got.Phase != PhaseRolledBack || got.Reason != "unreadable strategy: bogus" || tgt != (Target{0, 2, 0}) {
		t.Errorf("got %+v %+v", got, tgt)
	}
}

func TestMoved(t *testing.T) {
	s := mustParse(t, "canary:10%:1m")
	st := State{Phase: PhaseShifting, Since: at(0), LastTick: at(0), Replicas: 1}
	obs := Observation{Now: at(time.Second), BlueReady: 1, GreenReady: 1}
	next, _ := Next(s, testAlarms, st, obs)
	if next == st {
		t.Fatal("a tick of a bake left the State as it was: the bake would never end after a restart")
	}
	if Moved(st, next) {
		t.Errorf("a tick of a bake counts as a new stage: %+v → %+v", st, next)
	}
	obs.Green = Window{Requests: 100, Errors: 100}
	if next, _ := Next(s, testAlarms, st, obs); !Moved(st, next) {
		t.Errorf("a rollback is not a new stage: %+v", next)
	}
	if !Moved(State{Phase: PhaseShifting, Step: 0}, State{Phase: PhaseShifting, Step: 1}) {
		t.Error("a new step is not a new stage")
	}
}

func TestPhaseTerminal(t *testing.T) {
	for ph, want := range map[Phase]bool{PhaseStartingGreen: false, PhaseShifting: false, PhaseFinishing: false,
		PhaseRollingBack: false, PhaseSucceeded: true, PhaseRolledBack: true, PhaseFailed: true, "": false} {
		if ph.Terminal() != want {
			t.Errorf("%q.Terminal() = %v", ph, !want)
		}
	}
}

// fleet simulates replicas that become ready one a tick after they are
// asked for (and go at once), and green traffic of one request per
// percent per tick.
type fleet struct {
	blue, green int
	broken      func(tick int) bool // green answers 5xx at this tick
	slow        bool
	failAt      int // a green replica dies at this tick (0: never)
	// The alarm window, restarted whenever the State's Since changes.
	since time.Time
	win   Window
}

func (f *fleet) observe(tick int, now time.Time, replicas int) Observation {
	obs := Observation{Now: now, Replicas: replicas, BlueReady: f.blue, GreenReady: f.green, Green: f.win}
	if f.failAt > 0 && tick >= f.failAt {
		obs.GreenFailed = "replica exited with status 1"
	}
	return obs
}

func (f *fleet) apply(tick int, st State, tgt Target) {
	// Traffic from now on counts in the window of the State just decided.
	if !st.Since.Equal(f.since) {
		f.since, f.win = st.Since, Window{}
	}
	f.blue, f.green = converge(f.blue, tgt.BlueReplicas), converge(f.green, tgt.GreenReplicas)
	f.win.Requests += tgt.GreenPercent
	if f.broken != nil && f.broken(tick) {
		f.win.Errors += tgt.GreenPercent
	}
	if f.slow && tgt.GreenPercent > 0 {
		f.win.P99 = 2 * time.Second
	}
}

func converge(have, want int) int {
	if have < want {
		return have + 1
	}
	return want
}

type tick struct {
	st  State
	tgt Target
}

// run drives a deployment tick by tick (1 s apart) to its end. With
// crash, every tick goes through the State's JSON (as the controller
// persists it) and is repeated once, as after a server killed between
// persisting the State and changing the fleet.
func run(t *testing.T, s Strategy, f *fleet, replicas int, crash bool) []tick {
	t.Helper()
	var st State
	var out []tick
	f.blue = replicas
	for i := 0; i < 10000; i++ {
		now := at(time.Duration(i) * time.Second)
		obs := f.observe(i, now, replicas)
		next, tgt := Next(s, testAlarms, st, obs)
		if crash {
			b, err := json.Marshal(next)
			if err != nil {
				t.Fatal(err)
			}
			var restored State
			if err := json.Unmarshal(b, &restored); err != nil {
				t.Fatal(err)
			}
			if restored != next {
				t.Fatalf("tick %d: state changed through JSON: %+v → %+v", i, next, restored)
			}
			// The server died after persisting `restored`, before acting:
			// the restarted one repeats the tick from the old State and
			// must decide the same; then it ticks on from `restored`.
			again, tgt2 := Next(s, testAlarms, st, obs)
			if again != next || tgt2 != tgt {
				t.Fatalf("tick %d repeated: %+v %+v, first %+v %+v", i, again, tgt2, next, tgt)
			}
			next = restored
		}
		out = append(out, tick{next, tgt})
		f.apply(i, next, tgt)
		st = next
		if st.Phase.Terminal() {
			return out
		}
	}
	t.Fatalf("%s did not end: %+v", s, st)
	return nil
}

func phases(ticks []tick) string {
	var b []string
	for i, tk := range ticks {
		s := fmt.Sprintf("%s/%d %d%% b%d g%d", tk.st.Phase, tk.st.Step, tk.tgt.GreenPercent, tk.tgt.BlueReplicas, tk.tgt.GreenReplicas)
		if i == 0 || b[len(b)-1] != s {
			b = append(b, s)
		}
	}
	return strings.Join(b, " → ")
}

func TestScenarios(t *testing.T) {
	never := func(int) bool { return false }
	tests := []struct {
		name     string
		strategy string
		replicas int
		f        fleet
		want     string // the distinct (phase/step, target) sequence
		reason   string
		ticks    int // how many ticks it takes, -1: don't check
	}{
		{"canary succeeds", "canary:10%:5s", 2, fleet{broken: never},
			"starting-green/0 0% b2 g2 → shifting/0 10% b2 g2 → finishing/1 100% b2 g2 → succeeded/1 100% b0 g2", "", 13},
		// 10 % of traffic is 10 requests a tick: the 20 requests MinRequests
		// asks for are there after 2 ticks of the canary step.
		{"broken canary rolls back", "canary:10%:1m", 2, fleet{broken: func(int) bool { return true }},
			"starting-green/0 0% b2 g2 → shifting/0 10% b2 g2 → rolled-back/0 0% b2 g0", "green error rate 100% (20 of 20 requests) above 1%", 5},
		{"slow canary rolls back", "canary:10%:1m", 2, fleet{slow: true},
			"starting-green/0 0% b2 g2 → shifting/0 10% b2 g2 → rolled-back/0 0% b2 g0", "green p99 latency 2s above 1s (20 requests)", 5},
		{"green that breaks in the final bake rolls back", "canary:10%:10s", 2, fleet{broken: func(i int) bool { return i > 15 }},
			"starting-green/0 0% b2 g2 → shifting/0 10% b2 g2 → finishing/1 100% b2 g2 → rolled-back/1 0% b2 g0", "green error rate", -1},
		{"linear succeeds", "linear:30%:2s", 1, fleet{broken: never},
			"starting-green/0 0% b1 g1 → shifting/0 30% b1 g1 → shifting/1 60% b1 g1 → shifting/2 90% b1 g1 → finishing/3 100% b1 g1 → succeeded/3 100% b0 g1", "", -1},
		{"all-at-once succeeds", "all-at-once:3s", 3, fleet{broken: never},
			"starting-green/0 0% b3 g3 → finishing/0 100% b3 g3 → succeeded/0 100% b0 g3", "", 7},
		{"green dies during all-at-once", "all-at-once:1m", 3, fleet{failAt: 4},
			"starting-green/0 0% b3 g3 → finishing/0 100% b3 g3 → rolled-back/0 0% b3 g0", "green replica failed: replica exited with status 1", 5},
		{"green dies while starting", "canary:10%:1m", 3, fleet{failAt: 1},
			"starting-green/0 0% b3 g3 → failed/0 0% b3 g0", "failed while starting", 2},
		{"rolling succeeds", "rolling:1:2s", 3, fleet{broken: never},
			"starting-green/0 0% b3 g1 → shifting/0 33% b2 g1 → starting-green/1 33% b2 g2 → shifting/1 67% b1 g2 → starting-green/2 67% b1 g3 → shifting/2 100% b0 g3 → succeeded/2 100% b0 g3", "", -1},
		// Green breaks once all of blue is gone: green keeps the traffic
		// until blue has a ready replica, then hands it back.
		{"rolling rolls back after the last batch", "rolling:2:30s", 2, fleet{broken: func(i int) bool { return i >= 3 }},
			"starting-green/0 0% b2 g2 → shifting/0 100% b0 g2 → rolling-back/0 100% b2 g2 → rolling-back/0 0% b2 g0 → rolled-back/0 0% b2 g0", "green error rate", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.strategy)
			f := tt.f
			ticks := run(t, s, &f, tt.replicas, false)
			if got := phases(ticks); got != tt.want {
				t.Errorf("phases:\n got %s\nwant %s", got, tt.want)
			}
			last := ticks[len(ticks)-1].st
			if (tt.reason == "") != (last.Reason == "") || !strings.Contains(last.Reason, tt.reason) {
				t.Errorf("reason %q, want %q", last.Reason, tt.reason)
			}
			if tt.ticks >= 0 && len(ticks) != tt.ticks {
				t.Errorf("%d ticks, want %d", len(ticks), tt.ticks)
			}
			// The same deployment through JSON, with every tick repeated as
			// after a crash, takes exactly the same course.
			f2 := tt.f
			crashed := run(t, s, &f2, tt.replicas, true)
			if !reflect.DeepEqual(crashed, ticks) {
				t.Errorf("with crashes:\n%s\nwithout:\n%s", phases(crashed), phases(ticks))
			}
		})
	}
}

// Since is stored without the monotonic clock reading, so that the State
// the controller reads back compares equal to the one it wrote.
func TestStateSurvivesJSON(t *testing.T) {
	s := mustParse(t, "canary:10%:5m")
	st, _ := Next(s, testAlarms, State{}, Observation{Now: time.Now(), Replicas: 1})
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != st {
		t.Errorf("through JSON %+v became %+v", st, back)
	}
	if !strings.Contains(string(b), `"phase":"starting-green"`) || !strings.Contains(string(b), `"replicas":1`) {
		t.Errorf("JSON %s", b)
	}
}
