package transform

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/hpcml/hpcml/internal/profile"
)

// maxModeValues bounds the distinct values a mode is counted over.
const maxModeValues = 1 << 20

// statsState is one unit's statistics of a step's input: for each column
// the step needs, an internal/profile state (quantiles and mean) and/or
// exact value counts (mode). States of all units merge into one, in any
// order.
type statsState struct {
	Step    int        `json:"step"`
	Columns []statsCol `json:"columns"`
	need    []statNeed // not encoded
	states  []*profile.State
	schemas []*arrow.Schema
}

type statsCol struct {
	Column  string           `json:"column"`
	Profile []byte           `json:"profile,omitempty"`
	Mode    map[string]int64 `json:"mode,omitempty"`
}

// sketchOptions: of a profile state only the quantile sketch (at its
// default k, 200) and the exact mean are used; the rest is made as small
// as it goes, so that a state carries little but the sketch.
var sketchOptions = profile.Options{DistinctLimit: 1, HLLPrecision: 4, TopValues: 1, TopCounters: 1,
	HistogramBins: 1, SampleRows: 1, MaxCorrelationColumns: 1, DuplicateLimit: 1}

func newStatsState(s *step) *statsState {
	st := &statsState{Step: s.index, need: s.need}
	for _, n := range s.need {
		sc := statsCol{Column: n.name}
		var ps *profile.State
		var schema *arrow.Schema
		if n.sketch {
			schema = arrow.NewSchema([]arrow.Field{{Name: n.name, Type: n.k.Type(), Nullable: true}}, nil)
			ps = profile.NewState(schema, sketchOptions)
		}
		if n.mode {
			sc.Mode = map[string]int64{}
		}
		st.Columns = append(st.Columns, sc)
		st.states = append(st.states, ps)
		st.schemas = append(st.schemas, schema)
	}
	return st
}

func (st *statsState) add(b *batch) error {
	for i, n := range st.need {
		a := b.rec.Column(n.col)
		if ps := st.states[i]; ps != nil {
			rec := array.NewRecordBatch(st.schemas[i], []arrow.Array{a}, b.rec.NumRows())
			err := ps.Add(rec)
			rec.Release()
			if err != nil {
				return err
			}
		}
		if m := st.Columns[i].Mode; m != nil {
			c := view(a)
			for r := 0; r < c.n; r++ {
				if c.missing(r) {
					continue
				}
				m[modeKey(&c, r)]++
			}
			if len(m) > maxModeValues {
				return fmt.Errorf("mode of column %q: more than %d distinct values (impute a constant instead)", n.name, maxModeValues)
			}
		}
	}
	return nil
}

func modeKey(c *column, i int) string {
	switch c.k {
	case kInt, kTime:
		return fmt.Sprint(c.ints[i])
	case kFloat:
		f := c.flts[i]
		if f == 0 {
			f = 0
		}
		return fmt.Sprint(math.Float64bits(f))
	case kBool:
		if c.boolAt(i) {
			return "true"
		}
		return "false"
	}
	return string(c.str(i))
}

func modeValue(key string, k kind) scalar {
	switch k {
	case kInt, kTime:
		var v int64
		fmt.Sscan(key, &v)
		return scalar{i: v}
	case kFloat:
		var u uint64
		fmt.Sscan(key, &u)
		return scalar{f: math.Float64frombits(u)}
	case kBool:
		return scalar{b: key == "true"}
	}
	return scalar{s: key}
}

func (a scalar) less(b scalar, k kind) bool {
	switch k {
	case kInt, kTime:
		return a.i < b.i
	case kFloat:
		return a.f < b.f
	case kBool:
		return !a.b && b.b
	}
	return a.s < b.s
}

// encode is the state as bytes (JSON holding the profile states).
func (st *statsState) encode() ([]byte, error) {
	for i, ps := range st.states {
		if ps == nil {
			continue
		}
		b, err := ps.MarshalBinary()
		if err != nil {
			return nil, err
		}
		st.Columns[i].Profile = b
	}
	return json.Marshal(st)
}

func decodeStats(data []byte, s *step) (*statsState, error) {
	st := newStatsState(s)
	var enc statsState
	if err := json.Unmarshal(data, &enc); err != nil {
		return nil, fmt.Errorf("statistics state: %w", err)
	}
	if enc.Step != s.index || len(enc.Columns) != len(st.Columns) {
		return nil, fmt.Errorf("statistics state of step %d with %d columns, want step %d with %d", enc.Step, len(enc.Columns), s.index, len(st.Columns))
	}
	for i, c := range enc.Columns {
		if c.Column != st.Columns[i].Column {
			return nil, fmt.Errorf("statistics state: column %q, want %q", c.Column, st.Columns[i].Column)
		}
		if st.states[i] != nil {
			ps, err := profile.DecodeState(c.Profile)
			if err != nil {
				return nil, fmt.Errorf("statistics of column %q: %w", c.Column, err)
			}
			st.states[i] = ps
		}
		if st.Columns[i].Mode != nil && c.Mode != nil {
			st.Columns[i].Mode = c.Mode
		}
	}
	return st, nil
}

func (st *statsState) merge(o *statsState) error {
	for i := range st.Columns {
		if st.states[i] != nil {
			if err := st.states[i].Merge(o.states[i]); err != nil {
				return fmt.Errorf("column %q: %w", st.Columns[i].Column, err)
			}
		}
		if m := st.Columns[i].Mode; m != nil {
			for k, v := range o.Columns[i].Mode {
				m[k] += v
			}
			if len(m) > maxModeValues {
				return fmt.Errorf("mode of column %q: more than %d distinct values (impute a constant instead)", st.Columns[i].Column, maxModeValues)
			}
		}
	}
	return nil
}

// StepStats are the statistics a step uses, as the report shows them.
type StepStats struct {
	Step    int           `json:"step"`
	Columns []ColumnStats `json:"columns"`
	// QuantileRankError: the quartiles and medians not marked exact have,
	// with 99% confidence, a rank within this share of the values of the
	// true one (internal/profile's KLL sketch).
	QuantileRankError float64 `json:"quantile_rank_error,omitempty"`
}

// ColumnStats are one column's.
type ColumnStats struct {
	Column string `json:"column"`
	// Values: the column's values (not missing) in the step's input.
	Values int64 `json:"values"`
	// iqr_outliers: quartiles and the bounds kept, [Q1 − k·IQR, Q3 + k·IQR]
	// (null when the column has no values).
	Q1    *float64 `json:"q1,omitempty"`
	Q3    *float64 `json:"q3,omitempty"`
	Lower *float64 `json:"lower,omitempty"`
	Upper *float64 `json:"upper,omitempty"`
	// impute: the strategy and the value missing ones get.
	Strategy string `json:"strategy,omitempty"`
	Value    any    `json:"value,omitempty"`
	Fill     string `json:"fill,omitempty"` // Value as text, for the jobs
	// Exact: computed from every value (quartiles, median: the sketch
	// kept all of them; mean and mode always are).
	Exact bool `json:"exact"`
}

func (cs *ColumnStats) fill(k kind) (scalar, error) {
	if cs.Strategy == "" {
		return scalar{}, fmt.Errorf("column %q: no value to impute", cs.Column)
	}
	return parseScalar(cs.Fill, k)
}

// derive turns the merged state into what the step uses.
func (st *statsState) derive(s *step, p *parser) (*StepStats, error) {
	out := &StepStats{Step: s.index}
	for i, n := range st.need {
		cs := ColumnStats{Column: n.name, Exact: true}
		var num *profile.Numeric
		if ps := st.states[i]; ps != nil {
			rep := ps.Report()
			out.QuantileRankError = rep.Accuracy.QuantileRankError
			c := rep.Columns[0]
			cs.Values = c.Count
			num = c.Numeric
		}
		if m := st.Columns[i].Mode; m != nil {
			cs.Values = 0
			for _, v := range m {
				cs.Values += v
			}
		}
		switch n.strategy {
		case "iqr":
			if num != nil && num.P25 != nil && num.P75 != nil {
				q1, q3 := *num.P25, *num.P75
				lo, hi := q1-n.iqrK*(q3-q1), q3+n.iqrK*(q3-q1)
				cs.Q1, cs.Q3, cs.Lower, cs.Upper = &q1, &q3, &lo, &hi
				cs.Exact = num.QuantilesExact
			}
		case ImputeMean, ImputeMedian, ImputeMode:
			cs.Strategy = n.strategy
			var v scalar
			switch {
			case n.strategy == ImputeMean && num != nil && num.Mean != nil:
				v = scalar{f: *num.Mean}
				if n.k == kInt {
					v = scalar{i: int64(math.Round(*num.Mean))}
				}
			case n.strategy == ImputeMedian && num != nil && num.P50 != nil:
				v = scalar{f: *num.P50, i: int64(*num.P50)}
				cs.Exact = num.QuantilesExact
			case n.strategy == ImputeMode && len(st.Columns[i].Mode) > 0:
				v = mode(st.Columns[i].Mode, n.k)
			default:
				return nil, p.errf(s.at, "%s of column %q: it has no values at this step", n.strategy, n.name)
			}
			cs.Value, cs.Fill = v.jsonValue(n.k), v.text(n.k) // the text reads back exactly
		case ImputeConstant:
			cs.Strategy = n.strategy
			cs.Value, cs.Fill = n.constant.jsonValue(n.k), n.constant.text(n.k)
		}
		out.Columns = append(out.Columns, cs)
	}
	return out, nil
}

// mode is the most frequent value, the smallest of equally frequent
// ones (pandas' mode()[0]).
func mode(m map[string]int64, k kind) scalar {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	sort.Strings(keys) // a fixed order first
	var best scalar
	var bestN int64 = -1
	for _, key := range keys {
		n := m[key]
		v := modeValue(key, k)
		if n > bestN || n == bestN && v.less(best, k) {
			best, bestN = v, n
		}
	}
	return best
}
