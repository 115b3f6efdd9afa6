package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/hpcml/hpcml/internal/client"
)

// exitError ends the command with a given exit code. err, if not nil, is
// printed; a nil err means the command already said what happened (e.g.
// "Job 42 FAILED") and only the exit code is left to set.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// hintError carries a suggestion printed after the error on its own line.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

// explain adds a hint to errors the user can fix: a server that is not
// running, or a token it does not accept.
func explain(err error, cfg client.Config) error {
	if err == nil {
		return nil
	}
	var ue *client.UnreachableError
	if errors.As(err, &ue) {
		return &hintError{err: err, hint: "start it with `hpcml server` (or `make run`), or point $" +
			client.EnvServer + " or --server at a running server"}
	}
	if client.IsUnauthorized(err) {
		fix := fmt.Sprintf("set $%s, or $%s to the server's data dir (the server writes its token to <data-dir>/token)",
			client.EnvToken, client.EnvDataDir)
		var hint string
		switch {
		case cfg.TokenFile == "":
			hint = fmt.Sprintf("the server refused $%s; the server's token is in <data-dir>/token", client.EnvToken)
		case cfg.Token == "":
			hint = fmt.Sprintf("no token was found in %s; %s", cfg.TokenFile, fix)
		default:
			hint = fmt.Sprintf("the server refused the token in %s; %s", cfg.TokenFile, fix)
		}
		return &hintError{err: err, hint: hint}
	}
	return err
}

// report prints err and returns the exit code for it.
func report(stderr io.Writer, err error, interrupted bool) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "error: %v\n", ee.err)
		}
		return ee.code
	}
	if interrupted && errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "error: interrupted")
		return 130
	}
	fmt.Fprintf(stderr, "error: %v\n", err)
	var he *hintError
	if errors.As(err, &he) {
		fmt.Fprintf(stderr, "hint: %s\n", he.hint)
	}
	return 1
}
