package job

import (
	"strings"
	"testing"
)

func code(n int) *int { return &n }

func TestResultOutcome(t *testing.T) {
	tests := []struct {
		name   string
		r      Result
		state  State
		reason string
	}{
		{"exit 0", Result{ExitCode: code(0)}, Succeeded, ""},
		{"exit 3", Result{ExitCode: code(3)}, Failed, "exit code 3"},
		{"signal", Result{Signal: "SIGSEGV"}, Failed, "killed by SIGSEGV"},
		{"start error", Result{Error: "cannot run x: no such file"}, Failed, "cannot run x: no such file"},
		{"node lost", Result{NodeLost: true, Error: "executor lost"}, Failed, "node lost: executor lost"},
		{"timeout beats signal", Result{TimedOut: true, Signal: "SIGTERM"}, Timeout, "time limit reached"},
		{"cancel beats everything", Result{Cancelled: true, TimedOut: true, ExitCode: code(1)}, Cancelled, "cancelled by user"},
		{"error beats exit code", Result{Error: "stage-out: x", ExitCode: code(0)}, Failed, "stage-out: x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, reason := tt.r.Outcome()
			if state != tt.state || reason != tt.reason {
				t.Fatalf("Outcome = %s %q, want %s %q", state, reason, tt.state, tt.reason)
			}
		})
	}
}

func TestRetryPolicyShouldRetry(t *testing.T) {
	exit3, exit4 := &Result{ExitCode: code(3)}, &Result{ExitCode: code(4)}
	ok := &Result{ExitCode: code(0)}
	killed := &Result{Signal: "SIGKILL"}
	lost := &Result{NodeLost: true, Error: "gone"}
	startErr := &Result{Error: "cannot run"}
	timeout := &Result{TimedOut: true, Signal: "SIGTERM"}
	cancelled := &Result{Cancelled: true, ExitCode: code(143)}
	tests := []struct {
		name    string
		p       RetryPolicy
		attempt int
		r       *Result
		want    bool
	}{
		{"one attempt never retries", RetryPolicy{Attempts: 1}, 1, exit3, false},
		{"any failure retried without conditions", RetryPolicy{Attempts: 3}, 1, exit3, true},
		{"signal retried without conditions", RetryPolicy{Attempts: 3}, 2, killed, true},
		{"node loss retried without conditions", RetryPolicy{Attempts: 3}, 1, lost, true},
		{"start error retried without conditions", RetryPolicy{Attempts: 3}, 1, startErr, true},
		{"attempts exhausted", RetryPolicy{Attempts: 3}, 3, exit3, false},
		{"success not retried", RetryPolicy{Attempts: 3}, 1, ok, false},
		{"timeout never retried", RetryPolicy{Attempts: 3}, 1, timeout, false},
		{"cancel never retried", RetryPolicy{Attempts: 3}, 1, cancelled, false},
		{"matching exit code", RetryPolicy{Attempts: 3, OnExitCodes: []int{3}}, 1, exit3, true},
		{"other exit code", RetryPolicy{Attempts: 3, OnExitCodes: []int{3}}, 1, exit4, false},
		{"exit-code policy ignores signals", RetryPolicy{Attempts: 3, OnExitCodes: []int{3}}, 1, killed, false},
		{"matching signal", RetryPolicy{Attempts: 3, OnSignals: []string{"SIGKILL"}}, 1, killed, true},
		{"signal policy ignores exit codes", RetryPolicy{Attempts: 3, OnSignals: []string{"SIGKILL"}}, 1, exit3, false},
		{"node loss policy", RetryPolicy{Attempts: 2, OnNodeLoss: true}, 1, lost, true},
		{"node loss policy ignores exit codes", RetryPolicy{Attempts: 2, OnNodeLoss: true}, 1, exit3, false},
		{"exit-code policy ignores node loss", RetryPolicy{Attempts: 2, OnExitCodes: []int{3}}, 1, lost, false},
		{"conditional policy ignores start errors", RetryPolicy{Attempts: 2, OnExitCodes: []int{3}}, 1, startErr, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.ShouldRetry(tt.attempt, tt.r); got != tt.want {
				t.Fatalf("ShouldRetry(%d, %+v) = %v, want %v", tt.attempt, tt.r, got, tt.want)
			}
		})
	}
}

func TestStateMachine(t *testing.T) {
	allowed := map[[2]State]bool{}
	for _, m := range [][2]State{
		{Pending, Runnable}, {Pending, Starting}, {Pending, Failed}, {Pending, Cancelled},
		{Runnable, Starting}, {Runnable, Cancelled}, {Runnable, Failed},
		{Starting, Running}, {Starting, Runnable}, {Starting, Pending}, {Starting, Succeeded}, {Starting, Failed}, {Starting, Cancelled}, {Starting, Timeout},
		{Running, Runnable}, {Running, Succeeded}, {Running, Failed}, {Running, Cancelled}, {Running, Timeout},
	} {
		allowed[m] = true
	}
	for _, from := range States {
		for _, to := range States {
			want := allowed[[2]State{from, to}]
			if got := CanMove(from, to); got != want {
				t.Errorf("CanMove(%s, %s) = %v, want %v", from, to, got, want)
			}
			err := CheckMove(from, to)
			if (err == nil) != want {
				t.Errorf("CheckMove(%s, %s) = %v", from, to, err)
			}
			if err != nil && !strings.Contains(err.Error(), string(from)) {
				t.Errorf("CheckMove error %q does not name the states", err)
			}
		}
		if from.Terminal() {
			for _, to := range States {
				if CanMove(from, to) {
					t.Errorf("terminal %s may move to %s", from, to)
				}
			}
		}
	}
	for _, s := range []State{Succeeded, Failed, Cancelled, Timeout} {
		if !s.Terminal() || s.Active() {
			t.Errorf("%s: terminal %v active %v", s, s.Terminal(), s.Active())
		}
	}
	for _, s := range []State{Starting, Running} {
		if !s.Active() || s.Terminal() {
			t.Errorf("%s: terminal %v active %v", s, s.Terminal(), s.Active())
		}
	}
	if State("DONE").Valid() || !Running.Valid() {
		t.Error("Valid is wrong")
	}
}
