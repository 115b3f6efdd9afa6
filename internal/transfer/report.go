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
}

// Entry is one file.
type Entry struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
}

// Failure is a file and what went wrong with it.
type Failure struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// OK reports whether nothing failed.
func (r *Report) OK() bool { return len(r.Failed) == 0 && len(r.Mismatched) == 0 }
