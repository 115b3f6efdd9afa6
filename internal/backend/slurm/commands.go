package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/backend"
)

// commands runs the Slurm client commands. Every argument is passed as
// an argv element, never through a shell, so no user string (a job name,
// a partition) can become a command.
type commands struct {
	// bin is the directory of sbatch and friends ("" = PATH).
	bin string
	// env is the environment of every command: the server's minus its own
	// secrets (sbatch exports it into the job).
	env []string
	// timeout bounds one command: a hung controller must not hang the
	// scheduler's launches or the watcher.
	timeout time.Duration
}

// run runs a Slurm command and returns its stdout. A controller that
// cannot be reached is reported as backend.ErrUnavailable.
func (c *commands) run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	prog := name
	if c.bin != "" {
		prog = filepath.Join(c.bin, name)
	}
	cmd := exec.CommandContext(ctx, prog, args...)
	// A site's sbatch may be a wrapper script whose children hold the
	// pipes open after the timeout killed it: stop waiting for them.
	cmd.WaitDelay = time.Second
	cmd.Env = c.env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	msg := strings.TrimSpace(stderr.String())
	if msg == "" {
		msg = strings.TrimSpace(stdout.String())
	}
	msg = strings.TrimPrefix(msg, name+": error: ")
	if errors.Is(err, exec.ErrNotFound) || cmd.ProcessState == nil && errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is not installed on this machine (is Slurm's client installed and on PATH?): %w", name, backend.ErrUnavailable)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s did not answer within %s: %w", name, c.timeout, backend.ErrUnavailable)
	}
	if unreachable(msg) {
		return nil, fmt.Errorf("slurm controller unreachable (%s): %w", firstLine(msg), backend.ErrUnavailable)
	}
	return nil, &commandError{name: name, msg: msg, err: err}
}

// commandError is Slurm refusing a request (bad partition, bad job id):
// the message is Slurm's own, for the user.
type commandError struct {
	name, msg string
	err       error
}

func (e *commandError) Error() string {
	if e.msg == "" {
		return e.name + ": " + e.err.Error()
	}
	return e.name + ": " + lastLine(e.msg)
}

func (e *commandError) Unwrap() error { return e.err }

// unreachable recognises the messages of a controller that is down or
// not answering, as opposed to one refusing the request.
func unreachable(msg string) bool {
	for _, s := range []string{
		"Unable to contact slurm controller",
		"Socket timed out",
		"Connection refused",
		"Transport endpoint is not connected",
		"backup controller in standby mode",
		"Zero Bytes were transmitted or received",
		"Communication connection failure",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// lastLine: sbatch says "error: ..." twice, the last line being the verdict.
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	for _, p := range []string{"sbatch: error: ", "scancel: error: ", "squeue: error: ", "scontrol: error: ", "error: "} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}
