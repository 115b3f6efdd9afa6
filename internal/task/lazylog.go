package task

import (
	"errors"
	"io"
	"os"
	"time"
)

// logDrainGrace is how long, after the command's process group is gone,
// its logs may still be written by a process that escaped the group.
const logDrainGrace = time.Second

// lazyLog gives the command a pipe for one stream and copies what comes
// out of it to a file that is created with the first byte: a silent job
// costs the node no log file. Appends, so a file left by an earlier run
// of the same attempt is kept.
type lazyLog struct {
	path string
	w    *os.File // the command's end; closed here once the command has it
	r    *os.File
	done chan error
	// started: the copy runs and owns r.
	started bool
}

func newLazyLog(path string) (*lazyLog, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	return &lazyLog{path: path, w: w, r: r, done: make(chan error, 1)}, nil
}

// start copies once the command holds the write end.
func (l *lazyLog) start() {
	l.started = true
	l.w.Close()
	go func() { l.done <- l.copy() }()
}

func (l *lazyLog) copy() error {
	defer l.r.Close()
	var f *os.File
	buf := make([]byte, 32<<10)
	for {
		n, err := l.r.Read(buf)
		if n > 0 {
			if f == nil {
				var oerr error
				if f, oerr = os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); oerr != nil {
					io.Copy(io.Discard, l.r) // keep the command from blocking on a full pipe
					return oerr
				}
				defer f.Close()
			}
			if _, werr := f.Write(buf[:n]); werr != nil {
				io.Copy(io.Discard, l.r)
				return werr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			return err
		}
	}
}

// finish waits for the copy to end: at once when every writer has
// closed, else after grace.
func (l *lazyLog) finish(grace time.Duration) error {
	l.r.SetReadDeadline(time.Now().Add(grace))
	return <-l.done
}

// abort closes the pipe of a command that never started.
func (l *lazyLog) abort() {
	if !l.started {
		l.w.Close()
		l.r.Close()
	}
}
