package synth

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/hpcml/hpcml/internal/table"
)

type colKind uint8

const (
	kindFloat  colKind = iota
	kindInt            // int64, timestamp
	kindString         // string, bool
)

// collector holds one column's kept values.
type collector struct {
	name   string
	typ    arrow.DataType
	kind   colKind
	valid  []bool
	f      []float64
	i      []int64
	s      []string
	intern map[string]string
	// catOrder, if set, puts a string column's categories (given in byte
	// order) in the order they take on the copula's axis.
	catOrder func(cats []string)
}

// maxIntern bounds the strings a collector shares the memory of.
const maxIntern = 1 << 16

func newCollector(f arrow.Field) (*collector, error) {
	c := &collector{name: f.Name, typ: f.Type}
	switch table.TypeName(f.Type) {
	case "float64":
		c.kind = kindFloat
	case "int64", "timestamp":
		c.kind = kindInt
	case "string", "bool":
		c.kind, c.intern = kindString, map[string]string{}
	default:
		return nil, fmt.Errorf("column %q: type %s cannot be synthesised (int64, float64, bool, timestamp or string)", f.Name, f.Type)
	}
	return c, nil
}

func put[T any](s []T, at int32, v T) []T {
	if int(at) == len(s) {
		return append(s, v)
	}
	s[at] = v
	return s
}

func (c *collector) add(arr arrow.Array, slots []int32) {
	for row, at := range slots {
		if at >= 0 {
			c.valid = put(c.valid, at, arr.IsValid(row))
		}
	}
	switch a := arr.(type) {
	case *array.Float64:
		vs := a.Float64Values()
		for row, at := range slots {
			if at >= 0 {
				c.f = put(c.f, at, vs[row])
			}
		}
	case *array.Int64:
		vs := a.Int64Values()
		for row, at := range slots {
			if at >= 0 {
				c.i = put(c.i, at, vs[row])
			}
		}
	case *array.Timestamp:
		vs := a.TimestampValues()
		for row, at := range slots {
			if at >= 0 {
				c.i = put(c.i, at, int64(vs[row]))
			}
		}
	case *array.Boolean:
		for row, at := range slots {
			if at >= 0 {
				v := "false"
				if a.IsValid(row) && a.Value(row) {
					v = "true"
				}
				c.s = put(c.s, at, v)
			}
		}
	case *array.String:
		for row, at := range slots {
			if at >= 0 {
				v := ""
				if a.IsValid(row) {
					v = c.internString(a.Value(row))
				}
				c.s = put(c.s, at, v)
			}
		}
	}
}

func (c *collector) internString(v string) string {
	if s, ok := c.intern[v]; ok {
		return s
	}
	s := string([]byte(v)) // a copy: v points into the batch
	if len(c.intern) < maxIntern {
		c.intern[s] = s
	}
	return s
}

// marginal is the column's model and the ranks of its rows' values (NaN
// where null or NaN; ties get their average rank).
func (c *collector) marginal() (Column, []float32) {
	n := len(c.valid)
	col := Column{Name: c.name, Type: table.TypeName(c.typ)}
	z := make([]float32, n)
	for i := range z {
		z[i] = float32(math.NaN())
	}
	for _, ok := range c.valid {
		if !ok {
			col.Nulls++
		}
	}
	if int(col.Nulls) == n {
		col.Marginal = AllNull
		return col, z
	}
	switch c.kind {
	case kindFloat:
		col.Marginal = Continuous
		order := orderOf(c.f, func(i int) bool {
			if c.valid[i] && math.IsNaN(c.f[i]) {
				col.NaN++
			}
			return c.valid[i] && !math.IsNaN(c.f[i])
		})
		if len(order) == 0 {
			col.Marginal = AllNull
			return col, z
		}
		col.Sorted = make([]float64, len(order))
		for i, r := range order {
			col.Sorted[i] = c.f[r]
		}
		col.Decimals = decimals(col.Sorted)
		ranks(order, func(a, b int32) bool { return c.f[a] == c.f[b] }, z)
	case kindInt:
		col.Marginal = Discrete
		order := orderOf(c.i, func(i int) bool { return c.valid[i] })
		col.Values, col.Counts = groups(order, c.i)
		ranks(order, func(a, b int32) bool { return c.i[a] == c.i[b] }, z)
	case kindString:
		col.Marginal = Categorical
		codes := map[string]int64{}
		for i, s := range c.s {
			if c.valid[i] {
				codes[s] = 0
			}
		}
		col.Categories = make([]string, 0, len(codes))
		for s := range codes {
			col.Categories = append(col.Categories, s)
		}
		slices.Sort(col.Categories)
		if c.catOrder != nil {
			c.catOrder(col.Categories)
		}
		for i, s := range col.Categories {
			codes[s] = int64(i)
		}
		code := make([]int64, n)
		for i, s := range c.s {
			if c.valid[i] {
				code[i] = codes[s]
			}
		}
		order := orderOf(code, func(i int) bool { return c.valid[i] })
		_, col.Counts = groups(order, code)
		ranks(order, func(a, b int32) bool { return code[a] == code[b] }, z)
	}
	return col, z
}

// groups are the distinct values of vs in order and how often each
// occurs.
func groups(order []int32, vs []int64) (values, counts []int64) {
	for i, r := range order {
		if i == 0 || vs[r] != values[len(values)-1] {
			values = append(values, vs[r])
			counts = append(counts, 0)
		}
		counts[len(counts)-1]++
	}
	return values, counts
}

// standardized is a numeric column's values as (v − mean)/sd in
// float32 (NaN where null or not finite), for its Pearson correlations;
// nil for a string or bool column.
func (c *collector) standardized() []float32 {
	if c.kind == kindString {
		return nil
	}
	vs := make([]float64, len(c.valid))
	for i, ok := range c.valid {
		v := math.NaN()
		if ok && c.kind == kindFloat && !math.IsInf(c.f[i], 0) {
			v = c.f[i]
		} else if ok && c.kind == kindInt {
			v = float64(c.i[i])
		}
		vs[i] = v
	}
	return standardize(vs)
}

// empty: the column has no values (only nulls, or NaN).
func (c *collector) empty() bool {
	for i, ok := range c.valid {
		if ok && (c.kind != kindFloat || !math.IsNaN(c.f[i])) {
			return false
		}
	}
	return true
}

// strata are the rows of each of the column's distinct values, in order
// of the values (null last), and the values as text (nil for null).
func (c *collector) strata() ([][]int32, []*string) {
	all := make([]int32, len(c.valid))
	for i := range all {
		all[i] = int32(i)
	}
	cmpRows := func(a, b int32) int {
		va, vb := c.valid[a], c.valid[b]
		switch {
		case !va || !vb:
			return cmpBool(!va, !vb) // nulls last
		case c.kind == kindFloat:
			return cmpFloat(c.f[a], c.f[b])
		case c.kind == kindInt:
			return cmp.Compare(c.i[a], c.i[b])
		}
		return strings.Compare(c.s[a], c.s[b])
	}
	slices.SortStableFunc(all, cmpRows)
	var rows [][]int32
	var values []*string
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && cmpRows(all[i], all[j]) == 0 {
			j++
		}
		rows = append(rows, all[i:j:j])
		values = append(values, c.text(all[i]))
		i = j
	}
	return rows, values
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// cmpFloat orders floats with NaN last and all NaN equal.
func cmpFloat(a, b float64) int {
	an, bn := math.IsNaN(a), math.IsNaN(b)
	switch {
	case an || bn:
		return cmpBool(an, bn)
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// text is row's value as text, nil when null.
func (c *collector) text(row int32) *string {
	if !c.valid[row] {
		return nil
	}
	var s string
	switch {
	case c.kind == kindFloat:
		s = strconv.FormatFloat(c.f[row], 'g', -1, 64)
	case c.kind == kindInt && c.typ.ID() == arrow.TIMESTAMP:
		s = time.UnixMicro(c.i[row]).UTC().Format(time.RFC3339Nano)
	case c.kind == kindInt:
		s = strconv.FormatInt(c.i[row], 10)
	default:
		s = c.s[row]
	}
	return &s
}

// subset is the columns' values at rows.
func subset(cols []*collector, rows []int32) []*collector {
	out := make([]*collector, len(cols))
	for i, c := range cols {
		d := &collector{name: c.name, typ: c.typ, kind: c.kind, valid: pick(c.valid, rows)}
		switch c.kind {
		case kindFloat:
			d.f = pick(c.f, rows)
		case kindInt:
			d.i = pick(c.i, rows)
		default:
			d.s = pick(c.s, rows)
		}
		out[i] = d
	}
	return out
}

func pick[T any](vs []T, rows []int32) []T {
	out := make([]T, len(rows))
	for i, r := range rows {
		out[i] = vs[r]
	}
	return out
}

// sorted is a float column's values (not null, not NaN), ascending.
func (c *collector) sorted() []float64 {
	var vs []float64
	for i, ok := range c.valid {
		if ok && !math.IsNaN(c.f[i]) {
			vs = append(vs, c.f[i])
		}
	}
	slices.Sort(vs)
	return vs
}

// orderBy sets c's categories to be ordered by the mean of z (a
// column's normal scores, NaN where absent) over their rows, ties and
// categories without rows with z in byte order. It returns η², the share
// of z's variance between the categories.
func (c *collector) orderBy(z []float32) float64 {
	sum, n := map[string]float64{}, map[string]float64{}
	var all, allSq, count float64
	for i, ok := range c.valid {
		if v := float64(z[i]); ok && !math.IsNaN(v) {
			sum[c.s[i]] += v
			n[c.s[i]]++
			all += v
			allSq += v * v
			count++
		}
	}
	if count < 2 {
		return 0
	}
	mean := all / count
	total := allSq - count*mean*mean
	var between float64
	for g, s := range sum {
		m := s / n[g]
		between += n[g] * (m - mean) * (m - mean)
	}
	c.catOrder = func(cats []string) {
		key := func(s string) float64 {
			if n[s] == 0 {
				return mean
			}
			return sum[s] / n[s]
		}
		slices.SortStableFunc(cats, func(a, b string) int { return cmpFloat(key(a), key(b)) })
	}
	if total <= 0 {
		return 0
	}
	return between / total
}

// maxDecimals: values written with more decimals are not rounded.
const maxDecimals = 12

// decimals is the most decimals any of vs has written in its shortest
// exact form, or nil beyond maxDecimals.
func decimals(vs []float64) *int {
	most := 0
	var buf []byte
	for i, v := range vs {
		if math.IsInf(v, 0) || (i > 0 && v == vs[i-1]) {
			continue
		}
		buf = strconv.AppendFloat(buf[:0], v, 'f', -1, 64)
		if dot := bytes.IndexByte(buf, '.'); dot >= 0 {
			if d := len(buf) - dot - 1; d > most {
				if d > maxDecimals {
					return nil
				}
				most = d
			}
		}
	}
	return &most
}
