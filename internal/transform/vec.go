package transform

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/hpcml/hpcml/internal/table"
)

// kind is one of the five column types of internal/table.
type kind uint8

const (
	kInt kind = iota
	kFloat
	kBool
	kTime
	kString
)

var kindTypes = [...]arrow.DataType{kInt: table.Int64, kFloat: table.Float64, kBool: table.Boolean, kTime: table.Timestamp, kString: table.String}
var kindNames = [...]string{kInt: "int64", kFloat: "float64", kBool: "bool", kTime: "timestamp", kString: "string"}

func (k kind) String() string       { return kindNames[k] }
func (k kind) Type() arrow.DataType { return kindTypes[k] }
func (k kind) numeric() bool        { return k == kInt || k == kFloat }

func kindOfType(t arrow.DataType) (kind, error) {
	for k, kt := range kindTypes {
		if arrow.TypeEqual(kt, t) {
			return kind(k), nil
		}
	}
	return 0, fmt.Errorf("unsupported column type %s", t)
}

func kindOfName(s string) (kind, bool) {
	for k, n := range kindNames {
		if n == s {
			return kind(k), true
		}
	}
	return 0, false
}

// column is an Arrow array seen through its raw buffers.
type column struct {
	k     kind
	n     int
	nulls int
	valid []byte // nil: no nulls
	off   int    // the array's offset, for valid and bools
	ints  []int64
	flts  []float64
	bools []byte
	offs  []int32
	data  []byte
	arr   arrow.Array
}

func view(a arrow.Array) column {
	k, _ := kindOfType(a.DataType())
	c := column{k: k, n: a.Len(), nulls: a.NullN(), off: a.Data().Offset(), arr: a}
	if c.nulls > 0 {
		c.valid = a.NullBitmapBytes()
	}
	switch x := a.(type) {
	case *array.Int64:
		c.ints = x.Int64Values()
	case *array.Timestamp:
		v := x.TimestampValues()
		c.ints = arrow.Int64Traits.CastFromBytes(arrow.TimestampTraits.CastToBytes(v))
	case *array.Float64:
		c.flts = x.Float64Values()
	case *array.Boolean:
		if b := a.Data().Buffers()[1]; b != nil {
			c.bools = b.Bytes()
		}
	case *array.String:
		c.offs = x.ValueOffsets()
		c.data = x.ValueBytes()
		// ValueOffsets are relative to the array's offset already; the
		// data bytes are the whole buffer, addressed by those offsets.
		if b := a.Data().Buffers()[2]; b != nil {
			c.data = b.Bytes()
		}
	}
	return c
}

func (c *column) isNull(i int) bool {
	if c.valid == nil {
		return false
	}
	j := i + c.off
	return c.valid[j>>3]&(1<<(j&7)) == 0
}

// missing: null, or NaN in a float column.
func (c *column) missing(i int) bool {
	if c.isNull(i) {
		return true
	}
	return c.k == kFloat && math.IsNaN(c.flts[i])
}

func (c *column) boolAt(i int) bool {
	j := i + c.off
	return c.bools[j>>3]&(1<<(j&7)) != 0
}

func (c *column) str(i int) []byte { return c.data[c.offs[i]:c.offs[i+1]] }

// builder assembles a column of one kind row by row.
type builder struct {
	k     kind
	n     int
	nulls int
	valid []byte
	ints  []int64
	flts  []float64
	bools []byte
	offs  []int32
	data  []byte
}

func newBuilder(k kind, capacity int) *builder {
	b := &builder{k: k}
	switch k {
	case kInt, kTime:
		b.ints = make([]int64, 0, capacity)
	case kFloat:
		b.flts = make([]float64, 0, capacity)
	case kBool:
		b.bools = make([]byte, 0, (capacity+7)/8)
	case kString:
		b.offs = make([]int32, 1, capacity+1)
	}
	return b
}

func (b *builder) setValid(ok bool) {
	if !ok && b.valid == nil {
		b.valid = make([]byte, b.n/8+1, b.n/8+1+(cap(b.ints)+cap(b.flts)+cap(b.offs))/8)
		for i := 0; i < b.n; i++ {
			b.valid[i>>3] |= 1 << (i & 7)
		}
	}
	if b.valid != nil {
		for len(b.valid) <= b.n>>3 {
			b.valid = append(b.valid, 0)
		}
		if ok {
			b.valid[b.n>>3] |= 1 << (b.n & 7)
		}
	}
	if !ok {
		b.nulls++
	}
	if b.k == kBool && b.n>>3 >= len(b.bools) {
		b.bools = append(b.bools, 0)
	}
	b.n++
}

func (b *builder) appendNull() {
	switch b.k {
	case kInt, kTime:
		b.ints = append(b.ints, 0)
	case kFloat:
		b.flts = append(b.flts, 0)
	case kString:
		b.offs = append(b.offs, int32(len(b.data)))
	}
	b.setValid(false)
}

func (b *builder) appendInt(v int64) { b.ints = append(b.ints, v); b.setValid(true) }

func (b *builder) appendFloat(v float64) { b.flts = append(b.flts, v); b.setValid(true) }

func (b *builder) appendBool(v bool) {
	i := b.n
	b.setValid(true)
	if v {
		b.bools[i>>3] |= 1 << (i & 7)
	}
}

func (b *builder) appendString(s []byte) {
	b.data = append(b.data, s...)
	b.offs = append(b.offs, int32(len(b.data)))
	b.setValid(true)
}

// appendFrom appends row i of c (of the builder's kind).
func (b *builder) appendFrom(c *column, i int) {
	if c.isNull(i) {
		b.appendNull()
		return
	}
	switch b.k {
	case kInt, kTime:
		b.appendInt(c.ints[i])
	case kFloat:
		b.appendFloat(c.flts[i])
	case kBool:
		b.appendBool(c.boolAt(i))
	case kString:
		b.appendString(c.str(i))
	}
}

func (b *builder) appendScalar(s scalar) {
	if s.null {
		b.appendNull()
		return
	}
	switch b.k {
	case kInt, kTime:
		b.appendInt(s.i)
	case kFloat:
		b.appendFloat(s.f)
	case kBool:
		b.appendBool(s.b)
	case kString:
		b.appendString([]byte(s.s))
	}
}

func (b *builder) array() arrow.Array {
	var valid *memory.Buffer
	if b.nulls > 0 {
		valid = memory.NewBufferBytes(b.valid[:(b.n+7)/8])
	}
	var bufs []*memory.Buffer
	switch b.k {
	case kInt, kTime:
		bufs = []*memory.Buffer{valid, memory.NewBufferBytes(arrow.Int64Traits.CastToBytes(b.ints))}
	case kFloat:
		bufs = []*memory.Buffer{valid, memory.NewBufferBytes(arrow.Float64Traits.CastToBytes(b.flts))}
	case kBool:
		for len(b.bools) < (b.n+7)/8 {
			b.bools = append(b.bools, 0)
		}
		bufs = []*memory.Buffer{valid, memory.NewBufferBytes(b.bools[:(b.n+7)/8])}
	case kString:
		bufs = []*memory.Buffer{valid, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(b.offs)), memory.NewBufferBytes(b.data)}
	}
	data := array.NewData(b.k.Type(), b.n, bufs, nil, b.nulls, 0)
	defer data.Release()
	return array.MakeFromData(data)
}

// take is the rows idx of a, in that order.
func take(a arrow.Array, idx []int32) arrow.Array {
	c := view(a)
	b := newBuilder(c.k, len(idx))
	if c.nulls == 0 {
		switch c.k {
		case kInt, kTime:
			for _, i := range idx {
				b.ints = append(b.ints, c.ints[i])
			}
			b.n = len(idx)
			return b.array()
		case kFloat:
			for _, i := range idx {
				b.flts = append(b.flts, c.flts[i])
			}
			b.n = len(idx)
			return b.array()
		}
	}
	for _, i := range idx {
		b.appendFrom(&c, int(i))
	}
	return b.array()
}

// takeRecord is the rows idx of rec.
func takeRecord(rec arrow.RecordBatch, idx []int32) arrow.RecordBatch {
	cols := make([]arrow.Array, rec.NumCols())
	for i := range cols {
		cols[i] = take(rec.Column(i), idx)
	}
	return array.NewRecordBatch(rec.Schema(), cols, int64(len(idx)))
}

// scalar is one value of a kind.
type scalar struct {
	null bool
	i    int64 // int64, timestamp (µs)
	f    float64
	b    bool
	s    string
}

func (s scalar) text(k kind) string {
	if s.null {
		return "null"
	}
	switch k {
	case kInt:
		return strconv.FormatInt(s.i, 10)
	case kFloat:
		return strconv.FormatFloat(s.f, 'g', -1, 64)
	case kBool:
		return strconv.FormatBool(s.b)
	case kTime:
		return time.UnixMicro(s.i).UTC().Format(time.RFC3339Nano)
	}
	return s.s
}

// jsonValue is the scalar for a report.
func (s scalar) jsonValue(k kind) any {
	if s.null {
		return nil
	}
	switch k {
	case kInt:
		return s.i
	case kFloat:
		if math.IsNaN(s.f) || math.IsInf(s.f, 0) {
			return s.text(k)
		}
		return s.f
	case kBool:
		return s.b
	}
	return s.text(k)
}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999", "2006-01-02T15:04Z07:00", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"}

func parseTime(s string) (int64, bool) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UnixMicro(), true
		}
	}
	return 0, false
}

// parseScalar reads a spec's value (or a string cast) as kind k.
func parseScalar(text string, k kind) (scalar, error) {
	switch k {
	case kInt:
		v, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return scalar{}, fmt.Errorf("%q is not an int64", text)
		}
		return scalar{i: v}, nil
	case kFloat:
		v, err := strconv.ParseFloat(text, 64)
		if err != nil {
			switch text {
			case ".nan", ".NaN":
				return scalar{f: math.NaN()}, nil
			case ".inf", "+.inf", ".Inf":
				return scalar{f: math.Inf(1)}, nil
			case "-.inf", "-.Inf":
				return scalar{f: math.Inf(-1)}, nil
			}
			return scalar{}, fmt.Errorf("%q is not a float64", text)
		}
		return scalar{f: v}, nil
	case kBool:
		v, err := strconv.ParseBool(text)
		if err != nil {
			return scalar{}, fmt.Errorf("%q is not a bool (true or false)", text)
		}
		return scalar{b: v}, nil
	case kTime:
		v, ok := parseTime(text)
		if !ok {
			return scalar{}, fmt.Errorf("%q is not a timestamp (2024-03-01, 2024-03-01T12:30:00Z, ...)", text)
		}
		return scalar{i: v}, nil
	}
	return scalar{s: text}, nil
}
