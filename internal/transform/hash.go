package transform

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/bits"
)

// Row hashes are functions of the values alone — never of where a row
// was read or of the process — so that a row gets the same split and
// the same shuffle bucket however the input was partitioned, here or in
// a job. Values are hashed by kind: missing values (null, and NaN in a
// float column) hash alike, and −0 as 0, so that rows equal as
// drop_duplicates sees them hash equal.

const (
	m1 = 0x9E3779B97F4A7C15
	m2 = 0xBF58476D1CE4E5B9
	m3 = 0x94D049BB133111EB
)

// mix64 is splitmix64's finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= m2
	x ^= x >> 27
	x *= m3
	x ^= x >> 31
	return x
}

func hashBytes(b []byte) uint64 {
	h := uint64(len(b))*m1 ^ 0x736f6d6570736575
	for len(b) >= 8 {
		h = bits.RotateLeft64(h^mix64(binary.LittleEndian.Uint64(b)), 29) * m1
		b = b[8:]
	}
	if len(b) > 0 {
		var t [8]byte
		copy(t[:], b)
		h = bits.RotateLeft64(h^mix64(binary.LittleEndian.Uint64(t[:])^0xff), 29) * m1
	}
	return mix64(h)
}

const nullHash = 0x6e756c6c6e756c6c

// hashColumn folds column c's values into the row hashes h.
func hashColumn(h []uint64, c *column) {
	for i := range h {
		var v uint64
		switch {
		case c.missing(i):
			v = nullHash
		case c.k == kInt || c.k == kTime:
			v = mix64(uint64(c.ints[i]) ^ uint64(c.k)<<56)
		case c.k == kFloat:
			f := c.flts[i]
			if f == 0 {
				f = 0 // −0
			}
			v = mix64(math.Float64bits(f) ^ 0x5a<<56)
		case c.k == kBool:
			if c.boolAt(i) {
				v = mix64(0xb1)
			} else {
				v = mix64(0xb0)
			}
		default:
			v = hashBytes(c.str(i))
		}
		h[i] = mix64(bits.RotateLeft64(h[i], 23)*m1 ^ v)
	}
}

// hashRows hashes each row of cols, starting from seed.
func hashRows(cols []*column, n int, seed uint64) []uint64 {
	h := make([]uint64, n)
	s := mix64(seed ^ 0x68706d6c)
	for i := range h {
		h[i] = s
	}
	for _, c := range cols {
		hashColumn(h, c)
	}
	return h
}

// equalAt says whether row i of a equals row j of b (the same kind), as
// drop_duplicates compares: missing equals missing, −0 equals 0.
func equalAt(a *column, i int, b *column, j int) bool {
	ma, mb := a.missing(i), b.missing(j)
	if ma || mb {
		return ma && mb
	}
	switch a.k {
	case kInt, kTime:
		return a.ints[i] == b.ints[j]
	case kFloat:
		return a.flts[i] == b.flts[j]
	case kBool:
		return a.boolAt(i) == b.boolAt(j)
	}
	return bytes.Equal(a.str(i), b.str(j))
}
