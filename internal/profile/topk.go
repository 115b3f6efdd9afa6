package profile

import (
	"cmp"
	"slices"
	"strings"

	"github.com/zeebo/xxh3"
)

// strCounter counts string values: exactly (value → count, which also gives
// the exact distinct count) while there are at most limit distinct values;
// beyond that, a Misra–Gries summary of at most `counters` counters for the
// frequent values plus a HyperLogLog of value hashes for the distinct count.
//
// Misra–Gries (in the mergeable form of Agarwal et al., "Mergeable
// Summaries", 2012): counts are kept in a map of up to 2·counters entries;
// when it fills, the (counters+1)-th largest count is subtracted from every
// counter and the non-positive ones are dropped. A kept count never exceeds
// the true count and falls short of it by at most (n − Σcounts)/(counters+1),
// which the report states per column (error_bound). Merging adds the maps
// and reduces the same way.
type strCounter struct {
	limit    int
	counters int
	p        int
	counts   map[string]int64
	sketched bool  // counts is a Misra–Gries summary
	n        int64 // values counted
	hll      *hll  // distinct, once sketched
}

func newStrCounter(limit, counters, p int) *strCounter {
	return &strCounter{limit: limit, counters: counters, p: p, counts: map[string]int64{}}
}

func strHash(s string) uint64 { return xxh3.HashString(s) }

// add counts one value; s may alias an Arrow buffer, so it is cloned before
// the map keeps it.
func (c *strCounter) add(s string, h uint64) {
	c.n++
	if v, ok := c.counts[s]; ok {
		c.counts[s] = v + 1
	} else {
		c.counts[strings.Clone(s)] = 1
	}
	if c.sketched {
		c.hll.add(h)
		if len(c.counts) > 2*c.counters {
			c.reduce()
		}
		return
	}
	if len(c.counts) > c.limit {
		c.toSketch()
	}
}

func (c *strCounter) toSketch() {
	c.sketched = true
	c.hll = newHLL(c.p)
	for s := range c.counts {
		c.hll.add(strHash(s))
	}
	c.reduce()
}

// reduce keeps at most `counters` counters, subtracting the
// (counters+1)-th largest count from all.
func (c *strCounter) reduce() {
	if len(c.counts) <= c.counters {
		return
	}
	vs := make([]int64, 0, len(c.counts))
	for _, v := range c.counts {
		vs = append(vs, v)
	}
	slices.SortFunc(vs, func(a, b int64) int { return cmp.Compare(b, a) })
	sub := vs[c.counters]
	for s, v := range c.counts {
		if v <= sub {
			delete(c.counts, s)
		} else {
			c.counts[s] = v - sub
		}
	}
}

func (c *strCounter) merge(o *strCounter) {
	c.n += o.n
	for s, v := range o.counts {
		c.counts[s] += v
	}
	switch {
	case c.sketched && o.sketched:
		c.hll.merge(o.hll)
	case o.sketched:
		// Our exact keys go into the HLL along with the other's registers.
		c.sketched = true
		c.hll = newHLL(c.p)
		c.hll.merge(o.hll)
		for s := range c.counts {
			c.hll.add(strHash(s))
		}
	case c.sketched:
		for s := range o.counts {
			c.hll.add(strHash(s))
		}
	default:
		if len(c.counts) > c.limit {
			c.toSketch()
			return
		}
	}
	if c.sketched {
		c.reduce()
	}
}

func (c *strCounter) distinct() int64 {
	if c.sketched {
		return int64(c.hll.estimate() + 0.5)
	}
	return int64(len(c.counts))
}

// errorBound is the most by which a reported count may fall short of the
// true count (0 while exact).
func (c *strCounter) errorBound() int64 {
	if !c.sketched {
		return 0
	}
	var kept int64
	for _, v := range c.counts {
		kept += v
	}
	return (c.n - kept) / int64(c.counters+1)
}

type valueCount struct {
	Value string
	Count int64
}

// top returns the k largest counts, ties broken by value so the order is
// deterministic.
func (c *strCounter) top(k int) []valueCount {
	out := make([]valueCount, 0, len(c.counts))
	for s, v := range c.counts {
		out = append(out, valueCount{s, v})
	}
	slices.SortFunc(out, func(a, b valueCount) int {
		if a.Count != b.Count {
			return cmp.Compare(b.Count, a.Count)
		}
		return strings.Compare(a.Value, b.Value)
	})
	if len(out) > k {
		out = out[:k]
	}
	return out
}
