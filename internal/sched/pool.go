package sched

import (
	"slices"
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
	bounded     bool
	total, used job.Resources
	runq        runQueue
	// stager, if the backend stages (backend.Stager), says how many
	// attempts that have not started (unstarted, asking unstartedMilli
	// thousandths of a CPU together) it takes beyond its free capacity.
	// Staged attempts count in used like running ones.
	stager         backend.Stager
	unstarted      int
	unstartedMilli int64
	// lastLaunch is closed when the last batch handed to the backend has
	// been launched: the next waits for it, so that attempts reach the
	// backend in the order the loop placed them (a node's executor starts
	// what it holds in the order it got it). Loop goroutine only.
	lastLaunch chan struct{}
	staged     []*entry // launched beyond free capacity, not started
	// runs: how long the last attempts that ended here ran. Staging pays
	// only while jobs are short (it hides the scheduler's round trip);
	// with long ones it would let a job staged early take a slot that a
	// higher-priority job submitted later should have got, so it stops.
	runs  [8]time.Duration
	nRuns int

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
	p := &pool{b: b, total: total, bounded: total != (job.Resources{})}
	if s, ok := b.(backend.Stager); ok && p.bounded {
		p.stager = s
	}
	return p
}

// stageRunMax is the longest run that still counts as short for staging.
const stageRunMax = 500 * time.Millisecond

// stagedWorkPerCPU bounds what is staged by time as well as by count: at
// the longest recent run, the jobs not started yet are at most this much
// work per CPU of the pool (a job's work is the CPUs it asks for times
// that run), so that the last of them starts within stagedWaitMax with
// room to spare. Trivial jobs are staged up to the backend's count;
// jobs of 0.25 s, four per CPU; of 0.5 s, two. (One slow run of a trivial
// job on a loaded machine lowers it for the next 8 ends.)
const stagedWorkPerCPU = time.Second

// ran records how long an attempt that ended here ran.
func (p *pool) ran(d time.Duration) {
	p.runs[p.nRuns%len(p.runs)] = d
	p.nRuns++
}

// canStage: the backend stages, has room for one more, and every one of
// the last attempts that ended here was short — short enough that one
// more, asking r, stays within stagedWorkPerCPU.
func (p *pool) canStage(r job.Resources) bool {
	if p.stager == nil || p.nRuns < len(p.runs) || p.unstarted >= p.stager.StageAhead() {
		return false
	}
	longest := max(slices.Max(p.runs[:]), time.Millisecond)
	if longest > stageRunMax {
		return false
	}
	work := time.Duration(p.unstartedMilli+r.MilliCPUs()) * longest
	return work <= stagedWorkPerCPU*time.Duration(max(p.total.MilliCPUs(), 1000))
}

// cpuFull: every CPU of a bounded pool is held.
func (p *pool) cpuFull() bool { return p.bounded && p.used.MilliCPUs() >= p.total.MilliCPUs() }

// full: nothing more can start or be staged (every job asks for some CPU).
func (p *pool) full() bool { return p.cpuFull() && !p.canStage(job.Resources{}) }

// fits: a job asking r may be launched now — into free capacity, or
// staged on a backend that keeps it until it fits (if it fits the
// machine at all).
func (p *pool) fits(r job.Resources) bool {
	return p.free(r) || p.canStage(r) && r.Within(p.total)
}

// free: r fits beside everything launched.
func (p *pool) free(r job.Resources) bool { return !p.bounded || p.used.Add(r, 1).Within(p.total) }

func (p *pool) hold(r job.Resources, sign int) { p.used = p.used.Add(r, sign) }

// markDown holds the pool's jobs back after a launch found it unreachable.
func (p *pool) markDown(now time.Time, reason string) {
	p.backoff = min(max(2*p.backoff, minBackoff), maxBackoff)
	p.downUntil = now.Add(p.backoff)
	p.downReason = reason
}

func (p *pool) markUp() { p.backoff, p.downUntil, p.downReason = 0, time.Time{}, "" }

func (p *pool) down(now time.Time) bool { return now.Before(p.downUntil) }
