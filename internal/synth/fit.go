package synth

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/hpcml/hpcml/internal/table"
)

// DefaultMaxRows is how many rows Fit keeps unless told otherwise.
const DefaultMaxRows = 1_000_000

// maxMaxRows bounds FitOptions.MaxRows (rows are indexed by int32).
const maxMaxRows = 1 << 30

// FitOptions say how to fit a model.
type FitOptions struct {
	// MaxRows bounds the rows a model is fitted on, and so Fit's memory
	// (about 30 bytes a cell, plus the strings): a source with more rows
	// is fitted on a uniform random sample of MaxRows of them (reservoir
	// sampling, seeded by Seed), and the model says so in a warning.
	// 0 is DefaultMaxRows.
	MaxRows int
	// Seed seeds the reservoir sample (past MaxRows rows) and the draws
	// that calibrate the correlations.
	Seed uint64
	// Source is recorded in the model (give a redacted URL).
	Source string
	// Rows, if set, is added the rows read as they are (for progress).
	Rows *atomic.Int64
	// Match is what the correlations reproduce: MatchPearson (the
	// default), MatchSpearman or MatchScores (see calibrate.go).
	Match string
	// By, a column's name, fits a copula for each of its values (at most
	// MaxStrata; null is one too): the rows of a class, say, keep their
	// own marginals and correlations, which one copula over all rows
	// cannot (a mixture of groups is no Gaussian copula). Sampled rows
	// take a copula at its share of the rows.
	By string
}

// MaxStrata bounds the values of a By column.
const MaxStrata = 1000

// Fit reads the table r (to its end; r is not closed) and fits a
// Gaussian copula to it (with opts.By, one per value of that column).
// Every column is one of the table package's five types; a table without
// columns or rows is an error, a column without values is sampled as all
// null (with a warning in the model).
func Fit(ctx context.Context, r table.Reader, opts FitOptions) (*Model, error) {
	schema := r.Schema()
	if schema.NumFields() == 0 {
		return nil, fmt.Errorf("the table has no columns")
	}
	switch opts.Match {
	case "":
		opts.Match = MatchPearson
	case MatchScores, MatchPearson, MatchSpearman:
	default:
		return nil, fmt.Errorf("match %q: %s, %s or %s", opts.Match, MatchPearson, MatchSpearman, MatchScores)
	}
	by := -1
	if opts.By != "" {
		idx := schema.FieldIndices(opts.By)
		if len(idx) == 0 {
			return nil, fmt.Errorf("by column %q is not in the table", opts.By)
		}
		by = idx[0]
	}
	maxRows := int64(opts.MaxRows)
	switch {
	case maxRows == 0:
		maxRows = DefaultMaxRows
	case maxRows < 0 || maxRows > maxMaxRows:
		return nil, fmt.Errorf("MaxRows %d: want 1 to %d", maxRows, maxMaxRows)
	}
	m := &Model{Version: ModelVersion, Source: opts.Source, Match: opts.Match, By: opts.By}
	cols := make([]*collector, schema.NumFields())
	for i, f := range schema.Fields() {
		c, err := newCollector(f)
		if err != nil {
			return nil, err
		}
		cols[i] = c
		m.Columns = append(m.Columns, Field{Name: f.Name, Type: table.TypeName(f.Type)})
	}
	res := &reservoir{k: maxRows, rng: rand.New(rand.NewPCG(mix(opts.Seed), mix(opts.Seed^0x5851f42d4c957f2d)))}
	var slots []int32
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rec, err := r.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if !rec.Schema().Equal(schema) {
			rec.Release()
			return nil, fmt.Errorf("a batch of another schema: %s", rec.Schema())
		}
		n := int(rec.NumRows())
		slots = res.slots(n, slots)
		for i, c := range cols {
			c.add(rec.Column(i), slots)
		}
		rec.Release()
		if opts.Rows != nil {
			opts.Rows.Add(int64(n))
		}
	}
	m.SourceRows, m.FitRows = res.seen, min(res.seen, maxRows)
	if m.FitRows == 0 {
		return nil, fmt.Errorf("the table has no rows")
	}
	if res.seen > m.FitRows {
		m.Warnings = append(m.Warnings, fmt.Sprintf("fitted on a uniform random sample of %d of the %d rows (MaxRows)", m.FitRows, res.seen))
	}
	for _, c := range cols {
		if c.empty() {
			m.Warnings = append(m.Warnings, fmt.Sprintf("column %q has no values: sampled as all null", c.name))
		}
	}
	if opts.By == "" {
		cop, err := fitCopula(ctx, cols, opts)
		if err != nil {
			return nil, err
		}
		m.Copulas = []*Copula{cop}
	} else {
		decs := map[int]*int{}
		for i, c := range cols {
			if c.kind == kindFloat {
				m.Columns[i].Sorted = c.sorted()
				decs[i] = decimals(m.Columns[i].Sorted)
			}
		}
		strata, values := cols[by].strata()
		if len(strata) > MaxStrata {
			return nil, fmt.Errorf("column %q has %d distinct values: a copula each is at most %d", opts.By, len(strata), MaxStrata)
		}
		for i, rows := range strata {
			cop, err := fitCopula(ctx, subset(cols, rows), opts)
			if err != nil {
				return nil, err
			}
			cop.Value = values[i]
			for j, d := range decs { // the whole column's, not the copula's rows'
				cop.Columns[j].Decimals = d
			}
			m.Copulas = append(m.Copulas, cop)
		}
	}
	if err := m.prepare(); err != nil {
		return nil, err
	}
	return m, nil
}

// fitCopula fits a copula to the rows of cols.
func fitCopula(ctx context.Context, cols []*collector, opts FitOptions) (*Copula, error) {
	c := &Copula{Rows: int64(len(cols[0].valid))}
	z := make([][]float32, len(cols))
	var target [][]float32 // what MatchPearson and MatchSpearman match
	if opts.Match != MatchScores {
		target = make([][]float32, len(cols))
	}
	// The columns' marginals and ranks, a column per CPU at a time:
	// first all but the string columns, then those, each with its
	// categories ordered by the numeric column they tell most about, so
	// that their correlation with it is as strong as one order allows.
	c.Columns = make([]Column, len(cols))
	errs := make([]error, len(cols))
	fit := func(i int) {
		col := cols[i]
		if col.kind == kindString && col.typ.ID() == arrow.STRING {
			var best float64
			for j, other := range cols {
				if other.kind != kindString && z[j] != nil {
					o := *col
					if eta := o.orderBy(z[j]); eta > best {
						best, col.catOrder = eta, o.catOrder
					}
				}
			}
		}
		if opts.Match == MatchPearson {
			target[i] = col.standardized()
		}
		mc, rs := col.marginal()
		if opts.Match == MatchSpearman && mc.Marginal != AllNull {
			target[i] = standardize32(rs)
		}
		z[i] = normalScores(rs)
		errs[i] = mc.prepare(c.Rows, nil)
		c.Columns[i] = mc
	}
	var first, second []int
	for i, col := range cols {
		if col.kind == kindString && col.typ.ID() == arrow.STRING {
			second = append(second, i)
		} else {
			first = append(first, i)
		}
	}
	parallel(first, fit)
	parallel(second, fit)
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("column %q: %w", c.Columns[i].Name, err)
		}
	}
	s := scoreCorrelation(z)
	z = nil
	lat, w := latentCorrelation(s, c.Columns)
	c.Correlation, c.Repair = positiveDefinite(lat, w)
	c.weights = w
	if err := c.prepareChol(); err != nil {
		return nil, err
	}
	if target != nil {
		want := pairwise(target)
		target = nil
		if err := c.calibrate(ctx, want, opts.Match, opts.Seed); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// mix is SplitMix64's finaliser: seeds that differ a little give
// unrelated streams.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// reservoir keeps a uniform sample of k rows (Algorithm R).
type reservoir struct {
	k, seen int64
	rng     *rand.Rand
}

// slots says where each of the next n rows goes: its slot in the sample
// (the next free one while filling), or -1 for a row not kept.
func (r *reservoir) slots(n int, buf []int32) []int32 {
	buf = slices.Grow(buf[:0], n)[:n]
	for i := range buf {
		switch {
		case r.seen < r.k:
			buf[i] = int32(r.seen)
		default:
			if j := r.rng.Int64N(r.seen + 1); j < r.k {
				buf[i] = int32(j)
			} else {
				buf[i] = -1
			}
		}
		r.seen++
	}
	return buf
}

// parallel calls f with each of is, on a goroutine per CPU.
func parallel(is []int, f func(int)) {
	next := make(chan int, len(is))
	for _, i := range is {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(is)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	wg.Wait()
}
