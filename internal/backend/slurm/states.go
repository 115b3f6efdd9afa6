package slurm

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

// Slurm's job states (squeue %T, scontrol JobState), and their short
// codes, as the documentation lists them.
var stateCodes = map[string]string{
	"BOOT_FAIL": "BF", "CANCELLED": "CA", "COMPLETED": "CD", "CONFIGURING": "CF", "COMPLETING": "CG",
	"DEADLINE": "DL", "FAILED": "F", "NODE_FAIL": "NF", "OUT_OF_MEMORY": "OOM", "PENDING": "PD",
	"PREEMPTED": "PR", "RUNNING": "R", "RESV_DEL_HOLD": "RD", "REQUEUE_FED": "RF", "REQUEUE_HOLD": "RH",
	"REQUEUED": "RQ", "RESIZING": "RS", "REVOKED": "RV", "SIGNALING": "SI", "SPECIAL_EXIT": "SE",
	"STAGE_OUT": "SO", "STOPPED": "ST", "SUSPENDED": "S", "TIMEOUT": "TO",
}

// normState reads a state as squeue or scontrol print it ("CANCELLED by
// 0" and "CANCELLED+" included) and returns its long name.
func normState(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " +"); i >= 0 {
		s = s[:i]
	}
	s = strings.ToUpper(s)
	for long, short := range stateCodes {
		if s == short {
			return long
		}
	}
	return s
}

// ended reports whether Slurm is done with a job in state s.
func ended(s string) bool {
	switch normState(s) {
	case "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
		"PREEMPTED", "REVOKED", "SPECIAL_EXIT", "TIMEOUT":
		return true
	}
	return false
}

// waitingReason is what an attempt still in Slurm's hands shows in
// hpcml (its job stays STARTING): Slurm's state code and reason.
func waitingReason(id, state, reason string) string {
	st := normState(state)
	code := stateCodes[st]
	if code == "" {
		code = st
	}
	switch {
	case reason == "" || reason == "None" || reason == "(null)":
		return fmt.Sprintf("slurm job %s: %s", id, code)
	default:
		return fmt.Sprintf("slurm job %s: %s (%s)", id, code, reason)
	}
}

// slurmEnd is how Slurm says a job ended: its state, reason and
// "code:signal" exit code (scontrol show job).
type slurmEnd struct {
	State    string
	Reason   string
	ExitCode string
}

// result maps the end of a Slurm job whose wrapper left no result (it
// never ran, or was killed with the node) to hpcml's outcome. claimed:
// the wrapper had taken the attempt, so its command may have run.
func (e slurmEnd) result(id string, claimed bool, startedAt time.Time) job.Result {
	r := job.Result{StartedAt: startedAt, EndedAt: time.Now().UTC()}
	code, sig := parseExitCode(e.ExitCode)
	switch normState(e.State) {
	case "NODE_FAIL", "BOOT_FAIL":
		r.NodeLost, r.Interrupted = true, true
		r.Error = fmt.Sprintf("slurm job %s: node failure (%s)", id, stateCodes[normState(e.State)])
	case "PREEMPTED":
		r.NodeLost, r.Interrupted = true, true
		r.Error = fmt.Sprintf("slurm job %s: preempted", id)
	case "TIMEOUT", "DEADLINE":
		r.TimedOut = true
	case "CANCELLED":
		r.Cancelled = true
	case "OUT_OF_MEMORY":
		r.Error = fmt.Sprintf("slurm job %s: out of memory", id)
		r.Signal = "SIGKILL"
	case "COMPLETED":
		r.NodeLost = true
		r.Error = fmt.Sprintf("slurm job %s completed but its wrapper recorded no result", id)
	default: // FAILED, SPECIAL_EXIT, REVOKED
		r.Error = fmt.Sprintf("slurm job %s %s", id, strings.ToLower(normState(e.State)))
		if e.Reason != "" && e.Reason != "None" {
			r.Error += " (" + e.Reason + ")"
		}
		if sig != 0 {
			r.Signal = job.SignalName(sig)
		} else if code != 0 {
			r.ExitCode = &code
		}
	}
	if !claimed && (r.NodeLost || r.Error != "") && !r.Cancelled {
		// The wrapper never took the attempt: nothing of the job ran. For
		// a node failure or preemption it is simply submitted again; a job
		// Slurm failed before the wrapper started (the batch script could
		// not run hpcml) fails, with Slurm's word for it.
		if r.Interrupted {
			r.NeverStarted = true
		} else if r.Error != "" {
			r.Error += ": the job wrapper never started (see slurm.out in the attempt dir)"
		}
	}
	return r
}

// parseExitCode reads Slurm's "code:signal".
func parseExitCode(s string) (code int, sig syscall.Signal) {
	c, g, _ := strings.Cut(strings.TrimSpace(s), ":")
	code, _ = strconv.Atoi(c)
	n, _ := strconv.Atoi(g)
	return code, syscall.Signal(n)
}
