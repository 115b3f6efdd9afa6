package analysis

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/hpcml/hpcml/internal/profile"
)

// Report kinds.
const KindProfile = "profile"

// ReportsPrefix is where reports are kept in the server's storage: a
// dir per report, reports/<kind>/<id>/, holding the report (ReportFile)
// and its summary (SummaryFile), which lists read instead of the report.
// The summary is written last: a listed report is complete.
const (
	ReportsPrefix = "reports/"
	ReportFile    = "report.json"
	SummaryFile   = "summary.json"
)

// MaxReportBytes bounds a stored report (a profile of a few hundred
// columns with their correlation matrices is a few MiB).
const MaxReportBytes = 32 << 20

var reportID = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// CheckID refuses a report id that is not a short lower-case name.
func CheckID(id string) error {
	if !reportID.MatchString(id) {
		return fmt.Errorf("report id %q: want 1-63 characters of a-z, 0-9 and -, starting with a letter or digit", id)
	}
	return nil
}

// ReportDir is the storage dir of report id of kind.
func ReportDir(kind, id string) string { return ReportsPrefix + kind + "/" + id + "/" }

// ProfileReport is a stored profile: the report and how it was made.
type ProfileReport struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"` // "profile"
	Source     string    `json:"source"`
	CreatedAt  time.Time `json:"created_at"`
	Partitions int       `json:"partitions"`
	Seconds    float64   `json:"seconds,omitempty"`
	// Jobs are the jobs that computed it (empty for a local run).
	Jobs    []int64         `json:"jobs,omitempty"`
	Profile *profile.Report `json:"profile"`
}

// Summary is what a list of reports shows of one.
type Summary struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	Source     string    `json:"source"`
	CreatedAt  time.Time `json:"created_at"`
	Partitions int       `json:"partitions"`
	Rows       int64     `json:"rows"`
	Columns    int       `json:"columns"`
	Alerts     int       `json:"alerts"`
}

// Summary is the report's line in a list.
func (r *ProfileReport) Summary() Summary {
	s := Summary{ID: r.ID, Kind: r.Kind, Source: r.Source, CreatedAt: r.CreatedAt, Partitions: r.Partitions}
	if r.Profile != nil {
		s.Rows, s.Columns, s.Alerts = r.Profile.Table.Rows, r.Profile.Table.Columns, len(r.Profile.Alerts)
	}
	return s
}

// DecodeSummary reads and checks a stored summary.
func DecodeSummary(data []byte) (*Summary, error) {
	var s Summary
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("report summary: %w", err)
	}
	if err := CheckID(s.ID); err != nil {
		return nil, fmt.Errorf("report summary: %w", err)
	}
	return &s, nil
}

// ErrInvalidReport wraps what is wrong with a report.
var ErrInvalidReport = errors.New("invalid report")

// DecodeProfileReport reads and checks a stored profile report.
func DecodeProfileReport(data []byte) (*ProfileReport, error) {
	if len(data) > MaxReportBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidReport, len(data), MaxReportBytes)
	}
	var r ProfileReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidReport, err)
	}
	switch {
	case r.Kind != KindProfile:
		return nil, fmt.Errorf("%w: kind %q, want %q", ErrInvalidReport, r.Kind, KindProfile)
	case r.Profile == nil:
		return nil, fmt.Errorf("%w: no profile", ErrInvalidReport)
	}
	if err := CheckID(r.ID); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidReport, err)
	}
	return &r, nil
}
