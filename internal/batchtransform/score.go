package batchtransform

import (
	"context"
	"fmt"
	"time"

	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/serve"
)

// partHeader is the first line of a part's object: what the part held,
// the records that failed, and who scored it.
type partHeader struct {
	Part     int         `json:"part"`
	File     int         `json:"file"`
	Records  int64       `json:"records"`  // scored, one output record each
	Failures int64       `json:"failures"` // records that failed
	Lines    int64       `json:"lines"`    // lines (rows) the part spans
	Errors   []partError `json:"errors,omitempty"`
	Worker   int         `json:"worker"`
	Job      string      `json:"job,omitempty"`
	Attempt  int         `json:"attempt,omitempty"`
	Seconds  float64     `json:"seconds"`
}

// partError is a failed record: its line (row) within the part.
type partError struct {
	Line   int64  `json:"line,omitempty"`
	Reason string `json:"reason"`
}

// maxReason bounds a failure's reason (a model's error can be long).
const maxReason = 1000

// scorer scores the records of one part in batches of BatchSize and
// renders their outputs.
type scorer struct {
	p     *Plan
	m     serve.Model
	shape []int // the input's per-sample shape
	batch []*record
	free  []*record
	row   []byte // one rendered record
	out   spool  // the part's rendered records
	hdr   partHeader
}

func newScorer(p *Plan, m serve.Model) (*scorer, error) {
	info := m.Info()
	if len(info.Inputs) != 1 || info.Inputs[0].Name != p.InputName {
		return nil, fmt.Errorf("the model loaded does not take input %q as the plan says", p.InputName)
	}
	if v, err := sampleVolume(info.Inputs[0]); err != nil || v != p.Volume {
		return nil, fmt.Errorf("the model loaded takes %d values per sample, the plan %d", v, p.Volume)
	}
	if len(info.Outputs) != len(p.Outputs) {
		return nil, fmt.Errorf("the model loaded has %d outputs, the plan %d", len(info.Outputs), len(p.Outputs))
	}
	for i, o := range info.Outputs {
		if v, err := sampleVolume(o); err != nil || o.Name != p.Outputs[i].Name || v != p.Outputs[i].Volume {
			return nil, fmt.Errorf("the model loaded's output %d is %q of %d values, the plan's %q of %d", i, o.Name, v, p.Outputs[i].Name, p.Outputs[i].Volume)
		}
	}
	shape := make([]int, 0, len(info.Inputs[0].Shape)-1)
	for _, d := range info.Inputs[0].Shape[1:] {
		shape = append(shape, int(d))
	}
	return &scorer{p: p, m: m, shape: shape}, nil
}

func (s *scorer) get() *record {
	if n := len(s.free); n > 0 {
		r := s.free[n-1]
		s.free = s.free[:n-1]
		return r
	}
	return &record{}
}

func (s *scorer) put(r *record) {
	r.feats, r.join, r.err, r.line = r.feats[:0], r.join[:0], "", 0
	s.free = append(s.free, r)
}

func (s *scorer) fail(line int64, reason string) {
	if len(reason) > maxReason {
		reason = reason[:maxReason] + "..."
	}
	s.hdr.Failures++
	s.hdr.Errors = append(s.hdr.Errors, partError{Line: line, Reason: reason})
}

// scorePart reads, scores and renders a part: its header, and its output
// records in s.out.
func (s *scorer) scorePart(ctx context.Context, in *inputs, part Part) (*partHeader, error) {
	start := time.Now()
	s.hdr = partHeader{Part: part.Index, File: part.File}
	s.out.reset()
	var err error
	if s.p.Split == SplitNone {
		err = s.scoreWhole(ctx, in, part)
	} else {
		s.hdr.Lines, err = readPart(ctx, in, s.p, part, s.get, func(r *record) error {
			if r.err != "" {
				s.fail(r.line, r.err)
				s.put(r)
				return nil
			}
			if len(r.feats) != s.p.Volume {
				s.fail(r.line, fmt.Sprintf("%d values; model input %q takes %d per sample", len(r.feats), s.p.InputName, s.p.Volume))
				s.put(r)
				return nil
			}
			s.batch = append(s.batch, r)
			if len(s.batch) >= s.p.BatchSize {
				return s.flush(ctx)
			}
			return nil
		})
		if err == nil {
			err = s.flush(ctx)
		}
	}
	for _, r := range s.batch {
		s.put(r)
	}
	s.batch = s.batch[:0]
	if err != nil {
		return nil, err
	}
	s.hdr.Seconds = time.Since(start).Seconds()
	h := s.hdr
	return &h, nil
}

// scoreWhole scores a file as one sample (--split none): the features of
// all its records in order.
func (s *scorer) scoreWhole(ctx context.Context, in *inputs, part Part) error {
	whole := s.get()
	defer s.put(whole)
	failed := false
	lines, err := readPart(ctx, in, s.p, part, s.get, func(r *record) error {
		if r.err != "" && !failed {
			s.fail(r.line, r.err)
			failed = true
		}
		whole.feats = append(whole.feats, r.feats...)
		s.put(r)
		return nil
	})
	s.hdr.Lines = lines
	if err != nil || failed {
		return err
	}
	if len(whole.feats) != s.p.Volume {
		s.fail(0, fmt.Sprintf("the file holds %d values; model input %q takes %d per sample", len(whole.feats), s.p.InputName, s.p.Volume))
		return nil
	}
	s.batch = append(s.batch[:0], s.get())
	s.batch[0].feats = append(s.batch[0].feats, whole.feats...)
	return s.flush(ctx)
}

// flush scores the batch. When the model fails on a batch, each record
// is scored alone, so that only the records it fails on are lost.
func (s *scorer) flush(ctx context.Context) error {
	if len(s.batch) == 0 {
		return nil
	}
	outs, err := s.infer(ctx, s.batch)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	if err == nil {
		err = s.render(s.batch, outs)
	} else {
		for _, r := range s.batch {
			one := []*record{r}
			o, err := s.infer(ctx, one)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				s.fail(r.line, "model: "+err.Error())
				continue
			}
			if err = s.render(one, o); err != nil {
				break
			}
		}
	}
	for _, r := range s.batch {
		s.put(r)
	}
	s.batch = s.batch[:0]
	return err
}

// infer runs the model on records and checks the outputs have a row of
// the right size for each.
func (s *scorer) infer(ctx context.Context, recs []*record) ([][]float32, error) {
	n := len(recs)
	x := &nn.Tensor{Shape: append([]int{n}, s.shape...), Data: make([]float32, 0, n*s.p.Volume)}
	for _, r := range recs {
		x.Data = append(x.Data, r.feats...)
	}
	outs, err := s.m.Infer(ctx, map[string]*nn.Tensor{s.p.InputName: x})
	if err != nil {
		return nil, err
	}
	res := make([][]float32, len(s.p.Outputs))
	for k, o := range s.p.Outputs {
		t := outs[o.Name]
		if t == nil {
			return nil, fmt.Errorf("no output %q", o.Name)
		}
		if len(t.Shape) == 0 || t.Shape[0] != n || len(t.Data) != n*o.Volume {
			return nil, fmt.Errorf("output %q has shape %v for %d rows of %d values", o.Name, t.Shape, n, o.Volume)
		}
		res[k] = t.Data
	}
	return res, nil
}

// render adds the output records of scored records to the part's output.
func (s *scorer) render(recs []*record, outs [][]float32) error {
	vals := make([][]float32, len(outs))
	s.row = s.row[:0]
	for i, r := range recs {
		for k, o := range s.p.Outputs {
			vals[k] = outs[k][i*o.Volume : (i+1)*o.Volume]
		}
		s.row = appendRow(s.row, s.p, r.join, vals)
		s.hdr.Records++
	}
	return s.out.append(s.row)
}
