package transform

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Casts, as Spark and pandas do them where they agree:
//
//	int64     → float64 (exact below 2^53), string (decimal), bool (0 false, 1 true, else an error),
//	            timestamp (microseconds since the epoch)
//	float64   → int64 (truncated toward zero; NaN → null; beyond int64 an error), string (shortest
//	            text that reads back), bool (0 false, anything else true; NaN → null)
//	bool      → int64, float64 (1, 0), string (true, false)
//	timestamp → int64 (microseconds since the epoch), string (RFC 3339, UTC)
//	string    → int64, float64, bool, timestamp: parsed (spaces around ignored); a value that does
//	            not parse is an error naming the row
func castable(from, to kind) error {
	if from == to || to == kString || from == kString {
		return nil
	}
	switch {
	case from == kInt:
		return nil
	case from == kFloat && (to == kInt || to == kBool):
		return nil
	case from == kBool && (to == kInt || to == kFloat):
		return nil
	case from == kTime && to == kInt:
		return nil
	}
	return fmt.Errorf("cannot cast %s to %s", from, to)
}

// DataError is a value a step cannot handle, with where its row came
// from; Location (file and line) is filled in when it can be found.
type DataError struct {
	Step     Field
	Column   string
	Msg      string
	Origin   int64 // partition<<40 | row
	Location string
}

func (e *DataError) Error() string {
	p, r := splitOrigin(e.Origin)
	where := fmt.Sprintf("input partition %d, row %d", p, r+1)
	if e.Location != "" {
		where = e.Location
	}
	return fmt.Sprintf("%s, column %q: %s: %s", where, e.Column, e.Step.Path, e.Msg)
}

func castStep(casts map[int]kind, in []col, schema *arrow.Schema) func(*batch, *StepStats) (*batch, error) {
	return func(b *batch, _ *StepStats) (*batch, error) {
		cols := make([]arrow.Array, b.rec.NumCols())
		copy(cols, b.rec.Columns())
		for j, to := range casts {
			c := view(cols[j])
			a, bad, msg := castColumn(&c, to)
			if bad >= 0 {
				return nil, &DataError{Column: in[j].Name, Msg: msg, Origin: b.rows[bad]}
			}
			cols[j] = a
		}
		return &batch{rec: array.NewRecordBatch(schema, cols, b.rec.NumRows()), rows: b.rows}, nil
	}
}

// castColumn casts c to kind to; on a value it cannot cast, the row and
// why.
func castColumn(c *column, to kind) (arrow.Array, int, string) {
	b := newBuilder(to, c.n)
	for i := 0; i < c.n; i++ {
		if c.isNull(i) {
			b.appendNull()
			continue
		}
		switch c.k {
		case kInt:
			v := c.ints[i]
			switch to {
			case kFloat:
				b.appendFloat(float64(v))
			case kString:
				b.appendString(strconv.AppendInt(nil, v, 10))
			case kBool:
				if v != 0 && v != 1 {
					return nil, i, fmt.Sprintf("%d is not a bool (0 or 1)", v)
				}
				b.appendBool(v == 1)
			case kTime:
				b.appendInt(v)
			}
		case kFloat:
			v := c.flts[i]
			if math.IsNaN(v) {
				b.appendNull()
				continue
			}
			switch to {
			case kInt:
				t := math.Trunc(v)
				if t < -(1<<63) || t >= 1<<63 {
					return nil, i, fmt.Sprintf("%v is beyond int64", v)
				}
				b.appendInt(int64(t))
			case kString:
				b.appendString(strconv.AppendFloat(nil, v, 'g', -1, 64))
			case kBool:
				b.appendBool(v != 0)
			}
		case kBool:
			v := int64(0)
			if c.boolAt(i) {
				v = 1
			}
			switch to {
			case kInt:
				b.appendInt(v)
			case kFloat:
				b.appendFloat(float64(v))
			case kString:
				b.appendString([]byte(strconv.FormatBool(v == 1)))
			}
		case kTime:
			v := c.ints[i]
			switch to {
			case kInt:
				b.appendInt(v)
			case kString:
				b.appendString([]byte(time.UnixMicro(v).UTC().Format(time.RFC3339Nano)))
			}
		case kString:
			s := strings.TrimSpace(string(c.str(i)))
			if to == kFloat {
				if v, err := strconv.ParseFloat(s, 64); err == nil || isRangeErr(err) {
					b.appendFloat(v)
					continue
				}
			}
			v, err := parseScalar(s, to)
			if err != nil {
				return nil, i, fmt.Sprintf("%q is not %s %s", string(c.str(i)), article(to), to)
			}
			b.appendScalar(v)
		}
	}
	return b.array(), -1, ""
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

func article(k kind) string {
	if k == kInt {
		return "an"
	}
	return "a"
}
