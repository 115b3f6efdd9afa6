// Package job defines what a job is: the spec a user submits, the states a
// job moves through, and the rules for moving between them. It has no I/O;
// every other layer (store, scheduler, API, CLI) shares these types.
package job

import "fmt"

// State is where a job is in its life. The names follow AWS Batch; the
// meaning of each is documented in docs/jobs.md.
type State string

const (
	// Pending: waiting for its dependencies.
	Pending State = "PENDING"
	// Runnable: ready to run, waiting for capacity, a queue slot or an array slot.
	Runnable State = "RUNNABLE"
	// Starting: the wrapper is launched and staging inputs in.
	Starting State = "STARTING"
	// Running: the command is running.
	Running State = "RUNNING"

	Succeeded State = "SUCCEEDED"
	Failed    State = "FAILED"
	Cancelled State = "CANCELLED"
	Timeout   State = "TIMEOUT"
)

// States lists every state in lifecycle order.
var States = []State{Pending, Runnable, Starting, Running, Succeeded, Failed, Cancelled, Timeout}

// Terminal reports whether a job in this state will never change again.
func (s State) Terminal() bool {
	switch s {
	case Succeeded, Failed, Cancelled, Timeout:
		return true
	}
	return false
}

// Active reports whether the job holds resources (its wrapper exists).
func (s State) Active() bool { return s == Starting || s == Running }

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	for _, v := range States {
		if v == s {
			return true
		}
	}
	return false
}

// transitions lists, for each state, the states it may move to. A retry
// moves a failed attempt back to RUNNABLE without passing through FAILED,
// so STARTING and RUNNING may go back to RUNNABLE. A backend that holds
// jobs until their dependencies end (Slurm's --dependency) takes a job
// straight from PENDING; if a dependency ended before it could, the job
// goes back to PENDING.
var transitions = map[State][]State{
	Pending:  {Runnable, Starting, Failed, Cancelled},
	Runnable: {Starting, Cancelled, Failed},
	Starting: {Running, Runnable, Pending, Succeeded, Failed, Cancelled, Timeout},
	Running:  {Runnable, Succeeded, Failed, Cancelled, Timeout},
}

// CanMove reports whether a job may move from one state to another.
func CanMove(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// CheckMove returns an error naming the illegal move, or nil.
func CheckMove(from, to State) error {
	if !CanMove(from, to) {
		return fmt.Errorf("job state cannot move from %s to %s", from, to)
	}
	return nil
}
