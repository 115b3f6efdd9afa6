package transform

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadSpecs: every bad spec is an error naming the spec's file, the
// line and the field, before anything is read or written.
func TestBadSpecs(t *testing.T) {
	dir := t.TempDir()
	data := writeFile(t, dir, "d.csv", "id,x,s,ts\n1,1.5,a,2024-01-01\n2,2.5,b,2024-01-02\n")
	taken := filepath.Join(dir, "taken")
	os.MkdirAll(taken, 0o755)
	os.WriteFile(filepath.Join(taken, "f"), nil, 0o644)
	out := filepath.Join(dir, "out")
	head := fmt.Sprintf("input: {url: %s}\noutput: {url: %s}\n", data, out)
	cases := []struct{ spec, want string }{
		{"inptu: {url: x}\n", `line 1: inptu: unknown field "inptu" (fields here: input, steps, output)`},
		{"input: {url: x}\n", `output: missing`},
		{fmt.Sprintf("input: {url: %s, header: true}\noutput: {url: o}\n", data), `input.header: unknown field "header"`},
		{head + "steps:\n  - sort: [x]\n", `line 4: steps[0].sort: unknown field "sort" (fields here: select, rename`},
		{head + "steps:\n  - select: [id]\n    rename: {id: k}\n", `line 4: steps[0]: one step per list item, not select and rename`},
		{head + "steps:\n  - select: [id, nope]\n", `line 4: steps[0].select[1]: no column "nope" here (the columns here: id, x, s, ts)`},
		{head + "steps:\n  - select: [id]\n  - filter: {column: x, op: '>', value: 1}\n", `line 5: steps[1].filter.column: no column "x" here (the columns here: id)`},
		{head + "steps:\n  - filter: {column: x, op: '~=', value: 1}\n", `line 4: steps[0].filter.op: unknown op "~=" (one of ==, !=, <, <=, >, >=, between, in, not_in, is_null, not_null)`},
		{head + "steps:\n  - filter: {column: x, opp: '>', value: 1}\n", `steps[0].filter.opp: unknown field "opp"`},
		{head + "steps:\n  - filter: {column: x, op: '>', value: abc}\n", `line 4: steps[0].filter.value: column "x" is float64: "abc" is not a float64`},
		{head + "steps:\n  - filter: {column: x, op: between, value: 3}\n", `steps[0].filter.value: between takes [low, high]`},
		{head + "steps:\n  - filter:\n      all:\n        - {column: s, op: is_null, value: 1}\n", `line 6: steps[0].filter.all[0].value: is_null takes no value`},
		{head + "steps:\n  - split: {fractions: {train: 0.8, test: 0.1}}\n", `line 4: steps[0].split.fractions: fractions sum to 0.9, not 1`},
		{head + "steps:\n  - split: {fractions: {train: 1.2, test: -0.2}}\n", `steps[0].split.fractions.train: fraction 1.2: must be between 0 and 1`},
		{head + "steps:\n  - split: {fractions: {_tmp: 1}}\n", `steps[0].split.fractions._tmp: split name "_tmp"`},
		{head + "steps:\n  - split: {fractions: {a: 1}}\n  - select: [id]\n", `line 5: steps[1].select: split must be the last step`},
		{head + "steps:\n  - split: {fractions: {a: 1}, seed: -3}\n", `steps[0].split.seed: want a whole number`},
		{head + "steps:\n  - impute: {s: mean}\n", `line 4: steps[0].impute.s: mean of column "s": it is string, not numeric`},
		{head + "steps:\n  - impute: {x: average}\n", `steps[0].impute.x: unknown strategy "average"`},
		{head + "steps:\n  - impute: {id: {constant: x1}}\n", `steps[0].impute.id.constant: column "id" is int64: "x1" is not an int64`},
		{head + "steps:\n  - cast: {x: decimal}\n", `steps[0].cast.x: unknown type "decimal"`},
		{head + "steps:\n  - cast: {ts: float64}\n", `steps[0].cast.ts: ts: cannot cast timestamp to float64`},
		{head + "steps:\n  - iqr_outliers: {columns: [s]}\n", `steps[0].iqr_outliers.columns[0]: column "s" is string, not numeric`},
		{head + "steps:\n  - iqr_outliers: {k: -1}\n", `steps[0].iqr_outliers.k: k -1: cannot be negative`},
		{head + "steps:\n  - rename: {id: x}\n", `steps[0].rename: two columns would be named "x"`},
		{head + "steps:\n  - drop_missing: {how: some}\n", `steps[0].drop_missing.how: how "some": any or all`},
		{head + "steps:\n  - drop_duplicates: {subset: [id, id]}\n", `steps[0].drop_duplicates.subset[1]: column "id" named twice`},
		{fmt.Sprintf("input: {url: %s}\noutput: {url: %s, partition_by: [nope]}\n", data, out), `line 2: output.partition_by[0]: no column "nope" in the output`},
		{fmt.Sprintf("input: {url: %s}\noutput: {url: %s, format: csv, compression: zstd}\n", data, out), `output.compression: CSV output is written uncompressed`},
		{fmt.Sprintf("input: {url: %s}\noutput: {url: %s}\n", data, taken), `line 2: output.url: ` + taken + ` exists and is not empty (set output.overwrite: true to replace it)`},
		{fmt.Sprintf("input: {url: %s}\noutput: {url: 'http://x/y'}\n", data), `output: output URL "http://x/y": write to a local path, file:// or s3:// URL`},
		{"input: [1\n", `spec.yaml: line 1: did not find expected`},
	}
	for _, c := range cases {
		_, err := runSpec(t, c.spec, 1)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "spec.yaml") {
			t.Errorf("spec:\n%s\nerror: %v\nwant: %s", c.spec, err, c.want)
		}
		var se *SpecError
		if err != nil && !errors.As(err, &se) {
			t.Errorf("%v: not a SpecError", err)
		}
	}
	if e := entries(dir); strings.Join(e, " ") != "d.csv taken" {
		t.Fatalf("bad specs left %v", e)
	}
}

// TestBadData: a malformed row fails the run with its file and line (the
// reader's message, or the cast's), and the destination stays empty.
func TestBadData(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("id,v\n")
	for i := range 30000 {
		if i == 25000 {
			b.WriteString("\n") // a blank line, which does not count
		}
		fmt.Fprintf(&b, "%d,%d\n", i, i%100)
	}
	good := b.String()
	ragged := writeFile(t, dir, "ragged.csv", good+"1,2,3\n")
	lateBad := writeFile(t, dir, "late.csv", strings.Replace(good, "\n27000,0\n", "\n27000,x7\n", 1))
	quoted := writeFile(t, dir, "quoted.csv", "id,v\n1,\"a\nb\"\n2,3\n3,\"4\"\n4,oops\n")
	for _, c := range []struct {
		input, steps, want string
		parts              int
	}{
		{ragged, "", "ragged.csv:line 30003: 3 fields, expected 2", 3},
		{lateBad, "", `late.csv:line 27003, column "v": "x7" is not an int64`, 3},
		// v read as a string, cast: the cast names the row's line.
		{lateBad + "\n  types: {v: string}", "  - filter: {column: id, op: '>', value: 100}\n  - cast: {v: int64}",
			`late.csv:line 27003, column "v": steps[1].cast: "x7" is not an int64`, 3},
		{quoted, "  - filter: {column: id, op: '>', value: 1}\n  - cast: {v: int64}", `quoted.csv:line 6, column "v": steps[1].cast: "oops" is not an int64`, 1},
		{quoted, "  - drop_duplicates\n  - filter: {column: id, op: '>', value: 1}\n  - cast: {v: float64}", `quoted.csv:line 6, column "v": steps[2].cast: "oops" is not a float64`, 1},
	} {
		out := filepath.Join(dir, "out")
		spec := fmt.Sprintf("input:\n  url: %s\n  partitions: %d\nsteps:\n%s\noutput: {url: %s}\n", c.input, c.parts, c.steps, out)
		if c.steps == "" {
			spec = strings.Replace(spec, "steps:\n\n", "", 1)
		}
		_, err := runSpec(t, spec, 2)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %s", c.input, err, c.want)
		}
		if e := entries(dir); len(e) != 3 {
			t.Fatalf("after a failure: %v", e)
		}
	}
}

// TestDestination: an existing output is replaced only with overwrite,
// whole; an empty directory is taken.
func TestDestination(t *testing.T) {
	dir := t.TempDir()
	data := writeFile(t, dir, "d.csv", "id,x\n1,1.5\n2,2.5\n")
	out := filepath.Join(dir, "out")
	os.MkdirAll(out, 0o755) // empty: fine
	spec := fmt.Sprintf("input: {url: %s}\noutput: {url: %s}\n", data, out)
	mustRun(t, spec)
	if e := entries(out); strings.Join(e, " ") != "_SUCCESS part-00000.parquet" {
		t.Fatalf("output %v", e)
	}
	if _, err := runSpec(t, spec, 1); err == nil || !strings.Contains(err.Error(), "exists and is not empty") {
		t.Fatalf("second run: %v", err)
	}
	spec2 := fmt.Sprintf("input: {url: %s}\nsteps:\n  - filter: {column: id, op: '==', value: 2}\noutput: {url: %s, overwrite: true, format: csv}\n", data, out)
	mustRun(t, spec2)
	if e := entries(out); strings.Join(e, " ") != "_SUCCESS part-00000.csv" {
		t.Fatalf("overwritten output %v", e)
	}
	if _, rows := readRows(t, out); len(rows) != 1 || rows[0][0] != "2" {
		t.Fatalf("rows %v", rows)
	}
	if e := entries(dir); strings.Join(e, " ") != "d.csv out" {
		t.Fatalf("left beside the output: %v", e)
	}
	// partition_by: Hive directories inside each split's.
	pout := filepath.Join(dir, "parted")
	mustRun(t, fmt.Sprintf("input: {url: %s}\nsteps:\n  - split: {fractions: {all: 1}}\noutput: {url: %s, partition_by: [id]}\n", data, pout))
	if e := entries(filepath.Join(pout, "all")); strings.Join(e, " ") != "id=1 id=2" {
		t.Fatalf("partitioned output %v", e)
	}
	if _, rows := readRows(t, filepath.Join(pout, "all")); len(rows) != 2 {
		t.Fatalf("partitioned rows %v", rows)
	}
}
