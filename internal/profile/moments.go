package profile

// moments holds the count, mean and central moment sums M_k = Σ(x−mean)^k
// (k = 2, 3, 4) of a set of finite values. The mean is a double-double
// (mean + meanLo): with data far from zero (1e12 + noise) the difference of
// two partial means is then still accurate, which the merge formulas
// multiply by large counts.
type moments struct {
	n            int64
	mean, meanLo float64
	m2, m3, m4   float64
}

// ddAdd adds x to the double-double hi+lo (Knuth's TwoSum).
func ddAdd(hi, lo, x float64) (float64, float64) {
	s := hi + x
	bb := s - hi
	e := (hi - (s - bb)) + (x - bb)
	lo += e
	h := s + lo
	return h, lo - (h - s)
}

// merge combines two disjoint sets (Chan, Golub, LeVeque 1979 for M2;
// Pébay 2008, "Formulas for Robust, One-Pass Parallel Computation of
// Covariances and Arbitrary-Order Statistical Moments", for M3 and M4).
// Floating point: the result depends on the merge order in the last bits,
// hence the documented 1e-12 relative tolerance.
func (a *moments) merge(b moments) {
	if b.n == 0 {
		return
	}
	if a.n == 0 {
		*a = b
		return
	}
	na, nb := float64(a.n), float64(b.n)
	n := na + nb
	d := (b.mean - a.mean) + (b.meanLo - a.meanLo)
	dn := d / n
	dn2 := dn * dn
	t := d * d * na * nb / n
	m4 := a.m4 + b.m4 + t*dn2*(na*na-na*nb+nb*nb) +
		6*dn2*(na*na*b.m2+nb*nb*a.m2) + 4*dn*(na*b.m3-nb*a.m3)
	m3 := a.m3 + b.m3 + t*dn*(na-nb) + 3*dn*(na*b.m2-nb*a.m2)
	a.m2 += b.m2 + t
	a.m3, a.m4 = m3, m4
	a.mean, a.meanLo = ddAdd(a.mean, a.meanLo, dn*nb)
	a.n += b.n
}

// comoments holds what a Pearson correlation needs for one pair of columns
// over the rows where both are present: the count, both means, both M2 and
// the co-moment C = Σ(x−mx)(y−my).
type comoments struct {
	n                  int64
	ma, maLo, mb, mbLo float64 // double-double means, as in moments
	m2a, m2b, c        float64
}

func (a *comoments) merge(b comoments) {
	if b.n == 0 {
		return
	}
	if a.n == 0 {
		*a = b
		return
	}
	na, nb := float64(a.n), float64(b.n)
	n := na + nb
	da := (b.ma - a.ma) + (b.maLo - a.maLo)
	db := (b.mb - a.mb) + (b.mbLo - a.mbLo)
	f := na * nb / n
	a.m2a += b.m2a + da*da*f
	a.m2b += b.m2b + db*db*f
	a.c += b.c + da*db*f
	a.ma, a.maLo = ddAdd(a.ma, a.maLo, da*nb/n)
	a.mb, a.mbLo = ddAdd(a.mb, a.mbLo, db*nb/n)
	a.n += b.n
}

// dot is a four-way unrolled dot product (independent accumulators keep the
// FP adder busy).
func dot(a, b []float64) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}
