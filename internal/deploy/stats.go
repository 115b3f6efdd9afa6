package deploy

import (
	"math/bits"
	"sync"
	"time"
)

// Stats are a fleet's request counts and latencies over a sliding window
// of whole seconds: a ring of per-second slots, each with a small
// log-linear latency histogram, so memory is fixed however many requests
// pass and a window's percentiles cost one pass over the slots.
type Stats struct {
	mu    sync.Mutex
	slots [statsSeconds]statsSlot
}

const (
	statsSeconds = 120
	// subBuckets per power of two: the histogram's relative error is at
	// most 1/subBuckets (12.5 %), half that at a bucket's middle.
	subBits    = 3
	subBuckets = 1 << subBits
	nBuckets   = (64-subBits)*subBuckets + subBuckets
)

type statsSlot struct {
	sec              int64 // Unix second this slot holds; another means stale
	requests, errors uint32
	hist             [nBuckets]uint32
}

// bucketOf maps a latency in nanoseconds to its histogram bucket: below
// subBuckets ns one bucket per ns, above, subBuckets per power of two.
func bucketOf(ns int64) int {
	if ns < subBuckets {
		return int(max(ns, 0))
	}
	e := bits.Len64(uint64(ns)) - 1 // ≥ subBits
	sub := int(ns>>(e-subBits)) & (subBuckets - 1)
	return (e-subBits+1)*subBuckets + sub
}

// bucketMid is the middle of a bucket, in nanoseconds.
func bucketMid(b int) int64 {
	if b < subBuckets {
		return int64(b)
	}
	e := b/subBuckets + subBits - 1
	sub := int64(b % subBuckets)
	lo := (subBuckets + sub) << (e - subBits)
	hi := (subBuckets + sub + 1) << (e - subBits)
	return (lo + hi) / 2
}

// Record counts one request that took d; failed is a 5xx answer (or none).
func (s *Stats) Record(now time.Time, d time.Duration, failed bool) {
	sec := now.Unix()
	s.mu.Lock()
	sl := &s.slots[sec%statsSeconds]
	if sl.sec != sec {
		*sl = statsSlot{sec: sec}
	}
	sl.requests++
	if failed {
		sl.errors++
	}
	sl.hist[bucketOf(int64(d))]++
	s.mu.Unlock()
}

// Window is what a fleet saw over a span of seconds.
type Window struct {
	Requests int           `json:"requests"`
	Errors   int           `json:"errors"`
	P50      time.Duration `json:"p50"`
	P99      time.Duration `json:"p99"`
	Seconds  int           `json:"seconds"`
}

// RPS is requests per second over the window.
func (w Window) RPS() float64 {
	if w.Seconds == 0 {
		return 0
	}
	return float64(w.Requests) / float64(w.Seconds)
}

// ErrorRate is errors over requests (0 with no requests).
func (w Window) ErrorRate() float64 {
	if w.Requests == 0 {
		return 0
	}
	return float64(w.Errors) / float64(w.Requests)
}

// Window sums the complete seconds in (now-span, now] not before since
// (zero: no bound). The current, incomplete second is included, so a
// window never misses the latest requests.
func (s *Stats) Window(now time.Time, span time.Duration, since time.Time) Window {
	return WindowOf([]*Stats{s}, now, span, since)
}

// WindowOf is the window over several fleets together (a variant's blue
// and green), with percentiles of their merged histograms.
func WindowOf(stats []*Stats, now time.Time, span time.Duration, since time.Time) Window {
	secs := int64(span / time.Second)
	secs = min(max(secs, 1), statsSeconds-1)
	end := now.Unix()
	start := end - secs + 1
	if !since.IsZero() && since.Unix() > start {
		start = since.Unix()
	}
	var hist [nBuckets]uint32
	w := Window{Seconds: int(end - start + 1)}
	if w.Seconds < 1 {
		w.Seconds = 1
	}
	for _, s := range stats {
		if s == nil {
			continue
		}
		s.mu.Lock()
		for i := range s.slots {
			sl := &s.slots[i]
			if sl.sec < start || sl.sec > end || sl.requests == 0 {
				continue
			}
			w.Requests += int(sl.requests)
			w.Errors += int(sl.errors)
			for b, n := range sl.hist {
				hist[b] += n
			}
		}
		s.mu.Unlock()
	}
	w.P50 = time.Duration(quantile(&hist, w.Requests, 0.50))
	w.P99 = time.Duration(quantile(&hist, w.Requests, 0.99))
	return w
}

func quantile(hist *[nBuckets]uint32, total int, q float64) int64 {
	if total == 0 {
		return 0
	}
	rank := int64(q*float64(total) + 0.5)
	rank = max(rank, 1)
	var seen int64
	for b, n := range hist {
		seen += int64(n)
		if seen >= rank {
			return bucketMid(b)
		}
	}
	return 0
}
