package profile

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// tcol is a test column as plain Go slices — what the independent
// computations below read — from which the Arrow batch is built.
type tcol struct {
	name  string
	typ   arrow.DataType
	valid []bool
	f     []float64 // Float64
	i     []int64   // Int64, Timestamp
	b     []bool
	s     []string
}

func (c *tcol) isNum() bool { return c.typ.ID() == arrow.FLOAT64 || c.typ.ID() == arrow.INT64 }

// num is row r as a float and whether it is present (not null, not NaN).
func (c *tcol) num(r int) (float64, bool) {
	if !c.valid[r] {
		return 0, false
	}
	if c.typ.ID() == arrow.INT64 {
		return float64(c.i[r]), true
	}
	return c.f[r], !math.IsNaN(c.f[r])
}

type tdata struct {
	n    int
	cols []*tcol
}

func (d *tdata) schema() *arrow.Schema {
	fs := make([]arrow.Field, len(d.cols))
	for i, c := range d.cols {
		fs[i] = arrow.Field{Name: c.name, Type: c.typ, Nullable: true}
	}
	return arrow.NewSchema(fs, nil)
}

func (d *tdata) record() arrow.RecordBatch {
	mem := memory.DefaultAllocator
	arrs := make([]arrow.Array, len(d.cols))
	for k, c := range d.cols {
		switch c.typ.ID() {
		case arrow.FLOAT64:
			b := array.NewFloat64Builder(mem)
			b.AppendValues(c.f, c.valid)
			arrs[k] = b.NewArray()
		case arrow.INT64:
			b := array.NewInt64Builder(mem)
			b.AppendValues(c.i, c.valid)
			arrs[k] = b.NewArray()
		case arrow.BOOL:
			b := array.NewBooleanBuilder(mem)
			b.AppendValues(c.b, c.valid)
			arrs[k] = b.NewArray()
		case arrow.STRING:
			b := array.NewStringBuilder(mem)
			b.AppendValues(c.s, c.valid)
			arrs[k] = b.NewArray()
		case arrow.TIMESTAMP:
			b := array.NewTimestampBuilder(mem, c.typ.(*arrow.TimestampType))
			ts := make([]arrow.Timestamp, len(c.i))
			for i, v := range c.i {
				ts[i] = arrow.Timestamp(v)
			}
			b.AppendValues(ts, c.valid)
			arrs[k] = b.NewArray()
		}
	}
	return array.NewRecordBatch(d.schema(), arrs, int64(d.n))
}

// genData makes n rows: floats with nulls, NaN, ±Inf, zeros; a correlated
// float on a large offset; low- and high-cardinality ints; a bool; Zipf
// strings over a large vocabulary; few categories; timestamps; a constant
// and an all-null column; and ~2% duplicated rows.
func genData(n int, seed uint64) *tdata {
	r := rand.New(rand.NewPCG(seed, 99))
	d := &tdata{n: n}
	add := func(name string, typ arrow.DataType) *tcol {
		c := &tcol{name: name, typ: typ, valid: make([]bool, n)}
		d.cols = append(d.cols, c)
		return c
	}
	f1 := add("f1", arrow.PrimitiveTypes.Float64)
	f2 := add("f2", arrow.PrimitiveTypes.Float64)
	i1 := add("i1", arrow.PrimitiveTypes.Int64)
	i2 := add("i2", arrow.PrimitiveTypes.Int64)
	bo := add("b", arrow.FixedWidthTypes.Boolean)
	s1 := add("s_zipf", arrow.BinaryTypes.String)
	s2 := add("s_cat", arrow.BinaryTypes.String)
	ts := add("t", &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"})
	k := add("const", arrow.PrimitiveTypes.Float64)
	z := add("nulls", arrow.PrimitiveTypes.Float64)
	f1.f, f2.f, k.f, z.f = make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	i1.i, i2.i, ts.i = make([]int64, n), make([]int64, n), make([]int64, n)
	bo.b, s1.s, s2.s = make([]bool, n), make([]string, n), make([]string, n)
	cats := []string{"red", "green", "blue", "ünïcode", ""}
	for i := range n {
		if i > 10 && r.Float64() < 0.02 { // a duplicate of an earlier row
			j := r.IntN(i)
			for _, c := range d.cols {
				c.valid[i] = c.valid[j]
				switch {
				case c.f != nil:
					c.f[i] = c.f[j]
				case c.i != nil:
					c.i[i] = c.i[j]
				case c.b != nil:
					c.b[i] = c.b[j]
				default:
					c.s[i] = c.s[j]
				}
			}
			continue
		}
		x := r.NormFloat64()
		f1.valid[i] = r.Float64() > 0.05
		switch u := r.Float64(); {
		case u < 0.01:
			f1.f[i] = math.NaN()
		case u < 0.013:
			f1.f[i] = math.Inf(1)
		case u < 0.015:
			f1.f[i] = math.Inf(-1)
		case u < 0.05:
			f1.f[i] = 0
		case u < 0.06:
			f1.f[i] = math.Copysign(0, -1)
		default:
			f1.f[i] = x
		}
		f2.valid[i] = r.Float64() > 0.1
		f2.f[i] = 1e6 + 3*x + r.NormFloat64()
		i1.valid[i] = true
		i1.i[i] = int64(r.IntN(50)) - 10
		i2.valid[i] = r.Float64() > 0.01
		i2.i[i] = r.Int64N(1 << 50)
		bo.valid[i] = r.Float64() > 0.2
		bo.b[i] = r.Float64() < 0.3
		s1.valid[i] = r.Float64() > 0.03
		s1.s[i] = fmt.Sprintf("w%d", int(math.Exp(r.Float64()*math.Log(3000))))
		s2.valid[i] = true
		s2.s[i] = cats[r.IntN(len(cats))]
		ts.valid[i] = r.Float64() > 0.1
		ts.i[i] = 1.7e12 + r.Int64N(1e10)
		k.valid[i] = true
		k.f[i] = 3.5
	}
	return d
}

// profileOf profiles d in random-size batches taken as zero-copy slices of
// one record (so arrays carry offsets).
func profileOf(t *testing.T, d *tdata, lo, hi int, opts Options, r *rand.Rand) *State {
	t.Helper()
	rec := d.record()
	defer rec.Release()
	s := NewState(d.schema(), opts)
	for a := lo; a < hi; {
		b := min(hi, a+1+r.IntN(7000))
		sl := rec.NewSlice(int64(a), int64(b))
		if err := s.Add(sl); err != nil {
			t.Fatal(err)
		}
		sl.Release()
		a = b
	}
	return s
}

func col(rep *Report, name string) *Column {
	for i := range rep.Columns {
		if rep.Columns[i].Name == name {
			return &rep.Columns[i]
		}
	}
	return nil
}

func f(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

func closeRel(a, b, tol float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= tol*max(math.Abs(a), math.Abs(b), 1e-300)
}

// closeAbs compares standardised statistics (skewness, kurtosis), whose
// rounding error is relative to 1, not to their value (which can be ~0).
func closeAbs(a, b, tol float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= tol*max(math.Abs(a), math.Abs(b), 1)
}

// naiveNumeric is the straightforward computation of a numeric column's
// statistics: exact sums with math/big, two-pass moments, sorting.
type naiveNumeric struct {
	count, missing, nulls, nan, inf, zeros, neg int64
	distinct                                    int
	finite                                      []float64 // sorted
	mean, sum, variance, skew, kurt, min, max   float64
}

func naiveNum(c *tcol) naiveNumeric {
	var z naiveNumeric
	set := map[float64]bool{}
	for r := range c.valid {
		if !c.valid[r] {
			z.nulls++
			continue
		}
		x, ok := c.num(r)
		if !ok {
			z.nan++
			continue
		}
		z.count++
		set[x] = true // -0 == 0 as a map key
		if math.IsInf(x, 0) {
			z.inf++
		} else {
			z.finite = append(z.finite, x)
		}
		if x == 0 {
			z.zeros++
		}
		if x < 0 {
			z.neg++
		}
	}
	z.missing = z.nulls + z.nan
	z.distinct = len(set)
	sort.Float64s(z.finite)
	n := float64(len(z.finite))
	z.mean, z.sum, z.variance, z.skew, z.kurt, z.min, z.max = math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN()
	if n == 0 {
		return z
	}
	exact := bigSum(z.finite)
	z.sum, _ = exact.Float64()
	if math.IsInf(z.sum, 0) {
		z.sum = math.NaN() // overflow: reported as null
	}
	z.mean, _ = new(big.Float).SetPrec(53).Quo(exact, big.NewFloat(n)).Float64()
	z.min, z.max = z.finite[0], z.finite[len(z.finite)-1]
	var m2, m3, m4 float64
	for _, x := range z.finite {
		d := x - z.mean
		m2 += d * d
		m3 += d * d * d
		m4 += d * d * d * d
	}
	if math.IsInf(m2, 0) {
		return z // overflowing moments are reported as null
	}
	if n >= 2 {
		z.variance = m2 / (n - 1)
	}
	// pandas' nanskew and nankurt, written out.
	if n >= 3 {
		if m2 == 0 {
			z.skew = 0
		} else {
			z.skew = (n * math.Sqrt(n-1) / (n - 2)) * m3 / math.Pow(m2, 1.5)
		}
	}
	if n >= 4 {
		if m2 == 0 {
			z.kurt = 0
		} else {
			adj := 3 * (n - 1) * (n - 1) / ((n - 2) * (n - 3))
			z.kurt = n*(n+1)*(n-1)*m4/((n-2)*(n-3)*m2*m2) - adj
		}
	}
	return z
}

// Memos of the naive results, which several reports of the same data are
// checked against.
var (
	naiveMu   sync.Mutex
	naiveNums = map[*tcol]naiveNumeric{}
	naiveDups = map[*tdata]int64{}
)

func naiveNumCached(c *tcol) naiveNumeric {
	naiveMu.Lock()
	defer naiveMu.Unlock()
	z, ok := naiveNums[c]
	if !ok {
		z = naiveNum(c)
		naiveNums[c] = z
	}
	return z
}

func naiveDuplicates(d *tdata) int64 {
	naiveMu.Lock()
	defer naiveMu.Unlock()
	if v, ok := naiveDups[d]; ok {
		return v
	}
	seen := map[string]bool{}
	for r := range d.n {
		seen[rowKey(d, r)] = true
	}
	naiveDups[d] = int64(d.n - len(seen))
	return naiveDups[d]
}

// pairValues are the rows where both columns are finite.
func pairValues(a, b *tcol) (xs, ys []float64) {
	for r := range a.valid {
		x, ok1 := a.num(r)
		y, ok2 := b.num(r)
		if ok1 && ok2 && !math.IsInf(x, 0) && !math.IsInf(y, 0) {
			xs = append(xs, x)
			ys = append(ys, y)
		}
	}
	return xs, ys
}

func naivePearson(x, y []float64) float64 {
	if len(x) < 2 {
		return math.NaN()
	}
	// Exact means, so that data far from zero loses nothing.
	n := big.NewFloat(float64(len(x)))
	mx, _ := new(big.Float).Quo(bigSum(x), n).Float64()
	my, _ := new(big.Float).Quo(bigSum(y), n).Float64()
	var sxy, sxx, syy float64
	for i := range x {
		sxy += (x[i] - mx) * (y[i] - my)
		sxx += (x[i] - mx) * (x[i] - mx)
		syy += (y[i] - my) * (y[i] - my)
	}
	if sxx == 0 || syy == 0 || math.IsInf(sxx*syy, 0) {
		return math.NaN()
	}
	return sxy / math.Sqrt(sxx*syy)
}

// naiveRanks is the O(n²) definition: 1 + #smaller + (#equal−1)/2.
func naiveRanks(v []float64) []float64 {
	r := make([]float64, len(v))
	for i := range v {
		less, eq := 0, 0
		for j := range v {
			if v[j] < v[i] {
				less++
			} else if v[j] == v[i] {
				eq++
			}
		}
		r[i] = float64(less) + float64(eq+1)/2
	}
	return r
}

// rowKey renders a row for the naive duplicate count (NaN equal to null,
// -0 equal to 0, like pandas' duplicated()).
func rowKey(d *tdata, r int) string {
	var sb strings.Builder
	for _, c := range d.cols {
		if !c.valid[r] {
			sb.WriteString("∅|")
			continue
		}
		switch {
		case c.f != nil:
			x := c.f[r]
			if math.IsNaN(x) {
				sb.WriteString("∅|")
				continue
			}
			if x == 0 {
				x = 0
			}
			fmt.Fprintf(&sb, "%v|", math.Float64bits(x))
		case c.i != nil:
			fmt.Fprintf(&sb, "%d|", c.i[r])
		case c.b != nil:
			fmt.Fprintf(&sb, "%v|", c.b[r])
		default:
			fmt.Fprintf(&sb, "%q|", c.s[r])
		}
	}
	return sb.String()
}

func checkQuantiles(t *testing.T, name string, nm *Numeric, finite []float64, eps float64) {
	t.Helper()
	qs := map[float64]*float64{0.05: nm.P5, 0.25: nm.P25, 0.5: nm.P50, 0.75: nm.P75, 0.95: nm.P95}
	for q, v := range qs {
		if v == nil {
			t.Errorf("%s: %v%% missing", name, 100*q)
			continue
		}
		if nm.QuantilesExact {
			want := finite[max(int(math.Ceil(q*float64(len(finite))))-1, 0)]
			if *v != want {
				t.Errorf("%s %v%%: %v, want exactly %v", name, 100*q, *v, want)
			}
		} else if e := rankError(finite, *v, q); e > eps {
			t.Errorf("%s %v%%: rank error %.4f > ε %.4f", name, 100*q, e, eps)
		}
	}
	if f(nm.IQR) != f(nm.P75)-f(nm.P25) {
		t.Errorf("%s: iqr %v", name, f(nm.IQR))
	}
	h := nm.Histogram
	var total int64
	for i, c := range h.Counts {
		total += c
		// The straightforward count of the bin.
		var want int64
		for _, x := range finite {
			last := i == len(h.Counts)-1
			if x >= h.Edges[i] && (x < h.Edges[i+1] || last && x <= h.Edges[i+1]) {
				want++
			}
		}
		tol := int64(0)
		if !h.Exact {
			tol = int64(math.Ceil(2 * eps * float64(len(finite))))
		}
		if d := c - want; d > tol || d < -tol {
			t.Errorf("%s: bin %d count %d, want %d ± %d", name, i, c, want, tol)
		}
	}
	if total != int64(len(finite)) {
		t.Errorf("%s: histogram total %d, want %d", name, total, len(finite))
	}
}

// checkReport compares every statistic of rep with the straightforward
// computation on d.
func checkReport(t *testing.T, d *tdata, rep *Report, opts Options) {
	t.Helper()
	opts = opts.withDefaults()
	eps := kllRankError(opts.QuantileK)
	hllTol := 4 * hllStdErr(opts.HLLPrecision)
	if rep.Table.Rows != int64(d.n) || rep.Table.Columns != len(d.cols) {
		t.Fatalf("table %+v", rep.Table)
	}
	checkSample(t, d, rep, opts)
	// Duplicates.
	wantDup := naiveDuplicates(d)
	if rep.Table.DuplicateRowsExact {
		if rep.Table.DuplicateRows != wantDup {
			t.Errorf("duplicate rows %d, want %d", rep.Table.DuplicateRows, wantDup)
		}
	} else if math.Abs(float64(rep.Table.DuplicateRows-wantDup)) > 4*rep.Table.DuplicateRowsStdErr {
		t.Errorf("duplicate rows %d, want %d ± 4×%.0f", rep.Table.DuplicateRows, wantDup, rep.Table.DuplicateRowsStdErr)
	}
	var missingCells int64
	for _, c := range d.cols {
		got := col(rep, c.name)
		switch {
		case c.isNum():
			z := naiveNumCached(c)
			missingCells += z.missing
			nm := got.Numeric
			if got.Count != z.count || got.Missing != z.missing || nm.Nulls != z.nulls || nm.NaN != z.nan ||
				nm.Infinite != z.inf || nm.Zeros != z.zeros || nm.Negatives != z.neg {
				t.Errorf("%s: counts %+v %+v, want %+v", c.name, got, nm, z)
			}
			if got.DistinctExact && got.Distinct != int64(z.distinct) ||
				!got.DistinctExact && math.Abs(float64(got.Distinct-int64(z.distinct))) > hllTol*float64(z.distinct) {
				t.Errorf("%s: distinct %d (exact %v), want %d", c.name, got.Distinct, got.DistinctExact, z.distinct)
			}
			// Exact statistics: bit-identical.
			for _, p := range []struct {
				what      string
				got, want float64
			}{{"mean", f(nm.Mean), z.mean}, {"sum", f(nm.Sum), z.sum}, {"min", f(nm.Min), z.min}, {"max", f(nm.Max), z.max}} {
				if !(p.got == p.want || math.IsNaN(p.got) && math.IsNaN(p.want)) {
					t.Errorf("%s: %s %v, want %v", c.name, p.what, p.got, p.want)
				}
			}
			for _, p := range []struct {
				what      string
				got, want float64
			}{{"variance", f(nm.Variance), z.variance}, {"stddev", f(nm.Stddev), math.Sqrt(z.variance)},
				{"skewness", f(nm.Skewness), z.skew}, {"kurtosis", f(nm.Kurtosis), z.kurt}} {
				if !closeRel(p.got, p.want, 1e-9) && !(p.what == "skewness" || p.what == "kurtosis") ||
					!closeAbs(p.got, p.want, 1e-9) {
					t.Errorf("%s: %s %v, want %v", c.name, p.what, p.got, p.want)
				}
			}
			if len(z.finite) > 0 {
				checkQuantiles(t, c.name, nm, z.finite, eps)
			}
		case c.typ.ID() == arrow.STRING:
			counts := map[string]int64{}
			var n, chars, bytes int64
			minL, maxL := int64(math.MaxInt64), int64(-1)
			for r := range d.n {
				if c.valid[r] {
					n++
					counts[c.s[r]]++
					l := int64(len([]rune(c.s[r])))
					chars += l
					bytes += int64(len(c.s[r]))
					minL, maxL = min(minL, l), max(maxL, l)
				}
			}
			missingCells += int64(d.n) - n
			if got.Count != n || got.String.MinLength != minL || got.String.MaxLength != maxL ||
				f(got.String.MeanLength) != float64(chars)/float64(n) {
				t.Errorf("%s: %+v %+v", c.name, got, got.String)
			}
			keys := make([]string, 0, len(counts))
			for k := range counts {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if *got.String.Min != keys[0] || *got.String.Max != keys[len(keys)-1] {
				t.Errorf("%s: min/max %q %q", c.name, *got.String.Min, *got.String.Max)
			}
			if got.DistinctExact && got.Distinct != int64(len(counts)) ||
				!got.DistinctExact && math.Abs(float64(got.Distinct-int64(len(counts)))) > hllTol*float64(len(counts)) {
				t.Errorf("%s: distinct %d, want %d", c.name, got.Distinct, len(counts))
			}
			slices.SortFunc(keys, func(a, b string) int {
				if counts[a] != counts[b] {
					return int(counts[b] - counts[a])
				}
				return strings.Compare(a, b)
			})
			for i, tv := range got.TopValues {
				if got.TopValuesErrorBound == 0 {
					if tv.Value != keys[i] || tv.Count != counts[keys[i]] {
						t.Errorf("%s: top %d = %+v, want %s %d", c.name, i, tv, keys[i], counts[keys[i]])
					}
				} else if tv.Count > counts[tv.Value] || tv.Count < counts[tv.Value]-got.TopValuesErrorBound {
					t.Errorf("%s: top %+v, true %d, bound %d", c.name, tv, counts[tv.Value], got.TopValuesErrorBound)
				}
			}
		case c.typ.ID() == arrow.BOOL:
			var tr, fa int64
			for r := range d.n {
				if c.valid[r] && c.b[r] {
					tr++
				} else if c.valid[r] {
					fa++
				}
			}
			missingCells += int64(d.n) - tr - fa
			if got.Boolean.True != tr || got.Boolean.False != fa || got.Count != tr+fa {
				t.Errorf("%s: %+v", c.name, got.Boolean)
			}
		case c.typ.ID() == arrow.TIMESTAMP:
			set := map[int64]bool{}
			mn, mx := int64(math.MaxInt64), int64(math.MinInt64)
			for r := range d.n {
				if c.valid[r] {
					set[c.i[r]] = true
					mn, mx = min(mn, c.i[r]), max(mx, c.i[r])
				}
			}
			missingCells += got.Missing
			if *got.DateTime.MinRaw != mn || *got.DateTime.MaxRaw != mx ||
				*got.DateTime.Min != time.UnixMilli(mn).UTC().Format(time.RFC3339Nano) {
				t.Errorf("%s: %+v", c.name, got.DateTime)
			}
			if got.DistinctExact && got.Distinct != int64(len(set)) ||
				!got.DistinctExact && math.Abs(float64(got.Distinct-int64(len(set)))) > hllTol*float64(len(set)) {
				t.Errorf("%s: distinct %d, want %d", c.name, got.Distinct, len(set))
			}
		}
	}
	if rep.Table.MissingCells != missingCells {
		t.Errorf("missing cells %d, want %d", rep.Table.MissingCells, missingCells)
	}
	// Correlations.
	cr := rep.Correlations
	byName := map[string]*tcol{}
	for _, c := range d.cols {
		byName[c.name] = c
	}
	for a, na := range cr.Columns {
		for b, nb := range cr.Columns {
			x, y := pairValues(byName[na], byName[nb])
			want := naivePearson(x, y)
			if a == b && !math.IsNaN(want) {
				want = 1
			}
			if got := f(cr.Pearson[a][b]); !(math.IsNaN(got) && math.IsNaN(want)) && !(math.Abs(got-want) <= 1e-9) {
				t.Errorf("pearson %s,%s = %v, want %v", na, nb, got, want)
			}
			if !cr.SpearmanExact || len(x) > 3000 {
				continue
			}
			want = math.NaN()
			if len(x) >= 2 {
				want = naivePearson(naiveRanks(x), naiveRanks(y))
			}
			if got := f(cr.Spearman[a][b]); !(math.IsNaN(got) && math.IsNaN(want)) && !(math.Abs(got-want) <= 1e-9) {
				t.Errorf("spearman %s,%s = %v, want %v", na, nb, got, want)
			}
		}
	}
}

// checkSample: the report's row sample holds min(ReportSampleRows,
// SampleRows, rows) rows of the correlation columns, each a row of the
// data (null where missing or infinite).
func checkSample(t *testing.T, d *tdata, rep *Report, opts Options) {
	t.Helper()
	opts = opts.withDefaults()
	smp := rep.Sample
	if rep.Correlations == nil {
		if smp != nil {
			t.Fatalf("a sample %+v without numeric columns", smp)
		}
		return
	}
	if smp == nil || !slices.Equal(smp.Columns, rep.Correlations.Columns) {
		t.Fatalf("sample %+v, want the columns %v", smp, rep.Correlations.Columns)
	}
	if want := min(ReportSampleRows, opts.SampleRows, d.n); len(smp.Rows) != want || smp.Exact != (want == d.n) {
		t.Fatalf("sample of %d rows (exact %v), want %d", len(smp.Rows), smp.Exact, want)
	}
	var cols []*tcol
	for _, name := range smp.Columns {
		for _, c := range d.cols {
			if c.name == name {
				cols = append(cols, c)
			}
		}
	}
	sig := func(vals func(j int) (float64, bool)) string {
		var b strings.Builder
		for j := range cols {
			if v, ok := vals(j); ok && !math.IsInf(v, 0) {
				fmt.Fprintf(&b, "%v,", v+0) // -0 as 0
			} else {
				b.WriteString("null,")
			}
		}
		return b.String()
	}
	rows := map[string]bool{}
	for r := range d.n {
		rows[sig(func(j int) (float64, bool) { return cols[j].num(r) })] = true
	}
	for i, row := range smp.Rows {
		s := sig(func(j int) (float64, bool) {
			if row[j] == nil {
				return 0, false
			}
			return *row[j], true
		})
		if !rows[s] {
			t.Fatalf("sample row %d (%s) is no row of the data", i, s)
		}
	}
}

func TestReportAgainstNaive(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		opts Options
	}{
		{"small-exact", 2500, Options{}},
		{"sketched", 60000, Options{DistinctLimit: 500, TopCounters: 100, DuplicateLimit: 1000, SampleRows: 3000}},
		{"exact-duplicates", 20000, Options{ExactDuplicates: true, QuantileK: 400}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := genData(tc.n, 1)
			s := profileOf(t, d, 0, d.n, tc.opts, rand.New(rand.NewPCG(2, 3)))
			rep := s.Report()
			checkReport(t, d, rep, tc.opts)
			if _, err := json.Marshal(rep); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestAdversarialColumns(t *testing.T) {
	n := 5000
	r := rand.New(rand.NewPCG(4, 4))
	d := &tdata{n: n}
	mk := func(name string, gen func(i int) (float64, bool)) {
		c := &tcol{name: name, typ: arrow.PrimitiveTypes.Float64, valid: make([]bool, n), f: make([]float64, n)}
		for i := range n {
			c.f[i], c.valid[i] = gen(i)
		}
		d.cols = append(d.cols, c)
	}
	mk("all_null", func(int) (float64, bool) { return 0, false })
	mk("all_nan", func(int) (float64, bool) { return math.NaN(), true })
	mk("constant", func(int) (float64, bool) { return -7.25, true })
	mk("huge", func(int) (float64, bool) { return 1e307 * (r.Float64() + 1), true })
	mk("tiny", func(int) (float64, bool) { return 1e-310 * r.Float64(), true })
	mk("offset", func(i int) (float64, bool) { return 1e12 + float64(i)/8, true })
	mk("inf_only", func(i int) (float64, bool) { return math.Inf(1 - 2*(i%2)), true })
	mk("unique", func(i int) (float64, bool) { return float64(i), true })
	s := profileOf(t, d, 0, n, Options{}, r)
	rep := s.Report()
	checkReport(t, d, rep, Options{})
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatalf("report does not encode: %v", err)
	}
	if strings.Contains(string(js), "NaN") {
		t.Fatal("NaN in JSON")
	}
	huge := col(rep, "huge").Numeric
	if huge.Sum != nil || huge.Mean == nil || huge.Variance != nil {
		// The sum overflows float64 (null) but the exact mean does not;
		// the variance overflows too.
		t.Errorf("huge: sum %v mean %v var %v", huge.Sum, huge.Mean, huge.Variance)
	}
	alerts := map[string][]string{}
	for _, a := range rep.Alerts {
		alerts[a.Type] = append(alerts[a.Type], strings.Join(a.Columns, ","))
	}
	for typ, want := range map[string]string{
		AlertAllMissing: "all_null,all_nan",
		AlertConstant:   "constant",
		AlertInfinite:   "inf_only",
		AlertUnique:     "huge,tiny,offset,unique",
	} {
		if got := strings.Join(alerts[typ], ","); got != want {
			t.Errorf("%s alerts %q, want %q", typ, got, want)
		}
	}
	if len(alerts[AlertHighCorrelation]) == 0 {
		t.Error("no HIGH_CORRELATION alert for offset/unique-like columns")
	}
}

func TestEmptyAndMismatch(t *testing.T) {
	d := genData(0, 1)
	s := NewState(d.schema(), Options{})
	rep := s.Report()
	if rep.Table.Rows != 0 || len(rep.Alerts) != 0 {
		t.Fatalf("empty: %+v", rep.Table)
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Fatal(err)
	}
	other := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64, Nullable: true}}, nil)
	if err := s.Merge(NewState(other, Options{})); err == nil {
		t.Error("merged states of different schemas")
	}
	if err := s.Merge(NewState(d.schema(), Options{QuantileK: 400})); err == nil {
		t.Error("merged states of different options")
	}
	if err := s.Merge(NewState(d.schema(), Options{Alerts: Thresholds{Skewness: 3}})); err != nil {
		t.Errorf("alert thresholds should not block a merge: %v", err)
	}
	b := array.NewInt64Builder(memory.DefaultAllocator)
	b.Append(1)
	rec := array.NewRecordBatch(other, []arrow.Array{b.NewArray()}, 1)
	if err := s.Add(rec); err == nil {
		t.Error("added a batch of another schema")
	}
}

func TestMarshalRoundTripAndCorruption(t *testing.T) {
	d := genData(8000, 7)
	opts := Options{DistinctLimit: 300, TopCounters: 50, DuplicateLimit: 500, SampleRows: 1000}
	s := profileOf(t, d, 0, d.n, opts, rand.New(rand.NewPCG(1, 1)))
	blob, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := DecodeState(blob)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(s.Report())
	b, _ := json.Marshal(s2.Report())
	if string(a) != string(b) {
		t.Fatal("report changed across marshal/unmarshal")
	}
	blob2, _ := s2.MarshalBinary()
	if len(blob2) != len(blob) {
		t.Errorf("re-encoding changed size %d → %d", len(blob), len(blob2))
	}
	for _, cut := range []int{0, 5, 9, 100, len(blob) / 2, len(blob) - 1} {
		if _, err := DecodeState(blob[:cut]); err == nil {
			t.Errorf("decoded a state truncated at %d", cut)
		}
	}
	bad := slices.Clone(blob)
	bad[len(stateMagic)] = 99 // version
	if _, err := DecodeState(bad); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("bad version: %v", err)
	}
	// Flipped bytes must give an error or a state, never a panic.
	r := rand.New(rand.NewPCG(9, 9))
	for range 200 {
		c := slices.Clone(blob)
		c[r.IntN(len(c))] ^= byte(1 + r.IntN(255))
		_, _ = DecodeState(c)
	}
}

// TestStateSizeBounded: the encoded state does not grow with the rows.
func TestStateSizeBounded(t *testing.T) {
	opts := Options{DistinctLimit: 300, TopCounters: 50, DuplicateLimit: 500, SampleRows: 500}
	size := func(n int) int {
		d := genData(n, 3)
		s := profileOf(t, d, 0, n, opts, rand.New(rand.NewPCG(1, 1)))
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	s1, s2 := size(20000), size(80000)
	if float64(s2) > 1.2*float64(s1) {
		t.Errorf("state grew from %d to %d bytes with 4× the rows", s1, s2)
	}
}
