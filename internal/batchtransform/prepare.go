package batchtransform

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// Submission is the jobs of the last run of a transform, stored beside
// its plan so that a rerun while they still run waits for them rather
// than starting a second set.
type Submission struct {
	Workers   []int64   `json:"workers"`
	Commit    int64     `json:"commit"`
	Submitted time.Time `json:"submitted"`
}

// State is what an output prefix already holds for a plan.
type State struct {
	// Done: the transform is finished; Report is its report.
	Done   bool
	Report *Report
	// Resume: the same plan was stored by an earlier run (its finished
	// parts are kept); Submission is that run's jobs, if it got that far.
	Resume     bool
	Submission *Submission
}

// Prepare readies the output for plan p: a finished transform of the
// same plan is Done; an unfinished one of the same plan is resumed;
// anything of another plan is an error unless overwrite, which removes
// it (the report, the error file and _hpcml/; outputs of other names
// stay). Otherwise, and after overwrite, p is stored as the new plan.
func Prepare(ctx context.Context, p *Plan, overwrite bool) (*State, error) {
	s, err := openOutput(ctx, p.Output)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	rep, ok, err := s.report(ctx)
	if err != nil && !overwrite {
		return nil, err
	}
	if ok {
		switch {
		case rep.PlanHash == p.Hash && !overwrite:
			return &State{Done: true, Report: rep}, nil
		case !overwrite:
			return nil, fmt.Errorf("%s holds a finished transform with other settings or input (model %s, input %s): give another --output, or --overwrite to replace it",
				s.where(""), rep.Model, rep.Input)
		}
	}
	stored, err := s.plan(ctx)
	exists, xerr := s.exists(ctx, planFile)
	if xerr != nil {
		return nil, xerr
	}
	switch {
	case exists && err == nil && stored.Hash == p.Hash && !overwrite:
		st := &State{Resume: true}
		if data, ok, err := s.read(ctx, submitFile); err != nil {
			return nil, err
		} else if ok {
			var sub Submission
			if json.Unmarshal(data, &sub) == nil {
				st.Submission = &sub
			}
		}
		return st, nil
	case exists && !overwrite:
		what := "an unreadable plan"
		if err == nil {
			what = fmt.Sprintf("an unfinished transform with other settings or input (model %s:%d, input %s, planned %s)",
				stored.Model, stored.Version, stored.Input, stored.Created.Format(time.RFC3339))
		}
		return nil, fmt.Errorf("%s holds %s: rerun that transform to finish it, give another --output, or --overwrite to start over",
			s.where(""), what)
	}
	if overwrite {
		for _, rel := range []string{ReportFile, ErrorsFile} {
			if err := s.remove(ctx, rel); err != nil {
				return nil, err
			}
		}
		if err := s.removeAll(ctx, workDir); err != nil {
			return nil, err
		}
	}
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := s.write(ctx, planFile, data); err != nil {
		return nil, err
	}
	return &State{}, nil
}

// SaveSubmission records the jobs of a run beside the plan.
func SaveSubmission(ctx context.Context, output string, sub *Submission) error {
	s, err := openOutput(ctx, output)
	if err != nil {
		return err
	}
	defer s.Close()
	data, err := json.Marshal(sub)
	if err != nil {
		return err
	}
	return s.write(ctx, submitFile, data)
}

// PartsDone counts the parts of p already scored at its output.
func PartsDone(ctx context.Context, p *Plan) (int, error) {
	s, err := openOutput(ctx, p.Output)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	n := 0
	for _, part := range p.Parts {
		ok, err := s.exists(ctx, partKey(part.Index))
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// Abandon removes a plan that no job was submitted for (its submission
// was refused): the output is left as it was, but for an empty local
// directory made for it, which goes too.
func Abandon(ctx context.Context, p *Plan) error {
	s, err := openOutput(ctx, p.Output)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.removeAll(ctx, workDir); err != nil {
		return err
	}
	if s.dir != "" {
		os.Remove(s.dir) // only if empty
	}
	return nil
}
