package sched

import (
	"time"

	"github.com/hpcml/hpcml/internal/backend"
	"github.com/hpcml/hpcml/internal/job"
)

// pool is one backend as the loop sees it: its capacity, what its jobs
// hold, its runnable jobs in order, and whether it can be reached. Pools
// do not compete: a full local machine holds back nothing bound for Slurm.
type pool struct {
	b backend.Backend
	// bounded: the scheduler places jobs within total (the local
	// machine); an unbounded backend (Slurm) queues work itself and gets
	// every runnable job at once.
	bounded            bool
	total              job.Resources
	usedMilli, usedMem int64
	usedGPUs           int
	runq               runQueue

	// After a launch found the backend unreachable, its jobs wait until
	// downUntil (doubling backoff) with downReason as their reason.
	downUntil  time.Time
	downReason string
	backoff    time.Duration
}

const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
)

func newPool(b backend.Backend) *pool {
	total := b.Capacity()
	return &pool{b: b, total: total, bounded: total != (job.Resources{})}
}

// full: nothing more can start (every job asks for some CPU).
func (p *pool) full() bool { return p.bounded && p.usedMilli >= p.total.MilliCPUs() }

func (p *pool) fits(r job.Resources) bool {
	return !p.bounded || p.usedMilli+r.MilliCPUs() <= p.total.MilliCPUs() &&
		p.usedMem+r.MemoryMB <= p.total.MemoryMB &&
		p.usedGPUs+r.GPUs <= p.total.GPUs
}

func (p *pool) hold(r job.Resources, sign int64) {
	p.usedMilli += sign * r.MilliCPUs()
	p.usedMem += sign * r.MemoryMB
	p.usedGPUs += int(sign) * r.GPUs
}

// markDown holds the pool's jobs back after a launch found it unreachable.
func (p *pool) markDown(now time.Time, reason string) {
	p.backoff = min(max(2*p.backoff, minBackoff), maxBackoff)
	p.downUntil = now.Add(p.backoff)
	p.downReason = reason
}

func (p *pool) markUp() { p.backoff, p.downUntil, p.downReason = 0, time.Time{}, "" }

func (p *pool) down(now time.Time) bool { return now.Before(p.downUntil) }
