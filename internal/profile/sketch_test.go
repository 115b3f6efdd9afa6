package profile

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// bigSum is the straightforward exact sum: math/big with enough precision
// for any sum of doubles.
func bigSum(vs []float64) *big.Float {
	s := new(big.Float).SetPrec(2300)
	for _, v := range vs {
		s.Add(s, new(big.Float).SetFloat64(v))
	}
	return s
}

func TestXsumExactAndOrderFree(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := map[string]func() float64{
		"normal":    func() float64 { return r.NormFloat64() },
		"wide":      func() float64 { return math.Ldexp(r.Float64()-0.5, r.IntN(2000)-1000) },
		"cancel":    func() float64 { return []float64{1e300, -1e300, 1, 1e-300, -1e-16}[r.IntN(5)] },
		"subnormal": func() float64 { return math.Float64frombits(r.Uint64N(1<<52)) * float64(1-2*r.IntN(2)) },
		"huge":      func() float64 { return math.MaxFloat64 * (r.Float64() - 0.3) },
	}
	for name, gen := range cases {
		t.Run(name, func(t *testing.T) {
			vs := make([]float64, 5003)
			for i := range vs {
				vs[i] = gen()
			}
			want, _ := bigSum(vs).Float64()
			var a xsum
			a.addSlice(vs)
			if got := a.float64(); got != want {
				t.Fatalf("sum %v, want %v", got, want)
			}
			wantMean, _ := new(big.Float).SetPrec(53).Quo(bigSum(vs), big.NewFloat(float64(len(vs)))).Float64()
			if got := a.mean(int64(len(vs))); got != wantMean && !(math.IsInf(wantMean, 0) && math.IsInf(got, 0)) {
				t.Fatalf("mean %v, want %v", got, wantMean)
			}
			// Shuffled and split in three, merged: the same digits.
			sh := slices.Clone(vs)
			r.Shuffle(len(sh), func(i, j int) { sh[i], sh[j] = sh[j], sh[i] })
			var p1, p2, p3 xsum
			p1.addSlice(sh[:100])
			p2.addSlice(sh[100:3000])
			p3.addSlice(sh[3000:])
			p3.merge(&p1)
			p3.merge(&p2)
			a.carry()
			if p3.d != a.d {
				t.Fatal("split and merged sum differs in its digits")
			}
		})
	}
}

func TestHLLStandardError(t *testing.T) {
	const p = 14
	se := hllStdErr(p)
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{100, 5000, 40000, 300000} {
		h := newHLL(p)
		for range n {
			h.add(r.Uint64())
		}
		est := h.estimate()
		if rel := math.Abs(est-float64(n)) / float64(n); rel > 4*se {
			t.Errorf("n=%d: estimate %.0f, relative error %.4f > 4σ=%.4f", n, est, rel, 4*se)
		}
	}
	if e := newHLL(p).estimate(); e != 0 {
		t.Errorf("empty estimate %v", e)
	}
}

func TestDistinctExactThenSketch(t *testing.T) {
	d := newDistinct(1000, 12)
	for i := range 1000 {
		d.add(mix64(uint64(i)))
		d.add(mix64(uint64(i))) // repeats count once
	}
	if !d.exact() || d.count() != 1000 {
		t.Fatalf("exact %v count %d", d.exact(), d.count())
	}
	d.add(mix64(5000))
	if d.exact() {
		t.Fatal("still exact beyond the limit")
	}
	// Split-and-merge gives the same registers as one pass.
	e1, e2 := newDistinct(1000, 12), newDistinct(1000, 12)
	for i := range 1001 {
		if i%3 == 0 {
			e1.add(mix64(uint64(i)))
		} else {
			e2.add(mix64(uint64(i)))
		}
	}
	e1.merge(e2)
	want := newDistinct(1000, 12)
	for i := range 1001 {
		want.add(mix64(uint64(i)))
	}
	if e1.exact() || !slices.Equal(e1.hll.reg, want.hll.reg) {
		t.Fatal("merged registers differ from one pass")
	}
}

// rankInterval is where v sits in sorted data: [#<v, #≤v].
func rankInterval(sorted []float64, v float64) (lo, hi int) {
	lo = sort.SearchFloat64s(sorted, v)
	hi = sort.Search(len(sorted), func(i int) bool { return sorted[i] > v })
	return lo, hi
}

// rankError is how far (normalised) the target rank q·n is from v's rank
// interval.
func rankError(sorted []float64, v, q float64) float64 {
	lo, hi := rankInterval(sorted, v)
	target := q * float64(len(sorted))
	d := max(0, float64(lo)-target, target-float64(hi))
	return d / float64(len(sorted))
}

func TestKLLRankError(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	dists := map[string]func() float64{
		"uniform":   r.Float64,
		"lognormal": func() float64 { return math.Exp(3 * r.NormFloat64()) },
		"discrete":  func() float64 { return float64(r.IntN(30)) },
		"sorted":    nil,
	}
	for _, k := range []int{200, 400} {
		eps := kllRankError(k)
		for name, gen := range dists {
			const n = 200000
			vs := make([]float64, n)
			for i := range vs {
				if gen == nil {
					vs[i] = float64(i)
				} else {
					vs[i] = gen()
				}
			}
			// One sketch fed in chunks, one merged from 7 uneven parts.
			one := newKLL(k, 1)
			for i := 0; i < n; i += 3001 {
				one.addSlice(vs[i:min(i+3001, n)])
			}
			merged := newKLL(k, 2)
			cuts := []int{0, 10, 5000, 5100, 80000, 120000, 190000, n}
			for i := 1; i < len(cuts); i++ {
				part := newKLL(k, uint64(i)*77)
				part.addSlice(vs[cuts[i-1]:cuts[i]])
				merged.merge(part)
			}
			sorted := slices.Clone(vs)
			slices.Sort(sorted)
			for _, sk := range []*kll{one, merged} {
				if sk.n != n {
					t.Fatalf("n=%d", sk.n)
				}
				kv := sk.view()
				if kv.cum[len(kv.cum)-1] != n {
					t.Fatalf("weights add to %d", kv.cum[len(kv.cum)-1])
				}
				for _, q := range []float64{0.05, 0.25, 0.5, 0.75, 0.95} {
					if e := rankError(sorted, kv.quantile(q), q); e > eps {
						t.Errorf("k=%d %s q=%v: rank error %.4f > ε=%.4f", k, name, q, e, eps)
					}
				}
				if len(kv.v) > 4*k {
					t.Errorf("k=%d: %d items retained", k, len(kv.v))
				}
			}
		}
	}
}

func TestKLLExactWhileSmall(t *testing.T) {
	s := newKLL(200, 1)
	vs := []float64{5, 1, 4, 2, 3, 3, 9}
	s.addSlice(vs)
	if s.approx {
		t.Fatal("compacted a small sketch")
	}
	kv := s.view()
	sorted := slices.Clone(vs)
	slices.Sort(sorted)
	for _, q := range []float64{0, 0.05, 0.25, 0.5, 0.75, 0.95, 1} {
		want := sorted[max(int(math.Ceil(q*float64(len(vs))))-1, 0)]
		if got := kv.quantile(q); got != want {
			t.Errorf("q=%v: %v, want %v", q, got, want)
		}
	}
}

func TestMisraGriesBound(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const n = 100000
	truth := map[string]int64{}
	parts := []*strCounter{newStrCounter(500, 50, 12), newStrCounter(500, 50, 12), newStrCounter(500, 50, 12)}
	for i := range n {
		// Zipf-like: value j with weight ~1/j over 5000 values.
		v := fmt.Sprintf("v%d", int(math.Exp(r.Float64()*math.Log(5000))))
		truth[v]++
		parts[i%3].add(v, strHash(v))
	}
	c := parts[0]
	c.merge(parts[1])
	c.merge(parts[2])
	if !c.sketched || len(c.counts) > 2*50 {
		t.Fatalf("sketched %v with %d counters", c.sketched, len(c.counts))
	}
	bound := c.errorBound()
	if bound > n/51 {
		t.Fatalf("bound %d > n/(k+1)", bound)
	}
	for _, tv := range c.top(10) {
		if tv.Count > truth[tv.Value] || tv.Count < truth[tv.Value]-bound {
			t.Errorf("%s: %d, true %d, bound %d", tv.Value, tv.Count, truth[tv.Value], bound)
		}
	}
	// Every value more frequent than the bound is kept.
	for v, f := range truth {
		if _, ok := c.counts[v]; !ok && f > bound {
			t.Errorf("%s (%d) dropped with bound %d", v, f, bound)
		}
	}
	if d := c.distinct(); math.Abs(float64(d)-float64(len(truth))) > 4*hllStdErr(12)*float64(len(truth)) {
		t.Errorf("distinct %d, true %d", d, len(truth))
	}
}

func TestSortFloats(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	special := []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.SmallestNonzeroFloat64,
		-math.SmallestNonzeroFloat64, math.MaxFloat64, -math.MaxFloat64, 1, -1}
	for _, n := range []int{0, 1, 5, 63, 64, 65, 1000, 5000} {
		v := make([]float64, n)
		for i := range v {
			switch r.IntN(3) {
			case 0:
				v[i] = special[r.IntN(len(special))]
			case 1:
				v[i] = r.NormFloat64() * 1e3
			default:
				v[i] = float64(r.IntN(10)) // many ties, shared high bytes
			}
		}
		want := slices.Clone(v)
		slices.Sort(want)
		sortFloats(v, nil, nil)
		for i := range v {
			if v[i] != want[i] {
				t.Fatalf("n=%d: position %d is %v, want %v", n, i, v[i], want[i])
			}
		}
	}
}
