package batchtransform

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"
)

// CommitOptions are what the commit knows beyond the plan.
type CommitOptions struct {
	// Workers the run had (their results are read for the report).
	Workers int
	// Started is when this run was submitted (the report's seconds).
	Started time.Time
}

// Commit assembles the scored parts at output: one output file per
// input file, its records in input order; the failed records in
// _errors.jsonl with their line in the file; the report in _report.json.
// Then it removes _hpcml/. A part without its object is an error (a
// worker did not finish). Run again after a kill, it redoes the same
// work, or, if the report is already written, only the clean-up.
func Commit(ctx context.Context, output string, o CommitOptions) (*Report, error) {
	s, err := openOutput(ctx, output)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if rep, ok, err := s.report(ctx); err != nil {
		return nil, err
	} else if ok {
		stored, perr := s.plan(ctx)
		if perr == nil && stored.Hash != rep.PlanHash {
			return nil, fmt.Errorf("%s is the report of another transform than the plan at %s", s.where(ReportFile), s.where(planFile))
		}
		return rep, s.removeAll(ctx, workDir)
	}
	p, err := s.plan(ctx)
	if err != nil {
		return nil, err
	}
	// A commit killed mid-write left temporary files beside the outputs.
	names := []string{ErrorsFile, ReportFile}
	for _, f := range p.Files {
		names = append(names, f.Out)
	}
	if err := s.removeStaleTemps(names); err != nil {
		return nil, err
	}
	rep := newReport(p, o)
	hdrs, err := assemble(ctx, s, p, rep)
	if err != nil {
		return nil, err
	}
	if err := writeErrors(ctx, s, p, hdrs); err != nil {
		return nil, err
	}
	if err := rep.addWorkers(ctx, s, o.Workers, hdrs); err != nil {
		return nil, err
	}
	rep.Finished = time.Now().UTC()
	if !o.Started.IsZero() {
		rep.Seconds = rep.Finished.Sub(o.Started).Seconds()
	}
	if rep.Seconds > 0 {
		rep.RowsPerSecond = float64(rep.Records) / rep.Seconds
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := s.write(ctx, ReportFile, append(data, '\n')); err != nil {
		return nil, err
	}
	return rep, s.removeAll(ctx, workDir)
}

// assemble writes every output file from its parts, in order, and
// returns the parts' headers.
func assemble(ctx context.Context, s *outputStore, p *Plan, rep *Report) ([]*partHeader, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // abandons an output half written
	hdrs := make([]*partHeader, len(p.Parts))
	i := 0
	for fi, f := range p.Files {
		w, err := s.create(ctx, f.Out)
		if err != nil {
			return nil, err
		}
		abandon := func(err error) ([]*partHeader, error) {
			cancel() // the writer drops what it has
			w.Close()
			return nil, err
		}
		if p.Format == FormatCSV {
			if _, err := w.Write(csvHeader(p)); err != nil {
				return abandon(fmt.Errorf("write %s: %w", s.where(f.Out), err))
			}
		}
		out := FileOutput{Input: f.Name, Output: s.where(f.Out)}
		for ; i < len(p.Parts) && p.Parts[i].File == fi; i++ {
			h, err := copyPart(ctx, s, p, i, w)
			if err != nil {
				return abandon(err)
			}
			hdrs[i] = h
			out.Records += h.Records
			out.Failures += h.Failures
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("write %s: %w", s.where(f.Out), err)
		}
		rep.Outputs = append(rep.Outputs, out)
		rep.Records += out.Records
		rep.Failures += out.Failures
	}
	return hdrs, nil
}

// copyPart copies part i's output records to w and returns its header.
func copyPart(ctx context.Context, s *outputStore, p *Plan, i int, w io.Writer) (*partHeader, error) {
	part := p.Parts[i]
	ok, err := s.exists(ctx, partKey(i))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("part %d (%s, %s) was not scored: no %s (did a worker fail? rerun the transform to finish it)",
			i, p.Files[part.File].Name, pieceText(part), s.where(partKey(i)))
	}
	r, err := s.open(ctx, partKey(i))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	line, br, err := firstLine(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.where(partKey(i)), err)
	}
	var h partHeader
	if err := json.Unmarshal(line, &h); err != nil || h.Part != i {
		return nil, fmt.Errorf("%s: not the header of part %d: %v", s.where(partKey(i)), i, err)
	}
	if _, err := br.WriteTo(w); err != nil {
		return nil, fmt.Errorf("copy %s: %w", s.where(partKey(i)), err)
	}
	return &h, nil
}

// pieceText says which bytes or row groups a part is.
func pieceText(part Part) string {
	pc := part.Piece
	switch {
	case pc.RowGroups != nil:
		return fmt.Sprintf("row groups %v", pc.RowGroups)
	case pc.End > 0:
		return fmt.Sprintf("bytes %d-%d", pc.Start, pc.End)
	case pc.Start > 0:
		return fmt.Sprintf("bytes %d-", pc.Start)
	}
	return "whole file"
}

// ErrorRecord is one line of _errors.jsonl: a record that was not scored.
type ErrorRecord struct {
	File string `json:"file"`
	// Record is the record's line in the file (1-based, a CSV header
	// counted), or its row in a Parquet file; 0 when the whole file
	// failed (--split none).
	Record int64  `json:"record,omitempty"`
	Reason string `json:"reason"`
}

// writeErrors writes _errors.jsonl (empty when nothing failed), each
// failure's line within its part turned into its line in the file.
func writeErrors(ctx context.Context, s *outputStore, p *Plan, hdrs []*partHeader) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.create(ctx, ErrorsFile)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	var base int64 // lines of the file's parts before this one
	for i, h := range hdrs {
		if i > 0 && p.Parts[i-1].File != p.Parts[i].File {
			base = 0
		}
		for _, e := range h.Errors {
			rec := ErrorRecord{File: p.Files[h.File].Name, Reason: e.Reason}
			if e.Line > 0 {
				rec.Record = base + e.Line
			}
			if err := enc.Encode(rec); err != nil {
				return fmt.Errorf("write %s: %w", s.where(ErrorsFile), err)
			}
		}
		base += h.Lines
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write %s: %w", s.where(ErrorsFile), err)
	}
	return nil
}

// addWorkers adds each worker's share: from the parts' headers (what
// every attempt scored) and its last attempt's result (what it skipped).
func (r *Report) addWorkers(ctx context.Context, s *outputStore, workers int, hdrs []*partHeader) error {
	by := map[int]*WorkerReport{}
	get := func(w int) *WorkerReport {
		if by[w] == nil {
			by[w] = &WorkerReport{Worker: w, PartsByAttempt: map[string]int{}}
		}
		return by[w]
	}
	for w := range workers {
		get(w)
	}
	for _, h := range hdrs {
		wr := get(h.Worker)
		wr.Parts++
		wr.Records += h.Records
		wr.Failures += h.Failures
		wr.Seconds += h.Seconds
		wr.PartsByAttempt[strconv.Itoa(h.Attempt)]++
		if h.Job != "" {
			wr.Job = h.Job
		}
	}
	for w, wr := range by {
		data, ok, err := s.read(ctx, workerKey(w))
		if err != nil {
			return err
		}
		if ok {
			var res WorkerResult
			if json.Unmarshal(data, &res) == nil {
				wr.LastAttempt, wr.PartsSkipped = res.Attempt, res.PartsSkipped
				if res.Job != "" {
					wr.Job = res.Job
				}
			}
		}
		if wr.Seconds > 0 {
			wr.RowsPerSecond = float64(wr.Records) / wr.Seconds
		}
		r.Workers = append(r.Workers, *wr)
	}
	sort.Slice(r.Workers, func(i, j int) bool { return r.Workers[i].Worker < r.Workers[j].Worker })
	return nil
}
