package transform

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hpcml/hpcml/internal/blob"
)

// LocalOptions say how to run a plan in this process.
type LocalOptions struct {
	// Workers is how many units run at once (0: one per CPU).
	Workers int
	// TempDir holds the shuffles' bucket files (default: the system's).
	TempDir string
	// Rows, if set, counts the rows read, every pass (progress).
	Rows *atomic.Int64
	// Pass, if set, is told when a pass starts.
	Pass func(p Pass)
}

// RunLocal runs the plan here: each pass's units by Workers goroutines,
// the shuffles through a temporary directory, the output staged and
// moved into place at the end (removed on a failure).
func (p *Plan) RunLocal(ctx context.Context, opts LocalOptions) (rep *Report, err error) {
	start := time.Now()
	if len(p.Partitions) != p.NumPartitions {
		return nil, errors.New("plan without its partitions")
	}
	d, err := newDest(p.Output, p.ID)
	if err != nil {
		return nil, err
	}
	if err := d.prepare(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.abort(context.WithoutCancel(ctx))
		}
	}()
	tmp, err := os.MkdirTemp(opts.TempDir, "hpcml-transform-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	stats := map[int]*StepStats{}
	var results [][]*UnitResult
	for _, ps := range p.Passes() {
		if opts.Pass != nil {
			opts.Pass(ps)
		}
		sg := p.segs[ps.Segment]
		units := make([]Unit, ps.Units)
		for i := range units {
			u := Unit{Pass: ps, Index: i, Stats: stats, Rows: opts.Rows}
			if sg.dedup == nil {
				u.Partition = &p.Partitions[i]
			} else {
				u.BucketDir = filepath.Join(tmp, fmt.Sprintf("shuffle-%d", sg.first), BucketName(i))
			}
			if ps.Kind == PassShuffle {
				u.ShuffleDir = filepath.Join(tmp, fmt.Sprintf("shuffle-%d", ps.Step))
			}
			units[i] = u
		}
		res, err := p.runUnits(ctx, units, workers)
		if err != nil {
			return nil, err
		}
		if ps.Kind == PassStats {
			st, err := p.MergeStats(ps, res)
			if err != nil {
				return nil, err
			}
			stats[ps.Step] = st
		} else {
			results = append(results, res)
		}
		if sg.dedup != nil && ps.Kind != PassStats {
			// The bucket files are read for the last time.
			os.RemoveAll(filepath.Join(tmp, fmt.Sprintf("shuffle-%d", sg.first)))
		}
	}
	if err := d.commit(ctx, p.spec.Output.Overwrite); err != nil {
		return nil, fmt.Errorf("commit the output: %w", err)
	}
	rep = p.NewReport(stats, results)
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// runUnits runs units by workers goroutines; the first error (in unit
// order) stops them.
func (p *Plan) runUnits(ctx context.Context, units []Unit, workers int) ([]*UnitResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := make([]*UnitResult, len(units))
	errs := make([]error, len(units))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, len(units)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(units) || ctx.Err() != nil {
					return
				}
				res[i], errs[i] = p.RunUnit(ctx, units[i])
				if errs[i] != nil {
					cancel()
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return res, nil
}

// MergeStats merges a statistics pass's unit states, in unit order, into
// what its step uses.
func (p *Plan) MergeStats(ps Pass, res []*UnitResult) (*StepStats, error) {
	s := p.c.steps[ps.Step]
	var merged *statsState
	for _, r := range res {
		st, err := decodeStats(r.State, s)
		if err != nil {
			return nil, fmt.Errorf("unit %d: %w", r.Unit, err)
		}
		if merged == nil {
			merged = st
		} else if err := merged.merge(st); err != nil {
			return nil, fmt.Errorf("unit %d: %w", r.Unit, err)
		}
	}
	if merged == nil {
		merged = newStatsState(s)
	}
	return merged.derive(s, &parser{file: p.SpecFile})
}

// Report says what a transform did.
type Report struct {
	ID     string `json:"id"`
	Spec   string `json:"spec"`
	Input  string `json:"input"`
	Output string `json:"output"`
	// Partitions of the input; Passes over the data.
	Partitions int          `json:"partitions"`
	Passes     int          `json:"passes"`
	RowsIn     int64        `json:"rows_in"`
	RowsOut    int64        `json:"rows_out"`
	Steps      []StepReport `json:"steps"`
	// Splits: the output's directories and their rows (one, named "",
	// without a split step).
	Splits  []SplitReport `json:"splits"`
	Seconds float64       `json:"seconds"`
	// Jobs ran it (--submit).
	Jobs []int64 `json:"jobs,omitempty"`
}

// StepReport is one step's rows in and out.
type StepReport struct {
	Step        int        `json:"step"`
	Op          string     `json:"op"`
	Description string     `json:"description"`
	RowsIn      int64      `json:"rows_in"`
	RowsOut     int64      `json:"rows_out"`
	Stats       *StepStats `json:"stats,omitempty"`
}

// SplitReport is one output directory.
type SplitReport struct {
	Name     string  `json:"name"`
	Fraction float64 `json:"fraction"`
	Rows     int64   `json:"rows"`
	URL      string  `json:"url"`
}

// NewReport sums the units' counts (of the passes that write or
// shuffle) into a report.
func (p *Plan) NewReport(stats map[int]*StepStats, results [][]*UnitResult) *Report {
	rep := &Report{ID: p.ID, Spec: p.SpecFile, Input: blob.Redact(p.InputURL), Output: blob.Redact(p.Output),
		Partitions: p.NumPartitions, Passes: len(p.Passes())}
	counts := map[int]StepCount{}
	splits := make([]int64, len(p.Splits()))
	for pi, res := range results {
		for _, r := range res {
			if r == nil {
				continue
			}
			if pi == 0 {
				rep.RowsIn += r.Input
			}
			for i, c := range r.Steps {
				t := counts[i]
				t.In += c.In
				t.Out += c.Out
				counts[i] = t
			}
			for i, n := range r.Splits {
				if i < len(splits) {
					splits[i] += n
				}
			}
		}
	}
	for _, s := range p.c.steps {
		c := counts[s.index]
		rep.Steps = append(rep.Steps, StepReport{Step: s.index, Op: s.op, Description: s.describe, RowsIn: c.In, RowsOut: c.Out, Stats: stats[s.index]})
	}
	names := p.Splits()
	for i, n := range names {
		sr := SplitReport{Name: n, Fraction: 1, Rows: splits[i], URL: blob.Redact(p.Output)}
		if n != "" {
			sr.Fraction = p.c.split.fractions[i]
			sr.URL = blob.Redact(join(p.Output, n))
		}
		rep.Splits = append(rep.Splits, sr)
		rep.RowsOut += splits[i]
	}
	sort.SliceStable(rep.Steps, func(i, j int) bool { return rep.Steps[i].Step < rep.Steps[j].Step })
	return rep
}
