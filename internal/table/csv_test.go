package table

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func TestCSVInference(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "t.csv", ""+
		"id,score,ok,when,name,empty,mixed\n"+
		"1,1.5,true,2024-03-01,alice,,1\n"+
		"2,NaN,FALSE,2024-03-01T12:30:45Z,\"bob, jr\",NA,x\n"+
		"-3,-inf,True,2024-03-01 12:30:45.123456+02:00,\"\",null,2\n"+
		"NULL,1e3,N/A,,\"say \"\"hi\"\"\",NULL,\n"+
		"5,inf,false,2024-02-29T00:00,NA,,3.5\n")
	s, rows := readURL(t, p, Options{})
	eq(t, "types", types(s), "id:int64 score:float64 ok:bool when:timestamp name:string empty:string mixed:string")
	eq(t, "rows", rows, []string{
		"1|1.5|true|2024-03-01T00:00:00Z|alice|∅|1",
		"2|NaN|false|2024-03-01T12:30:45Z|bob, jr|∅|x",
		"-3|-Inf|true|2024-03-01T10:30:45.123456Z||∅|2",
		"∅|1000|∅|∅|say \"hi\"|∅|∅",
		"5|+Inf|false|2024-02-29T00:00:00Z|∅|∅|3.5",
	})
}

func TestCSVDelimiters(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"semi.csv":  "a;b;c\n1;2,5;x\n3;4,5;y\n",
		"tab.txt":   "a\tb\tc\n1\t2,5\tx\n3\t4,5\ty\n",
		"pipe.csv":  "a|b|c\n1|2,5|x\n3|4,5|y\n",
		"given.tsv": "a\tb\tc\n1\t2,5\tx\n3\t4,5\ty\n",
	} {
		s, rows := readURL(t, write(t, dir, name, content), Options{})
		eq(t, name+" types", types(s), "a:int64 b:string c:string")
		eq(t, name, rows, []string{"1|2,5|x", "3|4,5|y"})
	}
	s, rows := readURL(t, write(t, dir, "comma.csv", "a,b\n\"1;2\",3\n"), Options{})
	eq(t, "comma types", types(s), "a:string b:int64")
	eq(t, "comma", rows, []string{"1;2|3"})
	// Given: no detection.
	_, rows = readURL(t, write(t, dir, "forced.csv", "a;b\n1;2\n"), Options{Delimiter: ','})
	eq(t, "forced", rows, []string{"1;2"})
}

func TestCSVQuotingAndLines(t *testing.T) {
	dir := t.TempDir()
	// CRLF, a quoted newline, a doubled quote, blank lines, no final
	// newline, a quote inside an unquoted field (taken as it is).
	p := write(t, dir, "q.csv", "id,text\r\n1,\"a\r\nb\"\r\n\r\n2,\"x,\"\"y\"\"\"\r\n3,5'10\"\n\n4,\"last\"")
	s, rows := readURL(t, p, Options{})
	eq(t, "types", types(s), "id:int64 text:string")
	eq(t, "rows", rows, []string{"1|a\r\nb", "2|x,\"y\"", "3|5'10\"", "4|last"})
	// A byte order mark is not part of the first column's name.
	s, rows = readURL(t, write(t, dir, "bom.csv", "\xef\xbb\xbfid,x\n1,2\n"), Options{})
	eq(t, "bom", types(s)+" "+rows[0], "id:int64 x:int64 1|2")
	// Line numbers count physical lines: the bad value is on line 7.
	p = write(t, dir, "lines.csv", "id,text\n1,\"a\nb\nc\"\n2,ok\nx,bad\n")
	err := readErr(t, p, Options{SampleRows: 1})
	wantErr(t, err, p+`:line 6, column "id": "x" is not an int64 (inferred from the first 1 rows of `+p)
}

func TestCSVBadInput(t *testing.T) {
	dir := t.TempDir()
	var big strings.Builder
	big.WriteString("age,name\n")
	for i := 0; i < 12000; i++ {
		fmt.Fprintf(&big, "%d,n%d\n", i, i)
	}
	big.WriteString("abc,late\n")
	for _, c := range []struct {
		name, content string
		opts          Options
		want          []string
	}{
		{"ragged.csv", "a,b,c\n1,2,3\n4,5\n", Options{}, []string{"ragged.csv:line 3: 2 fields, expected 3 (the header has 3)"}},
		{"ragged2.csv", "1,2\n3,4,5\n", Options{NoHeader: true}, []string{"ragged2.csv:line 2: 3 fields, expected 2 (the first row has 2)"}},
		{"after.csv", "a,b\n\"x\"y,2\n", Options{}, []string{"after.csv:line 2, column \"a\": bad quoting: \"y\" after the closing quote"}},
		{"open.csv", "a,b\n1,2\n3,\"never closed\n4,5\n", Options{}, []string{"open.csv:line 3, column \"b\": a quoted field is never closed"}},
		{"late.csv", big.String(), Options{}, []string{`late.csv:line 12002, column "age": "abc" is not an int64 (inferred from the first 10000 rows of `, "set its type with Options.Types (--schema age=string)"}},
		{"utf8.csv", "id,name\n1,caf\xe9\n", Options{}, []string{`utf8.csv:line 2, column "name": "caf\xe9" has bytes that are not UTF-8 (at byte 4 of the field)`}},
		{"empty.csv", "", Options{}, []string{"empty.csv: empty: no header and no rows"}},
		{"blank.csv", "\n\n", Options{}, []string{"blank.csv: empty"}},
		{"empty2.csv", "", Options{NoHeader: true}, []string{"empty2.csv: empty"}},
		{"dup.csv", "a,b,a\n1,2,3\n", Options{}, []string{`dup.csv:line 1: the header names column "a" twice (fields 1 and 3)`}},
		{"hdr.csv", "a,caf\xe9\n1,2\n", Options{}, []string{`hdr.csv:line 1: header field 2 has bytes that are not UTF-8`}},
		{"long.csv", "a\n\"" + strings.Repeat("x", 3<<20), Options{MaxRecordBytes: 1 << 20}, []string{"long.csv:line 2: a record longer than 1048576 bytes (an unterminated quoted field?)"}},
		{"set.csv", "a,b\n1,2\nx,3\n", Options{Types: map[string]arrow.DataType{"a": Int64}}, []string{`set.csv:line 3, column "a": "x" is not an int64 (the type set for it)`}},
		{"unknown.csv", "a,b\n1,2\n", Options{Types: map[string]arrow.DataType{"c": Int64}}, []string{`a type is set for column "c", which`, "(its columns: a, b)"}},
		{"ts.csv", "t\n2024-01-01\n2024-13-01\n", Options{SampleRows: 1}, []string{`ts.csv:line 3, column "t": "2024-13-01" is not a timestamp`}},
		{"utf16.csv", "\xff\xfea\x00,\x00b\x00\n\x00", Options{}, []string{"utf16.csv: UTF-16 text: convert the file to UTF-8"}},
		{"bin.csv", "PAR1\x00\x01\x02", Options{}, []string{"bin.csv: not a text file (a NUL byte at byte 5)"}},
		{"bin.jsonl", "{\"a\": 1}\n\x00\n", Options{}, []string{"bin.jsonl: not a text file (a NUL byte at byte 10)"}},
	} {
		p := write(t, dir, c.name, c.content)
		err := readErr(t, p, c.opts)
		var te *Error
		if !errors.As(err, &te) && !strings.Contains(c.name, "unknown") {
			t.Errorf("%s: %T is not a *table.Error: %v", c.name, err, err)
		}
		wantErr(t, err, c.want...)
	}
}

func TestCSVTypesAndNulls(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "t.csv", "age,x,z\n1,,\nabc,NA,\n")
	// The first row is an int; the second is not: set the type.
	s, rows := readURL(t, p, Options{SampleRows: 1, Types: map[string]arrow.DataType{"age": String}})
	eq(t, "types", types(s), "age:string x:string z:string")
	eq(t, "rows", rows, []string{"1|∅|∅", "abc|∅|∅"})
	// Null words of one's own: "NA" is then a string.
	_, rows = readURL(t, p, Options{NullValues: []string{""}, Types: map[string]arrow.DataType{"age": String}})
	eq(t, "own nulls", rows, []string{"1|∅|∅", "abc|NA|∅"})
	// A header-only file is a table of no rows.
	s, rows = readURL(t, write(t, dir, "h.csv", "a,b\n"), Options{})
	eq(t, "header only", types(s)+fmt.Sprint(len(rows)), "a:string b:string0")
}

func TestCSVCompressedAndBatches(t *testing.T) {
	dir := t.TempDir()
	var plain bytes.Buffer
	plain.WriteString("i,f,s\n")
	var want []string
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&plain, "%d,%d.25,\"s,%d\"\n", i, i, i)
		want = append(want, fmt.Sprintf("%d|%d.25|s,%d", i, i, i))
	}
	var gz, zs bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain.Bytes())
	zw.Close()
	ze, _ := zstd.NewWriter(&zs)
	ze.Write(plain.Bytes())
	ze.Close()
	for name, data := range map[string][]byte{"p.csv": plain.Bytes(), "p.csv.gz": gz.Bytes(), "p.csv.zst": zs.Bytes()} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		r, err := Open(context.Background(), p, Options{BatchRows: 333, SampleRows: 100})
		if err != nil {
			t.Fatal(err)
		}
		batches := 0
		var rows []string
		for {
			rec, err := r.Next(context.Background())
			if err != nil {
				break
			}
			batches++
			if rec.NumRows() > 333 {
				t.Fatalf("%s: a batch of %d rows", name, rec.NumRows())
			}
			rows = append(rows, render(rec)...)
			rec.Release()
		}
		r.Close()
		eq(t, name+" types", types(r.Schema()), "i:int64 f:float64 s:string")
		eq(t, name, rows, want)
		eq(t, name+" batches", batches, (5000+332)/333)
	}
	// A truncated gzip file.
	p := filepath.Join(dir, "cut.csv.gz")
	os.WriteFile(p, gz.Bytes()[:len(gz.Bytes())/2], 0o644)
	wantErr(t, readErr(t, p, Options{SampleRows: 10}), "cut.csv.gz: truncated compressed data")
}

func TestParseValues(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
		v  float64
	}{
		{"1.5", true, 1.5}, {"-0.000123", true, -0.000123}, {"1e-5", true, 1e-5}, {"1E+300", true, 1e300},
		{"123456789012345678901234", true, 1.2345678901234568e23}, {".5", true, .5}, {"5.", true, 5},
		{" 7 ", true, 7}, {"0x10", false, 0}, {"1_000", false, 0}, {"1e", false, 0}, {"", false, 0},
		{"-", false, 0}, {".", false, 0}, {"1.2.3", false, 0}, {"Infinity", true, 0}, {"nan", true, 0},
		{"0.1", true, 0.1}, {"3.141592653589793", true, 3.141592653589793}, {"9007199254740993", true, 9007199254740992},
	} {
		v, ok := parseFloat([]byte(c.in))
		if ok != c.ok || ok && c.v != 0 && v != c.v {
			t.Errorf("parseFloat(%q) = %v, %v; want %v, %v", c.in, v, ok, c.v, c.ok)
		}
	}
	for in, want := range map[string]int64{"0": 0, "-12": -12, "+7": 7, "9223372036854775807": 9223372036854775807, "-9223372036854775808": -9223372036854775808} {
		if v, ok := parseInt([]byte(in)); !ok || v != want {
			t.Errorf("parseInt(%q) = %v, %v", in, v, ok)
		}
	}
	for _, in := range []string{"9223372036854775808", "1.0", "", "-", "1e3", "+-1"} {
		if _, ok := parseInt([]byte(in)); ok {
			t.Errorf("parseInt(%q) ok", in)
		}
	}
	for in, want := range map[string]string{
		"1970-01-01": "1970-01-01T00:00:00Z", "2024-02-29T23:59:59.5Z": "2024-02-29T23:59:59.5Z",
		"2024-03-01T01:00:00+0100": "2024-03-01T00:00:00Z", "1900-01-01 00:00": "1900-01-01T00:00:00Z",
		"2024-03-01T01:00:00-01": "2024-03-01T02:00:00Z",
	} {
		us, ok := parseTimestamp([]byte(in))
		if !ok || arrow.Timestamp(us).ToTime(arrow.Microsecond).UTC().Format("2006-01-02T15:04:05.999999Z07:00") != want {
			t.Errorf("parseTimestamp(%q) = %v, %v; want %s", in, us, ok, want)
		}
	}
	for _, in := range []string{"2023-02-29", "2024-1-01", "2024-01-01T25:00", "2024-01-01X", "20240101", "2024-01-01T10:00:00+25:00"} {
		if _, ok := parseTimestamp([]byte(in)); ok {
			t.Errorf("parseTimestamp(%q) ok", in)
		}
	}
}
