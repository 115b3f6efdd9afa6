package serve

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner reads JSON from a byte slice without reflection. The inference
// request's "data" arrays are most of every request's bytes, and going
// through encoding/json's reflection and []any for them cost more CPU than
// the model itself for small models; this reads them straight into float32
// slices. It is strict JSON (RFC 8259): what it accepts, encoding/json
// accepts too.
type scanner struct {
	b []byte
	i int
}

// errSyntax is wrapped into every error of the scanner, so that callers
// can tell malformed JSON from a well-formed request with wrong contents.
var errSyntax = errors.New("malformed JSON")

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", errSyntax, s.i, fmt.Sprintf(format, args...))
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek skips white space and returns the next byte, 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		if s.i >= len(s.b) {
			return s.errorf("unexpected end, want %q", c)
		}
		return s.errorf("unexpected %q, want %q", s.b[s.i], c)
	}
	s.i++
	return nil
}

// object calls fn for each key of an object, with the scanner at the
// key's value; fn must consume the value.
func (s *scanner) object(fn func(key []byte) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		key, err := s.stringBytes()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := fn(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.errorf("want ',' or '}' in an object")
		}
	}
}

// array calls fn for each element of an array, with the scanner at the
// element; fn must consume it.
func (s *scanner) array(fn func(i int) error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for n := 0; ; n++ {
		if err := fn(n); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.errorf("want ',' or ']' in an array")
		}
	}
}

// stringBytes reads a string. Without escapes the result aliases the
// input (no allocation); with them it is a new slice.
func (s *scanner) stringBytes() ([]byte, error) {
	if err := s.expect('"'); err != nil {
		return nil, err
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			out := s.b[start:s.i]
			s.i++
			if !utf8.Valid(out) {
				return nil, s.errorf("string is not valid UTF-8")
			}
			return out, nil
		case c == '\\':
			return s.unescape(start)
		case c < 0x20:
			return nil, s.errorf("control character in a string")
		}
		s.i++
	}
	return nil, s.errorf("unterminated string")
}

func (s *scanner) unescape(start int) ([]byte, error) {
	out := append([]byte(nil), s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			if !utf8.Valid(out) {
				return nil, s.errorf("string is not valid UTF-8")
			}
			return out, nil
		case c < 0x20:
			return nil, s.errorf("control character in a string")
		case c != '\\':
			out = append(out, c)
			s.i++
			continue
		}
		if s.i+1 >= len(s.b) {
			break
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return nil, s.errorf("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					s.i += 2
					if r2, ok = s.hex4(); !ok {
						return nil, s.errorf("bad \\u escape")
					}
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError || r2 < 0 {
					r = d
				} else {
					// Not a surrogate pair: the first becomes U+FFFD and
					// the second escape is read again on its own (it may
					// start a pair with the next), as encoding/json does.
					s.i -= 6
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, s.errorf("bad escape \\%c", e)
		}
	}
	return nil, s.errorf("unterminated string")
}

func (s *scanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(s.b[s.i:s.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	s.i += 4
	return rune(v), true
}

// number returns the bytes of a JSON number, checked against its grammar.
func (s *scanner) number() ([]byte, error) {
	s.ws()
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	intStart := s.i
	if n := digits(); n == 0 || (n > 1 && s.b[intStart] == '0') {
		s.i = start
		return nil, s.errorf("bad number")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return nil, s.errorf("bad number")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return nil, s.errorf("bad number")
		}
	}
	return s.b[start:s.i], nil
}

// literal consumes true, false or null.
func (s *scanner) literal(word string) bool {
	if len(s.b)-s.i >= len(word) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return true
	}
	return false
}

// skip consumes any value and returns its bytes.
func (s *scanner) skip() ([]byte, error) {
	return s.skipDepth(0)
}

// maxDepth bounds nesting, so that a hostile body cannot exhaust the stack.
const maxDepth = 64

func (s *scanner) skipDepth(depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, s.errorf("nested more than %d levels", maxDepth)
	}
	c := s.peek()
	start := s.i
	var err error
	switch {
	case c == '{':
		err = s.object(func([]byte) error { _, err := s.skipDepth(depth + 1); return err })
	case c == '[':
		err = s.array(func(int) error { _, err := s.skipDepth(depth + 1); return err })
	case c == '"':
		_, err = s.stringBytes()
	case c == '-' || (c >= '0' && c <= '9'):
		_, err = s.number()
	case c == 't':
		if !s.literal("true") {
			err = s.errorf("bad literal")
		}
	case c == 'f':
		if !s.literal("false") {
			err = s.errorf("bad literal")
		}
	case c == 'n':
		if !s.literal("null") {
			err = s.errorf("bad literal")
		}
	case c == 0:
		err = s.errorf("unexpected end")
	default:
		err = s.errorf("unexpected %q", c)
	}
	if err != nil {
		return nil, err
	}
	return s.b[start:s.i], nil
}

// end checks that nothing but white space follows the value.
func (s *scanner) end() error {
	if s.peek() != 0 {
		return s.errorf("data after the JSON value")
	}
	return nil
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
