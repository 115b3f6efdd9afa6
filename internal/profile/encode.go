package profile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// The encoding of a State: the magic "HPCMLPRF", a uvarint version, then the
// options, the schema (as an Arrow IPC stream holding only the schema), the
// row count, each column, the pair co-moments, the duplicate-row counter and
// the row sample. Integers are varints, floats little-endian IEEE bits.
// Bump stateVersion on any change; UnmarshalBinary rejects versions it does
// not know, so a merger never misreads a job's state.
const (
	stateMagic   = "HPCMLPRF"
	stateVersion = 1
)

type enc struct{ b []byte }

func (e *enc) u(v uint64)  { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) i(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) n(v int)     { e.u(uint64(v)) }
func (e *enc) f(v float64) { e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(v)) }
func (e *enc) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}
func (e *enc) bytes(v []byte) { e.n(len(v)); e.b = append(e.b, v...) }
func (e *enc) fs(v []float64) {
	e.n(len(v))
	for _, x := range v {
		e.f(x)
	}
}

type dec struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated")

func (d *dec) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *dec) u() uint64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *dec) i() int64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Varint(d.b)
	if k <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[k:]
	return v
}

// n reads a length or count, which must be at most max (and, since every
// element takes at least one byte, at most what is left).
func (d *dec) n(max int) int {
	v := d.u()
	if v > uint64(max) || v > uint64(len(d.b))+1 {
		d.fail(fmt.Errorf("count %d out of range", v))
		return 0
	}
	return int(v)
}

// bounded reads a value (not a count of what follows) of at most max.
func (d *dec) bounded(max int) int {
	v := d.u()
	if v > uint64(max) {
		d.fail(fmt.Errorf("value %d out of range", v))
		return 0
	}
	return int(v)
}

func (d *dec) f() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail(errShort)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *dec) bool() bool {
	if d.err != nil {
		return false
	}
	if len(d.b) < 1 {
		d.fail(errShort)
		return false
	}
	v := d.b[0]
	d.b = d.b[1:]
	if v > 1 {
		d.fail(errors.New("bad bool"))
	}
	return v == 1
}

func (d *dec) bytes() []byte {
	k := d.n(len(d.b))
	if d.err != nil {
		return nil
	}
	v := bytes.Clone(d.b[:k])
	d.b = d.b[k:]
	return v
}

func (d *dec) fs(max int) []float64 {
	k := d.n(max)
	if d.err != nil {
		return nil
	}
	if k*8 > len(d.b) {
		d.fail(errShort)
		return nil
	}
	v := make([]float64, k)
	for i := range v {
		v[i] = d.f()
	}
	return v
}

// MarshalBinary encodes the state for another process to merge. Its size
// is bounded by the options, not by the rows (see docs/profile.md).
func (s *State) MarshalBinary() ([]byte, error) {
	e := &enc{b: []byte(stateMagic)}
	e.u(stateVersion)
	o := s.opts
	for _, v := range []int{o.DistinctLimit, o.HLLPrecision, o.QuantileK, o.TopValues, o.TopCounters,
		o.HistogramBins, o.SampleRows, o.MaxCorrelationColumns, o.DuplicateLimit} {
		e.n(v)
	}
	e.bool(o.ExactDuplicates)
	e.u(o.Seed)
	t := o.Alerts
	for _, v := range []float64{t.HighCorrelation, t.HighMissing, t.Skewness, t.Zeros, t.Imbalance} {
		e.f(v)
	}
	e.i(t.HighCardinality)

	var sb bytes.Buffer
	w := ipc.NewWriter(&sb, ipc.WithSchema(s.schema))
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("profile: encode schema: %w", err)
	}
	e.bytes(sb.Bytes())

	e.i(s.rows)
	for _, c := range s.cols {
		c.encode(e)
	}
	for _, p := range s.pairs {
		e.i(p.n)
		for _, v := range []float64{p.ma, p.maLo, p.mb, p.mbLo, p.m2a, p.m2b, p.c} {
			e.f(v)
		}
	}
	e.bool(s.dupX != nil)
	if s.dupX != nil {
		e.n(len(s.dupX))
		for k := range s.dupX {
			e.u(k[0])
			e.u(k[1])
		}
	} else {
		s.dup.encode(e)
	}
	sm := s.sample
	e.n(len(sm.keys))
	for i, k := range sm.keys {
		e.u(k)
		for _, v := range sm.vals[i*sm.ncol : (i+1)*sm.ncol] {
			e.f(v)
		}
	}
	return e.b, nil
}

// UnmarshalBinary replaces s with a state encoded by MarshalBinary.
func (s *State) UnmarshalBinary(data []byte) error {
	ns, err := decodeState(data)
	if err != nil {
		return fmt.Errorf("profile: decode state: %w", err)
	}
	*s = *ns
	return nil
}

// DecodeState reads a state encoded by MarshalBinary.
func DecodeState(data []byte) (*State, error) {
	s := new(State)
	if err := s.UnmarshalBinary(data); err != nil {
		return nil, err
	}
	return s, nil
}

const maxCount = 1 << 40

func decodeState(data []byte) (*State, error) {
	if !bytes.HasPrefix(data, []byte(stateMagic)) {
		return nil, errors.New("not a profile state")
	}
	d := &dec{b: data[len(stateMagic):]}
	if v := d.u(); d.err == nil && v != stateVersion {
		return nil, fmt.Errorf("state version %d, this build reads %d", v, stateVersion)
	}
	var o Options
	for _, p := range []*int{&o.DistinctLimit, &o.HLLPrecision, &o.QuantileK, &o.TopValues, &o.TopCounters,
		&o.HistogramBins, &o.SampleRows, &o.MaxCorrelationColumns, &o.DuplicateLimit} {
		*p = d.bounded(1 << 30) // settings, not counts: a small state has large ones
	}
	o.ExactDuplicates = d.bool()
	o.Seed = d.u()
	t := &o.Alerts
	for _, p := range []*float64{&t.HighCorrelation, &t.HighMissing, &t.Skewness, &t.Zeros, &t.Imbalance} {
		*p = d.f()
	}
	t.HighCardinality = d.i()
	if d.err != nil {
		return nil, d.err
	}
	if o.withDefaults() != o {
		return nil, errors.New("options out of range")
	}
	rd, err := ipc.NewReader(bytes.NewReader(d.bytes()))
	if d.err != nil {
		return nil, d.err
	}
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	schema := rd.Schema()
	rd.Release()

	s := NewState(schema, o)
	s.rows = d.i()
	for _, c := range s.cols {
		c.decode(d, &o)
	}
	for i := range s.pairs {
		p := &s.pairs[i]
		p.n = d.i()
		for _, v := range []*float64{&p.ma, &p.maLo, &p.mb, &p.mbLo, &p.m2a, &p.m2b, &p.c} {
			*v = d.f()
		}
	}
	if exact := d.bool(); exact != o.ExactDuplicates {
		d.fail(errors.New("duplicate counter does not match options"))
	}
	if s.dupX != nil {
		k := d.n(maxCount)
		for range k {
			a := d.u()
			s.dupX[[2]uint64{a, d.u()}] = struct{}{}
		}
	} else {
		s.dup.decode(d)
	}
	sm := s.sample
	k := d.n(sm.m)
	row := make([]float64, sm.ncol)
	for range k {
		key := d.u()
		for j := range row {
			row[j] = d.f()
		}
		if d.err != nil {
			break
		}
		sm.push(key, row)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail(errors.New("trailing bytes"))
	}
	if d.err != nil {
		return nil, d.err
	}
	return s, nil
}

func (c *column) encode(e *enc) {
	e.i(c.nulls)
	switch c.kind {
	case kindNumeric:
		for _, v := range []int64{c.nan, c.posInf, c.negInf, c.zeros, c.negatives} {
			e.i(v)
		}
		e.f(c.min)
		e.f(c.max)
		e.i(c.mom.n)
		for _, v := range []float64{c.mom.mean, c.mom.meanLo, c.mom.m2, c.mom.m3, c.mom.m4} {
			e.f(v)
		}
		x := c.sum
		x.carry()
		for _, v := range x.d {
			e.i(v)
		}
		c.q.encode(e)
		c.dist.encode(e)
	case kindTime:
		e.i(c.tmin)
		e.i(c.tmax)
		c.dist.encode(e)
	case kindBool:
		e.i(c.trues)
		e.i(c.falses)
	case kindString:
		for _, v := range []int64{c.minLen, c.maxLen, c.totalLen, c.totalBytes} {
			e.i(v)
		}
		e.bool(c.strMin != nil)
		if c.strMin != nil {
			e.bytes(c.strMin)
			e.bytes(c.strMax)
		}
		k := c.ctr
		e.bool(k.sketched)
		e.i(k.n)
		e.n(len(k.counts))
		for s, v := range k.counts {
			e.bytes([]byte(s))
			e.i(v)
		}
		if k.sketched {
			e.bytes(k.hll.reg)
		}
	}
}

func (c *column) decode(d *dec, o *Options) {
	c.nulls = d.i()
	switch c.kind {
	case kindNumeric:
		for _, v := range []*int64{&c.nan, &c.posInf, &c.negInf, &c.zeros, &c.negatives} {
			*v = d.i()
		}
		c.min = d.f()
		c.max = d.f()
		c.mom.n = d.i()
		for _, v := range []*float64{&c.mom.mean, &c.mom.meanLo, &c.mom.m2, &c.mom.m3, &c.mom.m4} {
			*v = d.f()
		}
		for i := range c.sum.d {
			c.sum.d[i] = d.i()
		}
		c.q.decode(d)
		c.dist.decode(d)
	case kindTime:
		c.tmin = d.i()
		c.tmax = d.i()
		c.dist.decode(d)
	case kindBool:
		c.trues = d.i()
		c.falses = d.i()
	case kindString:
		for _, v := range []*int64{&c.minLen, &c.maxLen, &c.totalLen, &c.totalBytes} {
			*v = d.i()
		}
		if d.bool() {
			c.strMin = d.bytes()
			c.strMax = d.bytes()
			if c.strMin == nil {
				c.strMin = []byte{}
			}
			if c.strMax == nil {
				c.strMax = []byte{}
			}
		}
		k := c.ctr
		k.sketched = d.bool()
		k.n = d.i()
		limit := o.DistinctLimit
		if k.sketched {
			limit = 2 * o.TopCounters
		}
		cnt := d.n(limit)
		for range cnt {
			s := string(d.bytes())
			k.counts[s] = d.i()
		}
		if k.sketched {
			k.hll = decodeHLL(d, o.HLLPrecision)
		}
	}
}

func (s *kll) encode(e *enc) {
	e.i(s.n)
	e.n(s.b)
	e.u(s.rng)
	e.bool(s.approx)
	e.n(len(s.levels))
	for h, l := range s.levels {
		if s.dirty&(1<<h) != 0 {
			l = slices.Clone(l)
			slices.Sort(l)
		}
		e.fs(l)
	}
	e.fs(s.pending)
}

func (s *kll) decode(d *dec) {
	s.n = d.i()
	s.b = d.n(kllMaxSampler)
	s.rng = d.u() | 1
	s.approx = d.bool()
	nl := d.n(63)
	s.levels = make([][]float64, max(nl, 1))
	s.dirty = 0
	var w int64
	for h := range nl {
		s.levels[h] = d.fs(1 << 26)
		w += int64(len(s.levels[h])) << h
		if !slices.IsSorted(s.levels[h]) {
			d.fail(errors.New("quantile sketch level not sorted"))
		}
	}
	s.pending = d.fs(1<<s.b - 1)
	w += int64(len(s.pending))
	if d.err == nil && w != s.n {
		d.fail(errors.New("quantile sketch weights do not add up"))
	}
	s.derive()
}

func (x *distinct) encode(e *enc) {
	e.bool(x.hll != nil)
	if x.hll != nil {
		e.bytes(x.hll.reg)
		return
	}
	e.n(x.set.len())
	x.set.each(func(h uint64) { e.u(h) })
}

func (x *distinct) decode(d *dec) {
	if d.bool() {
		x.hll = decodeHLL(d, x.p)
		return
	}
	k := d.n(x.limit)
	for range k {
		x.set.add(d.u())
	}
}

func decodeHLL(d *dec, p int) *hll {
	h := newHLL(p)
	reg := d.bytes()
	if d.err == nil && len(reg) != len(h.reg) {
		d.fail(errors.New("HyperLogLog size does not match options"))
		return h
	}
	for _, r := range reg {
		if int(r) > 65-p {
			d.fail(errors.New("bad HyperLogLog register"))
			return h
		}
	}
	copy(h.reg, reg)
	h.rescan()
	return h
}
