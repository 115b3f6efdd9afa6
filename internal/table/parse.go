package table

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Parsing text values: numbers, booleans and timestamps, without
// allocating. Spaces around a value are ignored for every type but
// string.

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// str is b as a string without copying, for parsers that do not keep it.
func str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// signLen and signNeg: the length of a leading sign, and whether it is
// a minus.
var signLen, signNeg = func() (l, n [256]uint8) {
	l['-'], l['+'], n['-'] = 1, 1, 1
	return
}()

var pow10u = [...]uint64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000}

// digits reads the decimal digits at b[i:] into mant (mant*10 + digit
// for each; it wraps after 19 digits: the caller counts them), 8 at a
// time where the slice's capacity allows loading 8 bytes (SWAR: no
// branch per digit). It returns the new mant and the index after the
// digits.
func digits(b []byte, i int, mant uint64) (uint64, int) {
	for {
		if cap(b)-i < 8 {
			for i < len(b) {
				d := b[i] - '0'
				if d > 9 {
					break
				}
				mant = mant*10 + uint64(d)
				i++
			}
			return mant, i
		}
		t := binary.LittleEndian.Uint64(b[i:i+8:cap(b)]) ^ 0x3030303030303030
		// A byte is a digit if it is now 0..9: nothing in its high nibble,
		// and no carry into bit 4 when adding 6.
		m := t&0xF0F0F0F0F0F0F0F0 | (t+0x0606060606060606)&0x1010101010101010
		n := min(bits.TrailingZeros64(m)>>3, len(b)-i)
		if n == 0 {
			return mant, i
		}
		x := t << (64 - 8*uint(n)) // the n digits, most significant first, in the high bytes
		x = x*10 + x>>8
		x = ((x&0x000000FF000000FF)*(100+1000000<<32) + (x>>16&0x000000FF000000FF)*(1+10000<<32)) >> 32
		mant = mant*pow10u[n] + uint64(uint32(x))
		i += n
		if n < 8 {
			return mant, i
		}
	}
}

// parseInt reads a decimal integer: an optional sign and digits.
func parseInt(b []byte) (int64, bool) {
	if len(b) > 0 && (b[0] <= ' ' || b[len(b)-1] <= ' ') {
		b = trimSpace(b)
	}
	v, n, ok := intPrefix(b)
	return v, ok && n == len(b)
}

// parseFloat reads a decimal number (digits, a point, an exponent), NaN,
// or an infinity (inf, Infinity, with a sign). Hexadecimal and
// underscores are not numbers here. Exact: the common case is computed
// directly (Clinger's fast path: at most 19 digits, a mantissa below
// 2^53 and a power of ten up to 22), the rest by strconv.
func parseFloat(b []byte) (float64, bool) {
	if len(b) > 0 && (b[0] <= ' ' || b[len(b)-1] <= ' ') {
		b = trimSpace(b)
	}
	f, n, ok := floatPrefix(b)
	if n == 0 && len(b) > 0 {
		return special(b)
	}
	return f, ok && n == len(b)
}

// floatPrefix reads the decimal number b starts with: its value, its
// length (0 if b does not start with digits, a sign and digits, or a
// point and digits), and whether it is one. It stops at the first byte
// that cannot continue the number.
func floatPrefix(b []byte) (float64, int, bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	// Branch-free sign: a random sign would mispredict half the time.
	i := int(signLen[b[0]])
	neg := uint64(signNeg[b[0]])
	start := i
	mant, i := digits(b, i, 0)
	nd := i - start
	exp := 0
	if i < len(b) && b[i] == '.' {
		fs := i + 1
		var j int
		mant, j = digits(b, fs, mant)
		if j > fs || nd > 0 {
			i = j
		}
		exp = fs - j
		nd += j - fs
	}
	if nd == 0 {
		return 0, 0, false
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		j := i + 1
		eneg := false
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			eneg = b[j] == '-'
			j++
		}
		es := j
		e := 0
		for ; j < len(b); j++ {
			d := b[j] - '0'
			if d > 9 {
				break
			}
			if e < 100000 {
				e = e*10 + int(d)
			}
		}
		if j > es { // an exponent; a bare "e" is not the number's
			if eneg {
				e = -e
			}
			exp += e
			i = j
		}
	}
	if nd <= 19 && mant < 1<<53 && exp >= -22 && exp <= 22 {
		f := float64(mant)
		if exp < 0 {
			f /= pow10[-exp]
		} else {
			f *= pow10[exp]
		}
		return math.Float64frombits(math.Float64bits(f) | neg<<63), i, true
	}
	f, err := strconv.ParseFloat(str(b[:i]), 64)
	if err != nil && err.(*strconv.NumError).Err != strconv.ErrRange {
		return 0, i, false
	}
	return f, i, true
}

// intPrefix reads the decimal integer b starts with: its value, its
// length (0 if none), and whether it fits an int64.
func intPrefix(b []byte) (int64, int, bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	i := 0
	neg := b[0] == '-'
	if neg || b[0] == '+' {
		i = 1
	}
	v, end := digits(b, i, 0)
	if end == i {
		return 0, 0, false
	}
	if end-i > 18 {
		r, err := strconv.ParseInt(str(b[:end]), 10, 64)
		return r, end, err == nil
	}
	if neg {
		return -int64(v), end, true
	}
	return int64(v), end, true
}

// special reads NaN and the infinities.
func special(b []byte) (float64, bool) {
	s := b
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	switch len(s) {
	case 3, 8:
	default:
		return 0, false
	}
	var low [8]byte
	for i, c := range s {
		low[i] = c | 0x20
	}
	switch string(low[:len(s)]) {
	case "nan", "inf", "infinity":
		f, err := strconv.ParseFloat(str(b), 64)
		return f, err == nil
	}
	return 0, false
}

// parseBool reads true or false, in any case.
func parseBool(b []byte) (bool, bool) {
	b = trimSpace(b)
	switch len(b) {
	case 4:
		if b[0]|0x20 == 't' && b[1]|0x20 == 'r' && b[2]|0x20 == 'u' && b[3]|0x20 == 'e' {
			return true, true
		}
	case 5:
		if b[0]|0x20 == 'f' && b[1]|0x20 == 'a' && b[2]|0x20 == 'l' && b[3]|0x20 == 's' && b[4]|0x20 == 'e' {
			return false, true
		}
	}
	return false, false
}

func num(b []byte) (int, bool) {
	v := 0
	for _, c := range b {
		d := c - '0'
		if d > 9 {
			return 0, false
		}
		v = v*10 + int(d)
	}
	return v, true
}

// daysFromCivil is the days since 1970-01-01 of a Gregorian date
// (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// parseTimestamp reads an ISO 8601 / RFC 3339 date or time:
// 2024-03-01, 2024-03-01T12:30, 2024-03-01 12:30:45.123456,
// 2024-03-01T12:30:45Z, 2024-03-01T12:30:45+02:00 (or +0200, +02).
// Without a zone it is UTC. The result is microseconds since the epoch.
func parseTimestamp(b []byte) (int64, bool) {
	b = trimSpace(b)
	if len(b) < 10 || b[4] != '-' || b[7] != '-' {
		return 0, false
	}
	y, ok1 := num(b[0:4])
	m, ok2 := num(b[5:7])
	d, ok3 := num(b[8:10])
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return 0, false
	}
	us := daysFromCivil(y, m, d) * 86400e6
	r := b[10:]
	if len(r) == 0 {
		return us, true
	}
	if r[0] != 'T' && r[0] != 't' && r[0] != ' ' {
		return 0, false
	}
	r = r[1:]
	if len(r) < 5 || r[2] != ':' {
		return 0, false
	}
	hh, ok1 := num(r[0:2])
	mm, ok2 := num(r[3:5])
	if !ok1 || !ok2 || hh > 23 || mm > 59 {
		return 0, false
	}
	r = r[5:]
	ss := 0
	if len(r) >= 3 && r[0] == ':' {
		var ok bool
		if ss, ok = num(r[1:3]); !ok || ss > 59 {
			return 0, false
		}
		r = r[3:]
		if len(r) > 1 && (r[0] == '.' || r[0] == ',') {
			r = r[1:]
			frac, scale := 0, 100000
			j := 0
			for ; j < len(r) && r[j] >= '0' && r[j] <= '9'; j++ {
				frac += int(r[j]-'0') * scale
				scale /= 10
			}
			if j == 0 {
				return 0, false
			}
			us += int64(frac)
			r = r[j:]
		}
	}
	us += int64(hh*3600+mm*60+ss) * 1e6
	if len(r) == 0 {
		return us, true
	}
	if len(r) == 1 && (r[0] == 'Z' || r[0] == 'z') {
		return us, true
	}
	if r[0] != '+' && r[0] != '-' {
		return 0, false
	}
	sign := int64(1)
	if r[0] == '-' {
		sign = -1
	}
	r = r[1:]
	var zh, zm int
	var ok bool
	switch {
	case len(r) == 2:
		zh, ok = num(r)
	case len(r) == 4:
		zh, ok = num(r[:2])
		zm, ok2 = num(r[2:])
		ok = ok && ok2
	case len(r) == 5 && r[2] == ':':
		zh, ok = num(r[:2])
		zm, ok2 = num(r[3:])
		ok = ok && ok2
	}
	if !ok || zh > 23 || zm > 59 {
		return 0, false
	}
	return us - sign*int64(zh*3600+zm*60)*1e6, true
}

// inference is what a column's sampled values allow.
type inference struct {
	notInt, notFloat, notBool, notTime bool
	values                             int
}

func (in *inference) add(b []byte) {
	in.values++
	if !in.notInt {
		_, ok := parseInt(b)
		in.notInt = !ok
	}
	if !in.notFloat {
		_, ok := parseFloat(b)
		in.notFloat = !ok
	}
	if !in.notBool {
		_, ok := parseBool(b)
		in.notBool = !ok
	}
	if !in.notTime {
		_, ok := parseTimestamp(b)
		in.notTime = !ok
	}
}

// kind is the narrowest type every sampled value fits; a column of nulls
// only is a string column.
func (in *inference) kind() kind {
	switch {
	case in.values == 0:
		return kindString
	case !in.notInt:
		return kindInt64
	case !in.notFloat:
		return kindFloat64
	case !in.notBool:
		return kindBoolean
	case !in.notTime:
		return kindTimestamp
	}
	return kindString
}

// column accumulates one column of a batch in the layout Arrow arrays
// take over without copying. It holds at most cap rows. The validity
// bitmap is made at the first null: a column without nulls has none.
type column struct {
	kind  kind
	n     int
	cap   int
	nulls int
	valid []byte // validity bitmap, nil while there are no nulls
	ints  []int64
	flts  []float64
	bits  []byte // booleans
	offs  []int32
	data  []byte
}

func (c *column) reset(rows int) {
	c.n, c.nulls, c.cap = 0, 0, rows
	c.valid, c.ints, c.flts, c.bits, c.offs, c.data = nil, nil, nil, nil, nil, nil
	switch c.kind {
	case kindInt64, kindTimestamp:
		c.ints = make([]int64, 0, rows)
	case kindFloat64:
		c.flts = make([]float64, 0, rows)
	case kindBoolean:
		c.bits = make([]byte, (rows+7)/8)
	case kindString:
		c.offs = make([]int32, 1, rows+1)
		c.data = make([]byte, 0, 16*rows)
	}
}

// ok counts a valid value appended.
func (c *column) ok() {
	if c.valid != nil {
		c.valid[c.n>>3] |= 1 << (c.n & 7)
	}
	c.n++
}

func (c *column) appendNull() {
	switch c.kind {
	case kindInt64, kindTimestamp:
		c.ints = append(c.ints, 0)
	case kindFloat64:
		c.flts = append(c.flts, 0)
	case kindString:
		c.offs = append(c.offs, int32(len(c.data)))
	}
	if c.valid == nil {
		c.valid = make([]byte, (c.cap+7)/8)
		for i := 0; i < c.n; i++ {
			c.valid[i>>3] |= 1 << (i & 7)
		}
	}
	c.nulls++
	c.n++
}

// Outcomes of appending a text value.
const (
	fieldOK = iota
	fieldBad
	fieldNotUTF8
)

// appendText parses a text value into the column.
func (c *column) appendText(b []byte) int {
	switch c.kind {
	case kindFloat64:
		v, ok := parseFloat(b)
		if !ok {
			return fieldBad
		}
		c.flts = append(c.flts, v)
	case kindInt64:
		v, ok := parseInt(b)
		if !ok {
			return fieldBad
		}
		c.ints = append(c.ints, v)
	case kindString:
		if !utf8.Valid(b) {
			return fieldNotUTF8
		}
		c.data = append(c.data, b...)
		c.offs = append(c.offs, int32(len(c.data)))
	case kindBoolean:
		v, ok := parseBool(b)
		if !ok {
			return fieldBad
		}
		if v {
			c.bits[c.n>>3] |= 1 << (c.n & 7)
		}
	case kindTimestamp:
		v, ok := parseTimestamp(b)
		if !ok {
			return fieldBad
		}
		c.ints = append(c.ints, v)
	}
	c.ok()
	return fieldOK
}

// bytes is the column's size so far, for capping a batch.
func (c *column) bytes() int { return len(c.data) }

// array hands the column to Arrow and starts a new one.
func (c *column) array(rows int) arrow.Array {
	var valid *memory.Buffer
	if c.nulls > 0 {
		valid = memory.NewBufferBytes(c.valid[:(c.n+7)/8])
	}
	var bufs []*memory.Buffer
	switch c.kind {
	case kindInt64, kindTimestamp:
		bufs = []*memory.Buffer{valid, memory.NewBufferBytes(arrow.Int64Traits.CastToBytes(c.ints))}
	case kindFloat64:
		bufs = []*memory.Buffer{valid, memory.NewBufferBytes(arrow.Float64Traits.CastToBytes(c.flts))}
	case kindBoolean:
		bufs = []*memory.Buffer{valid, memory.NewBufferBytes(c.bits[:(c.n+7)/8])}
	case kindString:
		bufs = []*memory.Buffer{valid, memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(c.offs)), memory.NewBufferBytes(c.data)}
	}
	data := array.NewData(c.kind.Type(), c.n, bufs, nil, c.nulls, 0)
	arr := array.MakeFromData(data)
	data.Release()
	c.reset(rows)
	return arr
}
