package transfer

import "time"

// Report is what a transfer did, in the shape of an AWS DataSync task
// report: totals, then every file transferred, skipped, deleted, failed
// or found different by verification, with reasons and checksums.
type Report struct {
	Operation   string    `json:"operation"` // sync, copy or verify
	Source      string    `json:"source"`
	Destination string    `json:"destination"`
	DryRun      bool      `json:"dry_run,omitempty"`
	VerifyMode  string    `json:"verify_mode"`
	Started     time.Time `json:"started_at"`
	Ended       time.Time `json:"ended_at"`
	Seconds     float64   `json:"duration_seconds"`
	// Result is SUCCESS, or ERROR when anything failed or did not verify.
	Result string `json:"result"`
	// Error is what stopped the transfer, or kept it from starting (a
	// missing source, refused credentials, a full destination); files
	// that failed on their own are in Failed. Empty when nothing did.
	Error  string `json:"error,omitempty"`
	Totals Totals `json:"totals"`

	Transferred []Entry   `json:"transferred"`
	Skipped     []Entry   `json:"skipped,omitempty"`
	Deleted     []string  `json:"deleted,omitempty"`
	Failed      []Failure `json:"failed"`
	Mismatched  []Failure `json:"verify_failed"`
}

// Totals count files and bytes by what happened to them.
type Totals struct {
	FilesListed      int   `json:"files_listed"`
	FilesTransferred int   `json:"files_transferred"`
	FilesSkipped     int   `json:"files_skipped"`
	FilesDeleted     int   `json:"files_deleted"`
	FilesFailed      int   `json:"files_failed"`
	FilesVerified    int   `json:"files_verified"`
	BytesTransferred int64 `json:"bytes_transferred"`
	BytesSkipped     int64 `json:"bytes_skipped"`
	// BytesFailed is the listed size of the files that failed.
	BytesFailed int64 `json:"bytes_failed"`
}

// Entry is one file, and the checksum its copy was checked by: its
// SHA-256, or for a large download of an object that has none of
// hpcml's, the object's S3 checksum ("crc32:l5YxQA==-128").
type Entry struct {
	Key      string `json:"key"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256,omitempty"`
	Checksum string `json:"checksum,omitempty"`
	// s3 is Checksum as checked, with what verifying the copy needs.
	s3 *s3Sum
}

// Failure is a file and what went wrong with it.
type Failure struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// OK reports whether nothing failed.
func (r *Report) OK() bool { return len(r.Failed) == 0 && len(r.Mismatched) == 0 && r.Error == "" }

// setError records what stopped the transfer: the report says ERROR
// whatever else it holds.
func (r *Report) setError(err error) {
	r.Error = err.Error()
	r.Result = "ERROR"
	if r.Ended.IsZero() {
		r.Ended = time.Now().UTC()
		r.Seconds = r.Ended.Sub(r.Started).Seconds()
	}
}

// FailedReport is the report of a transfer that could not start (bad
// input, a missing source or bucket, refused credentials): nothing
// listed, nothing done, and err at its top level.
func FailedReport(operation, source, destination string, started time.Time, err error) *Report {
	r := newReport(operation, source, destination, VerifyNone, started)
	r.setError(err)
	return r
}

// newReport is an empty report begun at started, its lists empty rather
// than null in JSON.
func newReport(operation, source, destination, verify string, started time.Time) *Report {
	return &Report{Operation: operation, Source: source, Destination: destination, VerifyMode: verify,
		Started: started.UTC(), Transferred: []Entry{}, Failed: []Failure{}, Mismatched: []Failure{}}
}
