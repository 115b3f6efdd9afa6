package transform

import (
	"fmt"
	"math"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"gopkg.in/yaml.v3"
)

// col is a column of a step's input or output.
type col struct {
	Name string
	K    kind
}

func schemaOf(cols []col) *arrow.Schema {
	fs := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fs[i] = arrow.Field{Name: c.Name, Type: c.K.Type(), Nullable: true}
	}
	return arrow.NewSchema(fs, nil)
}

func colNames(cols []col) string {
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		if i == 12 && len(cols) > 14 {
			fmt.Fprintf(&b, "... (%d more)", len(cols)-12)
			break
		}
		b.WriteString(c.Name)
	}
	return b.String()
}

func indexOf(cols []col, name string) int {
	for i, c := range cols {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// batch is rows in flight: their values and where each came from
// (partition<<rowBits | row index in the partition), which orders rows
// as the input does whatever the partitioning.
type batch struct {
	rec  arrow.RecordBatch
	rows []int64
}

const rowBits = 40

func origin(partition int, row int64) int64 { return int64(partition)<<rowBits | row }

func splitOrigin(o int64) (int, int64) { return int(o >> rowBits), o & (1<<rowBits - 1) }

// keep is the rows of b where mask is true (b itself if all are).
func (b *batch) keep(mask []bool) *batch {
	idx := make([]int32, 0, len(mask))
	for i, ok := range mask {
		if ok {
			idx = append(idx, int32(i))
		}
	}
	if len(idx) == len(mask) {
		return b
	}
	return b.take(idx)
}

func (b *batch) take(idx []int32) *batch {
	rows := make([]int64, len(idx))
	for j, i := range idx {
		rows[j] = b.rows[i]
	}
	return &batch{rec: takeRecord(b.rec, idx), rows: rows}
}

func (b *batch) n() int { return int(b.rec.NumRows()) }

// step is a compiled step.
type step struct {
	index   int
	op      string
	at      Field
	in, out []col
	// apply transforms a batch (row-wise steps); nil for drop_duplicates
	// and split.
	apply func(b *batch, st *StepStats) (*batch, error)
	// need: the step needs statistics of its input (iqr_outliers;
	// impute with mean, median or mode).
	need []statNeed
	// keys are the input columns drop_duplicates compares, and split
	// hashes.
	keys []int
	// split
	names     []string
	fractions []float64
	seed      uint64
	// buckets of a drop_duplicates shuffle (0: as many as partitions).
	buckets int
	// describe is a line for the plan.
	describe string
}

// statNeed is a column whose statistics a step needs.
type statNeed struct {
	col      int // in the step's input
	name     string
	k        kind
	sketch   bool // quantiles or mean (internal/profile)
	mode     bool
	strategy string // impute: mean, median, mode; iqr: "iqr"
	constant *scalar
	iqrK     float64
}

// compiled is a spec checked against its input's columns.
type compiled struct {
	spec  *Spec
	steps []*step
	out   []col // the output's columns
	split *step
}

// compile checks every step against the columns it gets, in order.
func compile(s *Spec, input []col) (*compiled, error) {
	p := &parser{file: s.File}
	cur := input
	c := &compiled{spec: s}
	for i, st := range s.Steps {
		cs := &step{index: i, op: st.Op, at: st.At, in: cur}
		ref := func(r Ref) (int, error) {
			j := indexOf(cur, r.Name)
			if j < 0 {
				return -1, p.errf(r.At, "no column %q here (the columns here: %s)", r.Name, colNames(cur))
			}
			return j, nil
		}
		refs := func(rs []Ref) ([]int, error) {
			var out []int
			for _, r := range rs {
				j, err := ref(r)
				if err != nil {
					return nil, err
				}
				out = append(out, j)
			}
			return out, nil
		}
		all := func() []int {
			out := make([]int, len(cur))
			for j := range out {
				out[j] = j
			}
			return out
		}
		if c.split != nil {
			return nil, p.errf(st.At, "split must be the last step (it writes each row to its split's directory)")
		}
		var err error
		switch st.Op {
		case OpSelect:
			var idx []int
			if idx, err = refs(st.Select); err != nil {
				return nil, err
			}
			next := make([]col, len(idx))
			var names []string
			for j, x := range idx {
				next[j] = cur[x]
				names = append(names, cur[x].Name)
			}
			cs.out = next
			cs.apply = project(idx, schemaOf(next))
			cs.describe = "select " + strings.Join(names, ", ")
		case OpRename:
			next := append([]col(nil), cur...)
			var parts []string
			for _, r := range st.Renames {
				j, err := ref(r.From)
				if err != nil {
					return nil, err
				}
				next[j].Name = r.To
				parts = append(parts, r.From.Name+" → "+r.To)
			}
			seen := map[string]bool{}
			for _, x := range next {
				if seen[x.Name] {
					return nil, p.errf(st.At, "two columns would be named %q", x.Name)
				}
				seen[x.Name] = true
			}
			cs.out = next
			cs.apply = project(all(), schemaOf(next))
			cs.describe = "rename " + strings.Join(parts, ", ")
		case OpCast:
			next := append([]col(nil), cur...)
			casts := map[int]kind{}
			var parts []string
			for _, ct := range st.Casts {
				j, err := ref(Ref{ct.Column, ct.At})
				if err != nil {
					return nil, err
				}
				to, _ := kindOfName(ct.Type)
				if err := castable(cur[j].K, to); err != nil {
					return nil, p.errf(ct.At, "%s: %v", ct.Column, err)
				}
				next[j].K = to
				if to != cur[j].K {
					casts[j] = to
				}
				parts = append(parts, fmt.Sprintf("%s %s → %s", ct.Column, cur[j].K, to))
			}
			cs.out = next
			cs.apply = castStep(casts, cur, schemaOf(next))
			cs.describe = "cast " + strings.Join(parts, ", ")
		case OpFilter:
			var pr pred
			if pr, err = compilePred(p, st.Filter, cur); err != nil {
				return nil, err
			}
			cs.out = cur
			cs.apply = func(b *batch, _ *StepStats) (*batch, error) {
				return b.keep(pr(b.rec)), nil
			}
			cs.describe = "filter " + predText(st.Filter)
		case OpIQROutliers:
			idx := []int{}
			if len(st.IQR.Columns) == 0 {
				for j, x := range cur {
					if x.K.numeric() {
						idx = append(idx, j)
					}
				}
				if len(idx) == 0 {
					return nil, p.errf(st.At, "no numeric columns here (the columns here: %s)", colNames(cur))
				}
			} else if idx, err = refs(st.IQR.Columns); err != nil {
				return nil, err
			}
			var names []string
			for n, j := range idx {
				if !cur[j].K.numeric() {
					f := st.At
					if n < len(st.IQR.Columns) {
						f = st.IQR.Columns[n].At
					}
					return nil, p.errf(f, "column %q is %s, not numeric", cur[j].Name, cur[j].K)
				}
				cs.need = append(cs.need, statNeed{col: j, name: cur[j].Name, k: cur[j].K, sketch: true, strategy: "iqr", iqrK: st.IQR.K})
				names = append(names, cur[j].Name)
			}
			cs.out = cur
			cs.apply = iqrStep(cs)
			cs.describe = fmt.Sprintf("iqr_outliers k=%g on %s", st.IQR.K, strings.Join(names, ", "))
		case OpDropDuplicates:
			if len(st.Dedup.Subset) == 0 {
				cs.keys = all()
				cs.describe = "drop_duplicates (all columns)"
			} else {
				if cs.keys, err = refs(st.Dedup.Subset); err != nil {
					return nil, err
				}
				cs.describe = "drop_duplicates on " + refNames(st.Dedup.Subset)
			}
			cs.buckets = st.Dedup.Buckets
			cs.out = cur
		case OpDropMissing:
			idx := all()
			if len(st.Missing.Subset) > 0 {
				if idx, err = refs(st.Missing.Subset); err != nil {
					return nil, err
				}
			}
			cs.out = cur
			cs.apply = dropMissing(idx, st.Missing.How == "all")
			cs.describe = "drop_missing how=" + st.Missing.How
			if len(st.Missing.Subset) > 0 {
				cs.describe += " on " + refNames(st.Missing.Subset)
			}
		case OpImpute:
			var parts []string
			seen := map[int]bool{}
			for _, im := range st.Impute {
				j, err := ref(im.Column)
				if err != nil {
					return nil, err
				}
				if seen[j] {
					return nil, p.errf(im.At, "column %q imputed twice", im.Column.Name)
				}
				seen[j] = true
				n := statNeed{col: j, name: cur[j].Name, k: cur[j].K, strategy: im.Strategy}
				switch im.Strategy {
				case ImputeMean, ImputeMedian:
					if !cur[j].K.numeric() {
						return nil, p.errf(im.At, "%s of column %q: it is %s, not numeric (mode or constant)", im.Strategy, cur[j].Name, cur[j].K)
					}
					n.sketch = true
				case ImputeMode:
					n.mode = true
				case ImputeConstant:
					v, err := valueOf(im.Value, cur[j].K)
					if err != nil {
						return nil, p.errf(Field{Path: im.At.Path + ".constant", Line: im.Value.Line}, "column %q is %s: %v", cur[j].Name, cur[j].K, err)
					}
					n.constant = &v
				}
				cs.need = append(cs.need, n)
				parts = append(parts, cur[j].Name+"="+im.Strategy)
			}
			cs.out = cur
			cs.apply = imputeStep(cs)
			cs.describe = "impute " + strings.Join(parts, ", ")
		case OpSplit:
			sp := st.Split
			if len(sp.By) == 0 {
				cs.keys = all()
			} else if cs.keys, err = refs(sp.By); err != nil {
				return nil, err
			}
			cs.names, cs.fractions, cs.seed = sp.Names, sp.Fractions, sp.Seed
			cs.out = cur
			c.split = cs
			var parts []string
			for j, n := range sp.Names {
				parts = append(parts, fmt.Sprintf("%s %g", n, sp.Fractions[j]))
			}
			cs.describe = fmt.Sprintf("split %s (seed %d", strings.Join(parts, ", "), sp.Seed)
			if len(sp.By) > 0 {
				cs.describe += ", by " + refNames(sp.By)
			}
			cs.describe += ")"
		}
		c.steps = append(c.steps, cs)
		cur = cs.out
	}
	c.out = cur
	if len(cur) == 0 {
		return nil, p.errf(Field{Path: "steps"}, "no columns left to write")
	}
	for _, r := range s.Output.PartitionBy {
		j := indexOf(cur, r.Name)
		if j < 0 {
			return nil, p.errf(r.At, "no column %q in the output (its columns: %s)", r.Name, colNames(cur))
		}
		if cur[j].K == kFloat {
			return nil, p.errf(r.At, "column %q is float64: partition by a column of few distinct values (int64, string, bool, timestamp)", r.Name)
		}
	}
	return c, nil
}

func refNames(rs []Ref) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.Name)
	}
	return strings.Join(s, ", ")
}

// statSteps are the steps that need statistics.
func (c *compiled) statSteps() []int {
	var out []int
	for _, s := range c.steps {
		if s.needsPass() {
			out = append(out, s.index)
		}
	}
	return out
}

// needsPass: the step needs statistics gathered by a pass over its
// input (a constant imputation alone does not).
func (s *step) needsPass() bool {
	for _, n := range s.need {
		if n.sketch || n.mode {
			return true
		}
	}
	return false
}

func project(idx []int, schema *arrow.Schema) func(*batch, *StepStats) (*batch, error) {
	return func(b *batch, _ *StepStats) (*batch, error) {
		cols := make([]arrow.Array, len(idx))
		for j, i := range idx {
			cols[j] = b.rec.Column(i)
		}
		return &batch{rec: array.NewRecordBatch(schema, cols, b.rec.NumRows()), rows: b.rows}, nil
	}
}

func dropMissing(idx []int, all bool) func(*batch, *StepStats) (*batch, error) {
	return func(b *batch, _ *StepStats) (*batch, error) {
		n := b.n()
		// count of missing values among idx per row
		miss := make([]int32, n)
		for _, j := range idx {
			c := view(b.rec.Column(j))
			if c.nulls == 0 && c.k != kFloat {
				continue
			}
			for i := 0; i < n; i++ {
				if c.missing(i) {
					miss[i]++
				}
			}
		}
		mask := make([]bool, n)
		for i, m := range miss {
			if all {
				mask[i] = int(m) < len(idx)
			} else {
				mask[i] = m == 0
			}
		}
		return b.keep(mask), nil
	}
}

func iqrStep(s *step) func(*batch, *StepStats) (*batch, error) {
	return func(b *batch, st *StepStats) (*batch, error) {
		n := b.n()
		mask := make([]bool, n)
		for i := range mask {
			mask[i] = true
		}
		for _, cs := range st.Columns {
			if cs.Lower == nil || cs.Upper == nil {
				continue // no values: nothing is an outlier
			}
			lo, hi := *cs.Lower, *cs.Upper
			j := indexOf(s.in, cs.Column)
			c := view(b.rec.Column(j))
			for i := 0; i < n; i++ {
				if !mask[i] || c.isNull(i) {
					continue
				}
				var v float64
				if c.k == kInt {
					v = float64(c.ints[i])
				} else {
					v = c.flts[i]
				}
				if v < lo || v > hi { // NaN is missing: kept
					mask[i] = false
				}
			}
		}
		return b.keep(mask), nil
	}
}

func imputeStep(s *step) func(*batch, *StepStats) (*batch, error) {
	schema := schemaOf(s.out)
	return func(b *batch, st *StepStats) (*batch, error) {
		fills := map[int]scalar{}
		for _, n := range s.need {
			if n.constant != nil {
				fills[n.col] = *n.constant
			}
		}
		if st != nil {
			for _, cs := range st.Columns {
				j := indexOf(s.in, cs.Column)
				v, err := cs.fill(s.in[j].K)
				if err != nil {
					return nil, err
				}
				fills[j] = v
			}
		}
		cols := b.rec.Columns()
		out := make([]arrow.Array, len(cols))
		copy(out, cols)
		for j, v := range fills {
			c := view(cols[j])
			if c.nulls == 0 && c.k != kFloat {
				continue
			}
			bl := newBuilder(c.k, c.n)
			for i := 0; i < c.n; i++ {
				if c.missing(i) {
					bl.appendScalar(v)
				} else {
					bl.appendFrom(&c, i)
				}
			}
			out[j] = bl.array()
		}
		return &batch{rec: array.NewRecordBatch(schema, out, b.rec.NumRows()), rows: b.rows}, nil
	}
}

// assign gives each row of b its split (an index into names).
func (s *step) assign(b *batch) []uint8 {
	cols := make([]*column, len(s.keys))
	for j, k := range s.keys {
		c := view(b.rec.Column(k))
		cols[j] = &c
	}
	h := hashRows(cols, b.n(), s.seed)
	cum := make([]float64, len(s.fractions))
	var t float64
	for i, f := range s.fractions {
		t += f
		cum[i] = t
	}
	cum[len(cum)-1] = math.Inf(1)
	out := make([]uint8, len(h))
	for i, x := range h {
		u := float64(mix64(x^s.seed*m3)>>11) / (1 << 53)
		j := 0
		for u >= cum[j] {
			j++
		}
		out[i] = uint8(j)
	}
	return out
}

// valueOf reads a spec value (a YAML scalar) as kind k.
func valueOf(n *yaml.Node, k kind) (scalar, error) {
	if k == kFloat && (n.Tag == "!!int" || n.Tag == "!!float") {
		var f float64
		if err := n.Decode(&f); err == nil {
			return scalar{f: f}, nil
		}
	}
	if k == kBool && n.Tag != "!!bool" {
		return scalar{}, fmt.Errorf("%q is not a bool (true or false)", n.Value)
	}
	return parseScalar(n.Value, k)
}
