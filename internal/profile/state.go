package profile

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/zeebo/xxh3"
)

// Options tune a profile. The zero value means the defaults; every State
// merged together must have been built with the same statistics options
// (the Alerts thresholds only shape the report and may differ).
type Options struct {
	// DistinctLimit is how many distinct values a column counts exactly
	// before switching to a HyperLogLog (and, for strings, the top values
	// to a Misra–Gries summary). Default 10,000.
	DistinctLimit int
	// HLLPrecision p gives 2^p registers, standard error 1.04/sqrt(2^p).
	// Default 14 (0.81%); 4..18.
	HLLPrecision int
	// QuantileK is the KLL sketch's k. Default 200 (rank error 1.33% at
	// 99% confidence); 8..65535.
	QuantileK int
	// TopValues is how many most frequent values a report lists. Default 10.
	TopValues int
	// TopCounters is the Misra–Gries summary size once a string column
	// passes DistinctLimit. Default 1,000.
	TopCounters int
	// HistogramBins is the number of equal-width bins between min and max.
	// Default 20.
	HistogramBins int
	// SampleRows is the size of the row sample Spearman correlations are
	// computed from. Default 10,000.
	SampleRows int
	// MaxCorrelationColumns caps the numeric columns that enter the
	// correlation matrices (the first ones in schema order); the work per
	// row grows with its square. Default 64.
	MaxCorrelationColumns int
	// ExactDuplicates counts duplicate rows exactly with a set of 128-bit
	// row hashes: memory and state size grow with the number of distinct
	// rows (about 40 bytes each). Otherwise rows are counted exactly up to
	// DuplicateLimit distinct rows, then estimated with a HyperLogLog.
	ExactDuplicates bool
	// DuplicateLimit: see ExactDuplicates. Default 100,000.
	DuplicateLimit int
	// Seed seeds the KLL compaction coins (the sketches are deterministic
	// for a given input order and seed).
	Seed uint64
	// Alerts are the thresholds of the report's alerts.
	Alerts Thresholds
}

// Thresholds of the alerts; zero values mean the defaults.
type Thresholds struct {
	// HighCorrelation: |Pearson| or |Spearman| above it. Default 0.9.
	HighCorrelation float64
	// HighMissing: missing share at or above it. Default 0.5.
	HighMissing float64
	// Skewness: |skewness| above it. Default 20 (ydata-profiling's).
	Skewness float64
	// Zeros: share of zeros above it. Default 0.1.
	Zeros float64
	// HighCardinality: a categorical column with more distinct values.
	// Default 50 (ydata-profiling's).
	HighCardinality int64
	// Imbalance: a categorical column whose most frequent value has more
	// than this share of the values. Default 0.5.
	Imbalance float64
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.DistinctLimit, 10000)
	def(&o.HLLPrecision, 14)
	def(&o.QuantileK, 200)
	def(&o.TopValues, 10)
	def(&o.TopCounters, 1000)
	def(&o.HistogramBins, 20)
	def(&o.SampleRows, 10000)
	def(&o.MaxCorrelationColumns, 64)
	def(&o.DuplicateLimit, 100000)
	o.HLLPrecision = min(max(o.HLLPrecision, 4), 18)
	o.QuantileK = min(max(o.QuantileK, kllMinWidth), 65535)
	t := &o.Alerts
	deff := func(v *float64, d float64) {
		if *v <= 0 {
			*v = d
		}
	}
	deff(&t.HighCorrelation, 0.9)
	deff(&t.HighMissing, 0.5)
	deff(&t.Skewness, 20)
	deff(&t.Zeros, 0.1)
	deff(&t.Imbalance, 0.5)
	if t.HighCardinality <= 0 {
		t.HighCardinality = 50
	}
	return o
}

// sameStats reports whether two option sets build mergeable states.
func (o Options) sameStats(p Options) bool {
	o.Alerts, p.Alerts = Thresholds{}, Thresholds{}
	return o == p
}

type kind uint8

const (
	kindOther kind = iota // counted (rows, missing) but not profiled
	kindNumeric
	kindBool
	kindString
	kindTime
)

func kindOf(t arrow.DataType) kind {
	switch t.ID() {
	case arrow.INT64, arrow.FLOAT64:
		return kindNumeric
	case arrow.BOOL:
		return kindBool
	case arrow.STRING:
		return kindString
	case arrow.TIMESTAMP:
		return kindTime
	}
	return kindOther
}

// column is the partial profile of one column.
type column struct {
	kind  kind
	isInt bool
	nulls int64

	// numeric
	nan, posInf, negInf, zeros, negatives int64
	min, max                              float64 // finite values; ±Inf when none
	mom                                   moments
	sum                                   xsum
	q                                     *kll
	// numeric and time
	dist *distinct
	// time
	tmin, tmax int64
	// bool
	trues, falses int64
	// string
	minLen, maxLen, totalLen, totalBytes int64
	strMin, strMax                       []byte
	ctr                                  *strCounter
}

// State is a partial profile: what Add has seen, mergeable with other
// partial profiles of the same schema. Its size is bounded independently of
// the row count (except with Options.ExactDuplicates). A State is not safe
// for concurrent use; profile partitions in parallel with one State each
// and Merge them.
type State struct {
	opts   Options
	schema *arrow.Schema
	rows   int64
	cols   []*column
	corr   []int                  // columns in the correlation matrices
	pairs  []comoments            // upper triangle of corr×corr, row-major
	dupX   map[[2]uint64]struct{} // ExactDuplicates
	dup    *distinct              // otherwise
	sample *sample
	sc     *scratch // buffers for Add, not part of the state
}

// NewState starts an empty partial profile of the given schema.
func NewState(schema *arrow.Schema, opts Options) *State {
	opts = opts.withDefaults()
	s := &State{opts: opts, schema: schema}
	for i, f := range schema.Fields() {
		c := &column{kind: kindOf(f.Type)}
		switch c.kind {
		case kindNumeric:
			c.isInt = f.Type.ID() == arrow.INT64
			c.min, c.max = math.Inf(1), math.Inf(-1)
			c.q = newKLL(opts.QuantileK, mix64(opts.Seed^uint64(i+1)*0x9e3779b97f4a7c15))
			c.dist = newDistinct(opts.DistinctLimit, opts.HLLPrecision)
			if len(s.corr) < opts.MaxCorrelationColumns {
				s.corr = append(s.corr, i)
			}
		case kindTime:
			c.tmin, c.tmax = math.MaxInt64, math.MinInt64
			c.dist = newDistinct(opts.DistinctLimit, opts.HLLPrecision)
		case kindString:
			c.minLen = math.MaxInt64
			c.ctr = newStrCounter(opts.DistinctLimit, opts.TopCounters, opts.HLLPrecision)
		}
		s.cols = append(s.cols, c)
	}
	s.pairs = make([]comoments, len(s.corr)*(len(s.corr)-1)/2)
	if opts.ExactDuplicates {
		s.dupX = map[[2]uint64]struct{}{}
	} else {
		s.dup = newDistinct(opts.DuplicateLimit, opts.HLLPrecision)
	}
	s.sample = newSample(opts.SampleRows, len(s.corr))
	return s
}

// Schema is the schema the state profiles.
func (s *State) Schema() *arrow.Schema { return s.schema }

// Rows is the number of rows added (and merged) so far.
func (s *State) Rows() int64 { return s.rows }

// sameSchema compares names and types, ignoring metadata.
func sameSchema(a, b *arrow.Schema) error {
	if a.NumFields() != b.NumFields() {
		return fmt.Errorf("%d columns, want %d", b.NumFields(), a.NumFields())
	}
	for i := range a.NumFields() {
		fa, fb := a.Field(i), b.Field(i)
		if fa.Name != fb.Name || !arrow.TypeEqual(fa.Type, fb.Type) {
			return fmt.Errorf("column %d is %s %s, want %s %s", i, fb.Name, fb.Type, fa.Name, fa.Type)
		}
	}
	return nil
}

// blockRows is the unit of work inside a batch: long enough for tight
// loops, short enough that the per-column scratch of the correlation
// columns stays in cache.
const blockRows = 2048

// Hash constants: row hashes are polynomial in the per-value hashes (so
// column order matters), with two lanes for the exact duplicate set.
const (
	seedValue = 0x243f6a8885a308d3
	seedLane2 = 0x13198a2e03707344
	mulLane1  = 0x9e3779b97f4a7c15
	mulLane2  = 0xc2b2ae3d27d4eb4f
	hashNull  = 0xa4093822299f31d0
	hashTrue  = 0x082efa98ec4e6c89
	hashFalse = 0x452821e638d01377
)

type colScratch struct {
	xbuf, mbuf    []float64 // owned buffers behind xs and mask
	xs, mask, dev []float64 // per row: value (0 when missing), 1/0, deviation from mean
	mean          float64   // block mean of the finite values
	delta         float64   // Σdev/n: correction of mean
	m2            float64
	n             int64 // finite values in the block
	rows          int   // rows in the block
	allPresent    bool
}

type scratch struct {
	fin   []float64
	hs    []uint64
	rowh  []uint64 // per-row value hash of the current column
	rowh2 []uint64 // second independent string hash (exact duplicates)
	rh1   []uint64
	rh2   []uint64
	cs    []colScratch // per correlation column
	other colScratch   // shared by numeric columns outside the matrices
	ones  []float64    // the mask of a column with every value present
	// corrPos maps a column to its place in the correlation matrices, or -1.
	corrPos []int
	dots    []float64 // per pair
}

func (s *State) scratch() *scratch {
	if s.sc != nil {
		return s.sc
	}
	sc := &scratch{
		fin:   make([]float64, 0, blockRows),
		hs:    make([]uint64, 0, blockRows),
		rowh:  make([]uint64, blockRows),
		rowh2: make([]uint64, blockRows),
		rh1:   make([]uint64, blockRows),
		rh2:   make([]uint64, blockRows),
		cs:    make([]colScratch, len(s.corr)),
		ones:  make([]float64, blockRows),
	}
	for i := range sc.ones {
		sc.ones[i] = 1
	}
	sc.dots = make([]float64, len(s.pairs))
	sc.corrPos = make([]int, len(s.cols))
	for i := range sc.corrPos {
		sc.corrPos[i] = -1
	}
	for p, ci := range s.corr {
		sc.corrPos[ci] = p
	}
	alloc := func(c *colScratch) {
		c.xbuf = make([]float64, blockRows)
		c.mbuf = make([]float64, blockRows)
		c.dev = make([]float64, blockRows)
	}
	for i := range sc.cs {
		alloc(&sc.cs[i])
	}
	alloc(&sc.other)
	s.sc = sc
	return sc
}

// Add profiles one batch. The batch's schema must be the state's.
func (s *State) Add(rec arrow.RecordBatch) error {
	if rec == nil {
		return errors.New("profile: nil batch")
	}
	if err := sameSchema(s.schema, rec.Schema()); err != nil {
		return fmt.Errorf("profile: batch schema differs: %w", err)
	}
	n := int(rec.NumRows())
	sc := s.scratch()
	for r0 := 0; r0 < n; r0 += blockRows {
		r1 := min(r0+blockRows, n)
		bn := r1 - r0
		rh1, rh2 := sc.rh1[:bn], sc.rh2[:bn]
		clear(rh1)
		clear(rh2)
		for ci, c := range s.cols {
			arr := rec.Column(ci)
			rowh := sc.rowh[:bn]
			var rowh2 []uint64
			switch c.kind {
			case kindNumeric:
				cs := &sc.other
				if p := sc.corrPos[ci]; p >= 0 {
					cs = &sc.cs[p]
				}
				s.addNumeric(c, arr, r0, r1, cs, sc)
			case kindBool:
				s.addBool(c, arr.(*array.Boolean), r0, r1, rowh)
			case kindString:
				if s.opts.ExactDuplicates {
					rowh2 = sc.rowh2[:bn]
				}
				s.addString(c, arr.(*array.String), r0, r1, rowh, rowh2)
			case kindTime:
				s.addTime(c, arr.(*array.Timestamp), r0, r1, rowh, sc)
			default:
				addOther(c, arr, r0, r1, rowh)
			}
			for i, h := range rowh {
				rh1[i] = rh1[i]*mulLane1 + h
			}
			if s.opts.ExactDuplicates {
				if rowh2 != nil {
					for i, h := range rowh2 {
						rh2[i] = rh2[i]*mulLane2 + h
					}
				} else {
					for i, h := range rowh {
						rh2[i] = rh2[i]*mulLane2 + mix64(h^seedLane2)
					}
				}
			}
		}
		s.addPairs(sc)
		for i := range bn {
			rh1[i] = mix64(rh1[i] ^ uint64(len(s.cols)))
		}
		if s.dupX != nil {
			for i, h := range rh1 {
				s.dupX[[2]uint64{h, rh2[i]}] = struct{}{}
			}
		} else {
			s.dup.addAll(rh1)
		}
		for i, h := range rh1 {
			if s.sample.wants(h) {
				s.sample.insert(h, func(j int) float64 {
					cs := &sc.cs[j]
					if cs.mask[i] == 0 {
						return math.NaN()
					}
					return cs.xs[i]
				})
			}
		}
	}
	s.rows += int64(n)
	return nil
}

func allFinite(vs []float64) bool {
	for _, x := range vs {
		if math.Float64bits(x)&expMask == expMask {
			return false
		}
	}
	return true
}

func validAt(bm []byte, i int) bool { return bm[i>>3]&(1<<(i&7)) != 0 }

const (
	expMask  = 0x7ff0000000000000
	fracMask = 1<<52 - 1
)

func (s *State) addNumeric(c *column, arr arrow.Array, r0, r1 int, cs *colScratch, sc *scratch) {
	n := r1 - r0
	bm := arr.NullBitmapBytes()
	hasNulls := arr.NullN() > 0 && len(bm) > 0
	off := arr.Data().Offset() + r0
	xs, mask, rowh := cs.xbuf[:n], cs.mbuf[:n], sc.rowh[:n]
	fin, hs := sc.fin[:0], sc.hs[:0]
	var nulls, nans, pinf, ninf int64
	fast := false // no missing or infinite value: no mask, no copies
	if f, ok := arr.(*array.Float64); ok {
		vals := f.Float64Values()[r0:r1]
		if !hasNulls && allFinite(vals) {
			fast = true
			for i, x := range vals {
				b := math.Float64bits(x)
				if x == 0 {
					b = 0 // -0 and +0 are one value
				}
				rowh[i] = mix64(b ^ seedValue)
			}
			xs, fin, hs = vals, vals, rowh
		} else {
			for i, x := range vals {
				if hasNulls && !validAt(bm, off+i) {
					nulls++
					xs[i], mask[i], rowh[i] = 0, 0, hashNull
					continue
				}
				b := math.Float64bits(x)
				if b&expMask == expMask {
					xs[i], mask[i] = 0, 0
					if b&fracMask != 0 { // NaN: missing, like pandas
						nans++
						rowh[i] = hashNull
						continue
					}
					if x > 0 {
						pinf++
					} else {
						ninf++
					}
				} else {
					xs[i], mask[i] = x, 1
					fin = append(fin, x)
					if x == 0 {
						b = 0
					}
				}
				h := mix64(b ^ seedValue)
				hs = append(hs, h)
				rowh[i] = h
			}
		}
	} else {
		vals := arr.(*array.Int64).Int64Values()[r0:r1]
		if !hasNulls {
			fast = true
			for i, v := range vals {
				xs[i] = float64(v)
				rowh[i] = mix64(uint64(v) ^ seedValue)
			}
			fin, hs = xs, rowh
		} else {
			for i, v := range vals {
				if !validAt(bm, off+i) {
					nulls++
					xs[i], mask[i], rowh[i] = 0, 0, hashNull
					continue
				}
				x := float64(v)
				xs[i], mask[i] = x, 1
				fin = append(fin, x)
				h := mix64(uint64(v) ^ seedValue)
				hs = append(hs, h)
				rowh[i] = h
			}
		}
	}
	if fast {
		mask = sc.ones[:n]
	}
	cs.xs, cs.mask = xs, mask
	c.nulls += nulls
	c.nan += nans
	c.posInf += pinf
	c.negInf += ninf
	c.negatives += ninf
	c.dist.addAll(hs)
	cs.n = int64(len(fin))
	cs.rows = n
	cs.allPresent = len(fin) == n
	cs.mean, cs.delta, cs.m2 = 0, 0, 0
	if len(fin) == 0 {
		clear(cs.dev[:n])
		return
	}
	mn, mx := c.min, c.max
	var sum float64
	var zeros, negs int64
	for _, x := range fin {
		sum += x
		mn = min(mn, x)
		mx = max(mx, x)
		if x == 0 {
			zeros++
		}
		if x < 0 {
			negs++
		}
	}
	c.min, c.max = mn, mx
	c.zeros += zeros
	c.negatives += negs
	c.sum.addSlice(fin)
	c.q.addSlice(fin)

	// Second pass over the block: central moment sums about the block mean,
	// corrected for the mean's rounding (Σd is not exactly 0).
	nf := float64(len(fin))
	mean := sum / nf
	dev := cs.dev[:n]
	var s1, s2, s3, s4 float64
	if cs.allPresent {
		for i, x := range xs {
			d := x - mean
			dev[i] = d
			d2 := d * d
			s1 += d
			s2 += d2
			s3 += d2 * d
			s4 += d2 * d2
		}
	} else {
		for i, x := range xs {
			d := (x - mean) * mask[i]
			dev[i] = d
			d2 := d * d
			s1 += d
			s2 += d2
			s3 += d2 * d
			s4 += d2 * d2
		}
	}
	dl := s1 / nf
	m := moments{
		n:    int64(len(fin)),
		mean: mean, meanLo: dl,
		m2: s2 - nf*dl*dl,
		m3: s3 - 3*dl*s2 + 2*nf*dl*dl*dl,
		m4: s4 - 4*dl*s3 + 6*dl*dl*s2 - 3*nf*dl*dl*dl*dl,
	}
	m.m2 = max(m.m2, 0)
	c.mom.merge(m)
	cs.mean, cs.delta, cs.m2 = mean, dl, m.m2
}

// addPairs folds the block's co-moments of every pair of correlation
// columns into the state, over the rows where both are present.
func (s *State) addPairs(sc *scratch) {
	if len(s.pairs) == 0 {
		return
	}
	// Σ dev_a·dev_b for every pair, in tiles of rows that keep all the
	// columns' deviations in L1 while the pairs are formed.
	const tile = 256
	rows := sc.cs[0].rows
	dots := sc.dots[:len(s.pairs)]
	clear(dots)
	for t0 := 0; t0 < rows; t0 += tile {
		t1 := min(t0+tile, rows)
		k := 0
		for a := range s.corr {
			da := sc.cs[a].dev[t0:t1]
			for b := a + 1; b < len(s.corr); b++ {
				dots[k] += dot(da, sc.cs[b].dev[t0:t1])
				k++
			}
		}
	}
	k := 0
	for a := range s.corr {
		A := &sc.cs[a]
		for b := a + 1; b < len(s.corr); b++ {
			B := &sc.cs[b]
			p := &s.pairs[k]
			k++
			if A.n == 0 || B.n == 0 {
				continue
			}
			if A.allPresent && B.allPresent {
				nf := float64(A.n)
				p.merge(comoments{
					n:  A.n,
					ma: A.mean, maLo: A.delta, mb: B.mean, mbLo: B.delta,
					m2a: A.m2, m2b: B.m2,
					c: dots[k-1] - nf*A.delta*B.delta,
				})
				continue
			}
			var w, sa, sb, saa, sbb float64
			da, db := A.dev, B.dev
			ma, mb := A.mask, B.mask
			for i := range A.rows {
				wa, wb := ma[i], mb[i]
				w += wa * wb
				sa += da[i] * wb
				sb += db[i] * wa
				saa += da[i] * da[i] * wb
				sbb += db[i] * db[i] * wa
			}
			sab := dots[k-1]
			if w == 0 {
				continue
			}
			dla, dlb := sa/w, sb/w
			p.merge(comoments{
				n:  int64(w),
				ma: A.mean, maLo: dla, mb: B.mean, mbLo: dlb,
				m2a: max(saa-w*dla*dla, 0), m2b: max(sbb-w*dlb*dlb, 0),
				c: sab - w*dla*dlb,
			})
		}
	}
}

func (s *State) addBool(c *column, a *array.Boolean, r0, r1 int, rowh []uint64) {
	for i := r0; i < r1; i++ {
		switch {
		case a.IsNull(i):
			c.nulls++
			rowh[i-r0] = hashNull
		case a.Value(i):
			c.trues++
			rowh[i-r0] = hashTrue
		default:
			c.falses++
			rowh[i-r0] = hashFalse
		}
	}
}

func (s *State) addString(c *column, a *array.String, r0, r1 int, rowh, rowh2 []uint64) {
	for i := r0; i < r1; i++ {
		if a.IsNull(i) {
			c.nulls++
			rowh[i-r0] = hashNull
			if rowh2 != nil {
				rowh2[i-r0] = hashNull
			}
			continue
		}
		v := a.Value(i)
		h := strHash(v)
		rowh[i-r0] = h
		if rowh2 != nil {
			rowh2[i-r0] = xxh3.HashStringSeed(v, seedLane2)
		}
		l := int64(len(v))
		c.totalBytes += l
		if !isASCII(v) {
			l = int64(utf8.RuneCountInString(v))
		}
		c.totalLen += l
		c.minLen = min(c.minLen, l)
		c.maxLen = max(c.maxLen, l)
		if c.strMin == nil || v < string(c.strMin) {
			c.strMin = append(c.strMin[:0], v...)
		}
		if c.strMax == nil || v > string(c.strMax) {
			c.strMax = append(c.strMax[:0], v...)
		}
		c.ctr.add(v, h)
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func (s *State) addTime(c *column, a *array.Timestamp, r0, r1 int, rowh []uint64, sc *scratch) {
	hs := sc.hs[:0]
	vals := a.TimestampValues()
	for i := r0; i < r1; i++ {
		if a.IsNull(i) {
			c.nulls++
			rowh[i-r0] = hashNull
			continue
		}
		v := int64(vals[i])
		c.tmin = min(c.tmin, v)
		c.tmax = max(c.tmax, v)
		h := mix64(uint64(v) ^ seedValue)
		hs = append(hs, h)
		rowh[i-r0] = h
	}
	c.dist.addAll(hs)
}

// addOther counts rows and nulls of a column of a type the profile does not
// analyse, hashing its values' text for duplicate detection.
func addOther(c *column, a arrow.Array, r0, r1 int, rowh []uint64) {
	for i := r0; i < r1; i++ {
		if a.IsNull(i) {
			c.nulls++
			rowh[i-r0] = hashNull
			continue
		}
		rowh[i-r0] = strHash(a.ValueStr(i))
	}
}
