package transform

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// A transform as jobs (hpcml data transform --submit): each pass's units
// are jobs, and a job after them (afterok) gathers what they made before
// the next pass's jobs start — a statistics pass's states merged into
// the statistics its step uses, a shuffle's end, or (after the last
// pass) the commit of the output and the report. The helpers here are
// what those jobs call.

// PassAt is the plan's pass i.
func (p *Plan) PassAt(i int) (Pass, error) {
	ps := p.Passes()
	if i < 0 || i >= len(ps) {
		return Pass{}, fmt.Errorf("pass %d: the plan has %d", i, len(ps))
	}
	return ps[i], nil
}

// Bucketed says whether a pass's units are the buckets of a shuffle
// (else the input's partitions); the shuffle's step is returned.
func (p *Plan) Bucketed(ps Pass) (int, bool) {
	sg := p.segs[ps.Segment]
	return sg.first, sg.dedup != nil
}

// StatsFile names the statistics of a step in a stats directory.
func StatsFile(step int) string { return fmt.Sprintf("step-%04d.json", step) }

// LoadStats reads the statistics files of a directory ("" or a missing
// directory: none).
func LoadStats(dir string) (map[int]*StepStats, error) {
	out := map[int]*StepStats{}
	if dir == "" {
		return out, nil
	}
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "step-") || filepath.Ext(e.Name()) != ".json" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		var st StepStats
		if err := json.Unmarshal(data, &st); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		out[st.Step] = &st
	}
	return out, nil
}

// LoadResults reads the unit results of a directory, in unit order.
func LoadResults(dir string) ([]*UnitResult, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if filepath.Ext(e.Name()) == ".json" {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var out []*UnitResult
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		var r UnitResult
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		out = append(out, &r)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Unit < out[j].Unit })
	return out, nil
}

// ResultFile names a unit's result.
func ResultFile(unit int) string { return fmt.Sprintf("u-%05d.json", unit) }

// Prepare makes the output's staging area.
func (p *Plan) Prepare() error {
	d, err := newDest(p.Output, p.ID)
	if err != nil {
		return err
	}
	return d.prepare()
}

// Commit moves the staged output into place.
func (p *Plan) Commit(ctx context.Context) error {
	d, err := newDest(p.Output, p.ID)
	if err != nil {
		return err
	}
	return d.commit(ctx, p.spec.Output.Overwrite)
}

// Abort removes the staged output (nothing once committed).
func (p *Plan) Abort(ctx context.Context) error {
	d, err := newDest(p.Output, p.ID)
	if err != nil {
		return err
	}
	return d.abort(ctx)
}
