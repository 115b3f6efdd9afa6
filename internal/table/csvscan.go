package table

import (
	"bytes"
	"fmt"
	"io"
)

// scanner splits a byte stream into CSV records (RFC 4180): fields
// separated by delim, records ended by \n or \r\n; a field in double
// quotes may hold delimiters, newlines and quotes (doubled: ""). A quote
// inside an unquoted field is taken as it is (lenient). Characters after
// a closing quote other than a delimiter or the end of the record are an
// error; so is a quoted field still open at the end of the input. Blank
// lines are skipped.
//
// In lines mode (JSON Lines) a record is one line, as one field.
//
// The fast path: a line without quotes is split with bytes.IndexByte and
// its fields are slices of the read buffer — no allocation per field.
// The fields are valid until the next call.
type scanner struct {
	r        io.Reader
	buf      []byte
	pos, end int
	eof      bool
	rerr     error
	delim    byte
	lines    bool
	max      int
	name     string

	base int64 // stream offset of buf[0]
	line int64 // line (1-based, counting from the stream's start) of the next record

	fields    [][]byte
	quoted    []bool // per field, when anyQuoted
	anyQuoted bool
	scratch   []byte

	recOff        int64 // stream offset where the current record starts
	recLine       int64
	quotedNewline bool     // some quoted field spanned lines
	names         []string // the columns, for messages
	bom           int64    // the length of the byte order mark skipped

	// wholeLines: a line without quotes is not split but handed over
	// whole in raw (isRaw), for the reader to split as it parses.
	wholeLines bool
	raw        []byte
	isRaw      bool
}

const scanBuffer = 1 << 20

// newScanner reads r; size is about how much it will read (<= 0: not
// known), to size the buffer for small inputs.
func newScanner(r io.Reader, delim byte, maxRecord int, name string, size int64) *scanner {
	n := scanBuffer
	if size > 0 && size < scanBuffer {
		n = max(int(size)+1, 4096)
	}
	return &scanner{r: r, buf: make([]byte, n), delim: delim, max: maxRecord, name: name, line: 1}
}

// offset is the stream offset of the next unread byte.
func (s *scanner) offset() int64 { return s.base + int64(s.pos) }

// fill reads more input, keeping the unparsed rest.
func (s *scanner) fill() error {
	if s.rerr != nil {
		return s.rerr
	}
	if s.pos > 0 {
		n := copy(s.buf, s.buf[s.pos:s.end])
		s.base += int64(s.pos)
		s.end, s.pos = n, 0
	}
	if len(s.buf)-s.end < len(s.buf)/2 {
		if s.end >= s.max {
			return &Error{File: s.name, Line: s.line, Msg: fmt.Sprintf("a record longer than %d bytes (an unterminated quoted field?)", s.max)}
		}
		nb := make([]byte, min(2*len(s.buf), s.max+s.max/2))
		copy(nb, s.buf[:s.end])
		s.buf = nb
	}
	want := s.end + min(64<<10, len(s.buf)-s.end)
	for s.end < want {
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if err == io.EOF {
			s.eof = true
			return nil
		}
		if err != nil {
			s.rerr = err
			return err
		}
	}
	return nil
}

// peek is at least n bytes of what follows (fewer at the end).
func (s *scanner) peek(n int) ([]byte, error) {
	for s.end-s.pos < n && !s.eof {
		if err := s.fill(); err != nil {
			return nil, err
		}
	}
	return s.buf[s.pos:min(s.end, s.pos+n)], nil
}

// start checks the beginning of a text stream: a UTF-8 byte order mark
// is skipped; UTF-16 and binary data are an error.
func (s *scanner) start() error {
	head, err := s.peek(4096)
	if err != nil {
		return err
	}
	switch {
	case bytes.HasPrefix(head, []byte("\xef\xbb\xbf")):
		s.pos += 3
		s.bom = 3
	case bytes.HasPrefix(head, []byte("\xff\xfe")), bytes.HasPrefix(head, []byte("\xfe\xff")):
		return &Error{File: s.name, Msg: "UTF-16 text: convert the file to UTF-8 (iconv -f utf-16 -t utf-8)"}
	case bytes.IndexByte(head, 0) >= 0:
		return &Error{File: s.name, Msg: fmt.Sprintf("not a text file (a NUL byte at byte %d)", bytes.IndexByte(head, 0)+1)}
	}
	return nil
}

// skipLines skips n physical lines.
func (s *scanner) skipLines(n int) error {
	for ; n > 0; n-- {
		for {
			i := bytes.IndexByte(s.buf[s.pos:s.end], '\n')
			if i >= 0 {
				s.pos += i + 1
				s.line++
				break
			}
			if s.eof {
				s.pos = s.end
				return nil
			}
			if s.end-s.pos >= s.max {
				return &Error{File: s.name, Line: s.line, Msg: fmt.Sprintf("a line longer than %d bytes", s.max)}
			}
			if err := s.fill(); err != nil {
				return err
			}
		}
	}
	return nil
}

// next reads the next record into fields, or returns io.EOF.
func (s *scanner) next() error {
	for {
		if s.pos >= s.end && s.eof {
			return io.EOF
		}
		done, err := s.parse()
		if done || err != nil {
			return err
		}
		if s.eof {
			if s.pos >= s.end {
				return io.EOF
			}
			continue
		}
		if err := s.fill(); err != nil {
			return err
		}
	}
}

// parse takes one record from the buffer; false: it needs more input.
func (s *scanner) parse() (bool, error) {
	for {
		data := s.buf[s.pos:s.end]
		if len(data) == 0 {
			return false, nil
		}
		nl := bytes.IndexByte(data, '\n')
		line, consumed := data, len(data)
		switch {
		case nl >= 0:
			line, consumed = data[:nl], nl+1
		case !s.eof:
			if len(data) >= s.max {
				if !s.lines && bytes.IndexByte(data, '"') >= 0 {
					return s.parseQuoted()
				}
				return false, &Error{File: s.name, Line: s.line, Msg: fmt.Sprintf("a line longer than %d bytes (not a text file?)", s.max)}
			}
			return false, nil
		}
		if !s.lines && bytes.IndexByte(line, '"') >= 0 {
			return s.parseQuoted()
		}
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		s.recOff, s.recLine = s.base+int64(s.pos), s.line
		s.line++
		s.pos += consumed
		if len(bytes.TrimSpace(line)) == 0 && (s.lines || len(line) == 0) {
			continue // a blank line
		}
		s.fields = s.fields[:0]
		s.anyQuoted = false
		if s.wholeLines {
			s.raw, s.isRaw = line, true
			return true, nil
		}
		s.isRaw = false
		if s.lines {
			s.fields = append(s.fields, line)
			return true, nil
		}
		for {
			i := bytes.IndexByte(line, s.delim)
			if i < 0 {
				break
			}
			s.fields = append(s.fields, line[:i])
			line = line[i+1:]
		}
		s.fields = append(s.fields, line)
		return true, nil
	}
}

// parseQuoted is the slow path: a record with quotes, which may span
// lines.
func (s *scanner) parseQuoted() (bool, error) {
	data := s.buf[s.pos:s.end]
	s.fields, s.quoted, s.scratch = s.fields[:0], s.quoted[:0], s.scratch[:0]
	s.anyQuoted, s.isRaw = true, false
	more := func() (bool, error) {
		if len(data) >= s.max {
			return false, &Error{File: s.name, Line: s.line, Msg: fmt.Sprintf("a record longer than %d bytes (an unterminated quoted field?)", s.max)}
		}
		return false, nil
	}
	i, lines := 0, 0
	for {
		if i < len(data) && data[i] == '"' {
			i++
			start, from := i, len(s.scratch)
			escaped := false
			var field []byte
			for {
				j := bytes.IndexByte(data[i:], '"')
				if j < 0 {
					if !s.eof {
						return more()
					}
					fieldLine := s.line + int64(bytes.Count(data[:start], []byte{'\n'}))
					return false, &Error{File: s.name, Line: fieldLine, Column: s.columnHint(len(s.fields)),
						Msg: "a quoted field is never closed (a quote inside a quoted field is written twice: \"\")"}
				}
				seg := data[i : i+j]
				lines += bytes.Count(seg, []byte{'\n'})
				i += j + 1
				if i == len(data) && !s.eof {
					return more() // is the quote doubled?
				}
				if i < len(data) && data[i] == '"' {
					escaped = true
					s.scratch = append(append(s.scratch, seg...), '"')
					i++
					continue
				}
				if escaped {
					s.scratch = append(s.scratch, seg...)
					field = s.scratch[from:]
				} else {
					field = data[start : i-1]
				}
				break
			}
			s.fields = append(s.fields, field)
			s.quoted = append(s.quoted, true)
			switch {
			case i == len(data): // the end of the input
				return s.endRecord(i, lines)
			case data[i] == s.delim:
				i++
				if i == len(data) && !s.eof {
					return more()
				}
				continue
			case data[i] == '\n':
				return s.endRecord(i+1, lines)
			case data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n':
				return s.endRecord(i+2, lines)
			case data[i] == '\r' && i+1 == len(data) && !s.eof:
				return more()
			}
			return false, &Error{File: s.name, Line: s.line + int64(lines), Column: s.columnHint(len(s.fields) - 1),
				Msg: fmt.Sprintf("bad quoting: %s after the closing quote of a field (a quote inside a quoted field is written twice: \"\")", quoteValue(data[i:min(i+1, len(data))]))}
		}
		start := i
		for i < len(data) && data[i] != s.delim && data[i] != '\n' {
			i++
		}
		if i == len(data) && !s.eof {
			return more()
		}
		f := data[start:i]
		if (i == len(data) || data[i] == '\n') && len(f) > 0 && f[len(f)-1] == '\r' {
			f = f[:len(f)-1]
		}
		s.fields = append(s.fields, f)
		s.quoted = append(s.quoted, false)
		if i < len(data) && data[i] == s.delim {
			i++
			if i == len(data) && !s.eof {
				return more()
			}
			continue
		}
		if i < len(data) {
			i++ // the newline
		}
		return s.endRecord(i, lines)
	}
}

func (s *scanner) endRecord(n, lines int) (bool, error) {
	s.recOff, s.recLine = s.base+int64(s.pos), s.line
	s.line += 1 + int64(lines)
	s.pos += n
	if lines > 0 {
		s.quotedNewline = true
	}
	return true, nil
}

// columnHint names column i for a scanning error, when the reader told
// the scanner the names.
func (s *scanner) columnHint(i int) string {
	if s.names != nil && i >= 0 && i < len(s.names) {
		return s.names[i]
	}
	return ""
}
