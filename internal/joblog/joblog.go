// Package joblog finds the stdout and stderr of job attempts: the node's
// file while it is there (live, growing while the attempt runs), else the
// copy shipped to object storage when the attempt ended. The API and the
// dashboard both read logs through it.
package joblog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/job"
)

// ErrNoLog: the attempt has no such log (yet, or any more).
var ErrNoLog = errors.New("no log")

// Streams a job writes.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// ValidStream reports whether s names a stream.
func ValidStream(s string) bool { return s == Stdout || s == Stderr }

// Source reads logs.
type Source struct {
	// LocalPath is where an attempt's stream is on this node ("" if nowhere).
	LocalPath func(jobID int64, attempt int, stream string) string
	// Bucket holds the shipped copies, under the keys the attempts record.
	Bucket *blob.Bucket
}

// HasLocal reports whether the node's file of the stream exists.
func (s *Source) HasLocal(jobID int64, attempt int, stream string) bool {
	p := s.LocalPath(jobID, attempt, stream)
	if p == "" {
		return false
	}
	_, err := os.Stat(p)
	return err == nil
}

// Open opens a stream of attempt of j. live reports whether it is the
// node's file, which grows while the attempt runs (reads at its end return
// io.EOF until more is written).
func (s *Source) Open(ctx context.Context, j *job.Job, attempt int, stream string) (r io.ReadCloser, live bool, err error) {
	if p := s.LocalPath(j.ID, attempt, stream); p != "" {
		if f, err := os.Open(p); err == nil {
			return f, true, nil
		}
	}
	key := storedKey(j, attempt, stream)
	if key == "" {
		return nil, false, fmt.Errorf("%w: %s of job %s attempt %d", ErrNoLog, stream, j.DisplayID(), attempt)
	}
	rc, err := s.Bucket.NewReader(ctx, key, nil)
	if err != nil {
		if blob.IsNotFound(err) {
			return nil, false, fmt.Errorf("%w: %s of job %s attempt %d is not in storage", ErrNoLog, stream, j.DisplayID(), attempt)
		}
		return nil, false, fmt.Errorf("open stored log: %w", err)
	}
	return rc, false, nil
}

// Tail reads at most limit bytes from the end of a stream; a stream that
// does not exist reads as empty.
func (s *Source) Tail(ctx context.Context, j *job.Job, attempt int, stream string, limit int64) ([]byte, error) {
	if p := s.LocalPath(j.ID, attempt, stream); p != "" {
		if f, err := os.Open(p); err == nil {
			defer f.Close()
			if info, err := f.Stat(); err == nil && info.Size() > limit {
				if _, err := f.Seek(info.Size()-limit, io.SeekStart); err != nil {
					return nil, err
				}
			}
			return io.ReadAll(io.LimitReader(f, limit))
		}
	}
	key := storedKey(j, attempt, stream)
	if key == "" {
		return nil, nil
	}
	attrs, err := s.Bucket.Attributes(ctx, key)
	if err != nil {
		if blob.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	r, err := s.Bucket.NewRangeReader(ctx, key, max(0, attrs.Size-limit), limit, nil)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// storedKey is the object an ended attempt shipped its stream to ("" if
// none: empty logs are not shipped).
func storedKey(j *job.Job, attempt int, stream string) string {
	for _, a := range j.Attempts {
		if a.Number == attempt {
			if stream == Stderr {
				return a.StderrURL
			}
			return a.StdoutURL
		}
	}
	return ""
}
