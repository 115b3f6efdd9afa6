package table

import (
	"context"
	"fmt"
	"io"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	pqfile "github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Parquet columns are read as the five types: integers (signed or not,
// of any width) as int64, floats and decimals as float64 (decimals
// approximately), booleans, strings (also large and view strings,
// dictionary-encoded strings), dates and timestamps of any unit or zone
// as timestamp[us, UTC], and a column of nulls only (Parquet's null type)
// as string. Other types — binary, lists, structs, maps, times of day,
// durations — are an error naming the column.

// parquetKind maps an Arrow type read from Parquet to one of the five.
func parquetKind(t arrow.DataType) (kind, bool) {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64:
		return kindInt64, true
	case arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64, arrow.DECIMAL32, arrow.DECIMAL64, arrow.DECIMAL128, arrow.DECIMAL256:
		return kindFloat64, true
	case arrow.BOOL:
		return kindBoolean, true
	case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW, arrow.NULL:
		return kindString, true
	case arrow.DATE32, arrow.DATE64, arrow.TIMESTAMP:
		return kindTimestamp, true
	case arrow.DICTIONARY:
		d := t.(*arrow.DictionaryType)
		switch d.ValueType.ID() {
		case arrow.STRING, arrow.LARGE_STRING:
			return kindString, true
		}
	}
	return 0, false
}

// parquetFile is an open Parquet file.
type parquetFile struct {
	pf   *pqfile.Reader
	fr   *pqarrow.FileReader
	cols []Column
}

func openParquet(ctx context.Context, f *file, opts *Options) (*parquetFile, error) {
	if f.size == 0 {
		return nil, &Error{File: f.name, Msg: "empty: 0 bytes"}
	}
	ra, err := f.readerAt(ctx)
	if err != nil {
		return nil, err
	}
	props := parquet.NewReaderProperties(opts.alloc())
	// Column chunks are read through a buffer, not whole: memory does not
	// grow with the row group size.
	props.BufferedStreamEnabled = true
	props.BufferSize = 1 << 20
	if f.path == "" {
		props.BufferSize = 8 << 20 // fewer GETs
	}
	pf, err := pqfile.NewParquetReader(ra, pqfile.WithReadProps(props))
	if err != nil {
		ra.Close()
		return nil, &Error{File: f.name, Msg: "not a readable Parquet file: " + err.Error()}
	}
	ncols := pf.MetaData().Schema.NumColumns()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: int64(opts.batchRows(ncols))}, opts.alloc())
	if err != nil {
		pf.Close()
		return nil, &Error{File: f.name, Msg: err.Error()}
	}
	sc, err := fr.Schema()
	if err != nil {
		pf.Close()
		return nil, &Error{File: f.name, Msg: "its schema cannot be read as Arrow: " + err.Error()}
	}
	p := &parquetFile{pf: pf, fr: fr}
	for _, fd := range sc.Fields() {
		k, ok := parquetKind(fd.Type)
		if !ok {
			pf.Close()
			return nil, &Error{File: f.name, Column: fd.Name, Msg: fmt.Sprintf("type %s cannot be read (Parquet columns are read as %s)", fd.Type, typeNames())}
		}
		p.cols = append(p.cols, Column{Name: fd.Name, Type: k.String()})
	}
	return p, nil
}

func (p *parquetFile) Close() error { return p.pf.Close() }

func inferParquet(ctx context.Context, f *file, opts *Options) (*Spec, error) {
	if len(opts.Types) > 0 {
		return nil, fmt.Errorf("%s: column types are set for CSV and JSON Lines only; Parquet has its own", f.name)
	}
	p, err := openParquet(ctx, f, opts)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	return &Spec{Format: FormatParquet, From: f.name, Columns: p.cols}, nil
}

// sameColumns checks that a file has the spec's columns.
func sameColumns(got []Column, spec *Spec, file string) error {
	if len(got) != len(spec.Columns) {
		return &Error{File: file, Msg: fmt.Sprintf("%d columns, but %s has %d: a table's files have the same columns", len(got), spec.From, len(spec.Columns))}
	}
	for i, c := range got {
		w := spec.Columns[i]
		if c.Name != w.Name || c.Type != w.Type {
			return &Error{File: file, Msg: fmt.Sprintf("column %d is %q (%s) here but %q (%s) in %s: a table's files have the same columns", i+1, c.Name, c.Type, w.Name, w.Type, spec.From)}
		}
	}
	return nil
}

// parquetReader reads row groups of a file.
type parquetReader struct {
	f      *file
	p      *parquetFile
	rr     pqarrow.RecordReader
	schema *arrow.Schema
	kinds  []kind
	// groups and their row counts, to name the row group of an error.
	groups []int
	rows   []int64
	read   int64
}

func openParquetReader(ctx context.Context, f *file, spec *Spec, schema *arrow.Schema, kinds []kind, opts *Options, groups []int) (*parquetReader, error) {
	p, err := openParquet(ctx, f, opts)
	if err != nil {
		return nil, err
	}
	if err := sameColumns(p.cols, spec, f.name); err != nil {
		p.Close()
		return nil, err
	}
	n := p.pf.NumRowGroups()
	if groups == nil {
		groups = make([]int, n)
		for i := range groups {
			groups[i] = i
		}
	}
	r := &parquetReader{f: f, p: p, schema: schema, kinds: kinds, groups: groups}
	for _, g := range groups {
		if g < 0 || g >= n {
			p.Close()
			return nil, &Error{File: f.name, Msg: fmt.Sprintf("no row group %d (it has %d)", g+1, n)}
		}
		r.rows = append(r.rows, p.pf.MetaData().RowGroup(g).NumRows())
	}
	if len(groups) > 0 {
		if r.rr, err = p.fr.GetRecordReader(ctx, nil, groups); err != nil {
			p.Close()
			return nil, &Error{File: f.name, Msg: err.Error()}
		}
	}
	return r, nil
}

func (r *parquetReader) Schema() *arrow.Schema { return r.schema }

// group is the 1-based row group of the row at offset row of the read.
func (r *parquetReader) group(row int64) int {
	for i, n := range r.rows {
		if row < n {
			return r.groups[i] + 1
		}
		row -= n
	}
	return 0
}

func (r *parquetReader) Next(ctx context.Context) (arrow.RecordBatch, error) {
	if r.rr == nil {
		return nil, io.EOF
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !r.rr.Next() {
		if err := r.rr.Err(); err != nil && err != io.EOF {
			return nil, &Error{File: r.f.name, RowGroup: r.group(r.read), Msg: err.Error()}
		}
		return nil, io.EOF
	}
	rec := r.rr.RecordBatch()
	out := make([]arrow.Array, rec.NumCols())
	defer func() {
		for _, a := range out {
			if a != nil {
				a.Release()
			}
		}
	}()
	for i, col := range rec.Columns() {
		a, row, err := toKind(col, r.kinds[i])
		if err != nil {
			return nil, &Error{File: r.f.name, RowGroup: r.group(r.read + int64(row)), Column: r.schema.Field(i).Name, Msg: err.Error()}
		}
		out[i] = a
	}
	r.read += rec.NumRows()
	return array.NewRecordBatch(r.schema, out, rec.NumRows()), nil
}

func (r *parquetReader) Close() error {
	if r.rr != nil {
		r.rr.Release()
		r.rr = nil
	}
	return r.p.Close()
}

// toKind converts an array to one of the five types (a new reference);
// on error, row is the offending row.
func toKind(a arrow.Array, k kind) (arrow.Array, int, error) {
	if arrow.TypeEqual(a.DataType(), k.Type()) {
		a.Retain()
		return a, 0, nil
	}
	n := a.Len()
	switch k {
	case kindInt64:
		var get func(int) int64
		switch a := a.(type) {
		case *array.Int8:
			get = func(i int) int64 { return int64(a.Value(i)) }
		case *array.Int16:
			get = func(i int) int64 { return int64(a.Value(i)) }
		case *array.Int32:
			get = func(i int) int64 { return int64(a.Value(i)) }
		case *array.Uint8:
			get = func(i int) int64 { return int64(a.Value(i)) }
		case *array.Uint16:
			get = func(i int) int64 { return int64(a.Value(i)) }
		case *array.Uint32:
			get = func(i int) int64 { return int64(a.Value(i)) }
		case *array.Uint64:
			for i := 0; i < n; i++ {
				if a.IsValid(i) && a.Value(i) > math.MaxInt64 {
					return nil, i, fmt.Errorf("%d does not fit an int64", a.Value(i))
				}
			}
			get = func(i int) int64 { return int64(a.Value(i)) }
		}
		if get != nil {
			return fixed(a, Int64, get, arrow.Int64Traits.CastToBytes), 0, nil
		}
	case kindFloat64:
		var get func(int) float64
		switch a := a.(type) {
		case *array.Float32:
			get = func(i int) float64 { return float64(a.Value(i)) }
		case *array.Float16:
			get = func(i int) float64 { return float64(a.Value(i).Float32()) }
		case *array.Decimal32:
			get = decimalGetter(a.Values(), a.DataType())
		case *array.Decimal64:
			get = decimalGetter(a.Values(), a.DataType())
		case *array.Decimal128:
			get = decimalGetter(a.Values(), a.DataType())
		case *array.Decimal256:
			get = decimalGetter(a.Values(), a.DataType())
		}
		if get != nil {
			return fixed(a, Float64, get, arrow.Float64Traits.CastToBytes), 0, nil
		}
	case kindTimestamp:
		var get func(int) int64
		switch a := a.(type) {
		case *array.Timestamp:
			unit := a.DataType().(*arrow.TimestampType).Unit
			get = func(i int) int64 { return toMicros(int64(a.Value(i)), unit) }
		case *array.Date32:
			get = func(i int) int64 { return int64(a.Value(i)) * 86400e6 }
		case *array.Date64:
			get = func(i int) int64 { return int64(a.Value(i)) * 1000 }
		}
		if get != nil {
			return fixed(a, Timestamp, get, arrow.Int64Traits.CastToBytes), 0, nil
		}
	case kindString:
		var get func(int) string
		switch a := a.(type) {
		case *array.LargeString:
			get = a.Value
		case *array.StringView:
			get = a.Value
		case *array.Null:
			get = func(int) string { return "" }
		case *array.Dictionary:
			switch d := a.Dictionary().(type) {
			case *array.String:
				get = func(i int) string { return d.Value(a.GetValueIndex(i)) }
			case *array.LargeString:
				get = func(i int) string { return d.Value(a.GetValueIndex(i)) }
			}
		}
		if get != nil {
			return stringArray(a, get)
		}
	}
	return nil, 0, fmt.Errorf("%s cannot be read as %s", a.DataType(), k)
}

func toMicros(v int64, unit arrow.TimeUnit) int64 {
	switch unit {
	case arrow.Second:
		return v * 1e6
	case arrow.Millisecond:
		return v * 1e3
	case arrow.Nanosecond:
		q := v / 1e3
		if v%1e3 < 0 {
			q-- // floor: 1969-12-31T23:59:59.999999999 is ...999999
		}
		return q
	}
	return v
}

func decimalGetter[T interface{ ToFloat64(int32) float64 }](vals []T, t arrow.DataType) func(int) float64 {
	scale := t.(arrow.DecimalType).GetScale()
	return func(i int) float64 { return vals[i].ToFloat64(scale) }
}

// validity is a's validity bitmap from its offset 0, or nil without nulls.
func validity(a arrow.Array) *memory.Buffer {
	if a.NullN() == 0 {
		return nil
	}
	d := a.Data()
	n := a.Len()
	out := make([]byte, bitutil.BytesForBits(int64(n)))
	if a.DataType().ID() == arrow.NULL || d.Buffers()[0] == nil {
		return memory.NewBufferBytes(out) // all null
	}
	bitutil.CopyBitmap(d.Buffers()[0].Bytes(), d.Offset(), n, out, 0)
	return memory.NewBufferBytes(out)
}

func fixed[T any](a arrow.Array, t arrow.DataType, get func(int) T, bytes func([]T) []byte) arrow.Array {
	n := a.Len()
	vals := make([]T, n)
	for i := 0; i < n; i++ {
		if a.IsValid(i) {
			vals[i] = get(i)
		}
	}
	data := array.NewData(t, n, []*memory.Buffer{validity(a), memory.NewBufferBytes(bytes(vals))}, nil, a.NullN(), 0)
	defer data.Release()
	return array.MakeFromData(data)
}

func stringArray(a arrow.Array, get func(int) string) (arrow.Array, int, error) {
	n := a.Len()
	offs := make([]int32, n+1)
	var buf []byte
	for i := 0; i < n; i++ {
		if a.IsValid(i) {
			buf = append(buf, get(i)...)
			if len(buf) > math.MaxInt32 {
				return nil, i, fmt.Errorf("more than 2 GiB of strings in one batch")
			}
		}
		offs[i+1] = int32(len(buf))
	}
	data := array.NewData(String, n, []*memory.Buffer{validity(a), memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offs)), memory.NewBufferBytes(buf)}, nil, a.NullN(), 0)
	defer data.Release()
	return array.MakeFromData(data), 0, nil
}
