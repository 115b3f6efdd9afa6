package transform

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/table"
)

// locate says where row (0-based) of a partition is in the input: the
// file and line of a CSV or JSON Lines record, the file and row of a
// Parquet one. It reads the partition again (a slow path, for messages
// about bad values only).
func locate(ctx context.Context, part table.Partition, row int64) string {
	fallback := fmt.Sprintf("input partition %d, row %d", part.Index, row+1)
	for _, pc := range part.Pieces {
		one := table.Partition{Index: part.Index, Spec: part.Spec, Pieces: []table.Piece{pc}}
		n, err := countRows(ctx, one, row+1)
		if err != nil {
			return fallback
		}
		if row < n {
			return locateIn(ctx, part.Spec, pc, row)
		}
		row -= n
	}
	return fallback
}

// countRows counts a partition's rows, up to limit.
func countRows(ctx context.Context, p table.Partition, limit int64) (int64, error) {
	r, err := table.OpenPartition(ctx, p, table.Options{})
	if err != nil {
		return 0, err
	}
	defer r.Close()
	var n int64
	for n < limit {
		rec, err := r.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
		n += rec.NumRows()
		rec.Release()
	}
	return n, nil
}

func pieceName(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Scheme != "" {
		return blob.Redact(raw)
	}
	return raw
}

// locateIn is where record k of a piece is.
func locateIn(ctx context.Context, spec table.Spec, pc table.Piece, k int64) string {
	name := pieceName(pc.URL)
	rowOf := fmt.Sprintf("%s: row %d", name, k+1)
	switch {
	case spec.Format == table.FormatParquet && pc.RowGroups != nil:
		return fmt.Sprintf("%s: row %d of row groups %v", name, k+1, pc.RowGroups)
	case spec.Format == table.FormatParquet:
		return rowOf
	}
	p := pc.URL
	if u, err := url.Parse(p); err == nil && u.Scheme != "" {
		if u.Scheme != "file" {
			if pc.Start > 0 {
				return fmt.Sprintf("%s: record %d from byte %d", name, k+1, pc.Start)
			}
			return fmt.Sprintf("%s: record %d", name, k+1)
		}
		p = u.Path
	}
	line, err := findLine(p, spec, pc.Start, k)
	if err != nil {
		return rowOf
	}
	return fmt.Sprintf("%s:line %d", name, line)
}

// findLine is the line record k starts on, reading the file as the
// table reader does: SkipRows lines and the header first, a range
// starting after the first newline at or after start-1, blank lines
// skipped, quoted fields spanning lines (CSV).
func findLine(file string, spec table.Spec, start, k int64) (int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var r io.Reader = f
	switch strings.ToLower(path.Ext(file)) {
	case ".gz":
		z, err := gzip.NewReader(f)
		if err != nil {
			return 0, err
		}
		r = z
	case ".zst":
		z, err := zstd.NewReader(f)
		if err != nil {
			return 0, err
		}
		defer z.Close()
		r = z
	}
	s := &lineScanner{r: bufio.NewReaderSize(r, 1<<16), line: 1, csv: spec.Format == table.FormatCSV}
	if len(spec.Delimiter) == 1 {
		s.delim = spec.Delimiter[0]
	}
	if start == 0 || spec.Header || spec.SkipRows > 0 {
		for range spec.SkipRows {
			if err := s.skipLine(); err != nil {
				return 0, err
			}
		}
		if spec.Header {
			if err := s.skipBlank(); err != nil {
				return 0, err
			}
			if err := s.record(); err != nil {
				return 0, err
			}
		}
	}
	if start > 0 && start > s.off {
		for s.off < start-1 {
			if _, err := s.byte(); err != nil {
				return 0, err
			}
		}
		if err := s.skipLine(); err != nil {
			return 0, err
		}
	}
	for {
		if err := s.skipBlank(); err != nil {
			return 0, err
		}
		if k == 0 {
			return s.line, nil
		}
		if err := s.record(); err != nil {
			return 0, err
		}
		k--
	}
}

type lineScanner struct {
	r     *bufio.Reader
	off   int64
	line  int64
	csv   bool
	delim byte
}

func (s *lineScanner) byte() (byte, error) {
	b, err := s.r.ReadByte()
	if err != nil {
		return 0, err
	}
	s.off++
	if b == '\n' {
		s.line++
	}
	return b, nil
}

func (s *lineScanner) skipLine() error {
	for {
		b, err := s.byte()
		if err != nil || b == '\n' {
			return err
		}
	}
}

// skipBlank skips blank lines: empty ones (CSV), or of spaces only (JSON
// Lines).
func (s *lineScanner) skipBlank() error {
	for {
		var n int
		for {
			head, err := s.r.Peek(n + 1)
			if len(head) <= n {
				return err
			}
			c := head[n]
			if c == '\n' {
				break
			}
			if c == '\r' || !s.csv && (c == ' ' || c == '\t') {
				n++
				continue
			}
			return nil
		}
		for range n + 1 {
			s.byte()
		}
	}
}

// record consumes one record.
func (s *lineScanner) record() error {
	fieldStart := true
	for {
		b, err := s.byte()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		switch {
		case b == '\n':
			return nil
		case s.csv && fieldStart && b == '"':
			for {
				q, err := s.byte()
				if err != nil {
					return err
				}
				if q != '"' {
					continue
				}
				if next, err := s.r.Peek(1); err == nil && next[0] == '"' {
					s.byte()
					continue
				}
				break
			}
			fieldStart = false
		case s.csv && b == s.delim:
			fieldStart = true
		default:
			fieldStart = false
		}
	}
}
