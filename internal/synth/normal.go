package synth

import (
	"math"
	"slices"
)

// phi is the standard normal density.
func phi(x float64) float64 { return math.Exp(-x*x/2) / math.Sqrt(2*math.Pi) }

// cdf is the standard normal CDF Φ.
func cdf(x float64) float64 { return 0.5 * math.Erfc(-x/math.Sqrt2) }

// quantile is Φ⁻¹(p), ±Inf at 0 and 1.
func quantile(p float64) float64 { return -math.Sqrt2 * math.Erfcinv(2*p) }

// ranks sets out[row] to the rank (1..n) of each of n rows given by
// their order (order[i] is the row of the i-th smallest) and a function
// telling whether two rows hold equal values; rows with equal values get
// their average rank.
func ranks(order []int32, equal func(a, b int32) bool, out []float32) {
	n := len(order)
	for i := 0; i < n; {
		j := i + 1
		for j < n && equal(order[i], order[j]) {
			j++
		}
		r := float32(i+1+j) / 2 // ranks i+1 .. j
		for _, row := range order[i:j] {
			out[row] = r
		}
		i = j
	}
}

// normalScores turns ranks among n (NaN: none) into normal scores
// Φ⁻¹(rank/(n+1)), in place.
func normalScores(rs []float32) []float32 {
	var n float64
	for _, r := range rs {
		if r == r {
			n++
		}
	}
	for i, r := range rs {
		if r == r {
			rs[i] = float32(quantile(float64(r) / (n + 1)))
		}
	}
	return rs
}

// orderOf is the rows of vs (those with ok[row]) by ascending value,
// ties by row.
func orderOf[T int64 | float64](vs []T, ok func(int) bool) []int32 {
	order := make([]int32, 0, len(vs))
	for i := range vs {
		if ok(i) {
			order = append(order, int32(i))
		}
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		switch {
		case vs[a] < vs[b]:
			return -1
		case vs[a] > vs[b]:
			return 1
		}
		return 0
	})
	return order
}
