package collective

import (
	"net"
	"sync"
	"time"
)

// The control plane makes every rank fail with the same error, naming the
// rank where a failure started.
//
// The connections each rank opened to rank 0 for the rendezvous stay
// open. When a rank sees a peer fail it reports to rank 0 before it closes
// its own data connections; rank 0 decides and sends the verdict to every
// rank. Rank 0 also sees a rank's process die at once (its control
// connection ends without a "bye"), even between operations, and every
// rank sees rank 0 die the same way.
//
// Who is at fault is not always what a rank sees: in a ring of 4 where
// rank 1 dies, rank 3 sees rank 2 close its connection, because rank 2
// aborted; where rank 1 stalls, rank 0 may time out waiting for rank 2,
// which waits for rank 1. So what a rank sees on a data connection is
// weak evidence: rank 0 waits settleWindow for more reports and blames a
// rank that did not report anything itself (a rank that reports is
// alive). Strong reports (a process gone, a mismatch, a cancellation)
// decide at once.

// settleWindow is how long rank 0 collects weak reports before deciding.
// Reports of one failure arrive within a few milliseconds of each other
// on any network a group runs on.
const settleWindow = 100 * time.Millisecond

// ctrlWriteTimeout bounds a control message's write: they are tiny and
// the connection is otherwise idle, so only a dead or stopped peer blocks.
const ctrlWriteTimeout = 2 * time.Second

type report struct {
	culprit int
	reason  string
	from    int
	weak    bool
	err     error // the local error, when from is rank 0 itself
}

type control struct {
	g *Group
	// Rank 0: conns[k] is rank k's registration connection (conns[0]
	// nil). Other ranks: conns[0] is the connection to rank 0.
	conns []*ctrlConn

	// Rank 0's decision, guarded by mu.
	mu        sync.Mutex
	decided   bool
	pending   []report
	reporters map[int]bool
	timer     *time.Timer
	departed  []bool // ranks that said bye
}

type ctrlConn struct {
	mu sync.Mutex // writes come from operations, Close and the decision
	c  net.Conn
}

func (cc *ctrlConn) send(m ctrlMsg) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	_ = cc.c.SetWriteDeadline(time.Now().Add(ctrlWriteTimeout))
	return writeMsg(cc.c, m)
}

func newControl(g *Group, conns []net.Conn) *control {
	c := &control{g: g, conns: make([]*ctrlConn, len(conns)), reporters: map[int]bool{}, departed: make([]bool, g.size)}
	for k, conn := range conns {
		if conn != nil {
			c.conns[k] = &ctrlConn{c: conn}
		}
	}
	return c
}

// start runs a reader per control connection.
func (c *control) start() {
	for k, cc := range c.conns {
		if cc == nil {
			continue
		}
		c.g.wg.Add(1)
		if c.g.rank == 0 {
			go c.readRank(k, cc)
		} else {
			go c.readMaster(cc)
		}
	}
}

// readRank is rank 0's reader of rank k's control connection.
func (c *control) readRank(k int, cc *ctrlConn) {
	defer c.g.wg.Done()
	for {
		var m ctrlMsg
		if err := readMsg(cc.c, &m); err != nil {
			c.mu.Lock()
			gone := c.departed[k]
			c.mu.Unlock()
			if !gone && !c.g.closed.Load() {
				// A rank's process that ends closes this connection: it
				// died (or exited without Close), whatever it was doing.
				c.report(report{culprit: k, reason: lostReason(err, c.g.timeout), from: 0})
			}
			return
		}
		switch m.Type {
		case ctrlReport:
			if m.Rank >= 0 && m.Rank < c.g.size {
				c.report(report{culprit: m.Rank, reason: m.Reason, from: k, weak: m.Weak})
			}
		case ctrlBye:
			c.mu.Lock()
			c.departed[k] = true
			c.mu.Unlock()
		}
	}
}

// readMaster is a rank's reader of its connection to rank 0.
func (c *control) readMaster(cc *ctrlConn) {
	defer c.g.wg.Done()
	defer c.g.fail.noMasterOnce.Do(func() { close(c.g.fail.noMaster) })
	for {
		var m ctrlMsg
		if err := readMsg(cc.c, &m); err != nil {
			if !c.g.closed.Load() {
				c.g.setVerdict(c.g.peerErr(0, lostReason(err, c.g.timeout), err))
			}
			return
		}
		switch m.Type {
		case ctrlAbort:
			c.g.setVerdict(c.g.peerErr(m.Rank, m.Reason, nil))
		case ctrlBye:
			// Rank 0 closed: a later failure involving it is its
			// leaving, and nobody decides for the group any more.
			c.mu.Lock()
			c.departed[0] = true
			c.mu.Unlock()
			return
		}
	}
}

// report hands an observation to rank 0's decision: directly on rank 0,
// over the control connection elsewhere.
func (c *control) report(r report) {
	if c.g.rank != 0 {
		if cc := c.conns[0]; cc != nil {
			_ = cc.send(ctrlMsg{Type: ctrlReport, Rank: r.culprit, Reason: r.reason, Weak: r.weak})
		}
		return
	}
	c.mu.Lock()
	if c.decided {
		c.mu.Unlock()
		return
	}
	c.reporters[r.from] = true
	if r.weak {
		c.pending = append(c.pending, r)
		if c.timer == nil {
			c.timer = time.AfterFunc(settleWindow, c.settle)
		}
		c.mu.Unlock()
		return
	}
	c.decided = true
	c.mu.Unlock()
	c.decide(r)
}

// settle decides among weak reports: the first that blames a rank which
// did not report anything itself, else the first.
func (c *control) settle() {
	c.mu.Lock()
	if c.decided {
		c.mu.Unlock()
		return
	}
	c.decided = true
	pick := c.pending[0]
	for _, r := range c.pending {
		if !c.reporters[r.culprit] {
			pick = r
			break
		}
	}
	c.mu.Unlock()
	c.decide(pick)
}

// decide sends the verdict to every rank and applies it here.
func (c *control) decide(r report) {
	c.mu.Lock()
	if c.departed[r.culprit] {
		r.reason = "closed the group"
	}
	departed := append([]bool(nil), c.departed...)
	c.mu.Unlock()
	pe := c.g.peerErr(r.culprit, r.reason, r.err)
	// The verdict goes out before this rank closes its data connections,
	// so a neighbour hears why before it sees the connection end.
	for k, cc := range c.conns {
		if cc != nil && !departed[k] {
			_ = cc.send(ctrlMsg{Type: ctrlAbort, Rank: pe.Rank, Reason: pe.Reason})
		}
	}
	c.g.setVerdict(pe)
}

// bye tells the others this rank is leaving on purpose.
func (c *control) bye() {
	for _, cc := range c.conns {
		if cc != nil {
			_ = cc.send(ctrlMsg{Type: ctrlBye})
		}
	}
}

// hasLeft reports whether rank k said bye (known for every rank on rank
// 0, for rank 0 elsewhere).
func (c *control) hasLeft(k int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return k >= 0 && k < len(c.departed) && c.departed[k]
}

func (c *control) close() {
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	for _, cc := range c.conns {
		if cc != nil {
			cc.c.Close()
		}
	}
}
