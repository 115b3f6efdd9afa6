package table

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// inferCSV reads the start of f for its delimiter, header and column
// types.
func inferCSV(ctx context.Context, f *file, opts *Options) (*Spec, error) {
	rc, err := f.stream(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	sc := newScanner(rc, ',', opts.maxRecord(), f.name, f.streamSize(0))
	if err := sc.start(); err != nil {
		return nil, err
	}
	if err := sc.skipLines(opts.SkipRows); err != nil {
		return nil, err
	}
	head, err := sc.peek(64 << 10)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(head)) == 0 {
		msg := "empty: no header and no rows"
		if opts.SkipRows > 0 {
			msg = fmt.Sprintf("empty after skipping %d lines", opts.SkipRows)
		}
		return nil, &Error{File: f.name, Msg: msg}
	}
	delim, err := pickDelimiter(f.name, head, sc.eof && len(head) == sc.end-sc.pos, opts.Delimiter)
	if err != nil {
		return nil, err
	}
	sc.delim = delim
	spec := &Spec{Format: FormatCSV, From: f.name, Delimiter: string(rune(delim)), Header: !opts.NoHeader,
		SkipRows: opts.SkipRows, NullValues: opts.NullValues}
	var names []string
	if spec.Header {
		if err := sc.next(); err != nil {
			if err == io.EOF {
				return nil, &Error{File: f.name, Msg: "empty: no header and no rows"}
			}
			return nil, err
		}
		if names, err = headerNames(sc, f.name); err != nil {
			return nil, err
		}
		sc.names = names
	}
	nulls := newNullSet(opts.NullValues)
	var inf []inference
	rows, limit := 0, opts.sampleRows()
	for rows < limit {
		if err := sc.next(); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		if names == nil {
			for i := range sc.fields {
				names = append(names, "column_"+strconv.Itoa(i+1))
			}
		}
		if inf == nil {
			inf = make([]inference, len(names))
			sc.names = names
		}
		if len(sc.fields) != len(names) {
			return nil, ragged(f.name, sc.recLine, len(sc.fields), len(names), spec.Header)
		}
		for i, v := range sc.fields {
			if (!sc.anyQuoted || !sc.quoted[i]) && nulls.is(v) {
				continue
			}
			inf[i].add(v)
		}
		rows++
		if rows&1023 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if names == nil {
		return nil, &Error{File: f.name, Msg: "empty: no rows"}
	}
	if inf == nil {
		inf = make([]inference, len(names))
	}
	spec.SampleRows = rows
	spec.QuotedNewlines = sc.quotedNewline
	if spec.Columns, err = columnsOf(names, inf, opts.Types, f.name); err != nil {
		return nil, err
	}
	return spec, nil
}

// columnsOf is the columns with their inferred types, or the types the
// caller set.
func columnsOf(names []string, inf []inference, types map[string]arrow.DataType, file string) ([]Column, error) {
	cols := make([]Column, len(names))
	known := map[string]bool{}
	for i, n := range names {
		known[n] = true
		if t, ok := types[n]; ok {
			k, ok := kindOf(t)
			if !ok {
				return nil, fmt.Errorf("column %q: type %s cannot be read (one of %s)", n, t, typeNames())
			}
			cols[i] = Column{Name: n, Type: k.String(), Set: true}
			continue
		}
		cols[i] = Column{Name: n, Type: inf[i].kind().String()}
	}
	for n := range types {
		if !known[n] {
			return nil, fmt.Errorf("a type is set for column %q, which %s does not have (its columns: %s)", n, file, shortList(names))
		}
	}
	return cols, nil
}

func shortList(names []string) string {
	if len(names) > 12 {
		return strings.Join(names[:12], ", ") + fmt.Sprintf(", ... (%d in all)", len(names))
	}
	return strings.Join(names, ", ")
}

// headerNames checks the header record: UTF-8, no duplicates; empty
// names become column_N.
func headerNames(sc *scanner, file string) ([]string, error) {
	names := make([]string, len(sc.fields))
	seen := map[string]int{}
	for i, f := range sc.fields {
		if !utf8.Valid(f) {
			return nil, &Error{File: file, Line: sc.recLine, Msg: fmt.Sprintf("header field %d has bytes that are not UTF-8: %s", i+1, quoteValue(f))}
		}
		n := strings.TrimSpace(string(f))
		if n == "" {
			n = "column_" + strconv.Itoa(i+1)
		}
		if j, dup := seen[n]; dup {
			return nil, &Error{File: file, Line: sc.recLine, Msg: fmt.Sprintf("the header names column %q twice (fields %d and %d)", n, j+1, i+1)}
		}
		seen[n] = i
		names[i] = n
	}
	return names, nil
}

func ragged(file string, line int64, got, want int, header bool) *Error {
	from := "the header has"
	if !header {
		from = "the first row has"
	}
	return &Error{File: file, Line: line, Msg: fmt.Sprintf("%d fields, expected %d (%s %d)", got, want, from, want)}
}

// pickDelimiter is the delimiter given, implied by the name (.tsv), or
// the one of , TAB ; | that splits the first lines most consistently.
func pickDelimiter(name string, head []byte, complete bool, given rune) (byte, error) {
	if given != 0 {
		if given > utf8.RuneSelf || given == '"' || given == '\n' || given == '\r' {
			return 0, fmt.Errorf("delimiter %q: must be an ASCII character, not a quote or newline", given)
		}
		return byte(given), nil
	}
	if d := defaultDelimiter(name); d != 0 {
		return d, nil
	}
	// Records of the head, newlines in quotes kept.
	var recs [][]byte
	in, start := false, 0
	for i, c := range head {
		switch {
		case c == '"':
			in = !in
		case c == '\n' && !in:
			recs = append(recs, head[start:i])
			start = i + 1
		}
		if len(recs) == 50 {
			break
		}
	}
	if complete && start < len(head) && len(recs) < 50 {
		recs = append(recs, head[start:])
	}
	if len(recs) == 0 {
		recs = [][]byte{head}
	}
	best, bestAgree, bestCount := byte(','), 0, 0
	for _, d := range []byte{',', '\t', ';', '|'} {
		counts := map[int]int{}
		for _, r := range recs {
			n, in := 0, false
			for _, c := range r {
				if c == '"' {
					in = !in
				} else if c == d && !in {
					n++
				}
			}
			counts[n]++
		}
		mode, agree := 0, 0
		for n, k := range counts {
			if k > agree || k == agree && n > mode {
				mode, agree = n, k
			}
		}
		if mode > 0 && (agree > bestAgree || agree == bestAgree && mode > bestCount) {
			best, bestAgree, bestCount = d, agree, mode
		}
	}
	return best, nil
}

// nullSet is the unquoted fields read as null.
type nullSet struct {
	set    map[string]struct{}
	maxLen int
}

func newNullSet(values []string) nullSet {
	if values == nil {
		values = DefaultNullValues
	}
	n := nullSet{set: map[string]struct{}{}}
	for _, v := range values {
		n.set[v] = struct{}{}
		n.maxLen = max(n.maxLen, len(v))
	}
	return n
}

func (n *nullSet) is(b []byte) bool {
	if len(b) > n.maxLen {
		return false
	}
	_, ok := n.set[string(b)]
	return ok
}

// textReader reads the records of a CSV or JSON Lines file, or of a
// byte range of it.
type textReader struct {
	index  map[string]int // JSON Lines: column by key
	seen   []bool
	f      *file
	spec   *Spec
	schema *arrow.Schema
	kinds  []kind
	rows   int
	nulls  nullSet

	rc  io.ReadCloser
	sc  *scanner
	end int64 // records starting at or after end are the next range's
	// streamAt is the file offset the scanner's stream starts at; its
	// line numbers are relative to that point, made absolute (by counting
	// the newlines before it) only for a message.
	streamAt int64
	records  int64
	cols     []column
	err      error
	done     bool
	ctx      context.Context
}

// openText opens a CSV file (or the records starting in [start, end) of
// it; end 0 is the end of the file) as spec says.
func openText(ctx context.Context, f *file, spec *Spec, schema *arrow.Schema, kinds []kind, opts *Options, start, end int64) (*textReader, error) {
	r := &textReader{f: f, spec: spec, schema: schema, kinds: kinds, rows: opts.batchRows(len(kinds)), nulls: newNullSet(spec.NullValues), end: end, ctx: ctx}
	if r.end <= 0 {
		r.end = math.MaxInt64
	}
	var delim byte
	if spec.Format == FormatCSV {
		delim = spec.Delimiter[0]
	}
	names := make([]string, len(spec.Columns))
	for i, c := range spec.Columns {
		names[i] = c.Name
	}
	jsonl := spec.Format == FormatJSONL
	if jsonl {
		delim = 0
	}
	if start == 0 || spec.Header || spec.SkipRows > 0 {
		rc, err := f.stream(ctx, 0)
		if err != nil {
			return nil, err
		}
		r.rc, r.sc = rc, newScanner(rc, delim, opts.maxRecord(), f.name, f.streamSize(0))
		r.sc.lines = jsonl
		if err := r.sc.start(); err != nil {
			r.Close()
			return nil, err
		}
		if err := r.sc.skipLines(spec.SkipRows); err != nil {
			r.Close()
			return nil, err
		}
		if spec.Header {
			if err := r.sc.next(); err != nil {
				r.Close()
				if err == io.EOF {
					return nil, &Error{File: f.name, Msg: "empty: no header and no rows"}
				}
				return nil, err
			}
			if err := sameHeader(r.sc, names, f.name, spec.From); err != nil {
				r.Close()
				return nil, err
			}
		}
	}
	if start > 0 && (r.sc == nil || start > r.sc.offset()) {
		// A range in the middle: its first record starts after the first
		// newline at or after start-1.
		if r.rc != nil {
			r.rc.Close()
		}
		rc, err := f.stream(ctx, start-1)
		if err != nil {
			return nil, err
		}
		r.rc, r.sc, r.streamAt = rc, newScanner(rc, delim, opts.maxRecord(), f.name, f.streamSize(start-1)), start-1
		r.sc.base = start - 1
		r.sc.lines = jsonl
		if err := r.sc.skipLines(1); err != nil {
			r.Close()
			return nil, err
		}
	}
	r.sc.names = names
	r.sc.wholeLines = !jsonl
	r.cols = make([]column, len(kinds))
	for i := range r.cols {
		r.cols[i].kind = kinds[i]
		r.cols[i].reset(r.rows)
	}
	return r, nil
}

// sameHeader checks that a file's header names the spec's columns.
func sameHeader(sc *scanner, names []string, file, from string) error {
	got, err := headerNames(sc, file)
	if err != nil {
		return err
	}
	if len(got) != len(names) {
		return &Error{File: file, Line: sc.recLine, Msg: fmt.Sprintf("the header has %d columns but %s has %d: a table's files have the same columns", len(got), from, len(names))}
	}
	for i := range got {
		if got[i] != names[i] {
			return &Error{File: file, Line: sc.recLine, Msg: fmt.Sprintf("column %d is %q here but %q in %s: a table's files have the same columns", i+1, got[i], names[i], from)}
		}
	}
	return nil
}

func (r *textReader) Schema() *arrow.Schema { return r.schema }

func (r *textReader) Next(ctx context.Context) (arrow.RecordBatch, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.done {
		return nil, io.EOF
	}
	sc := r.sc
	n := 0
	for n < r.rows {
		if err := sc.next(); err != nil {
			if err == io.EOF {
				r.done = true
				break
			}
			return nil, r.fail(err, true)
		}
		// The first record starts at 0, byte order mark or not: a range
		// starting inside the mark does not have it.
		if off := sc.recOff; off >= r.end && (off != sc.bom || r.streamAt > 0) {
			r.done = true
			break
		}
		r.records++
		if sc.lines {
			if err := r.appendJSON(sc.fields[0], sc.recLine); err != nil {
				return nil, r.fail(err, false)
			}
		} else if sc.isRaw {
			if err := r.appendLine(sc.raw); err != nil {
				return nil, err
			}
		} else if err := r.appendCSV(sc); err != nil {
			return nil, err
		}
		n++
		if n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if r.stringBytes() > batchBytes {
				break
			}
		}
	}
	if n == 0 {
		return nil, io.EOF
	}
	arrs := make([]arrow.Array, len(r.cols))
	for i := range r.cols {
		arrs[i] = r.cols[i].array(r.rows)
	}
	rec := array.NewRecordBatch(r.schema, arrs, int64(n))
	for _, a := range arrs {
		a.Release()
	}
	return rec, nil
}

func (r *textReader) appendCSV(sc *scanner) error {
	if len(sc.fields) != len(r.cols) {
		return r.fail(ragged(r.f.name, sc.recLine, len(sc.fields), len(r.cols), r.spec.Header), true)
	}
	for i, v := range sc.fields {
		c := &r.cols[i]
		if (!sc.anyQuoted || !sc.quoted[i]) && r.nulls.is(v) {
			c.appendNull()
			continue
		}
		if res := c.appendText(v); res != fieldOK {
			return r.fail(r.badValue(i, v, res), false)
		}
	}
	return nil
}

// appendLine adds a record that is a line without quotes, parsing
// numbers straight from the line (where the number ends, the field must)
// and splitting only what is not a plain number.
func (r *textReader) appendLine(line []byte) error {
	delim := r.sc.delim
	last := len(r.cols) - 1
	pos := 0
	for i := range r.cols {
		c := &r.cols[i]
		rest := line[pos:]
		switch c.kind {
		case kindFloat64:
			if v, n, ok := floatPrefix(rest); ok && (i < last && n < len(rest) && rest[n] == delim || i == last && n == len(rest)) {
				c.flts = append(c.flts, v)
				c.ok()
				pos += n + 1
				continue
			}
		case kindInt64:
			if v, n, ok := intPrefix(rest); ok && (i < last && n < len(rest) && rest[n] == delim || i == last && n == len(rest)) {
				c.ints = append(c.ints, v)
				c.ok()
				pos += n + 1
				continue
			}
		}
		f := rest
		if i < last {
			j := bytes.IndexByte(rest, delim)
			if j < 0 {
				return r.fail(ragged(r.f.name, r.sc.recLine, i+1, len(r.cols), r.spec.Header), true)
			}
			f = rest[:j]
			pos += j + 1
		} else if k := bytes.Count(rest, []byte{delim}); k > 0 {
			return r.fail(ragged(r.f.name, r.sc.recLine, len(r.cols)+k, len(r.cols), r.spec.Header), true)
		}
		if r.nulls.is(f) {
			c.appendNull()
			continue
		}
		if res := c.appendText(f); res != fieldOK {
			return r.fail(r.badValue(i, f, res), false)
		}
	}
	return nil
}

func (r *textReader) stringBytes() int {
	t := 0
	for i := range r.cols {
		t += r.cols[i].bytes()
	}
	return t
}

func (r *textReader) badValue(i int, v []byte, res int) *Error {
	c := r.spec.Columns[i]
	e := &Error{File: r.f.name, Line: r.sc.recLine, Column: c.Name}
	if res == fieldNotUTF8 {
		at := 0
		for at < len(v) {
			ru, size := utf8.DecodeRune(v[at:])
			if ru == utf8.RuneError && size <= 1 {
				break
			}
			at += size
		}
		e.Msg = fmt.Sprintf("%s has bytes that are not UTF-8 (at byte %d of the field): convert the file to UTF-8 (iconv -f latin1 -t utf-8)", quoteValue(v), at+1)
		return e
	}
	e.Msg = notA(v, r.kinds[i], c, r.spec)
	return e
}

// notA says a value does not fit its column's type, and why the column
// has that type.
func notA(v []byte, k kind, c Column, spec *Spec) string {
	why := "the type set for it"
	if !c.Set {
		why = fmt.Sprintf("inferred from the first %d rows of %s; set its type with Options.Types (--schema %s=string)", spec.SampleRows, spec.From, c.Name)
	}
	return fmt.Sprintf("%s is not %s (%s)", quoteValue(v), k.describe(), why)
}

// fail fixes an error's line number (absolute in the file) and keeps it.
func (r *textReader) fail(err error, structural bool) error {
	if e, ok := err.(*Error); ok && e.Line > 0 && r.streamAt > 0 {
		before, cerr := countNewlines(r.ctx, r.f, r.streamAt)
		if cerr == nil {
			e.Line += before
		} else {
			e.Msg += fmt.Sprintf(" (line %d of the range starting at byte %d)", e.Line, r.streamAt+1)
			e.Line = 0
		}
		if structural && r.records < 10 {
			e.Msg += fmt.Sprintf("; this partition starts inside the file (byte %d): if quoted fields hold newlines, split the file by files instead of byte ranges", r.streamAt+1)
		}
	}
	r.err = err
	return err
}

func (r *textReader) Close() error {
	if r.rc != nil {
		err := r.rc.Close()
		r.rc = nil
		return err
	}
	return nil
}

// countNewlines counts the newlines in the first n bytes of f.
func countNewlines(ctx context.Context, f *file, n int64) (int64, error) {
	rc, err := f.open(ctx, 0, n)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	buf := make([]byte, 1<<20)
	var count int64
	for {
		k, err := rc.Read(buf)
		count += int64(bytes.Count(buf[:k], []byte{'\n'}))
		if err == io.EOF {
			return count, nil
		}
		if err != nil {
			return count, err
		}
	}
}
