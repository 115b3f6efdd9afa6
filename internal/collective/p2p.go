package collective

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// Point-to-point messages travel on links of their own, one TCP
// connection per ordered pair, dialled by the sender on its first Send to
// that rank: no tags are needed because a pair's messages arrive in the
// order they were sent, and a Send never waits behind a collective or a
// message in the other direction.

// Send sends buf to rank to, which must call Recv(ctx, g.Rank(), b) with
// len(b) == len(buf). Like a socket write, Send returns once the data is
// handed to the network: a small message may be on its way before the
// receiver calls Recv, a large one waits for it to read. Two ranks that
// Send large messages to each other must therefore Recv concurrently
// (from another goroutine), or they wait on each other until the timeout.
// At most one Send to a given rank runs at a time; Sends to different
// ranks, and Recvs, may run concurrently.
func (g *Group) Send(ctx context.Context, to int, buf []float32) error {
	if to < 0 || to >= g.size || to == g.rank {
		return fmt.Errorf("collective: %s: rank %d cannot send to rank %d (a group of %d; not to itself)", opSend, g.rank, to, g.size)
	}
	return g.pointToPoint(ctx, opSend, g.out[to], func(l *link) error { return g.send(ctx, l, to, buf) })
}

// Recv receives into buf the next message rank from sends to this rank.
// Its length must be len(buf): a message of another length fails the
// group on both sides (the stream cannot be resynchronised), naming the
// sender and both lengths. Recv waits up to the operation timeout for the
// message to start.
func (g *Group) Recv(ctx context.Context, from int, buf []float32) error {
	if from < 0 || from >= g.size || from == g.rank {
		return fmt.Errorf("collective: %s: rank %d cannot receive from rank %d (a group of %d; not from itself)", opRecv, g.rank, from, g.size)
	}
	return g.pointToPoint(ctx, opRecv, g.in[from], func(l *link) error { return g.recv(l, from, buf) })
}

func (g *Group) pointToPoint(ctx context.Context, name string, l *link, do func(*link) error) error {
	if err := g.begin(name, ctx); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := g.begin(name, ctx); err != nil {
		return err
	}
	start := time.Now()
	stop := g.watch(ctx)
	err := do(l)
	stop()
	if err != nil {
		return g.opErr(name)
	}
	g.stats.messages.Add(1)
	g.stats.nanos.Add(int64(time.Since(start)))
	return nil
}

func (g *Group) send(ctx context.Context, l *link, to int, buf []float32) error {
	if l.conn == nil {
		dctx, cancel := context.WithTimeout(ctx, g.timeout)
		c, _, err := g.dial(dctx, to, hello{Kind: kindP2P, Rank: g.rank, Session: g.session})
		cancel()
		if err != nil {
			g.observeIO(to, err)
			return err
		}
		l.conn = c
	}
	c := l.conn
	h := header{kind: kindSend, seq: l.seq, count: uint64(len(buf))}
	l.seq++
	var hb [headerSize]byte
	h.encode(&hb)
	first := min(len(buf), g.seg)
	_ = c.SetWriteDeadline(time.Now().Add(g.timeout))
	bufs := net.Buffers{hb[:], bytesOf(buf[:first])}
	if _, err := bufs.WriteTo(c); err != nil {
		g.observeIO(to, err)
		return err
	}
	for lo := first; lo < len(buf); lo += g.seg {
		hi := min(lo+g.seg, len(buf))
		_ = c.SetWriteDeadline(time.Now().Add(g.timeout))
		if _, err := c.Write(bytesOf(buf[lo:hi])); err != nil {
			g.observeIO(to, err)
			return err
		}
	}
	g.stats.sent.Add(int64(4 * len(buf)))
	return nil
}

func (g *Group) recv(l *link, from int, buf []float32) error {
	t := time.NewTimer(g.timeout)
	select {
	case <-l.ready:
		t.Stop()
	case <-g.fail.done:
		t.Stop()
		return errors.New("failed")
	case <-t.C:
		// The sender never connected: it is stuck, or never sends.
		g.observeIO(from, os.ErrDeadlineExceeded)
		return os.ErrDeadlineExceeded
	}
	c := l.conn
	var hb [headerSize]byte
	_ = c.SetReadDeadline(time.Now().Add(g.timeout))
	if _, err := io.ReadFull(c, hb[:]); err != nil {
		g.observeIO(from, err)
		return err
	}
	h, err := decodeHeader(&hb)
	if err == nil && (h.kind != kindSend || h.seq != l.seq) {
		err = fmt.Errorf("stream out of sync: %v where message #%d was due", h, l.seq+1)
	}
	if err == nil && h.count != uint64(len(buf)) {
		err = fmt.Errorf("sent %d elements (message #%d to rank %d), but Recv on rank %d expected %d", h.count, h.seq+1, g.rank, g.rank, len(buf))
	}
	if err != nil {
		g.observe(from, err, err.Error(), true)
		return err
	}
	l.seq++
	for lo := 0; lo < len(buf); lo += g.seg {
		hi := min(lo+g.seg, len(buf))
		_ = c.SetReadDeadline(time.Now().Add(g.timeout))
		if _, err := io.ReadFull(c, bytesOf(buf[lo:hi])); err != nil {
			g.observeIO(from, err)
			return err
		}
	}
	g.stats.recv.Add(int64(4 * len(buf)))
	return nil
}
