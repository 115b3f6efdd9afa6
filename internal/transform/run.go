package transform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/hpcml/hpcml/internal/table"
)

// Unit is one unit of a pass: an input partition (the first segment) or
// a shuffle bucket, and where its inputs and outputs are.
type Unit struct {
	Pass  Pass
	Index int
	// Partition: the first segment's input.
	Partition *table.Partition
	// BucketDir: a later segment's input, the bucket's files (one per
	// unit of the shuffle before).
	BucketDir string
	// ShuffleDir: a shuffle pass writes bucket b's rows to
	// ShuffleDir/<b>/u-<unit>.parquet.
	ShuffleDir string
	// Stats are the statistics of the steps measured by earlier passes.
	Stats map[int]*StepStats
	// Rows, if set, counts the rows read (progress).
	Rows *atomic.Int64
}

// StepCount is the rows into and out of a step.
type StepCount struct {
	In  int64 `json:"in"`
	Out int64 `json:"out"`
}

// UnitResult is what a unit did.
type UnitResult struct {
	Pass  int   `json:"pass"`
	Unit  int   `json:"unit"`
	Input int64 `json:"input"` // rows read
	// Steps counts rows per step (by index; only the pass's steps).
	Steps map[int]StepCount `json:"steps,omitempty"`
	// Splits counts the rows written to each split.
	Splits []int64 `json:"splits,omitempty"`
	// State: a statistics pass's partial state.
	State []byte `json:"state,omitempty"`
}

// BucketName is the directory of bucket b in a shuffle.
func BucketName(b int) string { return fmt.Sprintf("%05d", b) }

// partName names unit u's file in a directory.
func partName(u int) string { return fmt.Sprintf("part-%05d", u) }

// RunUnit runs one unit of a pass.
func (p *Plan) RunUnit(ctx context.Context, u Unit) (*UnitResult, error) {
	res, err := p.runUnit(ctx, u)
	if err != nil {
		var de *DataError
		if errors.As(err, &de) && de.Location == "" {
			part := u.Partition
			pi, row := splitOrigin(de.Origin)
			if part == nil || part.Index != pi {
				part = nil
				if pi < len(p.Partitions) {
					part = &p.Partitions[pi]
				}
			}
			if part != nil {
				de.Location = locate(ctx, *part, row)
			}
		}
		return nil, err
	}
	return res, nil
}

func (p *Plan) runUnit(ctx context.Context, u Unit) (*UnitResult, error) {
	sg := p.segs[u.Pass.Segment]
	res := &UnitResult{Pass: u.Pass.Index, Unit: u.Index, Steps: map[int]StepCount{}}
	src, err := p.source(ctx, u, sg, res)
	if err != nil {
		return nil, err
	}
	defer src.close()
	first := sg.first
	if sg.dedup != nil {
		first++ // done by the source
	}
	last := sg.end
	var sink func(b *batch) error
	var finish func() error
	var abort func()
	count := u.Pass.Kind != PassStats
	switch u.Pass.Kind {
	case PassStats:
		last = u.Pass.Step
		st := newStatsState(p.c.steps[u.Pass.Step])
		sink = st.add
		finish = func() error {
			data, err := st.encode()
			res.State = data
			return err
		}
		abort = func() {}
	case PassShuffle:
		sh, err := p.newShuffle(ctx, u, sg)
		if err != nil {
			return nil, err
		}
		sink, finish, abort = sh.add, sh.close, sh.abort
	case PassWrite:
		w := p.newOutput(ctx, u)
		res.Splits = w.rows
		sink, finish, abort = w.add, w.close, w.abort
	default:
		return nil, fmt.Errorf("unknown pass kind %q", u.Pass.Kind)
	}
	if count && sg.dedup != nil {
		res.Steps[sg.first] = StepCount{}
	}
	for {
		b, err := src.next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			abort()
			return nil, err
		}
		for _, s := range p.c.steps[first:last] {
			if s.apply == nil { // split: the output does it
				continue
			}
			in := b.n()
			b, err = s.apply(b, u.Stats[s.index])
			if err != nil {
				abort()
				var de *DataError
				if errors.As(err, &de) && de.Step.Path == "" {
					de.Step = s.at
				}
				return nil, err
			}
			if count {
				c := res.Steps[s.index]
				c.In += int64(in)
				c.Out += int64(b.n())
				res.Steps[s.index] = c
			}
			if b.n() == 0 {
				break
			}
		}
		if b.n() == 0 {
			continue
		}
		if err := sink(b); err != nil {
			abort()
			return nil, err
		}
	}
	if count {
		for _, s := range p.c.steps[first:last] {
			if _, ok := res.Steps[s.index]; !ok {
				res.Steps[s.index] = StepCount{}
			}
		}
		if sg.dedup != nil {
			res.Steps[sg.first] = src.dedupCount()
		}
		if sp := p.c.split; sp != nil && u.Pass.Kind == PassWrite {
			var n int64
			for _, x := range res.Splits {
				n += x
			}
			res.Steps[sp.index] = StepCount{In: n, Out: n}
		}
	}
	if err := finish(); err != nil {
		return nil, err
	}
	return res, nil
}

// source yields a unit's rows.
type source interface {
	next(ctx context.Context) (*batch, error)
	close()
	dedupCount() StepCount
}

func (p *Plan) source(ctx context.Context, u Unit, sg segment, res *UnitResult) (source, error) {
	if sg.dedup == nil {
		if u.Partition == nil {
			return nil, fmt.Errorf("unit %d of pass %d: no partition", u.Index, u.Pass.Index+1)
		}
		r, err := table.OpenPartition(ctx, *u.Partition, table.Options{BatchRows: batchRows(u.Partition)})
		if err != nil {
			return nil, err
		}
		return &partSource{r: r, part: u.Partition.Index, res: res, rows: u.Rows, schema: schemaOf(p.c.steps0In())}, nil
	}
	return p.openBucket(ctx, u, sg, res)
}

// batchRows is the rows of a batch for a partition: a text record has
// at least a byte per column, so a small CSV or JSON Lines partition
// does not need buffers for the default 64Ki rows (which the reader
// allocates for every batch).
func batchRows(p *table.Partition) int {
	if p.Spec.Format == table.FormatParquet || p.Bytes <= 0 {
		return 0
	}
	for _, pc := range p.Pieces {
		if strings.HasSuffix(pc.URL, ".gz") || strings.HasSuffix(pc.URL, ".zst") || strings.Contains(pc.URL, ".gz?") || strings.Contains(pc.URL, ".zst?") {
			return 0 // compressed: more rows than bytes read
		}
	}
	n := p.Bytes/int64(max(len(p.Spec.Columns), 1)) + 1
	return int(min(max(n, 1024), table.DefaultBatchRows))
}

// steps0In is the input's columns.
func (c *compiled) steps0In() []col {
	if len(c.steps) == 0 {
		return c.out
	}
	return c.steps[0].in
}

type partSource struct {
	r      table.Reader
	part   int
	row    int64
	res    *UnitResult
	rows   *atomic.Int64
	schema *arrow.Schema
}

func (s *partSource) next(ctx context.Context) (*batch, error) {
	rec, err := s.r.Next(ctx)
	if err != nil {
		return nil, err
	}
	n := rec.NumRows()
	rows := make([]int64, n)
	for i := range rows {
		rows[i] = origin(s.part, s.row+int64(i))
	}
	s.row += n
	s.res.Input += n
	if s.rows != nil {
		s.rows.Add(n)
	}
	return &batch{rec: array.NewRecordBatch(s.schema, rec.Columns(), n), rows: rows}, nil
}

func (s *partSource) close()                { s.r.Close() }
func (s *partSource) dedupCount() StepCount { return StepCount{} }

// outputWriter writes a unit's rows to its splits' directories.
type outputWriter struct {
	p       *Plan
	ctx     context.Context
	unit    int
	schema  *arrow.Schema
	writers []table.Writer
	rows    []int64
}

func (p *Plan) newOutput(ctx context.Context, u Unit) *outputWriter {
	splits := p.Splits()
	return &outputWriter{p: p, ctx: ctx, unit: u.Index, schema: schemaOf(p.c.out),
		writers: make([]table.Writer, len(splits)), rows: make([]int64, len(splits))}
}

func (w *outputWriter) writer(i int) (table.Writer, error) {
	if w.writers[i] != nil {
		return w.writers[i], nil
	}
	dir := w.p.Stage
	if name := w.p.Splits()[i]; name != "" {
		dir = join(dir, name)
	}
	opts := table.WriteOptions{Format: table.Format(w.p.outFormat()), BaseName: partName(w.unit)}
	if opts.Format == table.FormatParquet {
		opts.Compression = w.p.compression()
	}
	for _, r := range w.p.spec.Output.PartitionBy {
		opts.PartitionBy = append(opts.PartitionBy, r.Name)
	}
	wr, err := table.Create(w.ctx, dirURL(dir), w.schema, opts)
	if err != nil {
		return nil, err
	}
	w.writers[i] = wr
	return wr, nil
}

// dirURL marks a directory for table.Create.
func dirURL(d string) string {
	if filepath.IsAbs(d) {
		return d + string(filepath.Separator)
	}
	return join(d, "/")
}

func (w *outputWriter) add(b *batch) error {
	rec := array.NewRecordBatch(w.schema, b.rec.Columns(), b.rec.NumRows())
	defer rec.Release()
	sp := w.p.c.split
	if sp == nil {
		wr, err := w.writer(0)
		if err != nil {
			return err
		}
		w.rows[0] += rec.NumRows()
		return wr.Write(rec)
	}
	assign := sp.assign(b)
	idx := make([][]int32, len(sp.names))
	for i, a := range assign {
		idx[a] = append(idx[a], int32(i))
	}
	for s, rows := range idx {
		if len(rows) == 0 {
			continue
		}
		wr, err := w.writer(s)
		if err != nil {
			return err
		}
		part := rec
		if len(rows) < int(rec.NumRows()) {
			part = takeRecord(rec, rows)
		}
		err = wr.Write(part)
		w.rows[s] += int64(len(rows))
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *outputWriter) close() error {
	if w.unit == 0 && len(w.p.spec.Output.PartitionBy) == 0 {
		// Every split's directory gets a file, even a split of no rows:
		// a reader of the directory then finds its columns.
		for i := range w.writers {
			if _, err := w.writer(i); err != nil {
				w.abort()
				return err
			}
		}
	}
	var err error
	for i, wr := range w.writers {
		if wr == nil {
			continue
		}
		if err == nil {
			err = wr.Close()
		} else {
			wr.Abort()
		}
		w.writers[i] = nil
	}
	return err
}

func (w *outputWriter) abort() {
	for i, wr := range w.writers {
		if wr != nil {
			wr.Abort()
			w.writers[i] = nil
		}
	}
}
