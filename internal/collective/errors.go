package collective

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// ErrClosed is returned by every call on a Group after Close.
var ErrClosed = errors.New("collective: group closed")

// PeerError is the failure that made a Group unusable, naming the rank
// where it started: the rank that died, stalled, was cancelled, closed the
// group or called a different operation. Every rank of the group returns
// the same rank and reason (agreed through rank 0), wrapped as
//
//	collective: all-reduce: rank 1 (127.0.0.1:40123) lost: EOF
//
// so a caller can find it with errors.As and, for instance, restart from a
// checkpoint.
type PeerError struct {
	Rank   int    // the rank at the origin of the failure
	Addr   string // its data address, host:port
	Reason string // "lost: EOF", "cancelled the operation: context canceled", ...
	// Err is the underlying error when this rank observed it itself
	// (io.EOF, os.ErrDeadlineExceeded, context.Canceled, ...); nil when
	// the verdict came from another rank, which sends only the text.
	Err error
}

func (e *PeerError) Error() string {
	return fmt.Sprintf("rank %d (%s) %s", e.Rank, e.Addr, e.Reason)
}

func (e *PeerError) Unwrap() error { return e.Err }

// Operation names, as they appear in errors.
const (
	opAllReduce     = "all-reduce"
	opReduceScatter = "reduce-scatter"
	opAllGather     = "all-gather"
	opBroadcast     = "broadcast"
	opBarrier       = "barrier"
	opSend          = "send"
	opRecv          = "recv"
)

// lostReason words an I/O error with a peer for an error message: a short
// form for the common causes, the error itself otherwise.
func lostReason(err error, timeout time.Duration) string {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "lost: no progress for " + seconds(timeout)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "lost: EOF"
	case errors.Is(err, syscall.ECONNRESET):
		return "lost: connection reset by peer"
	case errors.Is(err, syscall.EPIPE):
		return "lost: broken pipe"
	}
	return "lost: " + err.Error()
}
