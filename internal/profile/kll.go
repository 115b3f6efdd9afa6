package profile

import (
	"math"
	"math/bits"
	"slices"
	"sort"
)

// kll is the KLL quantile sketch (Karnin, Lang, Liberty, "Optimal Quantile
// Approximation in Streams", 2016) in the lazy-compaction form of Apache
// DataSketches: levels of retained items, level h items weighing 2^h; level
// capacities shrink geometrically (factor 2/3) from k at the top down to a
// floor of 8; when the sketch is full the lowest over-full level is sorted and
// every other item (random offset) is promoted. Merging concatenates levels
// and compacts the same way, so the sketch is fully mergeable.
//
// Two changes for speed, both from the KLL paper's own analysis, neither
// loosening the stated error:
//   - Sampler: once n ≥ 2^b·8k², items enter at level b — one item drawn
//     uniformly from each group of 2^b consecutive values — instead of
//     climbing levels 0..b−1 by compaction (the paper replaces the lowest
//     levels by exactly such a sampler). Its rank error has standard
//     deviation ≤ sqrt(n·2^b)/2 ≤ n/(2k·sqrt(8)), a few percent of the
//     compactors' in quadrature. b ≤ 10; the current group's values (fewer
//     than 2^b) wait in pending with weight 1.
//   - The entry level has capacity ≥ k, so it is sorted in runs of ≥ k
//     rather than of 8 (fewer, larger compactions only lower the error).
//
// Error: the normalised rank error of a single quantile query is at most
// kllRankError(k) with 99% confidence (DataSketches' fitted bound
// 2.296/k^0.9723: 1.33% for k=200, 0.68% for k=400); tests check it. The
// first kllExact values are kept as they are, so up to there queries are
// exact.
type kll struct {
	k       int
	n       int64 // values added, pending included
	b       int   // entry level of the sampler
	levels  [][]float64
	dirty   uint64    // bit h: levels[h] may be unsorted
	pending []float64 // the current sampler group, fewer than 2^b values
	rng     uint64    // xorshift state for coins and sampler draws
	approx  bool      // some value was compacted or sampled away

	// Derived, not encoded: capacities for the current shape, their total,
	// the items in levels, buffers.
	caps   []int
	capSum int
	size   int
	up     []float64
	picks  []float64
	keys   []uint64
	tmp    []uint64
}

const (
	kllMinWidth    = 8
	kllMaxSampler  = 10
	kllSamplerSafe = 2 // n ≥ 2^b · kllSamplerSafe · k²
	// kllExact values are kept as they are before the first compaction, so
	// small columns get exact quantiles and histograms.
	kllExact = 4096
)

func newKLL(k int, seed uint64) *kll {
	s := &kll{k: k, levels: [][]float64{nil}, rng: seed | 1}
	s.derive()
	return s
}

// kllRankError is the 99%-confidence normalised rank error of one quantile.
func kllRankError(k int) float64 { return 2.296 / math.Pow(float64(k), 0.9723) }

// derive recomputes capacities and size after the levels changed shape.
func (s *kll) derive() {
	for len(s.levels) <= s.b {
		s.levels = append(s.levels, nil)
	}
	s.caps = s.caps[:0]
	s.capSum, s.size = 0, 0
	for h := range s.levels {
		depth := len(s.levels) - 1 - h
		c := max(int(math.Ceil(float64(s.k)*math.Pow(2.0/3.0, float64(depth)))), kllMinWidth)
		if h == s.b {
			c = max(c, s.k)
			if !s.approx {
				c = max(c, kllExact)
			}
		}
		s.caps = append(s.caps, c)
		s.capSum += c
		s.size += len(s.levels[h])
	}
}

func (s *kll) rand() uint64 {
	x := s.rng
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	s.rng = x
	return x
}

// addSlice adds values (no NaN) in bulk.
func (s *kll) addSlice(vs []float64) {
	s.n += int64(len(vs))
	for len(vs) > 0 {
		g := 1 << s.b
		if g == 1 {
			s.push(vs)
			s.raise()
			return
		}
		if len(s.pending) > 0 || len(vs) < g {
			t := min(g-len(s.pending), len(vs))
			s.pending = append(s.pending, vs[:t]...)
			vs = vs[t:]
			if len(s.pending) == g {
				s.picks = append(s.picks[:0], s.pending[s.rand()&uint64(g-1)])
				s.pending = s.pending[:0]
				s.push(s.picks)
				s.raise()
			}
			continue
		}
		ng := len(vs) / g
		picks := s.picks[:0]
		for i := range ng {
			picks = append(picks, vs[i*g+int(s.rand()&uint64(g-1))])
		}
		s.picks = picks
		s.push(picks)
		vs = vs[ng*g:]
		s.raise()
	}
}

// raise lifts the sampler level as n grows; only between groups.
func (s *kll) raise() {
	if len(s.pending) > 0 || s.b >= kllMaxSampler {
		return
	}
	r := uint64(s.n) / (kllSamplerSafe * uint64(s.k) * uint64(s.k))
	if r == 0 {
		return
	}
	t := min(bits.Len64(r)-1, kllMaxSampler)
	if t > s.b {
		s.b = t
		s.derive()
	}
}

// push appends values of weight 2^b to the entry level, compacting as the
// sketch fills.
func (s *kll) push(vs []float64) {
	if s.b > 0 {
		s.approx = true
	}
	for len(vs) > 0 {
		if s.size >= s.capSum {
			s.compress()
			continue
		}
		t := min(s.capSum-s.size, len(vs))
		s.levels[s.b] = append(s.levels[s.b], vs[:t]...)
		s.dirty |= 1 << s.b
		vs = vs[t:]
		s.size += t
	}
}

// compress compacts the lowest level at or over its capacity (there is one
// whenever size ≥ capacity).
func (s *kll) compress() {
	for h := range s.levels {
		if len(s.levels[h]) >= s.caps[h] {
			s.compact(h)
			return
		}
	}
}

func (s *kll) sortLevel(h int) {
	if s.dirty&(1<<h) != 0 {
		s.keys, s.tmp = sortFloats(s.levels[h], s.keys, s.tmp)
		s.dirty &^= 1 << h
	}
}

// sortFloats sorts NaN-free values by sorting their order-preserving
// integer images (a plain integer compare beats float compares that must
// order NaNs); keys is a reusable buffer, returned for reuse.
func sortFloats(v []float64, keys, tmp []uint64) ([]uint64, []uint64) {
	keys = slices.Grow(keys[:0], len(v))[:len(v)]
	for i, x := range v {
		b := math.Float64bits(x)
		keys[i] = b ^ (uint64(int64(b)>>63) | 1<<63)
	}
	if len(keys) < 64 {
		slices.Sort(keys)
	} else {
		tmp = slices.Grow(tmp[:0], len(keys))[:len(keys)]
		radixSort(keys, tmp)
	}
	for i, k := range keys {
		v[i] = math.Float64frombits(k ^ (^uint64(int64(k)>>63) | 1<<63))
	}
	return keys, tmp
}

// radixSort is an LSD radix sort of keys by bytes, skipping the bytes all
// keys share (the exponent bytes of similar values); branch-free, so it
// beats comparison sorts on random data. tmp has len(keys).
func radixSort(keys, tmp []uint64) {
	var cnt [8][256]int32
	for _, k := range keys {
		cnt[0][byte(k)]++
		cnt[1][byte(k>>8)]++
		cnt[2][byte(k>>16)]++
		cnt[3][byte(k>>24)]++
		cnt[4][byte(k>>32)]++
		cnt[5][byte(k>>40)]++
		cnt[6][byte(k>>48)]++
		cnt[7][byte(k>>56)]++
	}
	src, dst := keys, tmp
	for d := range 8 {
		c := &cnt[d]
		shift := uint(8 * d)
		if int(c[byte(src[0]>>shift)]) == len(src) {
			continue
		}
		var sum int32
		for i := range c {
			n := c[i]
			c[i] = sum
			sum += n
		}
		for _, k := range src {
			b := byte(k >> shift)
			dst[c[b]] = k
			c[b]++
		}
		src, dst = dst, src
	}
	if &src[0] != &keys[0] {
		copy(keys, src)
	}
}

func (s *kll) compact(h int) {
	grow := h == len(s.levels)-1
	if grow {
		s.levels = append(s.levels, nil)
	}
	if grow || !s.approx {
		s.approx = true
		s.derive()
	}
	s.sortLevel(h)
	l := s.levels[h]
	// An odd item stays behind (the smallest), the rest pair up and one of
	// each pair, all odd or all even positions by a coin, moves up.
	keep := len(l) & 1
	pairs := l[keep:]
	up := s.up[:0]
	for i := int(s.rand() >> 63); i < len(pairs); i += 2 {
		up = append(up, pairs[i])
	}
	s.up = up
	s.levels[h] = l[:keep]
	s.addLevel(h+1, up)
	s.size -= len(up)
}

// addLevel adds items of sorted vs to level h, keeping it sorted unless it
// is already marked unsorted.
func (s *kll) addLevel(h int, vs []float64) {
	if s.dirty&(1<<h) != 0 {
		s.levels[h] = append(s.levels[h], vs...)
		return
	}
	s.levels[h] = mergeInto(s.levels[h], vs)
}

// mergeInto merges sorted b into sorted a, in place from the back.
func mergeInto(a, b []float64) []float64 {
	na, nb := len(a), len(b)
	a = slices.Grow(a, nb)[:na+nb]
	i, j := na-1, nb-1
	for k := na + nb - 1; j >= 0; k-- {
		if i >= 0 && a[i] > b[j] {
			a[k] = a[i]
			i--
		} else {
			a[k] = b[j]
			j--
		}
	}
	return a
}

// merge folds o into s; o is not changed.
func (s *kll) merge(o *kll) {
	if o.n == 0 {
		return
	}
	for len(s.levels) < len(o.levels) {
		s.levels = append(s.levels, nil)
	}
	for h, l := range o.levels {
		if len(l) == 0 {
			continue
		}
		if o.dirty&(1<<h) != 0 {
			s.levels[h] = append(s.levels[h], l...)
			s.dirty |= 1 << h
		} else {
			s.addLevel(h, l)
		}
	}
	s.n += o.n - int64(len(o.pending))
	s.approx = s.approx || o.approx
	s.derive()
	for s.size >= s.capSum {
		s.compress()
	}
	s.addSlice(o.pending)
}

// kllView is the sorted, weighted view a query reads.
type kllView struct {
	v   []float64
	cum []int64 // cum[i] = total weight of v[0..i]
	n   int64
}

func (s *kll) view() kllView {
	type item struct {
		v float64
		w int64
	}
	items := make([]item, 0, s.size+len(s.pending))
	for _, v := range s.pending {
		items = append(items, item{v, 1})
	}
	for h, l := range s.levels {
		for _, v := range l {
			items = append(items, item{v, int64(1) << h})
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].v < items[j].v })
	kv := kllView{v: make([]float64, len(items)), cum: make([]int64, len(items)), n: s.n}
	var c int64
	for i, it := range items {
		c += it.w
		kv.v[i], kv.cum[i] = it.v, c
	}
	return kv
}

// quantile returns the smallest retained item whose estimated inclusive rank
// reaches ceil(q·n) — the inverted-CDF definition: no interpolation, the
// answer is always a value of the data.
func (kv kllView) quantile(q float64) float64 {
	if kv.n == 0 {
		return math.NaN()
	}
	r := int64(math.Ceil(q * float64(kv.n)))
	r = max(r, 1)
	i := sort.Search(len(kv.cum), func(i int) bool { return kv.cum[i] >= r })
	if i == len(kv.v) {
		i--
	}
	return kv.v[i]
}

// countBelow estimates how many values are < x.
func (kv kllView) countBelow(x float64) int64 {
	i := sort.SearchFloat64s(kv.v, x) // first index with v ≥ x
	if i == 0 {
		return 0
	}
	return kv.cum[i-1]
}
