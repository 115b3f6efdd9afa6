// Package rollout decides, tick by tick, how a deployment moves an
// endpoint variant from its current fleet (blue) to a new one (green):
// blue/green with all-at-once, canary or linear traffic steps, each baked
// while alarms watch green (as SageMaker's deployment guardrails do), or a
// rolling replacement in batches. It does no I/O and keeps no state of its
// own: everything it needs is in its arguments, so a server killed at any
// moment resumes from the last persisted State.
//
// # How the controller uses it
//
// When an update starts, the controller parses the user's --strategy with
// ParseStrategy (refusing the update on error), fills Alarms from
// DefaultAlarms() and the user's flags (checking them with
// Alarms.Validate), and stores the strategy's String(), the alarms and a
// zero State with the deployment. Then, on every tick (about once a
// second) until the State's phase is terminal:
//
//  1. Observe: Observation.Now, Replicas (the variant's replica count when
//     the update began; only the first call reads it, later calls use
//     State.Replicas), BlueReady and GreenReady (replicas of each fleet
//     that pass their readiness check), GreenFailed (non-empty once any
//     green replica of this deployment has exited or failed to start:
//     the controller must not replace failed green replicas during a
//     deployment, because a new version that crashes is a reason to roll
//     back) and Green, green's traffic since State.Since of the State it
//     is about to pass in (requests, 5xx-or-no-response errors, p99) — the
//     window restarts with every phase or step change. After a restart
//     the controller has no counts from before it started; counting from
//     its start is fine (the window is then shorter, never wrong).
//  2. Call Next(strategy, alarms, state, observation).
//  3. Persist the returned State (JSON) before acting on it, then make the
//     fleet match the returned Target: GreenPercent of the variant's
//     traffic to green (the rest to blue), BlueReplicas and GreenReplicas
//     replicas in each fleet. Applying a Target is idempotent: start
//     replicas that are missing, stop surplus ones. A replica being
//     stopped must first leave the gateway's routing and finish its
//     in-flight requests (SIGTERM drains it), so no request fails
//     because of the rollout itself. When a fleet must go from serving
//     traffic to zero replicas, move the traffic first.
//
// To cancel a deployment (or give up on state it cannot read), pass
// Abort(state, reason) to the next call instead of the state.
//
// Persist the returned State whenever it differs from the one passed in
// (it changes on every tick, see below); add an entry to the
// deployment's history when Moved(old, new) — a new phase, step or
// reason — rather than on every change.
//
// The same State and Observation always give the same result, so a tick
// that is repeated after a crash (the State was persisted but the fleet
// not yet changed) does no harm. Bakes and deadlines count the time the
// controller watched: each tick counts the time since the previous one,
// at most MaxTickGap, so after a server was down a step bakes for what it
// still owes instead of passing unjudged, and a deadline does not expire
// before the restarted controller has looked at the replicas again.
// (The State therefore changes on every tick; persist it whenever it
// changes.)
//
// When the phase is PhaseSucceeded the Target has GreenPercent 100 and
// BlueReplicas 0: the controller makes green the variant's fleet and
// drops blue. When it is PhaseRolledBack or PhaseFailed the Target has
// GreenPercent 0 and GreenReplicas 0: blue stays the variant's fleet, and
// State.Reason says why (the alarm and the measured value, the failure,
// or the readiness deadline). Autoscaling of the variant must be
// suspended while a deployment runs: the fleet size is pinned in
// State.Replicas when it starts.
//
// Phases, in order: starting-green (green replicas come up, no traffic
// yet for blue/green; a rolling batch comes up), shifting (a traffic step
// below 100 % bakes), finishing (blue/green: 100 % to green, blue still
// up for an instant rollback, the final bake), then succeeded; or
// rolling-back (traffic back to blue; waits for blue to be back at full
// size, which only takes time after a rolling update scaled it down) and
// rolled-back; or failed (green never took traffic: it did not become
// ready in time or a replica failed while starting).
package rollout

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Phase is where a deployment is.
type Phase string

// MaxTickGap is the most bake time one tick can count, however long ago
// the previous tick was (the controller ticks about once a second).
const MaxTickGap = 10 * time.Second

// Phases. The last three are terminal.
const (
	PhaseStartingGreen Phase = "starting-green"
	PhaseShifting      Phase = "shifting"
	PhaseFinishing     Phase = "finishing"
	PhaseRollingBack   Phase = "rolling-back"
	PhaseSucceeded     Phase = "succeeded"
	PhaseRolledBack    Phase = "rolled-back"
	PhaseFailed        Phase = "failed"
)

// Terminal reports whether the deployment is over.
func (p Phase) Terminal() bool {
	return p == PhaseSucceeded || p == PhaseRolledBack || p == PhaseFailed
}

// Alarms are the guardrails that roll a deployment back.
type Alarms struct {
	// MaxErrorRate: roll back when green's errors/requests over the current
	// step's window exceed it (0.01 = 1 %; 0 tolerates no error at all; 1
	// or more turns the alarm off).
	MaxErrorRate float64
	// MaxP99: roll back when green's p99 latency over the window exceeds
	// it; 0 turns the latency alarm off.
	MaxP99 time.Duration
	// MinRequests: neither alarm is evaluated on a window with fewer
	// requests, so that one slow or failed request out of three does not
	// decide. A step whose bake ends with fewer requests moves on (as
	// SageMaker's alarms stay OK without data).
	MinRequests int
	// ReadyTimeout: how long green (or a rolling batch) may take to become
	// ready, and how long a rollback waits for blue to be back at full
	// size; 0 means DefaultReadyTimeout.
	ReadyTimeout time.Duration
}

// Defaults of DefaultAlarms.
const (
	DefaultMaxErrorRate = 0.01
	DefaultMaxP99       = time.Second
	DefaultMinRequests  = 20
	DefaultReadyTimeout = 5 * time.Minute
)

// DefaultAlarms are the alarms a deployment gets unless the user says
// otherwise: more than 1 % errors or a p99 above 1 s, judged once green
// has served 20 requests in the step; green must be ready within 5
// minutes. A healthy new version of a model returns no 5xx at all, so 1 %
// is strict on purpose: a rollback costs little (blue is still there), a
// bad version promoted costs much. 1 s is far above what small models
// take here (milliseconds); raise it for large ones.
func DefaultAlarms() Alarms {
	return Alarms{MaxErrorRate: DefaultMaxErrorRate, MaxP99: DefaultMaxP99,
		MinRequests: DefaultMinRequests, ReadyTimeout: DefaultReadyTimeout}
}

// Validate checks alarms set by a user.
func (a Alarms) Validate() error {
	switch {
	case math.IsNaN(a.MaxErrorRate) || a.MaxErrorRate < 0:
		return fmt.Errorf("max error rate %v: want a fraction ≥ 0, e.g. 0.01 for 1%%", a.MaxErrorRate)
	case a.MaxP99 < 0:
		return fmt.Errorf("max p99 %s is negative (0 turns the latency alarm off)", a.MaxP99)
	case a.MinRequests < 0:
		return fmt.Errorf("min requests %d is negative", a.MinRequests)
	case a.ReadyTimeout < 0:
		return fmt.Errorf("ready timeout %s is negative", a.ReadyTimeout)
	}
	return nil
}

func (a Alarms) readyTimeout() time.Duration {
	if a.ReadyTimeout <= 0 {
		return DefaultReadyTimeout
	}
	return a.ReadyTimeout
}

// Window is green's traffic since the State's Since.
type Window struct {
	Requests int `json:"requests"`
	// Errors are responses with a status ≥ 500 and requests that got no
	// response from a green replica at all.
	Errors int           `json:"errors"`
	P99    time.Duration `json:"p99"`
}

// Check evaluates the alarms on w: tripped, and if so a reason naming the
// alarm, the measured value and the threshold.
func (a Alarms) Check(w Window) (reason string, tripped bool) {
	if w.Requests <= 0 || w.Requests < a.MinRequests {
		return "", false
	}
	// Compared as counts, not as a rounded rate: 1 error in 100 is not
	// above 1 %.
	if a.MaxErrorRate < 1 && float64(w.Errors) > a.MaxErrorRate*float64(w.Requests) {
		return fmt.Sprintf("green error rate %s (%d of %d requests) above %s",
			percent(float64(w.Errors)/float64(w.Requests)), w.Errors, w.Requests, percent(a.MaxErrorRate)), true
	}
	if a.MaxP99 > 0 && w.P99 > a.MaxP99 {
		return fmt.Sprintf("green p99 latency %s above %s (%d requests)",
			w.P99.Round(time.Millisecond/10), FormatDuration(a.MaxP99), w.Requests), true
	}
	return "", false
}

func percent(f float64) string {
	s := fmt.Sprintf("%.2f", 100*f)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + "%"
}

// State is a deployment's progress, persisted by the controller as JSON
// after every call to Next. The zero State is a deployment that has not
// started.
type State struct {
	Phase Phase `json:"phase"`
	// Step is the index of the traffic step (blue/green) or of the batch
	// (rolling) being started, baked, or rolled back from.
	Step int `json:"step"`
	// Since is when the current phase or step began: green's alarm
	// window starts at it.
	Since time.Time `json:"since"`
	// Watched is how long the current phase or step has been watched, and
	// LastTick when it last was. Bakes and deadlines are measured in
	// watched time: each tick counts the time since the previous one, at
	// most MaxTickGap, so that a bake does not pass unjudged while the
	// server was down (it resumes with the bake time it still owes) and
	// a deadline does not expire before a restarted controller has looked
	// at its replicas again.
	Watched  time.Duration `json:"watched,omitempty"`
	LastTick time.Time     `json:"last_tick,omitzero"`
	// Reason says why a deployment is rolling back, rolled back or failed.
	Reason string `json:"reason,omitempty"`
	// Replicas is the size of the variant's fleet, pinned when the
	// deployment starts: blue's size before, green's after.
	Replicas int `json:"replicas"`
	// Abort, set by Abort, asks Next to roll back with this reason.
	Abort string `json:"abort,omitempty"`
}

// Observation is what the controller saw this tick; see the package
// documentation for each field's exact meaning.
type Observation struct {
	Now         time.Time
	Replicas    int
	BlueReady   int
	GreenReady  int
	GreenFailed string
	Green       Window
}

// Target is the fleet the controller must make real.
type Target struct {
	GreenPercent  int `json:"green_percent"`
	BlueReplicas  int `json:"blue_replicas"`
	GreenReplicas int `json:"green_replicas"`
}

// Next is one tick of the deployment: the next State and the fleet to
// make. It makes at most one step of progress per call (a rollback that
// needs no waiting completes in the same call), so the alarm window the
// controller measured always belongs to the State it passed in.
func Next(s Strategy, a Alarms, st State, obs Observation) (State, Target) {
	now := obs.Now.UTC().Round(0) // no monotonic reading: Since must survive JSON unchanged
	if st.Phase == "" {
		st = State{Phase: PhaseStartingGreen, Since: now, LastTick: now, Replicas: obs.Replicas, Abort: st.Abort}
		if st.Replicas < 1 {
			st.Replicas = max(st.Replicas, 0)
			return terminal(st, PhaseFailed, now, fmt.Sprintf("variant has %d replicas: nothing to deploy", obs.Replicas))
		}
		if st.Abort != "" { // before the strategy: the abort may be why it is bad
			return terminal(st, PhaseFailed, now, st.Abort)
		}
		if err := s.Validate(); err != nil {
			return terminal(st, PhaseFailed, now, "invalid strategy: "+err.Error())
		}
	}
	if st.Phase.Terminal() {
		return st, terminalTarget(st)
	}
	if st.Abort != "" && st.Phase != PhaseRollingBack {
		if st.Phase == PhaseStartingGreen && st.Step == 0 {
			return terminal(st, PhaseFailed, now, st.Abort) // green never took traffic
		}
		return rollBack(s, st, obs, now, st.Abort)
	}
	if err := s.Validate(); err != nil {
		// The stored strategy no longer makes sense (only hand-edited
		// storage does this): go back to what is known to work.
		return rollBack(s, st, obs, now, "invalid strategy: "+err.Error())
	}
	p := plan{s, st.Replicas}
	st = watch(st, now)
	timeout := a.readyTimeout()

	switch st.Phase {
	case PhaseStartingGreen:
		tgt := p.startingTarget(st.Step)
		serving := tgt.GreenPercent > 0 // only a rolling batch after the first
		if obs.GreenFailed != "" {
			if !serving {
				return terminal(st, PhaseFailed, now, "green replica failed while starting: "+obs.GreenFailed)
			}
			return rollBack(s, st, obs, now, "green replica failed: "+obs.GreenFailed)
		}
		if serving {
			if why, bad := a.Check(obs.Green); bad {
				return rollBack(s, st, obs, now, why)
			}
		}
		want := p.greenWanted(st.Step)
		if obs.GreenReady >= want {
			st = State{Phase: p.servingPhase(st.Step), Step: st.Step, Since: now, LastTick: now, Replicas: st.Replicas}
			return st, p.servingTarget(st.Step)
		}
		if st.Watched >= timeout {
			why := fmt.Sprintf("green not ready after %s: %d of %d replicas ready", FormatDuration(timeout), obs.GreenReady, want)
			if !serving {
				return terminal(st, PhaseFailed, now, why)
			}
			return rollBack(s, st, obs, now, why)
		}
		return st, tgt

	case PhaseShifting, PhaseFinishing:
		tgt := p.servingTarget(st.Step)
		if obs.GreenFailed != "" {
			return rollBack(s, st, obs, now, "green replica failed: "+obs.GreenFailed)
		}
		if why, bad := a.Check(obs.Green); bad {
			return rollBack(s, st, obs, now, why)
		}
		bake := p.bake(st.Step)
		if st.Watched < bake {
			return st, tgt
		}
		want := p.greenWanted(st.Step)
		if obs.GreenReady < want {
			// Do not move on with part of green unready (capacity would
			// shrink when blue goes), but do not wait for ever either.
			if st.Watched >= bake+timeout {
				return rollBack(s, st, obs, now, fmt.Sprintf("green has %d of %d replicas ready %s after step %d's bake time",
					obs.GreenReady, want, FormatDuration(timeout), st.Step+1))
			}
			return st, tgt
		}
		if st.Step == p.steps()-1 {
			return terminal(st, PhaseSucceeded, now, "")
		}
		next := st.Step + 1
		if s.Kind == KindRolling {
			st = State{Phase: PhaseStartingGreen, Step: next, Since: now, LastTick: now, Replicas: st.Replicas}
			return st, p.startingTarget(next)
		}
		st = State{Phase: p.servingPhase(next), Step: next, Since: now, LastTick: now, Replicas: st.Replicas}
		return st, p.servingTarget(next)

	case PhaseRollingBack:
		return rollingBack(s, st, obs, now, timeout)
	}
	// An unknown phase (storage from a newer version?): the safe way out.
	return rollBack(s, st, obs, now, fmt.Sprintf("unknown phase %q", st.Phase))
}

// Moved reports whether next is a new stage of the deployment compared
// with prev (another phase, step or reason): what a history shows. The
// State also changes within a stage, on every tick (State.Watched).
func Moved(prev, next State) bool {
	return prev.Phase != next.Phase || prev.Step != next.Step || prev.Reason != next.Reason
}

// Abort asks for a running deployment to be rolled back for the given
// reason (a user's cancel, the endpoint being changed under it): it
// returns st with the request recorded, and the next call to Next carries
// it out (a deployment whose green has not taken traffic yet ends as
// failed, any other rolls back). A terminal State is returned unchanged,
// and so is one already asked to abort.
func Abort(st State, reason string) State {
	if st.Phase.Terminal() || st.Abort != "" {
		return st
	}
	if reason == "" {
		reason = "aborted"
	}
	st.Abort = reason
	return st
}

// watch credits st with the time since its last tick, at most MaxTickGap
// (none if the clock went back).
func watch(st State, now time.Time) State {
	if st.LastTick.IsZero() {
		st.LastTick = now
		return st
	}
	if gap := now.Sub(st.LastTick); gap > 0 {
		st.Watched += min(gap, MaxTickGap)
		st.LastTick = now
	}
	return st
}

func terminal(st State, ph Phase, now time.Time, reason string) (State, Target) {
	st = State{Phase: ph, Step: st.Step, Since: now, Reason: reason, Replicas: st.Replicas}
	return st, terminalTarget(st)
}

func terminalTarget(st State) Target {
	if st.Phase == PhaseSucceeded {
		return Target{GreenPercent: 100, BlueReplicas: 0, GreenReplicas: st.Replicas}
	}
	return Target{GreenPercent: 0, BlueReplicas: st.Replicas, GreenReplicas: 0}
}

func rollBack(s Strategy, st State, obs Observation, now time.Time, reason string) (State, Target) {
	st = State{Phase: PhaseRollingBack, Step: st.Step, Since: now, LastTick: now, Reason: reason, Replicas: st.Replicas}
	return rollingBack(s, st, obs, now, 0)
}

// rollingBack: traffic goes back to blue as soon as blue has a ready
// replica, and green goes with it; blue is asked for its full size. Only
// when blue has nothing ready (the last batch of a rolling update) does
// green keep serving until blue is back. The phase ends when blue is at
// full size, or after the ready timeout (blue's replicas then keep being
// replaced by the controller as usual). timeout 0: just entered, no
// waiting has happened.
func rollingBack(s Strategy, st State, obs Observation, now time.Time, timeout time.Duration) (State, Target) {
	n := st.Replicas
	if obs.BlueReady >= n {
		return terminal(st, PhaseRolledBack, now, st.Reason)
	}
	if timeout > 0 && st.Watched >= timeout {
		return terminal(st, PhaseRolledBack, now, fmt.Sprintf("%s; blue had %d of %d replicas ready when the rollback stopped waiting for it", st.Reason, obs.BlueReady, n))
	}
	if obs.BlueReady > 0 {
		return st, Target{GreenPercent: 0, BlueReplicas: n, GreenReplicas: 0}
	}
	green := n
	if s.Kind == KindRolling && s.BatchSize > 0 {
		green = plan{s, n}.greenWanted(st.Step)
	}
	return st, Target{GreenPercent: 100, BlueReplicas: n, GreenReplicas: green}
}

// plan is a strategy applied to a fleet of n replicas.
type plan struct {
	s Strategy
	n int
}

func (p plan) rolling() bool { return p.s.Kind == KindRolling }

// steps is the number of traffic steps (blue/green) or batches (rolling).
func (p plan) steps() int {
	if p.rolling() {
		return (p.n + p.s.BatchSize - 1) / p.s.BatchSize
	}
	return len(p.s.Steps)
}

// greenWanted is how many green replicas step i runs (and needs ready).
func (p plan) greenWanted(i int) int {
	if p.rolling() {
		return min((i+1)*p.s.BatchSize, p.n)
	}
	return p.n
}

func (p plan) bake(i int) time.Duration {
	if p.rolling() {
		return p.s.Bake
	}
	return p.s.Steps[min(i, len(p.s.Steps)-1)].Bake
}

func (p plan) servingPhase(i int) Phase {
	if !p.rolling() && p.s.Steps[min(i, len(p.s.Steps)-1)].GreenPercent == 100 {
		return PhaseFinishing
	}
	return PhaseShifting
}

// startingTarget: blue/green starts the whole green fleet with no
// traffic; a rolling batch adds its green replicas while blue and the
// traffic split stay as the previous batch left them (a surge of at most
// BatchSize replicas, so capacity never drops).
func (p plan) startingTarget(i int) Target {
	if !p.rolling() {
		return Target{GreenPercent: 0, BlueReplicas: p.n, GreenReplicas: p.n}
	}
	prev := 0
	if i > 0 {
		prev = p.greenWanted(i - 1)
	}
	return Target{GreenPercent: p.share(prev), BlueReplicas: p.n - prev, GreenReplicas: p.greenWanted(i)}
}

// servingTarget: the step's traffic share; a rolling batch's blue
// replicas go once its green ones are ready, and traffic follows the
// replica counts.
func (p plan) servingTarget(i int) Target {
	if !p.rolling() {
		return Target{GreenPercent: p.s.Steps[min(i, len(p.s.Steps)-1)].GreenPercent, BlueReplicas: p.n, GreenReplicas: p.n}
	}
	g := p.greenWanted(i)
	return Target{GreenPercent: p.share(g), BlueReplicas: p.n - g, GreenReplicas: g}
}

// share is green's traffic percentage with g of n replicas green, rounded,
// but never 0 with a green replica nor 100 with a blue one.
func (p plan) share(g int) int {
	if g <= 0 {
		return 0
	}
	if g >= p.n {
		return 100
	}
	return min(max((200*g+p.n)/(2*p.n), 1), 99)
}
