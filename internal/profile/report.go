package profile

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// ReportVersion is the version of the Report's JSON shape; it changes only
// when a field changes meaning or goes away (new fields may be added).
const ReportVersion = 1

// Report is a profile, ready for JSON (`hpcml data profile -o json`), the
// CLI's tables and the dashboard's charts. Names follow Spark's summary()
// (count, mean, stddev, min, 25%, 50%, 75%, max) and ydata-profiling's
// checklist. A statistic that is undefined (the mean of no values, the
// variance of one) is null, never NaN. docs/profile.md defines each one.
type Report struct {
	Version      int           `json:"version"`
	Table        Table         `json:"table"`
	Columns      []Column      `json:"columns"`
	Correlations *Correlations `json:"correlations,omitempty"`
	// Sample holds a few rows of the correlation columns, for scatter
	// plots; nil when no column is numeric.
	Sample   *Sample  `json:"sample,omitempty"`
	Alerts   []Alert  `json:"alerts"`
	Accuracy Accuracy `json:"accuracy"`
}

// ReportSampleRows bounds the rows of Report.Sample.
const ReportSampleRows = 1000

// Sample is a bounded sample of the table's rows over the correlation
// columns: the (at most ReportSampleRows) rows with the smallest row hashes,
// i.e. the first rows of the Spearman sample. Like it, it is a function of
// the data alone, the same for every partitioning, and all of the table
// when the table is that small. Rows are in hash order (which looks
// random); a value is null where the row's value is missing, NaN or
// infinite.
type Sample struct {
	Columns []string     `json:"columns"`
	Rows    [][]*float64 `json:"rows"`
	// Exact: the sample is every row of the table.
	Exact bool `json:"exact"`
}

// Table holds the whole-table statistics.
type Table struct {
	Rows    int64 `json:"rows"`
	Columns int   `json:"columns"`
	// MemoryBytes is the size of the data as Arrow arrays: validity
	// bitmaps, 8 bytes per Int64/Float64/Timestamp value, a bit per
	// Boolean, 4-byte offsets plus the bytes of String values.
	MemoryBytes       int64   `json:"memory_bytes"`
	MissingCells      int64   `json:"missing_cells"`
	MissingCellsShare float64 `json:"missing_cells_share"`
	// DuplicateRows counts rows equal to an earlier row (NaN equal to
	// null and to NaN, like pandas' duplicated()).
	DuplicateRows      int64   `json:"duplicate_rows"`
	DuplicateRowsShare float64 `json:"duplicate_rows_share"`
	DuplicateRowsExact bool    `json:"duplicate_rows_exact"`
	// DuplicateRowsStdErr is the standard error of an estimated
	// DuplicateRows, in rows (0 when exact).
	DuplicateRowsStdErr float64 `json:"duplicate_rows_stderr"`
	// Types counts columns by inferred type.
	Types map[string]int `json:"types"`
}

// Inferred column types (ydata-profiling's names).
const (
	TypeNumeric     = "Numeric"
	TypeCategorical = "Categorical"
	TypeText        = "Text"
	TypeBoolean     = "Boolean"
	TypeDateTime    = "DateTime"
	TypeUnsupported = "Unsupported"
)

// Column holds one column's statistics. Count is the non-missing values;
// Missing the nulls plus (in Float64 columns) the NaNs.
type Column struct {
	Name         string  `json:"name"`
	ArrowType    string  `json:"arrow_type"`
	Type         string  `json:"type"`
	Count        int64   `json:"count"`
	Missing      int64   `json:"missing"`
	MissingShare float64 `json:"missing_share"`
	// Distinct counts distinct non-missing values: exactly when
	// DistinctExact, else a HyperLogLog estimate (Accuracy.DistinctStdErr).
	Distinct      int64   `json:"distinct"`
	DistinctShare float64 `json:"distinct_share"`
	DistinctExact bool    `json:"distinct_exact"`

	Numeric  *Numeric  `json:"numeric,omitempty"`
	String   *Strings  `json:"string,omitempty"`
	Boolean  *Boolean  `json:"boolean,omitempty"`
	DateTime *DateTime `json:"datetime,omitempty"`

	// TopValues are the most frequent values of String and Boolean
	// columns, most frequent first. When TopValuesErrorBound > 0 the
	// counts come from a Misra–Gries summary: each is a lower bound, short
	// of the true count by at most TopValuesErrorBound.
	TopValues           []TopValue `json:"top_values,omitempty"`
	TopValuesErrorBound int64      `json:"top_values_error_bound,omitempty"`
}

// Numeric holds the statistics of an Int64 or Float64 column. Moments,
// sum, min, max, quantiles and histogram are over the finite values;
// infinities are counted in Infinite (and in Negatives when −Inf).
type Numeric struct {
	Nulls     int64 `json:"nulls"`
	NaN       int64 `json:"nan"`
	Infinite  int64 `json:"infinite"`
	Zeros     int64 `json:"zeros"`
	Negatives int64 `json:"negatives"`

	Mean *float64 `json:"mean"`
	// Stddev and Variance are the sample ones (n−1), like Spark and pandas.
	Stddev   *float64 `json:"stddev"`
	Variance *float64 `json:"variance"`
	Min      *float64 `json:"min"`
	P5       *float64 `json:"5%"`
	P25      *float64 `json:"25%"`
	P50      *float64 `json:"50%"`
	P75      *float64 `json:"75%"`
	P95      *float64 `json:"95%"`
	Max      *float64 `json:"max"`
	IQR      *float64 `json:"iqr"`
	Sum      *float64 `json:"sum"`
	// Skewness is the adjusted Fisher–Pearson G1 and Kurtosis the excess
	// kurtosis G2, both bias-corrected as pandas' skew() and kurt().
	Skewness *float64 `json:"skewness"`
	Kurtosis *float64 `json:"kurtosis"`
	// QuantilesExact: the sketch kept every value, so the quantiles and the
	// histogram are exact.
	QuantilesExact bool       `json:"quantiles_exact"`
	Histogram      *Histogram `json:"histogram,omitempty"`
}

// Histogram has len(Counts) equal-width bins: bin i is
// [Edges[i], Edges[i+1]), the last one closed.
type Histogram struct {
	Edges  []float64 `json:"edges"`
	Counts []int64   `json:"counts"`
	// Exact is false when counts come from the quantile sketch's CDF:
	// each is then within ±2·quantile_rank_error·count.
	Exact bool `json:"exact"`
}

// Strings holds the statistics of a String column; lengths are in
// Unicode code points, Min and Max compare bytes.
type Strings struct {
	MinLength  int64    `json:"min_length"`
	MaxLength  int64    `json:"max_length"`
	MeanLength *float64 `json:"mean_length"`
	Min        *string  `json:"min"`
	Max        *string  `json:"max"`
}

// Boolean holds the statistics of a Boolean column.
type Boolean struct {
	True      int64    `json:"true"`
	False     int64    `json:"false"`
	TrueShare *float64 `json:"true_share"`
}

// DateTime holds the statistics of a Timestamp column: Min and Max as
// RFC 3339 (in the column's time zone, UTC when it has none) and as raw
// counts of Unit since the epoch.
type DateTime struct {
	Unit   string  `json:"unit"`
	Min    *string `json:"min"`
	Max    *string `json:"max"`
	MinRaw *int64  `json:"min_raw"`
	MaxRaw *int64  `json:"max_raw"`
}

// TopValue is a value and how often it occurs.
type TopValue struct {
	Value string  `json:"value"`
	Count int64   `json:"count"`
	Share float64 `json:"share"`
}

// Correlations are the matrices over the numeric columns listed (null where
// undefined: a constant column, fewer than two common rows).
type Correlations struct {
	Columns []string `json:"columns"`
	// Pearson over the rows where both columns are finite (pairwise
	// complete, like pandas' corr()), from exact co-moments.
	Pearson [][]*float64 `json:"pearson"`
	// Spearman over a sample of SpearmanSampleRows rows; exact (the
	// sample is the whole table) when SpearmanExact.
	Spearman           [][]*float64 `json:"spearman"`
	SpearmanSampleRows int64        `json:"spearman_sample_rows"`
	SpearmanExact      bool         `json:"spearman_exact"`
	SpearmanStdErr     float64      `json:"spearman_stderr"`
}

// Alert types (ydata-profiling's names where it has one).
const (
	AlertConstant        = "CONSTANT"
	AlertHighCorrelation = "HIGH_CORRELATION"
	AlertHighMissing     = "HIGH_MISSING"
	AlertAllMissing      = "ALL_MISSING"
	AlertSkewed          = "SKEWED"
	AlertUnique          = "UNIQUE"
	AlertDuplicates      = "DUPLICATES"
	AlertZeros           = "ZEROS"
	AlertInfinite        = "INFINITE"
	AlertHighCardinality = "HIGH_CARDINALITY"
)

// Alert flags something worth a look. Columns is empty for table alerts,
// one name for column alerts, two for HIGH_CORRELATION.
type Alert struct {
	Type    string   `json:"type"`
	Columns []string `json:"columns,omitempty"`
	Value   float64  `json:"value"`
	Message string   `json:"message"`
}

// Accuracy states the errors of the sketched statistics.
type Accuracy struct {
	// QuantileRankError ε: with 99% confidence each quantile's rank is
	// within ε·count of the target rank (KLL sketch, k = QuantileK).
	QuantileRankError float64 `json:"quantile_rank_error"`
	QuantileK         int     `json:"quantile_k"`
	// DistinctLimit: distinct counts are exact up to it; beyond, a
	// HyperLogLog estimate with relative standard error DistinctStdErr.
	DistinctLimit  int     `json:"distinct_limit"`
	DistinctStdErr float64 `json:"distinct_stderr"`
	// TopCounters is the Misra–Gries summary size for top values beyond
	// DistinctLimit.
	TopCounters int `json:"top_counters"`
	// MomentRelTolerance bounds how much variance, stddev, skewness,
	// kurtosis and Pearson may differ between partitionings of the same
	// data (floating-point merge order); count, missing, min, max, sum,
	// mean, zeros, negatives, infinities and exact distinct counts are
	// identical.
	MomentRelTolerance float64 `json:"moment_rel_tolerance"`
	SampleRows         int     `json:"sample_rows"`
}

// MomentRelTolerance: see Accuracy.
const MomentRelTolerance = 1e-12

func num(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func share(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Report computes the profile from the state (which is not changed).
func (s *State) Report() *Report {
	o := s.opts
	r := &Report{
		Version: ReportVersion,
		Alerts:  []Alert{},
		Accuracy: Accuracy{
			QuantileRankError:  kllRankError(o.QuantileK),
			QuantileK:          o.QuantileK,
			DistinctLimit:      o.DistinctLimit,
			DistinctStdErr:     hllStdErr(o.HLLPrecision),
			TopCounters:        o.TopCounters,
			MomentRelTolerance: MomentRelTolerance,
			SampleRows:         o.SampleRows,
		},
	}
	t := &r.Table
	t.Rows = s.rows
	t.Columns = len(s.cols)
	t.Types = map[string]int{}
	validity := (s.rows + 7) / 8
	for i, c := range s.cols {
		f := s.schema.Field(i)
		col := s.columnReport(f, c)
		t.Types[col.Type]++
		t.MissingCells += col.Missing
		t.MemoryBytes += validity
		switch c.kind {
		case kindNumeric, kindTime:
			t.MemoryBytes += 8 * s.rows
		case kindBool:
			t.MemoryBytes += validity
		case kindString:
			t.MemoryBytes += 4*(s.rows+1) + c.totalBytes
		}
		r.Columns = append(r.Columns, col)
	}
	t.MissingCellsShare = share(t.MissingCells, s.rows*int64(len(s.cols)))
	if s.dupX != nil {
		t.DuplicateRows = s.rows - int64(len(s.dupX))
		t.DuplicateRowsExact = true
	} else {
		d := s.dup.count()
		t.DuplicateRows = max(s.rows-d, 0)
		t.DuplicateRowsExact = s.dup.exact()
		if !t.DuplicateRowsExact {
			t.DuplicateRowsStdErr = float64(d) * hllStdErr(o.HLLPrecision)
		}
	}
	t.DuplicateRowsShare = share(t.DuplicateRows, s.rows)
	r.Correlations = s.correlations()
	r.Sample = s.reportSample()
	r.Alerts = s.alerts(r)
	return r
}

func (s *State) columnReport(f arrow.Field, c *column) Column {
	o := s.opts
	col := Column{Name: f.Name, ArrowType: f.Type.String(), Missing: c.nulls}
	switch c.kind {
	case kindNumeric:
		col.Type = TypeNumeric
		col.Missing += c.nan
		col.Count = s.rows - col.Missing
		col.Distinct, col.DistinctExact = c.dist.count(), c.dist.exact()
		col.Numeric = numericReport(c, o)
	case kindTime:
		col.Type = TypeDateTime
		col.Count = s.rows - col.Missing
		col.Distinct, col.DistinctExact = c.dist.count(), c.dist.exact()
		tt := f.Type.(*arrow.TimestampType)
		dt := &DateTime{Unit: tt.Unit.String()}
		if col.Count > 0 {
			loc := time.UTC
			if tt.TimeZone != "" {
				if l, err := time.LoadLocation(tt.TimeZone); err == nil {
					loc = l
				}
			}
			mn, mx := c.tmin, c.tmax
			dt.MinRaw, dt.MaxRaw = &mn, &mx
			a := arrow.Timestamp(mn).ToTime(tt.Unit).In(loc).Format(time.RFC3339Nano)
			b := arrow.Timestamp(mx).ToTime(tt.Unit).In(loc).Format(time.RFC3339Nano)
			dt.Min, dt.Max = &a, &b
		}
		col.DateTime = dt
	case kindBool:
		col.Type = TypeBoolean
		col.Count = c.trues + c.falses
		col.DistinctExact = true
		for _, v := range []int64{c.trues, c.falses} {
			if v > 0 {
				col.Distinct++
			}
		}
		col.Boolean = &Boolean{True: c.trues, False: c.falses}
		if col.Count > 0 {
			col.Boolean.TrueShare = num(share(c.trues, col.Count))
		}
		tops := []TopValue{{"true", c.trues, 0}, {"false", c.falses, 0}}
		if c.falses > c.trues {
			tops[0], tops[1] = tops[1], tops[0]
		}
		for _, tv := range tops {
			if tv.Count > 0 {
				tv.Share = share(tv.Count, col.Count)
				col.TopValues = append(col.TopValues, tv)
			}
		}
	case kindString:
		col.Count = s.rows - col.Missing
		col.Distinct, col.DistinctExact = c.ctr.distinct(), !c.ctr.sketched
		col.Type = TypeCategorical
		if col.Distinct > o.Alerts.HighCardinality && share(col.Distinct, col.Count) > 0.5 {
			col.Type = TypeText
		}
		st := &Strings{}
		if col.Count > 0 {
			st.MinLength, st.MaxLength = c.minLen, c.maxLen
			st.MeanLength = num(float64(c.totalLen) / float64(col.Count))
			a, b := string(c.strMin), string(c.strMax)
			st.Min, st.Max = &a, &b
		}
		col.String = st
		for _, tv := range c.ctr.top(o.TopValues) {
			col.TopValues = append(col.TopValues, TopValue{tv.Value, tv.Count, share(tv.Count, col.Count)})
		}
		col.TopValuesErrorBound = c.ctr.errorBound()
	default:
		col.Type = TypeUnsupported
		col.Count = s.rows - col.Missing
	}
	col.MissingShare = share(col.Missing, s.rows)
	col.DistinctShare = share(col.Distinct, col.Count)
	return col
}

func numericReport(c *column, o Options) *Numeric {
	nm := &Numeric{
		Nulls: c.nulls, NaN: c.nan, Infinite: c.posInf + c.negInf,
		Zeros: c.zeros, Negatives: c.negatives,
	}
	m := c.mom
	n := float64(m.n)
	if m.n == 0 {
		return nm
	}
	nm.Mean = num(c.sum.mean(m.n))
	nm.Sum = num(c.sum.float64())
	nm.Min, nm.Max = num(c.min), num(c.max)
	if math.IsInf(m.m2, 0) || math.IsNaN(m.m2) {
		// Deviations beyond ~1e154 overflow: no moments, rather than wrong ones.
		m.n = min(m.n, 1)
	}
	if m.n >= 2 {
		v := m.m2 / (n - 1)
		nm.Variance = num(v)
		nm.Stddev = num(math.Sqrt(v))
	}
	if m.n >= 3 {
		g := 0.0
		if m.m2 > 0 {
			g = math.Sqrt(n*(n-1)) / (n - 2) * (m.m3 / n) / math.Pow(m.m2/n, 1.5)
		}
		nm.Skewness = num(g)
	}
	if m.n >= 4 {
		g := 0.0
		if m.m2 > 0 {
			g = n*(n+1)*(n-1)*m.m4/((n-2)*(n-3)*m.m2*m.m2) - 3*(n-1)*(n-1)/((n-2)*(n-3))
		}
		nm.Kurtosis = num(g)
	}
	kv := c.q.view()
	qs := []**float64{&nm.P5, &nm.P25, &nm.P50, &nm.P75, &nm.P95}
	for i, q := range []float64{0.05, 0.25, 0.5, 0.75, 0.95} {
		*qs[i] = num(kv.quantile(q))
	}
	if nm.P25 != nil && nm.P75 != nil {
		nm.IQR = num(*nm.P75 - *nm.P25)
	}
	nm.QuantilesExact = !c.q.approx
	nm.Histogram = histogram(kv, c.min, c.max, o.HistogramBins, nm.QuantilesExact)
	return nm
}

// histogram bins the sketch's CDF between the exact min and max. Counts
// are differences of rounded cumulative counts, so they add up to n.
func histogram(kv kllView, lo, hi float64, bins int, exact bool) *Histogram {
	if kv.n == 0 {
		return nil
	}
	if lo == hi {
		return &Histogram{Edges: []float64{lo, hi}, Counts: []int64{kv.n}, Exact: exact}
	}
	h := &Histogram{Edges: make([]float64, bins+1), Counts: make([]int64, bins), Exact: exact}
	for i := range h.Edges {
		t := float64(i) / float64(bins)
		h.Edges[i] = lo*(1-t) + hi*t // no overflow for huge ranges
	}
	h.Edges[0], h.Edges[bins] = lo, hi
	prev := int64(0)
	for i := range bins {
		next := kv.n
		if i < bins-1 {
			next = kv.countBelow(h.Edges[i+1])
		}
		h.Counts[i] = next - prev
		prev = next
	}
	return h
}

func (s *State) correlations() *Correlations {
	k := len(s.corr)
	if k == 0 {
		return nil
	}
	cr := &Correlations{Columns: make([]string, k)}
	for i, ci := range s.corr {
		cr.Columns[i] = s.schema.Field(ci).Name
	}
	keys, rows := s.sample.rows()
	cr.SpearmanSampleRows = int64(len(keys))
	cr.SpearmanExact = s.rows <= int64(s.sample.m)
	if !cr.SpearmanExact && len(keys) > 3 {
		cr.SpearmanStdErr = 1.03 / math.Sqrt(float64(len(keys)-3))
	}
	colv := make([][]float64, k)
	for j := range k {
		colv[j] = make([]float64, len(rows))
		for i, row := range rows {
			colv[j][i] = row[j]
		}
	}
	cr.Pearson = square(k)
	cr.Spearman = square(k)
	p := 0
	for a := range k {
		ca := s.cols[s.corr[a]]
		if ca.mom.n >= 2 && ca.mom.m2 > 0 && !math.IsInf(ca.mom.m2, 0) {
			cr.Pearson[a][a] = num(1)
		}
		if _, ok := spearman(colv[a], colv[a]); ok {
			cr.Spearman[a][a] = num(1)
		}
		for b := a + 1; b < k; b++ {
			pc := s.pairs[p]
			p++
			if pc.n >= 2 && pc.m2a > 0 && pc.m2b > 0 && !math.IsInf(pc.m2a*pc.m2b, 0) {
				v := num(clampCorr(pc.c / math.Sqrt(pc.m2a*pc.m2b)))
				cr.Pearson[a][b], cr.Pearson[b][a] = v, v
			}
			if rho, ok := spearman(colv[a], colv[b]); ok {
				v := num(rho)
				cr.Spearman[a][b], cr.Spearman[b][a] = v, v
			}
		}
	}
	return cr
}

// reportSample is the first ReportSampleRows rows of the Spearman sample.
func (s *State) reportSample() *Sample {
	if len(s.corr) == 0 {
		return nil
	}
	smp := &Sample{Columns: make([]string, len(s.corr)), Rows: [][]*float64{}}
	for i, ci := range s.corr {
		smp.Columns[i] = s.schema.Field(ci).Name
	}
	_, rows := s.sample.rows()
	if len(rows) > ReportSampleRows {
		rows = rows[:ReportSampleRows]
	}
	smp.Exact = s.rows == int64(len(rows))
	for _, row := range rows {
		out := make([]*float64, len(row))
		for j, v := range row {
			out[j] = num(v)
		}
		smp.Rows = append(smp.Rows, out)
	}
	return smp
}

func square(k int) [][]*float64 {
	m := make([][]*float64, k)
	for i := range m {
		m[i] = make([]*float64, k)
	}
	return m
}

func (s *State) alerts(r *Report) []Alert {
	th := s.opts.Alerts
	out := []Alert{}
	add := func(typ string, v float64, msg string, cols ...string) {
		out = append(out, Alert{Type: typ, Columns: cols, Value: v, Message: msg})
	}
	t := r.Table
	dupAlert := t.DuplicateRows > 0
	if !t.DuplicateRowsExact {
		dupAlert = float64(t.DuplicateRows) > 3*t.DuplicateRowsStdErr
	}
	if dupAlert {
		add(AlertDuplicates, float64(t.DuplicateRows), fmt.Sprintf("%d duplicate rows (%.1f%%)", t.DuplicateRows, 100*t.DuplicateRowsShare))
	}
	hllErr := hllStdErr(s.opts.HLLPrecision)
	for _, c := range r.Columns {
		if t.Rows == 0 {
			break
		}
		if c.Count == 0 {
			add(AlertAllMissing, 1, "all values missing", c.Name)
			continue
		}
		if c.MissingShare >= th.HighMissing {
			add(AlertHighMissing, c.MissingShare, fmt.Sprintf("%.1f%% missing", 100*c.MissingShare), c.Name)
		}
		if c.Distinct == 1 && c.DistinctExact {
			add(AlertConstant, 1, "one distinct value", c.Name)
		}
		if c.Count > 1 {
			unique := c.DistinctExact && c.Distinct == c.Count
			if !c.DistinctExact {
				unique = math.Abs(float64(c.Distinct-c.Count)) <= 3*hllErr*float64(c.Count)
			}
			if unique {
				add(AlertUnique, 1, "every value distinct", c.Name)
			}
		}
		if c.Type == TypeCategorical && c.Distinct > th.HighCardinality {
			add(AlertHighCardinality, float64(c.Distinct), fmt.Sprintf("%d distinct values", c.Distinct), c.Name)
		}
		if nm := c.Numeric; nm != nil {
			if nm.Skewness != nil && math.Abs(*nm.Skewness) > th.Skewness {
				add(AlertSkewed, *nm.Skewness, fmt.Sprintf("skewness %.3g", *nm.Skewness), c.Name)
			}
			if z := share(nm.Zeros, c.Count); z > th.Zeros {
				add(AlertZeros, z, fmt.Sprintf("%.1f%% zeros", 100*z), c.Name)
			}
			if nm.Infinite > 0 {
				add(AlertInfinite, float64(nm.Infinite), fmt.Sprintf("%d infinite values", nm.Infinite), c.Name)
			}
		}
	}
	if cr := r.Correlations; cr != nil {
		for a := range cr.Columns {
			for b := a + 1; b < len(cr.Columns); b++ {
				v, which := 0.0, ""
				if p := cr.Pearson[a][b]; p != nil && math.Abs(*p) > math.Abs(v) {
					v, which = *p, "Pearson"
				}
				if p := cr.Spearman[a][b]; p != nil && math.Abs(*p) > math.Abs(v) {
					v, which = *p, "Spearman"
				}
				if math.Abs(v) > th.HighCorrelation {
					add(AlertHighCorrelation, v, fmt.Sprintf("%s correlation %.3f", which, v), cr.Columns[a], cr.Columns[b])
				}
			}
		}
	}
	return out
}

// Summary is the report as Spark's summary() table: a header ("summary",
// then the column names) and one row per statistic — count, mean, stddev,
// min, 25%, 50%, 75%, max — with "" where a statistic does not apply.
// Strings get count, min and max (byte order), like Spark.
func (r *Report) Summary() (header []string, rows [][]string) {
	header = []string{"summary"}
	for _, c := range r.Columns {
		header = append(header, c.Name)
	}
	f := func(v *float64) string {
		if v == nil {
			return ""
		}
		return strconv.FormatFloat(*v, 'g', -1, 64)
	}
	stats := []string{"count", "mean", "stddev", "min", "25%", "50%", "75%", "max"}
	for _, st := range stats {
		row := []string{st}
		for _, c := range r.Columns {
			cell := ""
			switch {
			case st == "count":
				cell = strconv.FormatInt(c.Count, 10)
			case c.Numeric != nil:
				n := c.Numeric
				cell = f(map[string]*float64{"mean": n.Mean, "stddev": n.Stddev, "min": n.Min,
					"25%": n.P25, "50%": n.P50, "75%": n.P75, "max": n.Max}[st])
			case c.String != nil && st == "min" && c.String.Min != nil:
				cell = *c.String.Min
			case c.String != nil && st == "max" && c.String.Max != nil:
				cell = *c.String.Max
			case c.DateTime != nil && st == "min" && c.DateTime.Min != nil:
				cell = *c.DateTime.Min
			case c.DateTime != nil && st == "max" && c.DateTime.Max != nil:
				cell = *c.DateTime.Max
			}
			row = append(row, cell)
		}
		rows = append(rows, row)
	}
	return header, rows
}
