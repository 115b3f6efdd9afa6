package transform

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/hpcml/hpcml/internal/table"
)

// drop_duplicates is a shuffle. Each unit of the segment before it hashes
// the compared columns of every row and writes the row, with its origin
// (input partition, row in the partition), to one of B bucket files:
// equal rows land in the same bucket. Then each bucket is a unit of its
// own: it reads its files, keeps of every set of equal rows the one
// first in the input (the smallest origin — the same row however the
// input was partitioned), and goes on with the following steps in input
// order. A bucket is held in memory while it is deduplicated.

const shuffleSeed = 0x73687566666c65

type shuffle struct {
	p       *Plan
	keys    []int
	schema  *arrow.Schema // the rows' columns and the origin
	files   []*os.File
	bufs    []*bufio.Writer
	writers []*ipc.FileWriter
	paths   []string
}

// Shuffle files are Arrow IPC files, LZ4-compressed: written and read
// without encoding, faster than Parquet for data read once.
const shuffleExt = ".arrow"

func (p *Plan) newShuffle(ctx context.Context, u Unit, sg segment) (*shuffle, error) {
	next := p.c.steps[sg.end] // the drop_duplicates
	cols := append(append([]col(nil), next.in...), col{originColumn, kInt})
	sh := &shuffle{p: p, keys: next.keys, schema: schemaOf(cols)}
	n := p.Buckets[next.index]
	if u.ShuffleDir == "" {
		return nil, fmt.Errorf("shuffle pass %d: no shuffle directory", u.Pass.Index+1)
	}
	for b := range n {
		dir := filepath.Join(u.ShuffleDir, BucketName(b))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			sh.abort()
			return nil, err
		}
		path := filepath.Join(dir, fmt.Sprintf("u-%05d%s", u.Index, shuffleExt))
		f, err := os.Create(path + ".partial")
		if err != nil {
			sh.abort()
			return nil, err
		}
		bw := bufio.NewWriterSize(f, 32<<10)
		w, err := ipc.NewFileWriter(bw, ipc.WithSchema(sh.schema), ipc.WithLZ4())
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			sh.abort()
			return nil, err
		}
		sh.files = append(sh.files, f)
		sh.bufs = append(sh.bufs, bw)
		sh.writers = append(sh.writers, w)
		sh.paths = append(sh.paths, path)
	}
	return sh, nil
}

func (sh *shuffle) add(b *batch) error {
	cols := make([]*column, len(sh.keys))
	for j, k := range sh.keys {
		c := view(b.rec.Column(k))
		cols[j] = &c
	}
	h := hashRows(cols, b.n(), shuffleSeed)
	nb := uint64(len(sh.writers))
	idx := make([][]int32, nb)
	for i, x := range h {
		bk := (x >> 1) % nb
		idx[bk] = append(idx[bk], int32(i))
	}
	ob := newBuilder(kInt, len(b.rows))
	ob.ints = append(ob.ints, b.rows...)
	ob.n = len(b.rows)
	all := append(append([]arrow.Array(nil), b.rec.Columns()...), ob.array())
	rec := array.NewRecordBatch(sh.schema, all, int64(b.n()))
	defer rec.Release()
	for bk, rows := range idx {
		if len(rows) == 0 {
			continue
		}
		part := rec
		if len(rows) < b.n() {
			part = takeRecord(rec, rows)
		}
		if err := sh.writers[bk].Write(part); err != nil {
			return err
		}
	}
	return nil
}

func (sh *shuffle) close() error {
	var err error
	for i, w := range sh.writers {
		if e := w.Close(); e != nil && err == nil {
			err = fmt.Errorf("%s: %w", sh.paths[i], e)
		}
		if e := sh.bufs[i].Flush(); e != nil && err == nil {
			err = e
		}
		if e := sh.files[i].Close(); e != nil && err == nil {
			err = e
		}
		if err == nil {
			err = os.Rename(sh.files[i].Name(), sh.paths[i])
		}
	}
	if err != nil {
		for i, f := range sh.files {
			os.Remove(f.Name())
			os.Remove(sh.paths[i])
		}
	}
	sh.writers, sh.files = nil, nil
	return err
}

func (sh *shuffle) abort() {
	for i, w := range sh.writers {
		w.Close()
		sh.files[i].Close()
		os.Remove(sh.files[i].Name())
	}
	sh.writers, sh.files = nil, nil
}

// bucketSource yields a bucket's rows, deduplicated, in input order.
type bucketSource struct {
	in, kept int64
	out      []rowRef
	recs     []arrow.RecordBatch
	cols     [][]column // per record, per column (the origin last)
	schema   *arrow.Schema
	pos      int
}

type rowRef struct {
	rec    int32
	row    int32
	origin int64
}

func (p *Plan) openBucket(ctx context.Context, u Unit, sg segment, res *UnitResult) (source, error) {
	if u.BucketDir == "" {
		return nil, fmt.Errorf("unit %d of pass %d: no bucket directory", u.Index, u.Pass.Index+1)
	}
	cols := sg.dedup.in
	s := &bucketSource{schema: schemaOf(cols)}
	entries, err := os.ReadDir(u.BucketDir)
	if err != nil {
		return nil, fmt.Errorf("bucket %d: %w", u.Index, err)
	}
	var files []string
	for _, e := range entries {
		if filepath.Ext(e.Name()) == shuffleExt {
			files = append(files, filepath.Join(u.BucketDir, e.Name()))
		}
	}
	sort.Strings(files)
	for _, name := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := s.read(name, cols); err != nil {
			return nil, fmt.Errorf("bucket %d: %s: %w", u.Index, name, err)
		}
	}
	s.dedup(sg.dedup.keys)
	res.Input = s.in
	if u.Rows != nil {
		u.Rows.Add(s.in)
	}
	return s, nil
}

// read adds a shuffle file's batches.
func (s *bucketSource) read(name string, cols []col) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := ipc.NewFileReader(f)
	if err != nil {
		return err
	}
	defer r.Close()
	want := schemaOf(append(append([]col(nil), cols...), col{originColumn, kInt}))
	if !r.Schema().Equal(want) {
		return fmt.Errorf("not a shuffle file of this plan: columns %s", r.Schema())
	}
	for i := range r.NumRecords() {
		rec, err := r.RecordBatchAt(i)
		if err != nil {
			return err
		}
		s.recs = append(s.recs, rec)
		vs := make([]column, rec.NumCols())
		for j := range vs {
			vs[j] = view(rec.Column(j))
		}
		s.cols = append(s.cols, vs)
	}
	return nil
}

// dedup keeps, of equal rows, the one of the smallest origin, and orders
// the kept rows by origin. Rows are found by their hash in an
// open-addressing table, and compared value by value.
func (s *bucketSource) dedup(keys []int) {
	var total int
	for _, rec := range s.recs {
		total += int(rec.NumRows())
	}
	size := 16
	for size < 2*total {
		size <<= 1
	}
	mask := uint64(size - 1)
	slots := make([]int32, size) // 1 + an index into kept; 0: empty
	hashes := make([]uint64, 0, total)
	kept := make([]rowRef, 0, total)
	equal := func(a, b rowRef) bool {
		for _, k := range keys {
			if !equalAt(&s.cols[a.rec][k], int(a.row), &s.cols[b.rec][k], int(b.row)) {
				return false
			}
		}
		return true
	}
	for ri, rec := range s.recs {
		n := int(rec.NumRows())
		s.in += int64(n)
		cols := make([]*column, len(keys))
		for j, k := range keys {
			cols[j] = &s.cols[ri][k]
		}
		h := hashRows(cols, n, shuffleSeed)
		orig := s.cols[ri][len(s.cols[ri])-1].ints
		for i := 0; i < n; i++ {
			ref := rowRef{rec: int32(ri), row: int32(i), origin: orig[i]}
			for at := mix64(h[i]) & mask; ; at = (at + 1) & mask {
				e := slots[at]
				if e == 0 {
					kept = append(kept, ref)
					hashes = append(hashes, h[i])
					slots[at] = int32(len(kept))
					break
				}
				if hashes[e-1] == h[i] && equal(kept[e-1], ref) {
					if ref.origin < kept[e-1].origin {
						kept[e-1] = ref
					}
					break
				}
			}
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].origin < kept[j].origin })
	s.out = kept
	s.kept = int64(len(kept))
}

func (s *bucketSource) next(ctx context.Context) (*batch, error) {
	if s.pos >= len(s.out) {
		return nil, io.EOF
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	end := min(s.pos+table.DefaultBatchRows, len(s.out))
	refs := s.out[s.pos:end]
	s.pos = end
	nc := s.schema.NumFields()
	arrs := make([]arrow.Array, nc)
	for j := range nc {
		b := newBuilder(s.cols[0][j].k, len(refs))
		for _, r := range refs {
			b.appendFrom(&s.cols[r.rec][j], int(r.row))
		}
		arrs[j] = b.array()
	}
	rows := make([]int64, len(refs))
	for i, r := range refs {
		rows[i] = r.origin
	}
	return &batch{rec: array.NewRecordBatch(s.schema, arrs, int64(len(refs))), rows: rows}, nil
}

func (s *bucketSource) close() {
	for _, r := range s.recs {
		r.Release()
	}
	s.recs, s.cols = nil, nil
}

func (s *bucketSource) dedupCount() StepCount { return StepCount{In: s.in, Out: s.kept} }
