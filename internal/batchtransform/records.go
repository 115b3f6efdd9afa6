package batchtransform

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unsafe"

	"github.com/hpcml/hpcml/internal/table"
)

// record is one input record, parsed: the sample's values, what the
// output joins to the prediction, or why it cannot be scored.
type record struct {
	line  int64     // 1-based line (Parquet: row) within its part
	feats []float32 // the sample, Plan.Volume values
	join  []byte    // the joined columns, rendered in the output format
	err   string    // why the record fails; "" if it parsed
}

// parser turns a text record (a line, or a CSV record) into a record.
type parser interface {
	parse(text []byte, rec *record)
}

func newParser(p *Plan) (parser, error) {
	switch p.Spec.Format {
	case table.FormatCSV:
		if len(p.Spec.Delimiter) != 1 {
			return nil, fmt.Errorf("CSV delimiter %q", p.Spec.Delimiter)
		}
		c := &csvParser{p: p, delim: p.Spec.Delimiter[0], ncols: len(p.Columns), id: -1}
		for _, f := range p.Features {
			c.feats = append(c.feats, slices.Index(p.Columns, f))
		}
		if p.IDColumn != "" {
			c.id = slices.Index(p.Columns, p.IDColumn)
		}
		return c, nil
	case table.FormatJSONL:
		return &jsonParser{p: p}, nil
	}
	return nil, fmt.Errorf("%s files are not read as text", p.Spec.Format)
}

// csvParser reads one CSV record.
type csvParser struct {
	p       *Plan
	delim   byte
	ncols   int
	feats   []int // column of each feature
	id      int   // column of the id, or -1
	fields  [][]byte
	scratch []byte // unquoted fields
}

func (c *csvParser) parse(text []byte, rec *record) {
	fields, err := c.split(text)
	if err != nil {
		rec.err = "malformed CSV: " + err.Error()
		return
	}
	if len(fields) != c.ncols {
		rec.err = fmt.Sprintf("%d fields, the header has %d", len(fields), c.ncols)
		return
	}
	for _, i := range c.feats {
		v, err := parseNumber(fields[i])
		if err != nil {
			rec.err = fmt.Sprintf("column %q: %s", c.p.Columns[i], err)
			return
		}
		rec.feats = append(rec.feats, v)
	}
	switch c.p.Join {
	case JoinInput:
		for i, f := range fields {
			rec.join = appendJoined(rec.join, i == 0, c.p.Format, c.p.Columns[i], f, textValue)
		}
	case JoinID:
		rec.join = appendJoined(rec.join, true, c.p.Format, c.p.IDColumn, fields[c.id], textValue)
	}
}

// split cuts a record into fields: by the delimiter when nothing is
// quoted (the common case), else by RFC 4180's rules ("" in a quoted
// field is a quote). Fields point into text or c.scratch; no allocation
// once the buffers have grown.
func (c *csvParser) split(text []byte) ([][]byte, error) {
	c.fields = c.fields[:0]
	if bytes.IndexByte(text, '"') < 0 {
		for {
			i := bytes.IndexByte(text, c.delim)
			if i < 0 {
				return append(c.fields, text), nil
			}
			c.fields = append(c.fields, text[:i])
			text = text[i+1:]
		}
	}
	// Unquoted text is never longer than the record: fields into scratch
	// stay valid as it fills.
	if cap(c.scratch) < len(text) {
		c.scratch = make([]byte, 0, len(text))
	}
	c.scratch = c.scratch[:0]
	for pos := 0; ; {
		if pos < len(text) && text[pos] == '"' {
			start := len(c.scratch)
			pos++
			for {
				i := bytes.IndexByte(text[pos:], '"')
				if i < 0 {
					return nil, fmt.Errorf("a quoted field does not end (field %d)", len(c.fields)+1)
				}
				c.scratch = append(c.scratch, text[pos:pos+i]...)
				pos += i + 1
				if pos < len(text) && text[pos] == '"' {
					c.scratch = append(c.scratch, '"')
					pos++
					continue
				}
				break
			}
			c.fields = append(c.fields, c.scratch[start:len(c.scratch):len(c.scratch)])
			if pos == len(text) {
				return c.fields, nil
			}
			if text[pos] != c.delim {
				return nil, fmt.Errorf("text after the closing quote of field %d", len(c.fields))
			}
			pos++
			continue
		}
		i := bytes.IndexByte(text[pos:], c.delim)
		field := text[pos:]
		if i >= 0 {
			field = text[pos : pos+i]
		}
		if bytes.IndexByte(field, '"') >= 0 {
			return nil, fmt.Errorf(`a quote inside unquoted field %d`, len(c.fields)+1)
		}
		c.fields = append(c.fields, field)
		if i < 0 {
			return c.fields, nil
		}
		pos += i + 1
	}
}

// parseNumber reads a feature: a number, surrounding spaces allowed.
func parseNumber(b []byte) (float32, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return 0, fmt.Errorf("empty, not a number")
	}
	// No copy: ParseFloat keeps nothing of its argument.
	v, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(b), len(b)), 32)
	if err != nil {
		return 0, fmt.Errorf("%s is not a number", quote(b))
	}
	return float32(v), nil
}

// quote renders a value for a message: quoted, cut at 40 bytes.
func quote(b []byte) string {
	if len(b) > 40 {
		return strconv.Quote(string(b[:40])) + "..."
	}
	return strconv.Quote(string(b))
}

// jsonParser reads one JSON line: an object whose feature keys hold
// numbers (or arrays of numbers), or an array that is the sample.
type jsonParser struct {
	p *Plan
}

func (j *jsonParser) parse(text []byte, rec *record) {
	text = bytes.TrimSpace(text)
	p := j.p
	if len(p.Columns) == 0 { // arrays
		var v any
		if err := json.Unmarshal(text, &v); err != nil {
			rec.err = "malformed JSON: " + err.Error()
			return
		}
		if _, ok := v.([]any); !ok {
			rec.err = "not a JSON array (the first line was one)"
			return
		}
		feats, err := flatten(rec.feats, v)
		if err != nil {
			rec.err = err.Error()
			return
		}
		rec.feats = feats
		if p.Join == JoinInput {
			rec.join = appendJoined(rec.join, true, p.Format, "input", text, rawJSON)
		}
		return
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(text, &obj); err != nil {
		rec.err = "malformed JSON: " + err.Error()
		return
	}
	if obj == nil {
		rec.err = "null, not a JSON object"
		return
	}
	for _, f := range p.Features {
		raw, ok := obj[f]
		if !ok {
			rec.err = fmt.Sprintf("key %q is missing", f)
			return
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			rec.err = fmt.Sprintf("key %q: %s", f, err)
			return
		}
		feats, err := flatten(rec.feats, v)
		if err != nil {
			rec.err = fmt.Sprintf("key %q: %s", f, err)
			return
		}
		rec.feats = feats
	}
	switch p.Join {
	case JoinInput:
		if p.Format == FormatJSONL {
			// The object's members as they are, keys the file has beyond
			// the first line's included.
			inner := bytes.TrimSpace(text[1 : len(text)-1])
			rec.join = append(rec.join, inner...)
			break
		}
		for i, c := range p.Columns {
			rec.join = appendJoined(rec.join, i == 0, p.Format, c, obj[c], rawJSON)
		}
	case JoinID:
		raw, ok := obj[p.IDColumn]
		if !ok {
			rec.err = fmt.Sprintf("id key %q is missing", p.IDColumn)
			return
		}
		rec.join = appendJoined(rec.join, true, p.Format, p.IDColumn, raw, rawJSON)
	}
}

// flatten appends the numbers of a JSON value (a number or nested
// arrays of numbers) in row-major order.
func flatten(dst []float32, v any) ([]float32, error) {
	switch x := v.(type) {
	case float64:
		return append(dst, float32(x)), nil
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return dst, fmt.Errorf("%s is not a number", x)
		}
		return append(dst, float32(f)), nil
	case []any:
		var err error
		for _, e := range x {
			if dst, err = flatten(dst, e); err != nil {
				return dst, err
			}
		}
		return dst, nil
	case nil:
		return dst, fmt.Errorf("null, not a number")
	}
	b, _ := json.Marshal(v) // JSON text: "4" is a string, [1] an array
	if len(b) > 40 {
		b = append(b[:40:40], "..."...)
	}
	return dst, fmt.Errorf("%s is not a number", b)
}

// Kinds of joined values: how a value's bytes are to be read.
type valueKind int

const (
	textValue valueKind = iota // a CSV field: a number, else a string
	rawJSON                    // JSON text
)

// appendJoined appends one joined column to a record's join fragment in
// the output format: CSV fields separated by commas, or JSON members
// separated by commas (the braces come with the row); first says it is
// the first column (a CSV field may be empty).
func appendJoined(dst []byte, first bool, format, name string, v []byte, kind valueKind) []byte {
	if !first {
		dst = append(dst, ',')
	}
	if format == FormatCSV {
		if kind == rawJSON {
			var s string
			if len(v) > 0 && v[0] == '"' && json.Unmarshal(v, &s) == nil {
				return appendCSVField(dst, []byte(s))
			}
			if string(v) == "null" {
				v = nil
			}
		}
		return appendCSVField(dst, v)
	}
	dst = appendJSONString(dst, name)
	dst = append(dst, ':')
	if kind == rawJSON {
		if len(v) == 0 {
			return append(dst, "null"...)
		}
		return append(dst, v...)
	}
	return appendJSONText(dst, v)
}

// appendJSONText renders a CSV field in JSON: a finite number as a
// number, an empty field as null, anything else as a string.
func appendJSONText(dst, v []byte) []byte {
	t := bytes.TrimSpace(v)
	if len(t) == 0 {
		return append(dst, "null"...)
	}
	if f, err := strconv.ParseFloat(string(t), 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) && json.Valid(t) {
		return append(dst, t...)
	}
	b, _ := json.Marshal(string(v))
	return append(dst, b...)
}

// appendCSVField appends a field, quoted when it must be.
func appendCSVField(dst, v []byte) []byte {
	if !bytes.ContainsAny(v, ",\"\r\n") && (len(v) == 0 || v[0] != ' ' && v[len(v)-1] != ' ') {
		return append(dst, v...)
	}
	dst = append(dst, '"')
	dst = append(dst, bytes.ReplaceAll(v, []byte(`"`), []byte(`""`))...)
	return append(dst, '"')
}

// predictionColumns are the output's prediction columns: an output of
// one value per sample is a column of its name; in CSV a wider one is
// columns NAME_0, NAME_1, ...; in JSON an array under its name.
func predictionColumns(outs []OutputCol, format string) []string {
	var cols []string
	for _, o := range outs {
		if o.Volume == 1 || format == FormatJSONL {
			cols = append(cols, o.Name)
			continue
		}
		for i := range o.Volume {
			cols = append(cols, o.Name+"_"+strconv.Itoa(i))
		}
	}
	return cols
}

// joinedColumns are the columns the output joins to the predictions.
func joinedColumns(p *Plan) []string {
	switch p.Join {
	case JoinInput:
		if len(p.Columns) == 0 {
			return []string{"input"}
		}
		return p.Columns
	case JoinID:
		return []string{p.IDColumn}
	}
	return nil
}

// csvHeader is a CSV output's first line.
func csvHeader(p *Plan) []byte {
	var b []byte
	for _, c := range append(slices.Clone(joinedColumns(p)), predictionColumns(p.Outputs, FormatCSV)...) {
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = appendCSVField(b, []byte(c))
	}
	return append(b, '\n')
}

// appendRow appends one output record: the joined columns, then every
// output's values of the row (outs[k] holds output k's values).
func appendRow(dst []byte, p *Plan, join []byte, outs [][]float32) []byte {
	if p.Format == FormatCSV {
		dst = append(dst, join...)
		first := p.Join == JoinNone
		for _, vals := range outs {
			for _, v := range vals {
				if !first {
					dst = append(dst, ',')
				}
				first = false
				dst = strconv.AppendFloat(dst, float64(v), 'g', -1, 32)
			}
		}
		return append(dst, '\n')
	}
	dst = append(dst, '{')
	dst = append(dst, join...)
	for k, vals := range outs {
		if k > 0 || len(join) > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, p.Outputs[k].Name)
		dst = append(dst, ':')
		if p.Outputs[k].Volume == 1 {
			dst = appendJSONFloat(dst, vals[0])
			continue
		}
		dst = append(dst, '[')
		for i, v := range vals {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONFloat(dst, v)
		}
		dst = append(dst, ']')
	}
	return append(dst, "}\n"...)
}

// appendJSONFloat writes a float32 as JSON: NaN and infinities, which
// JSON cannot hold, as null.
func appendJSONFloat(dst []byte, v float32) []byte {
	if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, float64(v), 'g', -1, 32)
}

// trimEOL drops a line's "\n" or "\r\n".
func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// blank reports whether a line holds nothing but spaces.
func blank(b []byte) bool { return len(bytes.TrimSpace(b)) == 0 }

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s)
	return append(dst, b...)
}
