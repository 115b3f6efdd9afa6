package synth

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/hpcml/hpcml/internal/table"
)

// DefaultBatchRows is the rows of a sampled batch.
const DefaultBatchRows = 64 * 1024

// SampleOptions say how to sample.
type SampleOptions struct {
	// BatchRows is the rows of each batch written; 0 is DefaultBatchRows.
	// Each batch draws from its own random stream (the seed and the
	// batch's number), so the rows depend on the seed and BatchRows only.
	BatchRows int
	// Workers is how many batches are made at once (0: one per CPU);
	// the output does not depend on it.
	Workers int
	// Rows, if set, is added the rows written as they are.
	Rows *atomic.Int64
}

// Sample writes n rows drawn from the model to w, in batches of
// DefaultBatchRows (w is neither closed nor aborted). The same seed
// gives the same rows. Memory does not depend on n.
func (m *Model) Sample(ctx context.Context, n int64, seed uint64, w table.Writer) error {
	return m.SampleWith(ctx, n, seed, w, SampleOptions{})
}

// SampleWith is Sample with options.
func (m *Model) SampleWith(ctx context.Context, n int64, seed uint64, w table.Writer, opts SampleOptions) error {
	if n <= 0 {
		return fmt.Errorf("rows to sample: %d, want at least 1", n)
	}
	batch := int64(opts.BatchRows)
	if batch <= 0 {
		batch = DefaultBatchRows
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	batches := (n + batch - 1) / batch
	workers = int(min(int64(workers), batches))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		rec arrow.RecordBatch
		err error
	}
	type job struct {
		idx  int64
		rows int
		out  chan result
	}
	jobs := make(chan job)
	pending := make(chan chan result, 2*workers)
	go func() { // hands out the batches in order
		defer close(pending)
		defer close(jobs)
		for i := range batches {
			j := job{idx: i, rows: int(min(batch, n-i*batch)), out: make(chan result, 1)}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
			select {
			case pending <- j.out:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := m.newGen()
			for j := range jobs {
				if err := ctx.Err(); err != nil {
					j.out <- result{err: err}
					continue
				}
				rec := g.batch(seed, j.idx, j.rows)
				j.out <- result{rec: rec}
			}
		}()
	}
	var err error
	for ch := range pending { // written in order
		r := <-ch
		if r.rec != nil {
			if err == nil {
				err = w.Write(r.rec)
				if err == nil && opts.Rows != nil {
					opts.Rows.Add(r.rec.NumRows())
				}
			}
			r.rec.Release()
		} else if err == nil {
			err = r.err
		}
		if err != nil {
			cancel() // the rest are drained
		}
	}
	wg.Wait()
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// colBuf holds one column of a batch being made.
type colBuf struct {
	f     []float64
	i     []int64
	s     []string
	b     []bool
	valid []bool
	nulls bool // some cell is null
}

// gen makes batches; one per worker (its buffers are reused).
type gen struct {
	m    *Model
	bufs []colBuf
	z, x []float64
	pos  [][]int32
	ts   []arrow.Timestamp
	mem  memory.Allocator
}

func newGen(m *Model, k int) *gen {
	return &gen{m: m, bufs: make([]colBuf, k), mem: memory.DefaultAllocator}
}

func (m *Model) newGen() *gen { return newGen(m, len(m.Columns)) }

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// reset makes the buffers rows long, every cell valid.
func (g *gen) reset(rows int) {
	for i := range g.bufs {
		b := &g.bufs[i]
		b.valid = grow(b.valid, rows)
		for r := range b.valid {
			b.valid[r] = true
		}
		b.nulls = false
	}
}

// stream is the random stream of a batch (and of one of its copulas;
// part -1 picks the rows' copulas).
func stream(seed uint64, batch int64, part int) *rand.Rand {
	s := mix(seed ^ mix(uint64(batch)+1))
	return rand.New(rand.NewPCG(mix(seed), mix(s+uint64(part+1))))
}

// batch is batch number idx of rows rows.
func (g *gen) batch(seed uint64, idx int64, rows int) arrow.RecordBatch {
	m := g.m
	g.reset(rows)
	if len(m.Copulas) == 1 {
		m.Copulas[0].fill(g, stream(seed, idx, 0), nil, rows)
	} else {
		// Each row's copula, at the copulas' shares of the rows.
		rng := stream(seed, idx, -1)
		g.pos = grow(g.pos, len(m.Copulas))
		for i := range g.pos {
			g.pos[i] = g.pos[i][:0]
		}
		for r := range rows {
			i, _ := slices.BinarySearch(m.cum, rng.Int64N(m.FitRows)+1)
			g.pos[i] = append(g.pos[i], int32(r))
		}
		for i, c := range m.Copulas {
			if len(g.pos[i]) > 0 {
				c.fill(g, stream(seed, idx, i), g.pos[i], len(g.pos[i]))
			}
		}
	}
	cols := make([]arrow.Array, len(g.bufs))
	for j, f := range m.schema.Fields() {
		cols[j] = g.array(j, f.Type, rows)
	}
	return array.NewRecordBatch(m.schema, cols, int64(rows))
}

// array is column j of the batch as an Arrow array.
func (g *gen) array(j int, typ arrow.DataType, rows int) arrow.Array {
	buf := &g.bufs[j]
	valid := buf.valid[:rows]
	if !buf.nulls {
		valid = nil
	}
	switch typ.ID() {
	case arrow.FLOAT64:
		b := array.NewFloat64Builder(g.mem)
		defer b.Release()
		b.AppendValues(buf.f[:rows], valid)
		return b.NewArray()
	case arrow.INT64:
		b := array.NewInt64Builder(g.mem)
		defer b.Release()
		b.AppendValues(buf.i[:rows], valid)
		return b.NewArray()
	case arrow.TIMESTAMP:
		g.ts = grow(g.ts, rows)
		for r, v := range buf.i[:rows] {
			g.ts[r] = arrow.Timestamp(v)
		}
		b := array.NewTimestampBuilder(g.mem, typ.(*arrow.TimestampType))
		defer b.Release()
		b.AppendValues(g.ts, valid)
		return b.NewArray()
	case arrow.BOOL:
		b := array.NewBooleanBuilder(g.mem)
		defer b.Release()
		b.AppendValues(buf.b[:rows], valid)
		return b.NewArray()
	}
	b := array.NewStringBuilder(g.mem)
	defer b.Release()
	b.AppendValues(buf.s[:rows], valid)
	return b.NewArray()
}

// fill draws rows rows from the copula into g's buffers: row r at
// pos[r] (at r when pos is nil). The stream is used in a fixed order:
// rows×k independent normals, then per column a uniform per row for its
// nulls and NaN (columns that have some).
func (c *Copula) fill(g *gen, rng *rand.Rand, pos []int32, rows int) {
	k := len(c.Columns)
	g.z = grow(g.z, rows*k)
	for i := range g.z {
		g.z[i] = rng.NormFloat64()
	}
	g.x = grow(g.x, rows)
	size := rows
	if pos != nil {
		size = len(g.bufs[0].valid)
	}
	at := func(r int) int {
		if pos == nil {
			return r
		}
		return int(pos[r])
	}
	for j := range k {
		col := &c.Columns[j]
		buf := &g.bufs[j]
		// The latent normal x_j = Σ_{l≤j} L_jl z_l.
		lj := c.chol[j*k : j*k+j+1]
		for r := range rows {
			zr := g.z[r*k : r*k+j+1]
			var s float64
			for l, v := range lj {
				s += v * zr[l]
			}
			g.x[r] = s
		}
		switch col.typ.ID() {
		case arrow.FLOAT64:
			buf.f = grow(buf.f, size)
			for r, x := range g.x[:rows] {
				v := col.continuous(x)
				if col.scale > 0 {
					v = math.Round(v*col.scale) / col.scale
				}
				buf.f[at(r)] = v
			}
		case arrow.INT64, arrow.TIMESTAMP:
			buf.i = grow(buf.i, size)
			for r, x := range g.x[:rows] {
				v := int64(0)
				if col.n > 0 {
					v = col.Values[col.discrete(x)]
				}
				buf.i[at(r)] = v
			}
		case arrow.BOOL:
			buf.b = grow(buf.b, size)
			for r, x := range g.x[:rows] {
				buf.b[at(r)] = col.n > 0 && col.Categories[col.discrete(x)] == "true"
			}
		default:
			buf.s = grow(buf.s, size)
			for r, x := range g.x[:rows] {
				v := ""
				if col.n > 0 {
					v = col.Categories[col.discrete(x)]
				}
				buf.s[at(r)] = v
			}
		}
		if col.nullP > 0 || col.nanP > 0 {
			for r := range rows {
				u := rng.Float64()
				d := at(r)
				if u < col.nullP {
					// Null, over a zero value: the same bytes whatever
					// the buffer held before.
					buf.valid[d] = false
					buf.nulls = true
					switch col.typ.ID() {
					case arrow.FLOAT64:
						buf.f[d] = 0
					case arrow.INT64, arrow.TIMESTAMP:
						buf.i[d] = 0
					case arrow.BOOL:
						buf.b[d] = false
					default:
						buf.s[d] = ""
					}
				} else if u < col.nullP+col.nanP {
					buf.f[d] = math.NaN()
				}
			}
		}
	}
}

// continuous is a continuous column's value at latent normal x: the
// inverse of its empirical CDF at u = Φ(x). The i-th of the m sorted
// values is placed at u = (i+½)/m (Hazen's plotting positions) and
// draws between neighbours a < b are interpolated — linearly, or, in a
// copula of a model fitted By a column, along the whole column's values
// from a to b (linearly between those); below ½/m the draw is the
// minimum, above 1−½/m the maximum. Every value thus carries 1/m of the
// mass, the mean is the values' mean, and min and max are kept. NaN
// when the column has no values (nulls and NaN are drawn after).
func (col *Column) continuous(x float64) float64 {
	s := col.Sorted
	if len(s) == 0 {
		return math.NaN()
	}
	p := cdf(x)*float64(len(s)) - 0.5
	if p <= 0 {
		return s[0]
	}
	i := int(p)
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	t := p - float64(i)
	if col.global != nil && col.hi[i]+1 < col.lo[i+1] {
		// Along the whole column: from a's last place to b's first.
		from, to := float64(col.hi[i]), float64(col.lo[i+1])
		return interpolate(col.global, from+t*(to-from))
	}
	return interpolate(s, float64(i)+t)
}

// interpolate is the value at fractional index p of sorted values s.
func interpolate(s []float64, p float64) float64 {
	i := int(p)
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	a, b, t := s[i], s[i+1], p-float64(i)
	switch {
	case a == b || t == 0:
		return a
	case math.IsInf(a, 0) || math.IsInf(b, 0):
		if t < 0.5 {
			return a
		}
		return b
	}
	return min(b, a+t*(b-a))
}

// discrete is the index of a discrete or categorical column's value at
// latent normal x: the one whose cumulative interval holds Φ(x), i.e.
// the floor(Φ(x)·n)-th of its sorted values — found among the
// intervals' bounds mapped to the normal scale, which spares Φ.
func (col *Column) discrete(x float64) int {
	i, found := slices.BinarySearch(col.bounds, x)
	if found {
		i++
	}
	return i
}
