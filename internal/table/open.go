package table

import (
	"context"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
)

// Open reads a table: a local path, file:// URL, or s3://bucket/key URL
// (with endpoint, region and use_path_style in its query, as hpcml data
// takes them), naming one file or a directory or prefix of many (read in
// key order; hidden files — names starting with . or _ — and files
// without a table extension are left out), or dataset://NAME[@VERSION]
// through opts.ResolveDataset.
//
// The format is the files' extension's (.csv, .tsv, .parquet, .jsonl,
// .ndjson, .json; CSV and JSON Lines also compressed, .gz or .zst) or
// opts.Format. The schema comes from the first file (its Parquet schema;
// for CSV and JSON Lines, inferred from its first opts.SampleRows rows)
// unless opts.Spec fixes it; every other file must have the same columns.
//
// ctx governs the reader's I/O for its whole life.
func Open(ctx context.Context, url string, opts Options) (Reader, error) {
	src, err := listSource(ctx, url, &opts)
	if err != nil {
		return nil, err
	}
	spec, err := specFor(ctx, src.files[0], &opts)
	if err != nil {
		src.Close()
		return nil, err
	}
	pieces := make([]piece, len(src.files))
	for i, f := range src.files {
		f.format = spec.Format
		pieces[i] = piece{f: f}
	}
	r, err := newMultiReader(ctx, spec, pieces, opts, src.Close)
	if err != nil {
		src.Close()
		return nil, err
	}
	return r, nil
}

// Infer is the Spec Open would read a table with: its format, columns
// and parse settings. A caller may show it, adjust it and pass it back
// in Options.Spec.
func Infer(ctx context.Context, url string, opts Options) (*Spec, error) {
	src, err := listSource(ctx, url, &opts)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	return specFor(ctx, src.files[0], &opts)
}

// specFor is opts.Spec, or the spec inferred from f.
func specFor(ctx context.Context, f *file, opts *Options) (*Spec, error) {
	if opts.Spec != nil {
		s := *opts.Spec
		if err := s.check(); err != nil {
			return nil, err
		}
		return &s, nil
	}
	if opts.Delimiter != 0 && f.format != FormatCSV {
		return nil, fmt.Errorf("%s: a delimiter is set but the file is %s", f.name, f.format)
	}
	switch f.format {
	case FormatCSV:
		return inferCSV(ctx, f, opts)
	case FormatJSONL:
		return inferJSONL(ctx, f, opts)
	case FormatParquet:
		return inferParquet(ctx, f, opts)
	}
	return nil, fmt.Errorf("%s: unknown format %q (csv, parquet or jsonl)", f.name, f.format)
}

// piece is a file, or part of one, that a reader reads.
type piece struct {
	f          *file
	start, end int64 // CSV, JSON Lines: records starting in [start, end); end 0: to the end
	groups     []int // Parquet: these row groups; nil: all
}

// multiReader reads pieces one after the other.
type multiReader struct {
	ctx    context.Context
	spec   *Spec
	schema *arrow.Schema
	kinds  []kind
	opts   Options
	pieces []piece
	i      int
	cur    Reader
	err    error
	done   func()
}

func newMultiReader(ctx context.Context, spec *Spec, pieces []piece, opts Options, done func()) (*multiReader, error) {
	schema, kinds, err := schemaOf(spec.Columns)
	if err != nil {
		return nil, err
	}
	return &multiReader{ctx: ctx, spec: spec, schema: schema, kinds: kinds, opts: opts, pieces: pieces, done: done}, nil
}

func (m *multiReader) Schema() *arrow.Schema { return m.schema }

func (m *multiReader) open(p piece) (Reader, error) {
	if p.f.comp != compNone && (p.start > 0 || p.end > 0) {
		return nil, fmt.Errorf("%s: a compressed file is read whole, not by byte ranges", p.f.name)
	}
	switch m.spec.Format {
	case FormatParquet:
		return openParquetReader(m.ctx, p.f, m.spec, m.schema, m.kinds, &m.opts, p.groups)
	case FormatCSV, FormatJSONL:
		return openText(m.ctx, p.f, m.spec, m.schema, m.kinds, &m.opts, p.start, p.end)
	}
	return nil, fmt.Errorf("unknown format %q", m.spec.Format)
}

func (m *multiReader) Next(ctx context.Context) (arrow.RecordBatch, error) {
	if m.err != nil {
		return nil, m.err
	}
	for {
		if m.cur == nil {
			if m.i >= len(m.pieces) {
				return nil, io.EOF
			}
			r, err := m.open(m.pieces[m.i])
			if err != nil {
				m.err = err
				return nil, err
			}
			m.cur = r
		}
		rec, err := m.cur.Next(ctx)
		if err == io.EOF {
			cerr := m.cur.Close()
			m.cur = nil
			m.i++
			if cerr != nil {
				m.err = cerr
				return nil, cerr
			}
			continue
		}
		if err != nil {
			m.err = err
		}
		return rec, err
	}
}

func (m *multiReader) Close() error {
	var err error
	if m.cur != nil {
		err = m.cur.Close()
		m.cur = nil
	}
	if m.done != nil {
		m.done()
		m.done = nil
	}
	return err
}
