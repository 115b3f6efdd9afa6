package slurm

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

func TestNormState(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"RUNNING", "RUNNING"},
		{"PENDING", "PENDING"},
		{"R", "RUNNING"},
		{"PD", "PENDING"},
		{"pd", "PENDING"},
		{"running", "RUNNING"},
		{" CD \n", "COMPLETED"},
		{"CD", "COMPLETED"},
		{"CG", "COMPLETING"},
		{"CA", "CANCELLED"},
		{"F", "FAILED"},
		{"S", "SUSPENDED"},
		{"ST", "STOPPED"},
		{"SE", "SPECIAL_EXIT"},
		{"OOM", "OUT_OF_MEMORY"},
		{"NF", "NODE_FAIL"},
		{"BF", "BOOT_FAIL"},
		{"PR", "PREEMPTED"},
		{"TO", "TIMEOUT"},
		{"DL", "DEADLINE"},
		// scontrol: "CANCELLED by <uid>"; sacct: "CANCELLED+".
		{"CANCELLED by 0", "CANCELLED"},
		{"CANCELLED by 1000", "CANCELLED"},
		{"CANCELLED+", "CANCELLED"},
		{"CA+", "CANCELLED"},
		{"OUT_OF_MEMORY", "OUT_OF_MEMORY"},
		{"NODE_FAIL", "NODE_FAIL"},
		{"WEIRD_NEW_STATE", "WEIRD_NEW_STATE"},
		{"weird", "WEIRD"},
		{"", ""},
		{"   ", ""},
	}
	for _, tt := range tests {
		if got := normState(tt.in); got != tt.want {
			t.Errorf("normState(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// Every long name and short code of stateCodes reads back as the long
// name, and no short code is another state's long name (which would
// make normState ambiguous).
func TestNormStateRoundTrip(t *testing.T) {
	seen := map[string]string{}
	for long, short := range stateCodes {
		if got := normState(long); got != long {
			t.Errorf("normState(%q) = %q, want itself", long, got)
		}
		if got := normState(short); got != long {
			t.Errorf("normState(%q) = %q, want %q", short, got, long)
		}
		if got := normState(strings.ToLower(short)); got != long {
			t.Errorf("normState(%q) = %q, want %q", strings.ToLower(short), got, long)
		}
		if other, dup := seen[short]; dup {
			t.Errorf("short code %q is used by both %s and %s", short, other, long)
		}
		seen[short] = long
		if _, clash := stateCodes[short]; clash {
			t.Errorf("short code %q of %s is also a long state name", short, long)
		}
	}
}

func TestEnded(t *testing.T) {
	terminal := map[string]bool{
		"BOOT_FAIL":     true,
		"CANCELLED":     true,
		"COMPLETED":     true,
		"CONFIGURING":   false,
		"COMPLETING":    false,
		"DEADLINE":      true,
		"FAILED":        true,
		"NODE_FAIL":     true,
		"OUT_OF_MEMORY": true,
		"PENDING":       false,
		"PREEMPTED":     true,
		"RUNNING":       false,
		"RESV_DEL_HOLD": false,
		"REQUEUE_FED":   false,
		"REQUEUE_HOLD":  false,
		"REQUEUED":      false,
		"RESIZING":      false,
		"REVOKED":       true,
		"SIGNALING":     false,
		"SPECIAL_EXIT":  true,
		"STAGE_OUT":     false,
		"STOPPED":       false,
		"SUSPENDED":     false,
		"TIMEOUT":       true,
	}
	// The table must cover every state Slurm lists, so that a state added
	// to stateCodes is classified here too.
	for long := range stateCodes {
		if _, ok := terminal[long]; !ok {
			t.Errorf("state %s of stateCodes is missing from this test's table", long)
		}
	}
	for long, want := range terminal {
		short, ok := stateCodes[long]
		if !ok {
			t.Errorf("state %s of this test's table is not in stateCodes", long)
			continue
		}
		for _, in := range []string{long, short, strings.ToLower(long), long + "+"} {
			if got := ended(in); got != want {
				t.Errorf("ended(%q) = %v, want %v", in, got, want)
			}
		}
	}
	for in, want := range map[string]bool{
		"CANCELLED by 0": true,
		"":               false,
		"UNKNOWN":        false,
	} {
		if got := ended(in); got != want {
			t.Errorf("ended(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestWaitingReason(t *testing.T) {
	tests := []struct {
		id, state, reason, want string
	}{
		{"12", "PENDING", "Resources", "slurm job 12: PD (Resources)"},
		{"12", "PD", "Priority", "slurm job 12: PD (Priority)"},
		{"12_3", "PENDING", "QOSMaxJobsPerUserLimit", "slurm job 12_3: PD (QOSMaxJobsPerUserLimit)"},
		{"7", "RUNNING", "None", "slurm job 7: R"},
		{"7", "RUNNING", "", "slurm job 7: R"},
		{"7", "CONFIGURING", "(null)", "slurm job 7: CF"},
		{"7", "REQUEUE_HOLD", "JobHeldAdmin", "slurm job 7: RH (JobHeldAdmin)"},
		{"7", "suspended", "", "slurm job 7: S"},
		{"7", "MYSTERY", "because", "slurm job 7: MYSTERY (because)"},
	}
	for _, tt := range tests {
		if got := waitingReason(tt.id, tt.state, tt.reason); got != tt.want {
			t.Errorf("waitingReason(%q, %q, %q) = %q, want %q", tt.id, tt.state, tt.reason, got, tt.want)
		}
	}
}

func TestParseExitCode(t *testing.T) {
	tests := []struct {
		in   string
		code int
		sig  syscall.Signal
	}{
		{"0:0", 0, 0},
		{"1:0", 1, 0},
		{"0:9", 0, syscall.SIGKILL},
		{"0:15", 0, syscall.SIGTERM},
		{"137:0", 137, 0},
		{"2:15", 2, syscall.SIGTERM},
		{" 3:0\n", 3, 0},
		{"3", 3, 0},
		{"", 0, 0},
		{"garbage", 0, 0},
		{"x:y", 0, 0},
		{":", 0, 0},
	}
	for _, tt := range tests {
		code, sig := parseExitCode(tt.in)
		if code != tt.code || sig != tt.sig {
			t.Errorf("parseExitCode(%q) = %d, %d; want %d, %d", tt.in, code, sig, tt.code, tt.sig)
		}
	}
}

func TestSlurmEndResult(t *testing.T) {
	const id = "4242"
	const neverRan = "the job wrapper never started"
	type want struct {
		nodeLost, interrupted, neverStarted bool
		timedOut, cancelled                 bool
		signal                              string
		exitCode                            int // -1: nil
		err                                 []string
		noErr                               bool
		state                               job.State
		outcome                             string // prefix of Outcome's reason
	}
	tests := []struct {
		name    string
		end     slurmEnd
		claimed bool
		want    want
	}{
		{"node fail, claimed", slurmEnd{State: "NODE_FAIL", ExitCode: "0:0"}, true,
			want{nodeLost: true, interrupted: true, exitCode: -1, err: []string{"slurm job 4242", "node failure (NF)"},
				state: job.Failed, outcome: "node lost: slurm job 4242: node failure (NF)"}},
		{"node fail, not claimed", slurmEnd{State: "NODE_FAIL"}, false,
			want{nodeLost: true, interrupted: true, neverStarted: true, exitCode: -1, err: []string{"node failure (NF)"},
				state: job.Failed, outcome: "node lost: "}},
		{"node fail short code", slurmEnd{State: "NF"}, false,
			want{nodeLost: true, interrupted: true, neverStarted: true, exitCode: -1, err: []string{"node failure (NF)"},
				state: job.Failed, outcome: "node lost: "}},
		{"boot fail, claimed", slurmEnd{State: "BOOT_FAIL"}, true,
			want{nodeLost: true, interrupted: true, exitCode: -1, err: []string{"node failure (BF)"},
				state: job.Failed, outcome: "node lost: "}},
		{"boot fail, not claimed", slurmEnd{State: "BOOT_FAIL"}, false,
			want{nodeLost: true, interrupted: true, neverStarted: true, exitCode: -1, err: []string{"node failure (BF)"},
				state: job.Failed, outcome: "node lost: "}},
		{"preempted, claimed", slurmEnd{State: "PREEMPTED", ExitCode: "0:15"}, true,
			want{nodeLost: true, interrupted: true, exitCode: -1, err: []string{"slurm job 4242: preempted"},
				state: job.Failed, outcome: "node lost: slurm job 4242: preempted"}},
		{"preempted, not claimed", slurmEnd{State: "PREEMPTED"}, false,
			want{nodeLost: true, interrupted: true, neverStarted: true, exitCode: -1, err: []string{"preempted"},
				state: job.Failed, outcome: "node lost: "}},
		{"timeout, claimed", slurmEnd{State: "TIMEOUT", ExitCode: "0:15"}, true,
			want{timedOut: true, exitCode: -1, noErr: true, state: job.Timeout, outcome: "time limit reached"}},
		{"timeout, not claimed", slurmEnd{State: "TIMEOUT"}, false,
			want{timedOut: true, exitCode: -1, noErr: true, state: job.Timeout, outcome: "time limit reached"}},
		{"deadline, claimed", slurmEnd{State: "DEADLINE"}, true,
			want{timedOut: true, exitCode: -1, noErr: true, state: job.Timeout, outcome: "time limit reached"}},
		{"deadline, not claimed", slurmEnd{State: "DL"}, false,
			want{timedOut: true, exitCode: -1, noErr: true, state: job.Timeout, outcome: "time limit reached"}},
		{"cancelled, claimed", slurmEnd{State: "CANCELLED by 0", ExitCode: "0:15"}, true,
			want{cancelled: true, exitCode: -1, noErr: true, state: job.Cancelled, outcome: "cancelled by user"}},
		{"cancelled, not claimed", slurmEnd{State: "CANCELLED"}, false,
			want{cancelled: true, exitCode: -1, noErr: true, state: job.Cancelled, outcome: "cancelled by user"}},
		{"cancelled+, not claimed", slurmEnd{State: "CANCELLED+"}, false,
			want{cancelled: true, exitCode: -1, noErr: true, state: job.Cancelled, outcome: "cancelled by user"}},
		{"out of memory, claimed", slurmEnd{State: "OUT_OF_MEMORY", ExitCode: "0:125"}, true,
			want{signal: "SIGKILL", exitCode: -1, err: []string{"slurm job 4242: out of memory"},
				state: job.Failed, outcome: "slurm job 4242: out of memory"}},
		{"out of memory, not claimed", slurmEnd{State: "OOM"}, false,
			want{signal: "SIGKILL", exitCode: -1, err: []string{"out of memory", neverRan},
				state: job.Failed, outcome: "slurm job 4242: out of memory"}},
		{"completed without journal, claimed", slurmEnd{State: "COMPLETED", ExitCode: "0:0"}, true,
			want{nodeLost: true, exitCode: -1, err: []string{"slurm job 4242 completed but its wrapper recorded no result"},
				state: job.Failed, outcome: "node lost: slurm job 4242 completed"}},
		{"completed without journal, not claimed", slurmEnd{State: "COMPLETED", ExitCode: "0:0"}, false,
			want{nodeLost: true, exitCode: -1, err: []string{"recorded no result", neverRan},
				state: job.Failed, outcome: "node lost: "}},
		{"failed exit 3, claimed", slurmEnd{State: "FAILED", Reason: "NonZeroExitCode", ExitCode: "3:0"}, true,
			want{exitCode: 3, err: []string{"slurm job 4242 failed (NonZeroExitCode)"},
				state: job.Failed, outcome: "slurm job 4242 failed (NonZeroExitCode)"}},
		{"failed exit 3, not claimed", slurmEnd{State: "FAILED", Reason: "NonZeroExitCode", ExitCode: "3:0"}, false,
			want{exitCode: 3, err: []string{"slurm job 4242 failed (NonZeroExitCode)", neverRan},
				state: job.Failed, outcome: "slurm job 4242 failed"}},
		{"failed signal 9, claimed", slurmEnd{State: "FAILED", Reason: "None", ExitCode: "0:9"}, true,
			want{signal: "SIGKILL", exitCode: -1, err: []string{"slurm job 4242 failed"},
				state: job.Failed, outcome: "slurm job 4242 failed"}},
		{"failed signal 9, not claimed", slurmEnd{State: "F", ExitCode: "0:9"}, false,
			want{signal: "SIGKILL", exitCode: -1, err: []string{"slurm job 4242 failed", neverRan},
				state: job.Failed, outcome: "slurm job 4242 failed"}},
		{"failed exit 0", slurmEnd{State: "FAILED", ExitCode: "0:0"}, true,
			want{exitCode: -1, err: []string{"slurm job 4242 failed"}, state: job.Failed, outcome: "slurm job 4242 failed"}},
		{"special exit, claimed", slurmEnd{State: "SPECIAL_EXIT", ExitCode: "5:0"}, true,
			want{exitCode: 5, err: []string{"slurm job 4242 special_exit"}, state: job.Failed, outcome: "slurm job 4242 special_exit"}},
		{"special exit, not claimed", slurmEnd{State: "SPECIAL_EXIT"}, false,
			want{exitCode: -1, err: []string{"special_exit", neverRan}, state: job.Failed, outcome: "slurm job 4242 special_exit"}},
		{"revoked, claimed", slurmEnd{State: "REVOKED"}, true,
			want{exitCode: -1, err: []string{"slurm job 4242 revoked"}, state: job.Failed, outcome: "slurm job 4242 revoked"}},
		{"revoked, not claimed", slurmEnd{State: "RV"}, false,
			want{exitCode: -1, err: []string{"revoked", neverRan}, state: job.Failed, outcome: "slurm job 4242 revoked"}},
	}
	started := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now().UTC()
			r := tt.end.result(id, tt.claimed, started)
			w := tt.want
			if r.NodeLost != w.nodeLost || r.Interrupted != w.interrupted || r.NeverStarted != w.neverStarted {
				t.Errorf("NodeLost/Interrupted/NeverStarted = %v/%v/%v, want %v/%v/%v",
					r.NodeLost, r.Interrupted, r.NeverStarted, w.nodeLost, w.interrupted, w.neverStarted)
			}
			if r.TimedOut != w.timedOut || r.Cancelled != w.cancelled {
				t.Errorf("TimedOut/Cancelled = %v/%v, want %v/%v", r.TimedOut, r.Cancelled, w.timedOut, w.cancelled)
			}
			if r.Signal != w.signal {
				t.Errorf("Signal = %q, want %q", r.Signal, w.signal)
			}
			switch {
			case w.exitCode < 0 && r.ExitCode != nil:
				t.Errorf("ExitCode = %d, want nil", *r.ExitCode)
			case w.exitCode >= 0 && (r.ExitCode == nil || *r.ExitCode != w.exitCode):
				t.Errorf("ExitCode = %v, want %d", r.ExitCode, w.exitCode)
			}
			if w.noErr && r.Error != "" {
				t.Errorf("Error = %q, want none", r.Error)
			}
			for _, s := range w.err {
				if !strings.Contains(r.Error, s) {
					t.Errorf("Error = %q, want it to contain %q", r.Error, s)
				}
			}
			if tt.claimed && strings.Contains(r.Error, neverRan) {
				t.Errorf("Error = %q says the wrapper never started, but it claimed the attempt", r.Error)
			}
			if !r.StartedAt.Equal(started) {
				t.Errorf("StartedAt = %v, want %v", r.StartedAt, started)
			}
			if r.EndedAt.Before(before) || r.EndedAt.Location() != time.UTC {
				t.Errorf("EndedAt = %v, want now in UTC", r.EndedAt)
			}
			state, reason := r.Outcome()
			if state != w.state {
				t.Errorf("Outcome() state = %s, want %s (reason %q)", state, w.state, reason)
			}
			if !strings.HasPrefix(reason, w.outcome) {
				t.Errorf("Outcome() reason = %q, want prefix %q", reason, w.outcome)
			}
		})
	}
}

// A job Slurm is done with but whose wrapper left no result never
// succeeds, whatever its state and exit code say.
func TestSlurmEndResultNeverSucceeds(t *testing.T) {
	for long, short := range stateCodes {
		if !ended(long) {
			continue
		}
		for _, st := range []string{long, short} {
			for _, code := range []string{"0:0", "", "1:0", "0:9"} {
				for _, claimed := range []bool{true, false} {
					r := slurmEnd{State: st, ExitCode: code}.result("1", claimed, time.Time{})
					if state, _ := r.Outcome(); state == job.Succeeded {
						t.Errorf("result of %s (exit %q, claimed %v) succeeded: %+v", st, code, claimed, r)
					}
					if r.NeverStarted && claimed {
						t.Errorf("result of %s (claimed) is NeverStarted: the command may have run", st)
					}
					if r.NeverStarted && !r.Interrupted {
						t.Errorf("result of %s is NeverStarted without Interrupted: %+v", st, r)
					}
				}
			}
		}
	}
}

// A shell whose child Slurm killed exits 128+signal: held for Slurm's
// final state like a kill by the signal itself, which then decides.
func TestShellExitOfAKilledChildIsHeld(t *testing.T) {
	for code, held := range map[int]bool{143: true, 137: true, 1: false, 0: false} {
		r := job.Result{ExitCode: &code}
		if got := stoppedFromOutside(&r); got != held {
			t.Errorf("exit %d: held %v, want %v", code, got, held)
		}
	}
	code := 143
	r := heldResult(job.Result{ExitCode: &code}, "7", slurmEnd{State: "NODE_FAIL"}, false)
	if !r.Interrupted || !r.NodeLost {
		t.Fatalf("exit 143 on a failed node: %+v, want an interruption", r)
	}
	r = heldResult(job.Result{ExitCode: &code}, "7", slurmEnd{State: "FAILED"}, false)
	if r.Interrupted || r.ExitCode == nil || *r.ExitCode != 143 {
		t.Fatalf("exit 143 of a job Slurm saw fail: %+v, want the exit as it was", r)
	}
}
