package batchtransform

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/hpcml/hpcml/internal/blob"
)

// Report is what a transform did, written to <output>/_report.json by
// the commit.
type Report struct {
	PlanHash  string `json:"plan_hash"`
	Model     string `json:"model"` // NAME:VERSION
	Input     string `json:"input"`
	Output    string `json:"output"`
	Split     string `json:"split"`
	Join      string `json:"join"`
	Format    string `json:"output_format"`
	BatchSize int    `json:"batch_size"`
	Files     int    `json:"files"`
	Parts     int    `json:"parts"`
	// Records were scored (one output record each); Failures were not
	// (one line each in ErrorsFile).
	Records  int64 `json:"records"`
	Failures int64 `json:"failures"`
	// Seconds from the submission of the run that finished to the end of
	// the commit, and the records scored per second over that time.
	Seconds       float64 `json:"seconds"`
	RowsPerSecond float64 `json:"rows_per_second"`
	// Planned is when the transform was first planned (a resumed one
	// began in an earlier run).
	Planned    time.Time      `json:"planned"`
	Finished   time.Time      `json:"finished"`
	Workers    []WorkerReport `json:"workers"`
	Outputs    []FileOutput   `json:"outputs"`
	ErrorsFile string         `json:"errors_file"`
}

// WorkerReport is one worker's share of a transform.
type WorkerReport struct {
	Worker int    `json:"worker"`
	Job    string `json:"job,omitempty"`
	// Parts, Records and Failures it scored, over all its attempts (and
	// runs); Seconds it spent scoring them, and records per second.
	Parts         int     `json:"parts"`
	Records       int64   `json:"records"`
	Failures      int64   `json:"failures"`
	Seconds       float64 `json:"seconds"`
	RowsPerSecond float64 `json:"rows_per_second"`
	// PartsByAttempt counts its parts by the job attempt that scored them
	// ("1", "2", ...): after a kill, the parts of the killed attempt are
	// not scored again.
	PartsByAttempt map[string]int `json:"parts_by_attempt"`
	// LastAttempt is its last attempt, which found PartsSkipped parts
	// already scored.
	LastAttempt  int `json:"last_attempt,omitempty"`
	PartsSkipped int `json:"parts_skipped"`
}

// FileOutput is one input file's output.
type FileOutput struct {
	Input    string `json:"input"`
	Output   string `json:"output"`
	Records  int64  `json:"records"`
	Failures int64  `json:"failures"`
}

func newReport(p *Plan, o CommitOptions) *Report {
	return &Report{PlanHash: p.Hash, Model: p.Model + ":" + strconv.Itoa(p.Version), Input: blob.Redact(p.Input), Output: blob.Redact(p.Output),
		Split: p.Split, Join: p.Join, Format: p.Format, BatchSize: p.BatchSize, Files: len(p.Files), Parts: len(p.Parts),
		Planned: p.Created, Workers: []WorkerReport{}, ErrorsFile: Join(p.Output, ErrorsFile)}
}

// ReadReport reads the report at an output prefix; ok is false when
// there is none (yet).
func ReadReport(ctx context.Context, output string) (rep *Report, ok bool, err error) {
	s, err := openOutput(ctx, output)
	if err != nil {
		return nil, false, err
	}
	defer s.Close()
	return s.report(ctx)
}

func (s *outputStore) report(ctx context.Context) (*Report, bool, error) {
	data, ok, err := s.read(ctx, ReportFile)
	if err != nil || !ok {
		return nil, false, err
	}
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, false, fmt.Errorf("%s: %w", s.where(ReportFile), err)
	}
	return &rep, true, nil
}
