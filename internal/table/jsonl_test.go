package table

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

func TestJSONL(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "d.jsonl", ``+
		`{"id": 1, "x": 1.5, "ok": true, "when": "2024-03-01", "name": "a", "tags": [1, 2], "mixed": 1}`+"\n"+
		`{"id": 2, "x": 2, "ok": false, "when": "2024-03-01T10:00:00Z", "name": null, "mixed": "s"}`+"\n"+
		"\n"+
		`{"x": 1e3, "id": 3, "extra": null, "tags": {"a": "b"}}`+"\n")
	s, rows := readURL(t, p, Options{})
	eq(t, "types", types(s), "id:int64 x:float64 ok:bool when:timestamp name:string tags:string mixed:string extra:string")
	eq(t, "rows", rows, []string{
		"1|1.5|true|2024-03-01T00:00:00Z|a|[1,2]|1|∅",
		"2|2|false|2024-03-01T10:00:00Z|∅|∅|s|∅",
		"3|1000|∅|∅|∅|{\"a\":\"b\"}|∅|∅",
	})
	// Types set: x as string keeps the JSON text.
	s, rows = readURL(t, p, Options{Types: map[string]arrow.DataType{"x": String, "id": Float64}})
	eq(t, "set types", types(s), "id:float64 x:string ok:bool when:timestamp name:string tags:string mixed:string extra:string")
	eq(t, "set rows", rows[2], "3|1e3|∅|∅|∅|{\"a\":\"b\"}|∅|∅")

	for _, c := range []struct {
		name, content string
		opts          Options
		want          string
	}{
		{"arr.jsonl", "{\"a\": 1}\n[1, 2]\n", Options{}, "arr.jsonl:line 2: a JSON array, not an object"},
		{"scalar.jsonl", "{\"a\": 1}\n{\"a\": 2}\n42\n", Options{SampleRows: 1}, "scalar.jsonl:line 3: not a JSON object"},
		{"bad.jsonl", "{\"a\": 1}\n{\"a\": 1,}\n", Options{}, "bad.jsonl:line 2: not valid JSON: "},
		{"two.jsonl", "{\"a\": 1} {\"a\": 2}\n", Options{}, "two.jsonl:line 1: more than one JSON value on the line"},
		{"late.jsonl", "{\"a\": 1}\n{\"a\": \"x\"}\n", Options{SampleRows: 1}, `late.jsonl:line 2, column "a": "\"x\"" is not an int64 (inferred from the first 1 rows of `},
		{"key.jsonl", "{\"a\": 1}\n{\"a\": 2, \"b\": 3}\n", Options{SampleRows: 1}, `key.jsonl:line 2, column "b": a key that is not a column (the columns are the keys of the first 1 lines of `},
		{"utf8.jsonl", "{\"a\": \"caf\xe9\"}\n", Options{}, "utf8.jsonl:line 1: bytes that are not UTF-8 at byte 11 of the line"},
		{"empty.jsonl", "", Options{}, "empty.jsonl: empty: no lines"},
		{"blank.json", "\n \n", Options{}, "blank.json: empty: no lines"},
		{"nokeys.jsonl", "{}\n{}\n", Options{}, "nokeys.jsonl: no keys in the first 2 objects"},
	} {
		err := readErr(t, write(t, dir, c.name, c.content), c.opts)
		wantErr(t, err, c.want)
	}
	// NaN and infinities as strings in a float column.
	_, rows = readURL(t, write(t, dir, "nan.jsonl", "{\"f\": 1.5}\n{\"f\": \"NaN\"}\n{\"f\": \"-Infinity\"}\n"), Options{SampleRows: 1})
	eq(t, "nan", rows, []string{"1.5", "NaN", "-Inf"})
}
