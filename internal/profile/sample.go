package profile

import (
	"cmp"
	"math"
	"slices"
	"sort"
)

// sample is a bottom-m sample of rows: the m rows with the smallest row
// hashes (a hash of the row's content), holding the values of the
// correlation columns (NaN where missing or infinite). Because the key is a
// function of the row alone, the sample of a data set is the same however it
// is partitioned and merged — a deterministic, uniform-looking sample without
// replacement (rows that are exact duplicates share a key and enter or leave
// together, which leaves every row's inclusion probability unchanged). When
// the data has at most m rows the sample is all of it.
type sample struct {
	m, ncol int
	keys    []uint64  // by slot
	vals    []float64 // by slot, ncol values each
	heap    []int32   // slots, max-heap by key
}

func newSample(m, ncol int) *sample { return &sample{m: m, ncol: ncol} }

func (s *sample) wants(key uint64) bool {
	return len(s.keys) < s.m || key < s.keys[s.heap[0]]
}

func (s *sample) insert(key uint64, val func(col int) float64) {
	var slot int
	if len(s.keys) < s.m {
		slot = len(s.keys)
		s.keys = append(s.keys, key)
		for j := range s.ncol {
			s.vals = append(s.vals, val(j))
		}
		s.heap = append(s.heap, int32(slot))
		s.up(len(s.heap) - 1)
		return
	}
	slot = int(s.heap[0])
	s.keys[slot] = key
	for j := range s.ncol {
		s.vals[slot*s.ncol+j] = val(j)
	}
	s.down(0)
}

func (s *sample) less(i, j int) bool { return s.keys[s.heap[i]] > s.keys[s.heap[j]] }

func (s *sample) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(i, p) {
			return
		}
		s.heap[i], s.heap[p] = s.heap[p], s.heap[i]
		i = p
	}
}

func (s *sample) down(i int) {
	n := len(s.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		j := l
		if r := l + 1; r < n && s.less(r, l) {
			j = r
		}
		if !s.less(j, i) {
			return
		}
		s.heap[i], s.heap[j] = s.heap[j], s.heap[i]
		i = j
	}
}

// rows returns the sampled rows ordered by key (then values, so that equal
// keys — identical rows — order deterministically).
func (s *sample) rows() (keys []uint64, vals [][]float64) {
	idx := make([]int, len(s.keys))
	for i := range idx {
		idx[i] = i
	}
	row := func(i int) []float64 { return s.vals[i*s.ncol : (i+1)*s.ncol] }
	slices.SortFunc(idx, func(a, b int) int {
		if c := cmp.Compare(s.keys[a], s.keys[b]); c != 0 {
			return c
		}
		return slices.CompareFunc(row(a), row(b), func(x, y float64) int {
			return cmp.Compare(math.Float64bits(x), math.Float64bits(y))
		})
	})
	for _, i := range idx {
		keys = append(keys, s.keys[i])
		vals = append(vals, row(i))
	}
	return keys, vals
}

func (s *sample) merge(o *sample) {
	k1, v1 := s.rows()
	k2, v2 := o.rows()
	*s = sample{m: s.m, ncol: s.ncol}
	i, j := 0, 0
	for len(s.keys) < s.m && (i < len(k1) || j < len(k2)) {
		if j >= len(k2) || (i < len(k1) && k1[i] <= k2[j]) {
			s.push(k1[i], v1[i])
			i++
		} else {
			s.push(k2[j], v2[j])
			j++
		}
	}
}

func (s *sample) push(key uint64, row []float64) {
	s.insert(key, func(c int) float64 { return row[c] })
}

// spearman is the Spearman rank correlation of columns a and b of the
// sample over the rows where both are present: Pearson's r of the ranks,
// ties given their average rank (as pandas' corr(method="spearman")).
func spearman(xs, ys []float64) (float64, bool) {
	var x, y []float64
	for i := range xs {
		if !math.IsNaN(xs[i]) && !math.IsNaN(ys[i]) {
			x = append(x, xs[i])
			y = append(y, ys[i])
		}
	}
	if len(x) < 2 {
		return 0, false
	}
	return pearson(avgRanks(x), avgRanks(y))
}

func avgRanks(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
	r := make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i + 1
		for j < len(idx) && v[idx[j]] == v[idx[i]] {
			j++
		}
		avg := float64(i+j+1) / 2 // ranks i+1..j
		for k := i; k < j; k++ {
			r[idx[k]] = avg
		}
		i = j
	}
	return r
}

// pearson is the two-pass Pearson correlation; false when a side is
// constant.
func pearson(x, y []float64) (float64, bool) {
	n := float64(len(x))
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= n
	my /= n
	var sxx, syy, sxy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxx += dx * dx
		syy += dy * dy
		sxy += dx * dy
	}
	if sxx == 0 || syy == 0 {
		return 0, false
	}
	return clampCorr(sxy / math.Sqrt(sxx*syy)), true
}

func clampCorr(r float64) float64 { return min(max(r, -1), 1) }
