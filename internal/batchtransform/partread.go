package batchtransform

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/hpcml/hpcml/internal/table"
)

// readPart calls fn with every record of a part, in input order, each in
// a record from get, and returns how many lines (Parquet: rows) the part
// spans, blank lines and a CSV header included, so that the commit can
// turn a record's line within its part into its line in the file.
func readPart(ctx context.Context, in *inputs, p *Plan, part Part, get func() *record, fn func(*record) error) (int64, error) {
	if p.Spec.Format == table.FormatParquet {
		return readParquetPart(ctx, p, part, get, fn)
	}
	return readTextPart(ctx, in, p, part, get, fn)
}

// readTextPart reads the records that start in the part's byte range: a
// part starting inside a file begins after the first newline at or after
// its start - 1, and the last record may run past its end (the next part
// skips it), as table.Split cuts files.
func readTextPart(ctx context.Context, in *inputs, p *Plan, part Part, get func() *record, fn func(*record) error) (int64, error) {
	pr, err := newParser(p)
	if err != nil {
		return 0, err
	}
	f := p.Files[part.File]
	start, end := part.Piece.Start, part.Piece.End
	off := max(start-1, 0)
	r, err := in.open(ctx, f.URL, off, 0)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	br := bufio.NewReaderSize(r, 256<<10)
	pos := off
	var buf []byte
	if start > 0 {
		skipped, err := readLine(br, &buf)
		if err != nil && err != io.EOF {
			return 0, fmt.Errorf("%s: %w", f.Name, err)
		}
		pos += int64(len(skipped))
	}
	var lines int64
	skip := 0 // lines before the first record: CSV rows to skip and the header
	if start == 0 && p.Spec.Format == table.FormatCSV {
		skip = p.Spec.SkipRows
		if p.Spec.Header {
			skip++
		}
	}
	quoted := p.Split == SplitRecord && p.Spec.Format == table.FormatCSV
	var text []byte
	for {
		if end > 0 && pos >= end {
			return lines, nil
		}
		line, err := readLine(br, &buf)
		if len(line) == 0 && err == io.EOF {
			return lines, nil
		}
		if err != nil && err != io.EOF {
			return lines, fmt.Errorf("%s: line %d of part %d: %w", f.Name, lines+1, part.Index, err)
		}
		pos += int64(len(line))
		lines++
		first := lines
		if quoted && oddQuotes(line) {
			// A quoted field runs on: the record ends on the line that
			// closes it.
			text = append(text[:0], line...)
			for oddQuotes(text) && err == nil {
				if line, err = readLine(br, &buf); err != nil && err != io.EOF {
					return lines, fmt.Errorf("%s: line %d of part %d: %w", f.Name, lines+1, part.Index, err)
				}
				if len(line) > 0 {
					pos += int64(len(line))
					lines++
					text = append(text, line...)
				}
				if len(text) > maxLine {
					return lines, fmt.Errorf("%s: line %d: a quoted field runs on past %d bytes", f.Name, first, maxLine)
				}
			}
			line = text
		}
		if skip > 0 {
			skip--
			continue
		}
		t := trimEOL(line)
		if blank(t) {
			continue
		}
		rec := get()
		rec.line = first
		pr.parse(t, rec)
		if err := fn(rec); err != nil {
			return lines, err
		}
		if lines&1023 == 0 && ctx.Err() != nil {
			return lines, ctx.Err()
		}
	}
}

// readLine returns the next line with its newline; buf holds a line
// longer than the reader's buffer. The slice is valid until the next call.
func readLine(br *bufio.Reader, buf *[]byte) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return line, err
	}
	*buf = append((*buf)[:0], line...)
	for err == bufio.ErrBufferFull {
		line, err = br.ReadSlice('\n')
		*buf = append(*buf, line...)
		if len(*buf) > maxLine {
			return nil, fmt.Errorf("a line longer than %d bytes", maxLine)
		}
	}
	return *buf, err
}

// oddQuotes: an odd number of quotes leaves a quoted field open.
func oddQuotes(b []byte) bool {
	n := 0
	for _, c := range b {
		if c == '"' {
			n++
		}
	}
	return n%2 == 1
}

// readParquetPart reads a part's row groups: each row a record.
func readParquetPart(ctx context.Context, p *Plan, part Part, get func() *record, fn func(*record) error) (int64, error) {
	tp := table.Partition{Index: part.Index, Spec: p.Spec, Pieces: []table.Piece{part.Piece}}
	r, err := table.OpenPartition(ctx, tp, table.Options{BatchRows: 8192})
	if err != nil {
		return 0, err
	}
	defer r.Close()
	feats := make([]int, len(p.Features))
	for i, f := range p.Features {
		feats[i] = slices.Index(p.Columns, f)
	}
	id := slices.Index(p.Columns, p.IDColumn)
	var rows int64
	for {
		b, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return rows, err
		}
		cols := b.Columns()
		for i := range int(b.NumRows()) {
			rows++
			rec := get()
			rec.line = rows
			for k, c := range feats {
				v, ok := arrowNumber(cols[c], i)
				if !ok {
					rec.err = fmt.Sprintf("column %q is null", p.Features[k])
					break
				}
				rec.feats = append(rec.feats, v)
			}
			switch p.Join {
			case JoinInput:
				for c, col := range cols {
					rec.join = appendArrow(rec.join, c == 0, p.Format, p.Columns[c], col, i)
				}
			case JoinID:
				rec.join = appendArrow(rec.join, true, p.Format, p.IDColumn, cols[id], i)
			}
			if err := fn(rec); err != nil {
				b.Release()
				return rows, err
			}
		}
		b.Release()
	}
}

// arrowNumber is a feature's value: numbers as they are, booleans 0 or 1.
func arrowNumber(a arrow.Array, i int) (float32, bool) {
	if a.IsNull(i) {
		return 0, false
	}
	switch x := a.(type) {
	case *array.Int64:
		return float32(x.Value(i)), true
	case *array.Float64:
		return float32(x.Value(i)), true
	case *array.Boolean:
		if x.Value(i) {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// appendArrow appends one joined column's value of row i; first says it
// is the first column.
func appendArrow(dst []byte, first bool, format, name string, a arrow.Array, i int) []byte {
	if !first {
		dst = append(dst, ',')
	}
	if format == FormatCSV {
		if a.IsNull(i) {
			return dst
		}
		if s, ok := a.(*array.String); ok {
			return appendCSVField(dst, []byte(s.Value(i)))
		}
		return appendCSVField(dst, []byte(a.ValueStr(i)))
	}
	dst = appendJSONString(dst, name)
	dst = append(dst, ':')
	if a.IsNull(i) {
		return append(dst, "null"...)
	}
	switch x := a.(type) {
	case *array.Int64:
		return strconv.AppendInt(dst, x.Value(i), 10)
	case *array.Float64:
		v := x.Value(i)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return append(dst, "null"...)
		}
		return strconv.AppendFloat(dst, v, 'g', -1, 64)
	case *array.Boolean:
		return strconv.AppendBool(dst, x.Value(i))
	case *array.String:
		return appendJSONString(dst, x.Value(i))
	}
	return appendJSONString(dst, a.ValueStr(i))
}
