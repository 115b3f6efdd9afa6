package table

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"unicode/utf8"
)

// JSON Lines: one object per line. Keys are columns (in the order they
// first appear in the sample); a missing key or null is a null. Numbers
// are int64 (all integers) or float64; true/false booleans; strings that
// are all timestamps, timestamps; anything else — strings, arrays and
// objects, or a column mixing kinds — a string column, where numbers and
// booleans are their JSON text and arrays and objects their compact
// JSON. A float64 column also reads the strings "NaN", "Infinity" and
// "-Infinity". Blank lines are skipped.

// jsonInference is what a key's sampled values were.
type jsonInference struct {
	ints, floats, bools, strs, others int
	notTime                           bool
}

func (in *jsonInference) add(v any) {
	switch v := v.(type) {
	case nil:
	case json.Number:
		if _, ok := parseInt([]byte(v)); ok {
			in.ints++
		} else {
			in.floats++
		}
	case bool:
		in.bools++
	case string:
		in.strs++
		if !in.notTime {
			_, ok := parseTimestamp([]byte(v))
			in.notTime = !ok
		}
	default:
		in.others++
	}
}

func (in *jsonInference) kind() kind {
	cats := 0
	for _, n := range []int{in.ints + in.floats, in.bools, in.strs, in.others} {
		if n > 0 {
			cats++
		}
	}
	switch {
	case cats != 1 || in.others > 0:
		return kindString
	case in.floats > 0:
		return kindFloat64
	case in.ints > 0:
		return kindInt64
	case in.bools > 0:
		return kindBoolean
	case !in.notTime:
		return kindTimestamp
	}
	return kindString
}

// jsonObject parses one line: a JSON object, its keys in order.
func jsonObject(line []byte, file string, lineNo int64) ([]string, []any, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		msg := "not a JSON object (JSON Lines hold one object per line)"
		if len(line) > 0 && line[0] == '[' {
			msg = "a JSON array, not an object (JSON Lines hold one object per line; a file that is one JSON array is not read)"
		}
		return nil, nil, &Error{File: file, Line: lineNo, Msg: msg}
	}
	if !utf8.Valid(line) {
		at := 0
		for at < len(line) {
			r, size := utf8.DecodeRune(line[at:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			at += size
		}
		return nil, nil, &Error{File: file, Line: lineNo, Msg: fmt.Sprintf("bytes that are not UTF-8 at byte %d of the line", at+1)}
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	bad := func(err error) error {
		return &Error{File: file, Line: lineNo, Msg: "not valid JSON: " + err.Error()}
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, bad(err)
	}
	var keys []string
	var vals []any
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, bad(err)
		}
		k, _ := t.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, nil, bad(err)
		}
		keys, vals = append(keys, k), append(vals, v)
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, bad(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, &Error{File: file, Line: lineNo, Msg: "more than one JSON value on the line"}
	}
	return keys, vals, nil
}

func inferJSONL(ctx context.Context, f *file, opts *Options) (*Spec, error) {
	rc, err := f.stream(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	sc := newScanner(rc, 0, opts.maxRecord(), f.name, f.streamSize(0))
	sc.lines = true
	if err := sc.start(); err != nil {
		return nil, err
	}
	index := map[string]int{}
	var names []string
	var inf []jsonInference
	rows, limit := 0, opts.sampleRows()
	for rows < limit {
		if err := sc.next(); err == io.EOF {
			break
		} else if err != nil {
			return nil, err
		}
		keys, vals, err := jsonObject(sc.fields[0], f.name, sc.recLine)
		if err != nil {
			return nil, err
		}
		for j, k := range keys {
			i, ok := index[k]
			if !ok {
				i = len(names)
				index[k] = i
				names = append(names, k)
				inf = append(inf, jsonInference{})
			}
			inf[i].add(vals[j])
		}
		rows++
		if rows&1023 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if rows == 0 {
		return nil, &Error{File: f.name, Msg: "empty: no lines"}
	}
	if len(names) == 0 {
		return nil, &Error{File: f.name, Msg: fmt.Sprintf("no keys in the first %d objects", rows)}
	}
	cinf := make([]inference, len(names))
	for i := range inf {
		// Carry the JSON kinds over as a CSV inference would end.
		switch inf[i].kind() {
		case kindInt64:
			cinf[i] = inference{values: 1}
		case kindFloat64:
			cinf[i] = inference{values: 1, notInt: true}
		case kindBoolean:
			cinf[i] = inference{values: 1, notInt: true, notFloat: true}
		case kindTimestamp:
			cinf[i] = inference{values: 1, notInt: true, notFloat: true, notBool: true}
		default:
			cinf[i] = inference{values: 1, notInt: true, notFloat: true, notBool: true, notTime: true}
		}
	}
	spec := &Spec{Format: FormatJSONL, From: f.name, SampleRows: rows}
	if spec.Columns, err = columnsOf(names, cinf, opts.Types, f.name); err != nil {
		return nil, err
	}
	return spec, nil
}

// appendJSON adds one line's object to the batch.
func (r *textReader) appendJSON(line []byte, lineNo int64) error {
	keys, vals, err := jsonObject(line, r.f.name, lineNo)
	if err != nil {
		return err
	}
	if r.index == nil {
		r.index = make(map[string]int, len(r.spec.Columns))
		for i, c := range r.spec.Columns {
			r.index[c.Name] = i
		}
		r.seen = make([]bool, len(r.spec.Columns))
	}
	var unknown []string
	for _, k := range keys {
		if _, ok := r.index[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return &Error{File: r.f.name, Line: lineNo, Column: unknown[0],
			Msg: fmt.Sprintf("a key that is not a column (the columns are the keys of the first %d lines of %s; to read it, set Options.Spec)", r.spec.SampleRows, r.spec.From)}
	}
	clear(r.seen)
	for j, k := range keys {
		i := r.index[k]
		if r.seen[i] {
			continue // a repeated key: the first counts
		}
		r.seen[i] = true
		c := &r.cols[i]
		v := vals[j]
		if v == nil {
			c.appendNull()
			continue
		}
		text, ok := jsonText(v, c.kind)
		if ok && c.appendText(text) == fieldOK {
			continue
		}
		js, _ := json.Marshal(v)
		return &Error{File: r.f.name, Line: lineNo, Column: k, Msg: notA(js, c.kind, r.spec.Columns[i], r.spec)}
	}
	for i, s := range r.seen {
		if !s {
			r.cols[i].appendNull()
		}
	}
	return nil
}

// jsonText is a JSON value as the text a column of kind k parses, if
// its JSON kind fits.
func jsonText(v any, k kind) ([]byte, bool) {
	switch v := v.(type) {
	case json.Number:
		return []byte(v), k == kindInt64 || k == kindFloat64 || k == kindString
	case bool:
		if v {
			return []byte("true"), k == kindBoolean || k == kindString
		}
		return []byte("false"), k == kindBoolean || k == kindString
	case string:
		if k == kindFloat64 {
			_, ok := special([]byte(v))
			return []byte(v), ok
		}
		return []byte(v), k == kindTimestamp || k == kindString
	}
	if k != kindString {
		return nil, false
	}
	js, err := json.Marshal(v)
	return js, err == nil
}
