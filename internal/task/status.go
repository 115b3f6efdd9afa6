package task

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

// Stages recorded in the status file, in the order they happen.
const (
	StageClaimed = "claimed" // first record: who owns the attempt (Owner)
	// StageBegun: an attempt claimed queued (ClaimQueued) left the
	// owner's queue to run. One queued and not begun has done nothing.
	StageBegun   = "begun"
	StageStarted = "started" // the command is running
	StageExited  = "exited"  // the command ended; outputs and logs not yet shipped
	StageDone    = "done"    // the attempt is over; Result is final
)

// Record is one line of the status file.
type Record struct {
	Stage string    `json:"stage"`
	At    time.Time `json:"at"`
	Owner string    `json:"owner,omitempty"`
	// Queued, with claimed: the owner holds the attempt for room on the
	// node before it begins (StageBegun).
	Queued bool        `json:"queued,omitempty"`
	PID    int         `json:"pid,omitempty"`
	Result *job.Result `json:"result,omitempty"`
}

// Journal appends an attempt's records to its status file. Each record
// is one write(2) of a whole line ending in a newline; readers ignore a
// last line without one, so a process killed mid-write leaves nothing
// half-read.
type Journal struct{ f *os.File }

// Claim makes owner the one owner of an attempt: exactly one Claim on a
// dir succeeds, whoever comes first. The winner gets the status log.
func Claim(dir, owner string) (*Journal, bool, error) { return claim(dir, owner, false) }

// ClaimQueued is Claim by an owner that will hold the attempt for room on
// the node before it begins: claim and queue are one record, so that no
// moment exists in which a crash would leave it claimed but not known to
// have done nothing.
func ClaimQueued(dir, owner string) (*Journal, bool, error) { return claim(dir, owner, true) }

func claim(dir, owner string, queued bool) (*Journal, bool, error) {
	f, err := os.OpenFile(filepath.Join(dir, StatusFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("claim attempt: %w", err)
	}
	s := &Journal{f: f}
	if err := s.append(Record{Stage: StageClaimed, At: time.Now().UTC(), Owner: owner, Queued: queued}); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("claim attempt: %w", err)
	}
	return s, true, nil
}

func (s *Journal) append(r Record) error {
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = s.f.Write(append(line, '\n'))
	return err
}

func (s *Journal) Close() error { return s.f.Close() }

// Begin records that a queued attempt leaves the queue to run: from here
// on, staging in may have effects.
func (s *Journal) Begin() error {
	return s.append(Record{Stage: StageBegun, At: time.Now().UTC()})
}

// Drop ends an attempt that never began (cancelled or taken back while
// queued) with res, and closes the journal.
func (s *Journal) Drop(res *job.Result) error {
	err := s.append(Record{Stage: StageDone, At: res.EndedAt, Result: res})
	return errors.Join(err, s.f.Close())
}

// Status is what the status file says of an attempt.
type Status struct {
	Owner string // who claimed it; "" if nobody yet
	// Waiting: queued by its owner and never begun — nothing of it ran.
	Waiting bool
	Started *Record // the command started
	Exited  *Record // the command ended
	Done    *Record // the attempt is over
}

// ReadStatus reads an attempt's status file; a missing file is an empty
// status.
func ReadStatus(dir string) (Status, error) {
	var st Status
	data, err := os.ReadFile(filepath.Join(dir, StatusFile))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break // a torn last line: not written yet
		}
		var r Record
		if err := json.Unmarshal(data[:i], &r); err == nil {
			switch r.Stage {
			case StageClaimed:
				st.Owner = r.Owner
				st.Waiting = r.Queued
			case StageBegun:
				st.Waiting = false
			case StageStarted:
				st.Started = &r
			case StageExited:
				st.Exited = &r
			case StageDone:
				st.Done = &r
			}
		}
		data = data[i+1:]
	}
	return st, nil
}

// ReadProgress reads what the job of the attempt in dir last reported of
// its progress: nil if nothing, an error if the report is unusable.
func ReadProgress(dir string) (*job.Progress, error) {
	return job.ReadProgressFile(filepath.Join(dir, ProgressFile))
}
