package collective

import (
	"context"
	"fmt"
	"time"
)

// The collectives run on a ring: each rank writes to its successor and
// reads from its predecessor, on two links (TCP connections, or shared
// memory between ranks on one host), both directions busy at once. A
// rank whose two links are of one kind runs an operation in a progress
// loop on the caller's goroutine (runShm, runTCP); one with a link of
// each kind on two goroutines, the caller's receiving and reducing, a
// helper sending (run), or in lock step for small messages.
//
// AllReduce is a reduce-scatter followed by an all-gather. The buffer is
// cut into Size() chunks (Shard); chunk c travels the ring starting at
// rank c+1, each rank adding its own values, and is complete at rank c,
// its owner, after Size()-1 steps; the owner then sends it around the
// ring once more and every rank copies it. Each link carries
// 2(n-1)/n of the buffer: the bus bandwidth of NCCL's convention.
//
// Chunks are cut into segments (see segment) and the pipeline runs per
// segment: a segment received (and reduced) may be sent on at once, so a
// step does not wait for the previous step's whole chunk.
//
// Why every rank holds the same bits: each element is reduced exactly
// once, on its chunk's owner, and the others receive a copy of that
// result. The order of the additions for an element of chunk c is fixed:
// ranks c+1, c+2, …, n-1, 0, …, c ((x[c+1] + x[c+2]) + …) + x[c]. It
// depends only on the world size and the buffer length, so results are
// reproducible from run to run. It can differ in the last bits from adding
// in rank order (float addition is not associative); for two ranks both
// orders give the same result (a+b == b+a exactly).

// Shard is the part [lo, hi) of a buffer of length elements that rank
// owns among size ranks in ReduceScatter and AllGather (and internally in
// AllReduce): contiguous, in rank order, the first length%size ranks one
// element longer than the others. Some shards are empty when length <
// size.
func Shard(length, size, rank int) (lo, hi int) {
	q, r := length/size, length%size
	lo = rank*q + min(rank, r)
	hi = lo + q
	if rank < r {
		hi++
	}
	return lo, hi
}

// xfer is a range of the buffer one side of a ring operation sends or
// receives in one step.
type xfer struct {
	lo, hi int
	// chained, on a send: wait, before each segment, until the receiving
	// side has finished the matching segment of an earlier step. On a
	// receive: signal each finished segment to the sending side. The
	// chained receives and sends cover the same ranges in the same order.
	chained bool
	reduce  bool // receive: add into the buffer; otherwise copy into it
	final   bool // receive: the chunk is complete after this step (Mean divides it)
	// released, on a send: signal each segment once written. On a
	// receive: wait for that signal before overwriting the segment. In
	// AllReduce, the all-gather overwrites each chunk this rank sent in
	// the reduce-scatter. The data cannot come back before it has left
	// (it travels the whole ring first), but only the signal tells the
	// Go memory model — and the race detector — so.
	released bool
}

type plan struct {
	hdr              header
	send, recv       []xfer
	sendHdr, recvHdr bool // whether this rank writes to next, reads from prev at all
	// ring: send t+1 forwards receive t (reduce-scatter, all-gather), as
	// runLockstep needs; not so in a broadcast, which forwards receive t
	// as send t.
	ring bool
}

// firstXfer is where a loop over xs starts: xs[0].lo, or past the end
// (i == len(xs)) when this side of the plan is idle (!active).
func firstXfer(xs []xfer, active bool) (i, lo int) {
	if !active {
		return len(xs), 0
	}
	if len(xs) > 0 {
		lo = xs[0].lo
	}
	return 0, lo
}

// skipEmptyXfers moves *i, *lo past transfers with nothing left from *lo
// on (empty ranges have no segments).
func skipEmptyXfers(xs []xfer, i, lo *int) {
	for *i < len(xs) && *lo >= xs[*i].hi {
		if *i++; *i < len(xs) {
			*lo = xs[*i].lo
		}
	}
}

// nextRank and prevRank are this rank's successor and predecessor on the
// ring.
func (g *Group) nextRank() int { return (g.rank + 1) % g.size }
func (g *Group) prevRank() int { return (g.rank + g.size - 1) % g.size }

func mod(a, n int) int { return ((a % n) + n) % n }

func (g *Group) chunk(length, c int) (int, int) { return Shard(length, g.size, mod(c, g.size)) }

// reduceScatterSteps appends the reduce-scatter's steps for rank r: at
// step s it sends chunk r-s-1 and adds chunk r-s-2 into its own, ending
// with its own chunk r complete.
func (g *Group) reduceScatterSteps(p *plan, length int, feedsGather bool) {
	n, r := g.size, g.rank
	for s := 0; s < n-1; s++ {
		lo, hi := g.chunk(length, r-s-1)
		p.send = append(p.send, xfer{lo: lo, hi: hi, chained: s > 0, released: feedsGather})
		lo, hi = g.chunk(length, r-s-2)
		p.recv = append(p.recv, xfer{lo: lo, hi: hi, reduce: true, final: s == n-2, chained: s < n-2 || feedsGather})
	}
}

// allGatherSteps appends the all-gather's steps for rank r: at step s it
// sends chunk r-s (its own first) and copies chunk r-s-1.
func (g *Group) allGatherSteps(p *plan, length int, afterScatter bool) {
	n, r := g.size, g.rank
	for s := 0; s < n-1; s++ {
		lo, hi := g.chunk(length, r-s)
		p.send = append(p.send, xfer{lo: lo, hi: hi, chained: s > 0 || afterScatter})
		lo, hi = g.chunk(length, r-s-1)
		p.recv = append(p.recv, xfer{lo: lo, hi: hi, chained: s < n-2, released: afterScatter})
	}
}

// AllReduce replaces buf, on every rank, with the element-wise Sum or Mean
// of every rank's buf. All ranks must pass the same length (else the
// operation fails on every rank, naming the ranks that differ). The
// result is bit-identical on every rank and reproducible; see the package
// documentation for the order of the additions.
func (g *Group) AllReduce(ctx context.Context, buf []float32, op Op) error {
	return g.allReduce(ctx, opAllReduce, kindAllReduce, buf, op)
}

func (g *Group) allReduce(ctx context.Context, name string, kind uint8, buf []float32, op Op) error {
	if !op.valid() {
		return fmt.Errorf("collective: %s: unknown reduction %v", name, op)
	}
	return g.collective(ctx, name, func(seq uint64) *plan {
		p := &plan{hdr: header{kind: kind, op: op, seq: seq, count: uint64(len(buf))}, sendHdr: true, recvHdr: true, ring: true}
		g.reduceScatterSteps(p, len(buf), true)
		g.allGatherSteps(p, len(buf), true)
		return p
	}, buf)
}

// ReduceScatter reduces buf across the ranks like AllReduce, but leaves
// on each rank only its own shard complete: on return buf[lo:hi], with lo,
// hi = Shard(len(buf), g.Size(), g.Rank()), holds the Sum or Mean of every
// rank's buf[lo:hi]; the rest of buf holds partial sums (unspecified).
// It sends half the data of an AllReduce (data-parallel training with
// sharded optimiser state uses it with AllGather).
func (g *Group) ReduceScatter(ctx context.Context, buf []float32, op Op) error {
	if !op.valid() {
		return fmt.Errorf("collective: %s: unknown reduction %v", opReduceScatter, op)
	}
	return g.collective(ctx, opReduceScatter, func(seq uint64) *plan {
		p := &plan{hdr: header{kind: kindReduceScatter, op: op, seq: seq, count: uint64(len(buf))}, sendHdr: true, recvHdr: true, ring: true}
		g.reduceScatterSteps(p, len(buf), false)
		return p
	}, buf)
}

// AllGather fills buf on every rank with every rank's shard: each rank
// contributes buf[lo:hi], lo, hi = Shard(len(buf), g.Size(), g.Rank()),
// and on return every shard of buf holds its owner's values. All ranks
// pass the same length.
func (g *Group) AllGather(ctx context.Context, buf []float32) error {
	return g.collective(ctx, opAllGather, func(seq uint64) *plan {
		p := &plan{hdr: header{kind: kindAllGather, seq: seq, count: uint64(len(buf))}, sendHdr: true, recvHdr: true, ring: true}
		g.allGatherSteps(p, len(buf), false)
		return p
	}, buf)
}

// Broadcast copies root's buf into every other rank's buf (all ranks
// pass the same length and root). The data is pipelined along the ring
// from root, segment by segment, so each link carries the buffer once.
func (g *Group) Broadcast(ctx context.Context, buf []float32, root int) error {
	if root < 0 || root >= g.size {
		return fmt.Errorf("collective: %s: root %d is out of range for a group of %d", opBroadcast, root, g.size)
	}
	return g.collective(ctx, opBroadcast, func(seq uint64) *plan {
		p := &plan{hdr: header{kind: kindBroadcast, root: int32(root), seq: seq, count: uint64(len(buf))}}
		whole := xfer{lo: 0, hi: len(buf)}
		last := g.nextRank() == root // the ring ends here
		switch {
		case g.rank == root:
			p.sendHdr, p.send = true, []xfer{whole}
		case last:
			p.recvHdr, p.recv = true, []xfer{whole}
		default:
			whole.chained = true
			p.sendHdr, p.send = true, []xfer{whole}
			p.recvHdr, p.recv = true, []xfer{whole}
		}
		return p
	}, buf)
}

// Barrier returns on each rank only after every rank has called it. It is
// an all-reduce of one element per rank: every rank's result depends on
// every rank's input, so no rank can finish before all have started.
func (g *Group) Barrier(ctx context.Context) error {
	return g.allReduce(ctx, opBarrier, kindBarrier, make([]float32, g.size), Sum)
}

// collective runs one collective operation: the checks, the plan for this
// rank, the exchange, the bookkeeping.
func (g *Group) collective(ctx context.Context, name string, mk func(seq uint64) *plan, buf []float32) error {
	if err := g.begin(name, ctx); err != nil {
		return err
	}
	if g.size == 1 {
		g.stats.collectives.Add(1)
		return nil // every collective of one rank leaves buf as it is (Mean divides by 1)
	}
	g.collMu.Lock()
	defer g.collMu.Unlock()
	// A failure may have come while this call waited for the lock.
	if err := g.begin(name, ctx); err != nil {
		return err
	}
	start := time.Now()
	p := mk(g.seq)
	g.seq++
	stop := g.watch(ctx)
	err := g.run(buf, p)
	stop()
	if err != nil {
		return g.opErr(name)
	}
	g.stats.collectives.Add(1)
	g.stats.nanos.Add(int64(time.Since(start)))
	return nil
}

// segment is the pipelining unit of p on this rank, in elements. Through
// shared memory (fine, in runShm) handing a segment on costs next to
// nothing, so chunks are cut into at least 4 segments (of at least
// 64 KiB, at most Config.SegmentBytes) for the pipeline to fill and the
// reductions to run on cache-sized pieces. Over TCP it is
// Config.SegmentBytes: measured here, segments of a quarter chunk halved
// the TCP loop's bandwidth at 1-4 MiB (more turns that find the socket
// empty and wait), and on two goroutines each segment costs a hand-off.
// Ranks may cut differently: segments only pace this rank's own sending
// and receiving; the streams do not depend on them.
func (g *Group) segment(p *plan, fine bool) int {
	if !fine {
		return g.seg
	}
	largest := int(g.largestChunk(p))
	return min(g.seg, max(16<<10, (largest+3)/4))
}

// largestChunk is the element count of p's largest chunk (Shard's first).
func (g *Group) largestChunk(p *plan) uint64 {
	return (p.hdr.count + uint64(g.size) - 1) / uint64(g.size)
}

// run exchanges the data of plan p: in a progress loop when both links
// are of one kind, else the sends on a helper goroutine and the receives
// on this one (or lock step).
func (g *Group) run(buf []float32, p *plan) error {
	switch {
	case g.nextShm != nil && g.prevShm != nil:
		return g.runShm(buf, p)
	case g.nextShm == nil && g.prevShm == nil && tcpLoop && !g.noLoop:
		return g.runTCP(buf, p)
	}
	// One link of each kind (or no raw sockets here): two goroutines, or
	// lock step for small messages.
	if g.lockstep(p) {
		return g.runLockstep(buf, p)
	}
	seg := g.segment(p, false)
	nsegs := func(n int) int { return (n + seg - 1) / seg }
	ntok := 0
	for _, x := range p.recv {
		if x.chained {
			ntok += nsegs(x.hi - x.lo)
		}
	}
	// Buffered for every token: the receiving side never waits on the
	// sending side, only the other way round.
	tokens := make(chan struct{}, ntok)
	nrel := 0
	for _, x := range p.send {
		if x.released {
			nrel += nsegs(x.hi - x.lo)
		}
	}
	releases := make(chan struct{}, nrel)
	quit := make(chan struct{})
	var serr error
	senderDone := make(chan struct{})
	if p.sendHdr {
		go func() {
			serr = g.sendSide(buf, p, seg, tokens, releases, quit)
			close(senderDone)
		}()
	} else {
		close(senderDone)
	}
	var rerr error
	if p.recvHdr {
		rerr = g.recvSide(buf, p, seg, tokens, releases, senderDone)
	}
	if rerr != nil {
		close(quit)
	}
	<-senderDone
	if rerr != nil {
		return rerr
	}
	return serr
}

// errQuit stops the sending side after the receiving side failed.
type errQuit struct{}

func (errQuit) Error() string { return "stopped" }

func (g *Group) sendSide(buf []float32, p *plan, seg int, tokens <-chan struct{}, releases chan<- struct{}, quit <-chan struct{}) error {
	var hb [headerSize]byte
	p.hdr.encode(&hb)
	pending := hb[:] // the header goes out with the first segment
	var sent int64
	for _, x := range p.send {
		for lo := x.lo; lo < x.hi; lo += seg {
			hi := min(lo+seg, x.hi)
			if x.chained {
				select {
				case <-tokens:
				case <-quit:
					return errQuit{}
				}
			}
			if err := g.writeNext(pending, bytesOf(buf[lo:hi])); err != nil {
				return err
			}
			pending = nil
			sent += int64(4 * (hi - lo))
			if x.released {
				releases <- struct{}{}
			}
		}
	}
	if pending != nil {
		if err := g.writeNext(pending, nil); err != nil {
			return err
		}
	}
	g.stats.sent.Add(sent)
	return nil
}

// errSenderStopped ends the receiving side when the sending side failed
// before releasing a segment (and has reported why).
type errSenderStopped struct{}

func (errSenderStopped) Error() string { return "sending side stopped" }

// recvSide receives (and reduces) p.recv. senderDone is closed when the
// sending side has returned: if it failed before releasing a segment,
// waiting for the release must stop.
func (g *Group) recvSide(buf []float32, p *plan, seg int, tokens chan<- struct{}, releases <-chan struct{}, senderDone <-chan struct{}) error {
	if err := g.recvHeader(p); err != nil {
		return err
	}
	var got int64
	for _, x := range p.recv {
		for lo := x.lo; lo < x.hi; lo += seg {
			hi := min(lo+seg, x.hi)
			if x.released {
				select {
				case <-releases:
				case <-senderDone:
					// A sender that returned successfully released
					// every segment before returning.
					select {
					case <-releases:
					default:
						return errSenderStopped{}
					}
				}
			}
			if err := g.recvInto(buf[lo:hi], x, p.hdr.op); err != nil {
				return err
			}
			got += int64(4 * (hi - lo))
			if x.chained {
				tokens <- struct{}{}
			}
		}
	}
	g.stats.recv.Add(got)
	return nil
}

// recvHeader reads the predecessor's header and checks it is for the
// same operation as this rank's.
func (g *Group) recvHeader(p *plan) error {
	var hb [headerSize]byte
	if err := g.readPrev(hb[:]); err != nil {
		return err
	}
	return g.checkHeader(p, &hb)
}

// checkHeader checks the predecessor's header hb against p's.
func (g *Group) checkHeader(p *plan, hb *[headerSize]byte) error {
	prev := g.prevRank()
	h, err := decodeHeader(hb)
	if err != nil {
		g.observe(prev, err, err.Error(), true)
		return err
	}
	if h != p.hdr {
		err := fmt.Errorf("called %v where rank %d called %v", h, g.rank, p.hdr)
		g.observe(prev, err, err.Error(), true)
		return err
	}
	return nil
}

// recvInto receives dst from the predecessor, adding it in (and
// dividing, at the last step of a Mean) or copying it.
func (g *Group) recvInto(dst []float32, x xfer, op Op) error {
	if !x.reduce {
		return g.readPrev(bytesOf(dst))
	}
	return g.reducePrev(dst, func(d, s []float32) { g.reduceStep(d, s, x, op) })
}

// reduceStep adds s into d for the receive x, dividing by the group
// size when x is the last step of a Mean.
func (g *Group) reduceStep(d, s []float32, x xfer, op Op) {
	if x.final && op == Mean {
		g.red.addDiv(d, s, float32(g.size))
	} else {
		g.red.add(d, s)
	}
}

// lockstepBytes is the largest step, in bytes, that runLockstep takes:
// far below any socket buffer (Linux's smallest default maximum is about
// 200 KiB), so a step's write never waits for the successor to read.
const lockstepBytes = 64 << 10

// lockstep reports whether p can run in lock step on one goroutine: a
// ring plan (each send after the first forwards the previous receive)
// whose chunks all fit lockstepBytes. For small messages that saves the
// helper goroutine and its hand-offs, which cost more than the data. It
// depends only on the length and the world size, so every rank decides
// alike: the lock-step path always sends over TCP, even between
// neighbours that share memory.
func (g *Group) lockstep(p *plan) bool {
	return p.ring && g.lockstepMax >= 0 && 4*g.largestChunk(p) <= uint64(g.lockstepMax)
}

// runLockstep runs a small ring plan on this goroutine: at each step,
// write the whole step, then read the whole step. Every rank's writes
// fit its socket buffer, so no rank waits on a write and the ring cannot
// deadlock; a chained send reads data received in the step before, which
// is complete by then.
func (g *Group) runLockstep(buf []float32, p *plan) error {
	var hb [headerSize]byte
	p.hdr.encode(&hb)
	var sent, got int64
	for t, x := range p.send {
		var pending []byte
		if t == 0 {
			pending = hb[:]
		}
		if err := g.writeNext(pending, bytesOf(buf[x.lo:x.hi])); err != nil {
			return err
		}
		sent += int64(4 * (x.hi - x.lo))
		if t == 0 {
			if err := g.recvHeader(p); err != nil {
				return err
			}
		}
		y := p.recv[t]
		if err := g.recvInto(buf[y.lo:y.hi], y, p.hdr.op); err != nil {
			return err
		}
		got += int64(4 * (y.hi - y.lo))
	}
	g.stats.sent.Add(sent)
	g.stats.recv.Add(got)
	return nil
}
