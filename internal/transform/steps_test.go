package transform

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// trow is a row of the generated table; nil is missing.
type trow struct {
	id  int64
	g   string
	x   *float64 // NaN sometimes: missing too
	y   *int64
	s   *string
	b   bool
	ts  int64 // µs
	pos int   // the row's place in the input
}

var tcols = []string{"id", "g", "x", "y", "s", "b", "ts"}

// genRows makes n rows with missing values and duplicates: every 10th
// row repeats an earlier one whole, every 7th repeats its (g, y).
func genRows(n int, seed uint64) []trow {
	rng := rand.New(rand.NewPCG(seed, 7))
	var rows []trow
	for i := range n {
		r := trow{id: int64(i), g: string(rune('a' + rng.IntN(5))), b: rng.IntN(3) == 0,
			ts: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro() + int64(rng.IntN(1e6))*1e6}
		if rng.IntN(9) != 0 {
			x := math.Round(rng.NormFloat64()*1e4) / 1e3
			if rng.IntN(50) == 0 {
				x *= 40 // outliers
			}
			if rng.IntN(60) == 0 {
				x = math.NaN()
			}
			r.x = &x
		}
		if rng.IntN(8) != 0 {
			y := int64(rng.IntN(200)) - 50
			r.y = &y
		}
		if rng.IntN(6) != 0 {
			s := []string{"red", "green", "blue", "cyan"}[rng.IntN(4)]
			if rng.IntN(3) == 0 {
				s = "green"
			}
			r.s = &s
		}
		if i > 0 && i%10 == 0 {
			r = rows[rng.IntN(i)]
		} else if i > 0 && i%7 == 0 {
			o := rows[rng.IntN(i)]
			r.g, r.y = o.g, o.y
		}
		r.pos = i
		rows = append(rows, r)
	}
	return rows
}

func writeRows(t *testing.T, dir string, rows []trow) string {
	var b strings.Builder
	b.WriteString(strings.Join(tcols, ",") + "\n")
	for _, r := range rows {
		x, y, s := "", "NA", ""
		if r.x != nil {
			x = strconv.FormatFloat(*r.x, 'g', -1, 64)
		}
		if r.y != nil {
			y = strconv.FormatInt(*r.y, 10)
		}
		if r.s != nil {
			s = *r.s
		}
		fmt.Fprintf(&b, "%d,%s,%s,%s,%s,%v,%s\n", r.id, r.g, x, y, s, r.b, time.UnixMicro(r.ts).UTC().Format(time.RFC3339))
	}
	return writeFile(t, dir, "data.csv", b.String())
}

func (r trow) cells() map[string]string {
	m := map[string]string{"id": strconv.FormatInt(r.id, 10), "g": r.g, "x": "∅", "y": "∅", "s": "∅",
		"b": strconv.FormatBool(r.b), "ts": time.UnixMicro(r.ts).UTC().Format(time.RFC3339Nano)}
	if r.x != nil {
		m["x"] = strconv.FormatFloat(*r.x, 'g', -1, 64)
	}
	if r.y != nil {
		m["y"] = strconv.FormatInt(*r.y, 10)
	}
	if r.s != nil {
		m["s"] = *r.s
	}
	return m
}

func (r trow) xMissing() bool { return r.x == nil || math.IsNaN(*r.x) }

func lines(rows []trow, cols ...string) []string {
	if len(cols) == 0 {
		cols = tcols
	}
	var out []string
	for _, r := range rows {
		c := r.cells()
		var vs []string
		for _, k := range cols {
			vs = append(vs, c[k])
		}
		out = append(out, strings.Join(vs, "|"))
	}
	return out
}

func where(rows []trow, keep func(trow) bool) []trow {
	var out []trow
	for _, r := range rows {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// exactMean is the mean rounded once, as internal/profile computes it.
func exactMean(vs []float64) float64 {
	s := new(big.Float).SetPrec(2000)
	for _, v := range vs {
		s.Add(s, new(big.Float).SetPrec(2000).SetFloat64(v))
	}
	s.Quo(s, new(big.Float).SetPrec(2000).SetInt64(int64(len(vs))))
	f, _ := s.Float64()
	return f
}

func flatten(rows [][]string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = strings.Join(r, "|")
	}
	return out
}

// TestSteps runs each step on a generated table, in 1 and in 4
// partitions, and checks the output against a direct computation.
func TestSteps(t *testing.T) {
	rows := genRows(3000, 1)
	dir := t.TempDir()
	data := writeRows(t, dir, rows)

	xs := func(rs []trow) []float64 {
		var v []float64
		for _, r := range rs {
			if !r.xMissing() {
				v = append(v, *r.x)
			}
		}
		return v
	}
	ys := func(rs []trow) []float64 {
		var v []float64
		for _, r := range rs {
			if r.y != nil {
				v = append(v, float64(*r.y))
			}
		}
		return v
	}
	firstOf := func(rs []trow, key func(trow) string) []trow {
		seen := map[string]bool{}
		return where(rs, func(r trow) bool {
			k := key(r)
			if seen[k] {
				return false
			}
			seen[k] = true
			return true
		})
	}
	full := func(r trow) string { return strings.Join(lines([]trow{r}), "") }

	cases := []struct {
		name    string
		steps   string
		cols    string   // the output's columns and types
		want    []string // in input order
		ordered bool
	}{
		{
			name:  "select-rename",
			steps: "- select: [x, id, g]\n- rename: {x: value, g: group}",
			cols:  "value:float64 id:int64 group:string",
			want:  lines(rows, "x", "id", "g"), ordered: true,
		},
		{
			name:  "cast",
			steps: "- cast: {y: float64, id: string, x: int64, b: int64, ts: string}\n- select: [id, x, y, b, ts]",
			cols:  "id:string x:int64 y:float64 b:int64 ts:string",
			want: func() []string {
				var out []string
				for _, r := range rows {
					c := r.cells()
					x := "∅"
					if !r.xMissing() {
						x = strconv.FormatInt(int64(math.Trunc(*r.x)), 10)
					}
					b := "0"
					if r.b {
						b = "1"
					}
					out = append(out, strings.Join([]string{c["id"], x, c["y"], b, c["ts"]}, "|"))
				}
				return out
			}(), ordered: true,
		},
		{
			name: "filter",
			steps: `- filter:
    all:
      - {column: x, op: between, value: [-1, 1.5]}
      - any:
          - {column: g, op: in, value: [a, b]}
          - {column: y, op: ">=", value: 100}
          - {column: s, op: is_null}
      - not: {column: s, op: "==", value: blue}
      - {column: ts, op: "<", value: "2024-01-10"}`,
			want: lines(where(rows, func(r trow) bool {
				cut := time.Date(2024, 1, 10, 0, 0, 0, 0, time.UTC).UnixMicro()
				return !r.xMissing() && *r.x >= -1 && *r.x <= 1.5 &&
					(r.g == "a" || r.g == "b" || r.y != nil && *r.y >= 100 || r.s == nil) &&
					!(r.s != nil && *r.s == "blue") && r.ts < cut
			})), ordered: true,
		},
		{
			name:  "filter-missing-compares-false",
			steps: `- filter: {column: y, op: "!=", value: 3}`,
			want:  lines(where(rows, func(r trow) bool { return r.y != nil && *r.y != 3 })), ordered: true,
		},
		{
			name:  "drop_missing-any",
			steps: "- drop_missing: {subset: [x, s]}",
			want:  lines(where(rows, func(r trow) bool { return !r.xMissing() && r.s != nil })), ordered: true,
		},
		{
			name:  "drop_missing-all",
			steps: "- drop_missing: {how: all, subset: [x, y]}",
			want:  lines(where(rows, func(r trow) bool { return !r.xMissing() || r.y != nil })), ordered: true,
		},
		{
			name:  "drop_missing-every-column",
			steps: "- drop_missing",
			want:  lines(where(rows, func(r trow) bool { return !r.xMissing() && r.y != nil && r.s != nil })), ordered: true,
		},
		{
			name:  "impute",
			steps: "- impute: {x: mean, y: median, s: mode}",
			want: func() []string {
				mean := exactMean(xs(rows))
				med := int64(quantile(ys(rows), 0.5))
				counts := map[string]int{}
				for _, r := range rows {
					if r.s != nil {
						counts[*r.s]++
					}
				}
				mode := ""
				for _, k := range []string{"blue", "cyan", "green", "red"} { // ties: the smallest
					if counts[k] > counts[mode] {
						mode = k
					}
				}
				var out []trow
				for _, r := range rows {
					if r.xMissing() {
						r.x = &mean
					}
					if r.y == nil {
						r.y = &med
					}
					if r.s == nil {
						r.s = &mode
					}
					out = append(out, r)
				}
				return lines(out)
			}(), ordered: true,
		},
		{
			name:  "impute-constant-no-pass",
			steps: "- impute: {s: {constant: none}, y: {constant: -1}}",
			want: func() []string {
				var out []trow
				none, m1 := "none", int64(-1)
				for _, r := range rows {
					if r.s == nil {
						r.s = &none
					}
					if r.y == nil {
						r.y = &m1
					}
					out = append(out, r)
				}
				return lines(out)
			}(), ordered: true,
		},
		{
			name:  "iqr",
			steps: "- iqr_outliers: {columns: [x, y], k: 1.0}",
			want: func() []string {
				x, y := xs(rows), ys(rows)
				xq1, xq3 := quantile(x, 0.25), quantile(x, 0.75)
				yq1, yq3 := quantile(y, 0.25), quantile(y, 0.75)
				return lines(where(rows, func(r trow) bool {
					okx := r.xMissing() || *r.x >= xq1-(xq3-xq1) && *r.x <= xq3+(xq3-xq1)
					oky := r.y == nil || float64(*r.y) >= yq1-(yq3-yq1) && float64(*r.y) <= yq3+(yq3-yq1)
					return okx && oky
				}))
			}(), ordered: true,
		},
		{
			name:  "iqr-after-filter",
			steps: "- filter: {column: g, op: '!=', value: a}\n- iqr_outliers: {columns: [x]}",
			want: func() []string {
				in := where(rows, func(r trow) bool { return r.g != "a" })
				x := xs(in)
				q1, q3 := quantile(x, 0.25), quantile(x, 0.75)
				return lines(where(in, func(r trow) bool {
					return r.xMissing() || *r.x >= q1-1.5*(q3-q1) && *r.x <= q3+1.5*(q3-q1)
				}))
			}(), ordered: true,
		},
		{
			name:  "drop_duplicates",
			steps: "- drop_duplicates",
			want:  lines(firstOf(rows, full)),
		},
		{
			name:  "drop_duplicates-subset",
			steps: "- drop_duplicates: {subset: [g, y], buckets: 3}",
			want: lines(firstOf(rows, func(r trow) string {
				return r.cells()["g"] + "|" + r.cells()["y"]
			})),
		},
		{
			name: "dedup-then-impute-then-dedup",
			steps: `- select: [g, y, s]
- drop_duplicates
- impute: {y: median}
- drop_duplicates: {subset: [g, y]}`,
			cols: "g:string y:int64 s:string",
			want: func() []string {
				a := firstOf(rows, func(r trow) string { return strings.Join(lines([]trow{r}, "g", "y", "s"), "") })
				med := int64(quantile(ys(a), 0.5))
				var b []trow
				for _, r := range a {
					if r.y == nil {
						r.y = &med
					}
					b = append(b, r)
				}
				return lines(firstOf(b, func(r trow) string { return strings.Join(lines([]trow{r}, "g", "y"), "") }), "g", "y", "s")
			}(),
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var outs [][]string
			for _, parts := range []int{1, 4} {
				out := filepath.Join(t.TempDir(), "out")
				spec := fmt.Sprintf("input: {url: %s, partitions: %d}\nsteps:\n%s\noutput: {url: %s}\n", data, parts, indent(c.steps), out)
				rep := mustRun(t, spec)
				if parts > 1 && rep.Partitions < 2 {
					t.Fatalf("%d partitions", rep.Partitions)
				}
				names, got := readRows(t, out)
				want := c.cols
				if want == "" {
					want = "id:int64 g:string x:float64 y:int64 s:string b:bool ts:timestamp"
				}
				if strings.Join(names, " ") != want {
					t.Fatalf("columns %v, want %s", names, want)
				}
				g := flatten(got)
				if c.ordered {
					sameLines(t, fmt.Sprintf("%d partitions", parts), g, c.want)
				} else {
					w := slices.Clone(c.want)
					sort.Strings(w)
					sameLines(t, fmt.Sprintf("%d partitions", parts), sorted(got), w)
				}
				if rep.RowsOut != int64(len(c.want)) || rep.RowsIn != int64(len(rows)) {
					t.Fatalf("report: %d → %d rows, want %d → %d", rep.RowsIn, rep.RowsOut, len(rows), len(c.want))
				}
				last := rep.Steps[len(rep.Steps)-1]
				if last.RowsOut != int64(len(c.want)) {
					t.Fatalf("last step %s: %d rows out, want %d", last.Op, last.RowsOut, len(c.want))
				}
				for i := 1; i < len(rep.Steps); i++ {
					if rep.Steps[i].RowsIn != rep.Steps[i-1].RowsOut {
						t.Fatalf("step %d in %d ≠ step %d out %d", i, rep.Steps[i].RowsIn, i-1, rep.Steps[i-1].RowsOut)
					}
				}
				outs = append(outs, g)
			}
		})
	}
}

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }
