package profile

import (
	"math"
	"math/big"
)

// xsum is an exact accumulator for sums of finite float64 values (after
// R. M. Neal's "small superaccumulator", 2015). The sum is held without any
// rounding as a signed fixed-point number of 32-bit digits covering the
// whole float64 exponent range, so adding the same multiset of values in any
// order, split any way and merged in any order, gives bit-identical state
// and therefore a bit-identical rounded result. That is what makes the sum
// (and the mean, sum/count rounded once) partition-invariant.
//
// Digit i has weight 2^(32*i - 1075). A double m·2^(e-1075) (m the 53-bit
// significand, e the biased exponent) lands in digit e>>5 (low 32 bits of
// m<<(e&31)) and digit e>>5+1 (the rest, < 2^53). Each digit is an int64, so
// 2^10 additions fit before carries must be propagated.
type xsum struct {
	d    [xsumDigits]int64
	adds int // additions since the last carry propagation
}

const (
	// 2046>>5 = 63 is the highest digit a double reaches, +1 for its high
	// part, + room for the carries of 2^63 additions of the largest double.
	xsumDigits = 70
	xsumBatch  = 1000 // < 2^10 additions between carry propagations
)

// addSlice adds finite values; the caller has removed NaN and ±Inf.
func (x *xsum) addSlice(vs []float64) {
	for len(vs) > 0 {
		room := xsumBatch - x.adds
		if room <= 0 {
			x.carry()
			room = xsumBatch
		}
		n := min(room, len(vs))
		d := &x.d
		for _, v := range vs[:n] {
			b := math.Float64bits(v)
			e := int(b>>52) & 0x7ff
			m := int64(b & (1<<52 - 1))
			if e == 0 {
				e = 1 // subnormal: same scale as the smallest normal, no hidden bit
			} else {
				m |= 1 << 52
			}
			s := uint(e & 31)
			i := e >> 5
			lo := (m << s) & 0xffffffff
			hi := m >> (32 - s)
			neg := -int64(b >> 63) // 0 or -1
			d[i] += (lo ^ neg) - neg
			d[i+1] += (hi ^ neg) - neg
		}
		x.adds += n
		vs = vs[n:]
	}
}

// carry brings every digit but the top one into [0, 2^32), the top one
// holding the sign; the represented value is unchanged.
func (x *xsum) carry() {
	var c int64
	for i := 0; i < xsumDigits-1; i++ {
		v := x.d[i] + c
		c = v >> 32 // arithmetic shift: floor division
		x.d[i] = v - c<<32
	}
	x.d[xsumDigits-1] += c
	x.adds = 0
}

func (x *xsum) merge(o *xsum) {
	x.carry()
	oc := *o
	oc.carry()
	for i := range x.d {
		x.d[i] += oc.d[i]
	}
	x.carry()
}

// big returns the exact sum.
func (x *xsum) big() *big.Float {
	c := *x
	c.carry()
	n := new(big.Int)
	t := new(big.Int)
	for i := xsumDigits - 1; i >= 0; i-- {
		n.Lsh(n, 32)
		n.Add(n, t.SetInt64(c.d[i]))
	}
	f := new(big.Float).SetInt(n) // exact: precision grows to fit
	return f.SetMantExp(f, -1075)
}

// float64 is the exact sum rounded once to the nearest double (±Inf when it
// overflows).
func (x *xsum) float64() float64 {
	f, _ := x.big().Float64()
	return f
}

// mean is the exact sum divided by n, rounded once.
func (x *xsum) mean(n int64) float64 {
	if n == 0 {
		return math.NaN()
	}
	q := new(big.Float).SetPrec(53).SetMode(big.ToNearestEven)
	q.Quo(x.big(), new(big.Float).SetInt64(n))
	f, _ := q.Float64()
	return f
}
