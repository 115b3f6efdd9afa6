package collective

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// verdictWait bounds how long a rank that saw a peer fail waits for rank
// 0's verdict (which names the rank where the failure started) before it
// settles for what it saw itself. Rank 0 answers within settleWindow when
// it is alive; this only matters when rank 0 itself is stalled.
const verdictWait = 3 * time.Second

// Group is a set of processes that exchange float32 data: the result of
// Join. Its collectives (AllReduce, ReduceScatter, AllGather, Broadcast,
// Barrier) must be called by every rank in the same order; a Group runs
// them one at a time. Send and Recv may run concurrently with each other
// and with a collective, from different goroutines: messages between two
// ranks arrive in the order they were sent.
//
// Any failure — a peer lost or stalled, a cancelled context, ranks calling
// different operations — fails the operation on every rank with the same
// *PeerError, and the Group stays failed: every later call returns that
// error. Close it when done.
type Group struct {
	cfg     Config
	rank    int
	size    int
	timeout time.Duration // per operation: the longest a peer may make no progress
	seg     int           // pipelining unit in float32 elements
	addrs   []string      // every rank's data address
	session string        // random, from rank 0: data connections of other groups are refused

	ln net.Listener

	// The ring: collectives write to next (rank+1) and read from prev
	// (rank-1), each a connection of its own, so the two directions never
	// wait on each other.
	next, prev net.Conn
	ringIn     chan net.Conn // prev's connection, from the accept loop
	// The same links through shared memory, when the neighbour is on
	// this host (shm.go); nil otherwise. Guarded by collMu once joined.
	nextShm, prevShm *shmChan

	collMu  sync.Mutex // one collective at a time
	seq     uint64     // collectives started; guarded by collMu
	scratch []float32  // where reductions receive; guarded by collMu

	// Point to point: out[k] carries Send(k) (dialled on first use),
	// in[k] carries Recv(k) (accepted when k first sends).
	out, in []*link

	ctrl *control

	connMu     sync.Mutex
	dataConns  []net.Conn    // every data connection, closed together on failure
	dataClosed bool          // guarded by connMu
	aborted    chan struct{} // closed with the data connections: waiters stop
	ringTaken  bool          // the predecessor's hello has come

	fail      failure
	closed    atomic.Bool
	closeOnce sync.Once
	joined    chan struct{} // closed when Join has finished: late registrations are refused
	wg        sync.WaitGroup

	stats statCounters
	red   reducers
	// lockstepMax is lockstepBytes; tests lower it to run small
	// messages through the pipelined path too.
	lockstepMax int
	// noLoop makes TCP links take the two-goroutine (or lock-step) path
	// instead of runTCP; for tests of that path.
	noLoop bool
	// spin is how long a waiting rank polls before it sleeps: spinWait,
	// or 0 in a process with GOMAXPROCS 1, where polling would hold the
	// only processor that the rest of the program (a backward pass the
	// all-reduce overlaps with) needs.
	spin time.Duration
}

// link is one direction of a point-to-point pair.
type link struct {
	mu    sync.Mutex // one Send (or Recv) at a time: keeps messages in order
	conn  net.Conn
	ready chan struct{} // in-links: closed when the peer's connection has arrived
	seq   uint64        // messages so far, guarded by mu
}

// failure holds the verdict that made the group unusable.
type failure struct {
	mu    sync.Mutex
	err   error         // the verdict, set once
	done  chan struct{} // closed when err is set
	local *PeerError    // the first failure this rank saw itself
	// noMaster is closed when rank 0 can send no verdict any more (it
	// closed the group or was lost): then a rank goes by what it saw.
	noMaster     chan struct{}
	noMasterOnce sync.Once
}

func newGroup(cfg Config) *Group {
	g := &Group{
		cfg:     cfg,
		rank:    cfg.Rank,
		size:    cfg.WorldSize,
		timeout: cfg.opTimeout(),
		seg:     cfg.segmentElems(),
		addrs:   make([]string, cfg.WorldSize),
		ringIn:  make(chan net.Conn, 1),
		out:     make([]*link, cfg.WorldSize),
		in:      make([]*link, cfg.WorldSize),
		joined:  make(chan struct{}),
		aborted: make(chan struct{}),
		fail:    failure{done: make(chan struct{}), noMaster: make(chan struct{})},
		red:     bestReducers(),

		lockstepMax: lockstepBytes,
	}
	if runtime.GOMAXPROCS(0) > 1 {
		g.spin = spinWait
	}
	for k := range g.out {
		g.out[k] = &link{}
		g.in[k] = &link{ready: make(chan struct{})}
	}
	return g
}

// Rank is this process's index in the group.
func (g *Group) Rank() int { return g.rank }

// Size is the number of processes in the group.
func (g *Group) Size() int { return g.size }

// Err is the failure that made the group unusable, ErrClosed after Close,
// or nil while it is usable.
func (g *Group) Err() error {
	if g.closed.Load() {
		return ErrClosed
	}
	g.fail.mu.Lock()
	defer g.fail.mu.Unlock()
	return g.fail.err
}

// Close leaves the group: it tells the others this rank is gone on
// purpose, closes every connection and waits for its goroutines. An
// operation in flight fails with ErrClosed, and so does every later call.
// The other ranks see their next operation involving this rank fail with
// "rank N (addr) closed the group". Close is idempotent and never fails.
func (g *Group) Close() error {
	g.closeOnce.Do(func() {
		g.closed.Store(true)
		if g.ctrl != nil {
			g.ctrl.bye()
		}
		g.setVerdict(ErrClosed)
		if g.ln != nil {
			g.ln.Close()
		}
		if g.ctrl != nil {
			g.ctrl.close()
		}
		// Unmap only when no collective runs: one in flight fails at
		// once now that its connections are closed.
		g.collMu.Lock()
		for _, s := range []*shmChan{g.nextShm, g.prevShm} {
			if s != nil {
				unmapShared(s.mem)
			}
		}
		g.nextShm, g.prevShm = nil, nil
		g.collMu.Unlock()
	})
	g.wg.Wait()
	return nil
}

// addConn records a data connection so a failure closes it; false (and
// the connection closed) if the group has already failed.
func (g *Group) addConn(c net.Conn) bool {
	g.connMu.Lock()
	defer g.connMu.Unlock()
	if g.dataClosed {
		c.Close()
		return false
	}
	g.dataConns = append(g.dataConns, c)
	return true
}

// closeData closes every data connection: whatever this rank was sending
// or receiving fails at once, and its neighbours see the connections end.
func (g *Group) closeData() {
	g.connMu.Lock()
	defer g.connMu.Unlock()
	if g.dataClosed {
		return
	}
	g.dataClosed = true
	close(g.aborted)
	for _, c := range g.dataConns {
		c.Close()
	}
	if g.ln != nil {
		g.ln.Close() // no new point-to-point links either
	}
}

// setVerdict makes err the group's failure, unless there is one already.
func (g *Group) setVerdict(err error) {
	g.fail.mu.Lock()
	if g.fail.err != nil {
		g.fail.mu.Unlock()
		return
	}
	g.fail.err = err
	close(g.fail.done)
	g.fail.mu.Unlock()
	g.closeData()
}

// peerErr builds the error that names rank k.
func (g *Group) peerErr(k int, reason string, err error) *PeerError {
	addr := ""
	if k >= 0 && k < len(g.addrs) {
		addr = g.addrs[k]
	}
	return &PeerError{Rank: k, Addr: addr, Reason: reason, Err: err}
}

// observe records a failure this rank saw in its exchange with peer:
// the first one is reported to rank 0, which decides what every rank is
// told, and the data connections are closed so every goroutine of this
// rank stops waiting. Strong evidence (a mismatch) names its peer with
// certainty; weak evidence (the peer closed the connection, or made no
// progress) may only mean the peer stopped because of someone else.
func (g *Group) observe(peer int, err error, reason string, strong bool) {
	if g.closed.Load() {
		return
	}
	g.fail.mu.Lock()
	if g.fail.err != nil || g.fail.local != nil {
		g.fail.mu.Unlock()
		return
	}
	if g.ctrl != nil && g.ctrl.hasLeft(peer) {
		reason = "closed the group"
	}
	pe := g.peerErr(peer, reason, err)
	g.fail.local = pe
	g.fail.mu.Unlock()
	if g.ctrl != nil {
		g.ctrl.report(report{culprit: peer, reason: reason, from: g.rank, weak: !strong, err: err})
	}
	g.closeData()
}

// observeIO is observe for an I/O error with peer: weak evidence, since
// a peer that aborted, or waits on another, looks the same as one that
// failed.
func (g *Group) observeIO(peer int, err error) {
	g.observe(peer, err, lostReason(err, g.timeout), false)
}

// selfFailure is a failure that starts here (this rank's context was
// cancelled): it is this rank's verdict at once, and everyone else's.
func (g *Group) selfFailure(reason string, err error) {
	if g.closed.Load() {
		return
	}
	pe := g.peerErr(g.rank, reason, err)
	g.fail.mu.Lock()
	if g.fail.err != nil {
		g.fail.mu.Unlock()
		return
	}
	if g.fail.local == nil {
		g.fail.local = pe
	}
	g.fail.mu.Unlock()
	// The verdict first, so rank 0's echo of the report (which carries
	// only the text) cannot replace the error this rank knows in full.
	// The neighbours may see the connections end before the report
	// arrives, but their reports are weak and this one is not.
	g.setVerdict(pe)
	if g.ctrl != nil {
		g.ctrl.report(report{culprit: g.rank, reason: reason, from: g.rank, err: err})
	}
}

// watch fails the group when ctx ends during an operation: the ranks are
// then in the middle of an exchange that cannot be resumed. The returned
// function stops watching.
func (g *Group) watch(ctx context.Context) func() bool {
	if ctx.Done() == nil {
		return func() bool { return true }
	}
	return context.AfterFunc(ctx, func() {
		cause := context.Cause(ctx)
		g.selfFailure("cancelled the operation: "+cause.Error(), cause)
	})
}

// begin checks that an operation may start: the group is open and
// healthy and ctx has not ended. An operation refused here has exchanged
// nothing, so the group stays usable after a cancelled context.
func (g *Group) begin(op string, ctx context.Context) error {
	if g.closed.Load() {
		return fmt.Errorf("collective: %s: %w", op, ErrClosed)
	}
	g.fail.mu.Lock()
	err := g.fail.err
	g.fail.mu.Unlock()
	if err != nil {
		return fmt.Errorf("collective: %s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("collective: %s: %w", op, context.Cause(ctx))
	}
	return nil
}

// opErr is the error of an operation that failed: the group's verdict,
// waited for up to verdictWait.
func (g *Group) opErr(op string) error {
	if g.closed.Load() {
		return fmt.Errorf("collective: %s: %w", op, ErrClosed)
	}
	t := time.NewTimer(verdictWait)
	select {
	case <-g.fail.done:
	case <-g.fail.noMaster:
	case <-t.C:
	}
	t.Stop()
	g.fail.mu.Lock()
	local := g.fail.local
	g.fail.mu.Unlock()
	if local != nil && g.ctrl != nil && g.ctrl.hasLeft(local.Rank) {
		// Its bye may have been read only after the connection ended.
		left := *local
		left.Reason = "closed the group"
		local = &left
	}
	if local != nil {
		g.setVerdict(local)
	} else {
		g.setVerdict(errors.New("failed for an unknown reason"))
	}
	if g.closed.Load() {
		return fmt.Errorf("collective: %s: %w", op, ErrClosed)
	}
	return fmt.Errorf("collective: %s: %w", op, g.Err())
}

// Stats are a group's counters since Join, for throughput and
// communication-time metrics.
type Stats struct {
	Collectives int64         // collective operations completed
	Messages    int64         // Sends and Recvs completed
	BytesSent   int64         // payload bytes this rank sent (collectives and Send)
	BytesRecv   int64         // payload bytes this rank received
	Time        time.Duration // wall time spent inside operations (concurrent ones add up)
}

type statCounters struct {
	collectives, messages, sent, recv, nanos atomic.Int64
}

// Stats returns the group's counters.
func (g *Group) Stats() Stats {
	return Stats{
		Collectives: g.stats.collectives.Load(),
		Messages:    g.stats.messages.Load(),
		BytesSent:   g.stats.sent.Load(),
		BytesRecv:   g.stats.recv.Load(),
		Time:        time.Duration(g.stats.nanos.Load()),
	}
}
