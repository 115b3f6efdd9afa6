package table

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Error is malformed input, saying where: the file, the line (CSV, JSON
// Lines) or row group (Parquet), and the column.
//
//	data.csv:line 12345, column "age": "abc" is not an int64 (inferred from the first 10000 rows; ...)
type Error struct {
	File     string
	Line     int64 // 1-based; 0 when not about one line
	RowGroup int   // 1-based; 0 when not about one row group
	Column   string
	Msg      string
}

func (e *Error) Error() string {
	s := e.File
	switch {
	case e.Line > 0:
		s += ":line " + strconv.FormatInt(e.Line, 10)
	case e.RowGroup > 0:
		s += ":row group " + strconv.Itoa(e.RowGroup)
	}
	if e.Column != "" {
		if e.Line > 0 || e.RowGroup > 0 {
			s += ","
		} else {
			s += ":"
		}
		s += " column " + strconv.Quote(e.Column)
	}
	return s + ": " + e.Msg
}

// quoteValue renders a field for a message: quoted, escaped, shortened.
func quoteValue(b []byte) string {
	const max = 40
	if len(b) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(b[cut]) {
			cut--
		}
		return strconv.Quote(string(b[:cut])) + "..."
	}
	return strconv.Quote(string(b))
}

func errorf(file string, line int64, column, format string, args ...any) *Error {
	return &Error{File: file, Line: line, Column: column, Msg: fmt.Sprintf(format, args...)}
}
