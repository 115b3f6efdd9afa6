package collective

import (
	"io"
	"net"
	"time"
)

// The ring links are byte streams: an operation's header, then its
// payload, in the order the plan sends them. A link is a TCP connection,
// or a shared-memory channel beside it when both ends share a host
// (shm.go); these functions hide which.

// writeNext sends pending (the operation's header, or nil) and data to
// the successor.
func (g *Group) writeNext(pending, data []byte) error {
	if g.nextShm != nil {
		return g.shmWrite(pending, data)
	}
	next := g.nextRank()
	_ = g.next.SetWriteDeadline(time.Now().Add(g.timeout))
	var err error
	if pending != nil {
		// The header and the first data in one system call.
		bufs := net.Buffers{pending, data}
		_, err = bufs.WriteTo(g.next)
	} else {
		_, err = g.next.Write(data)
	}
	if err != nil {
		g.observeIO(next, err)
	}
	return err
}

// readPrev fills dst from the predecessor's stream.
func (g *Group) readPrev(dst []byte) error {
	if g.prevShm != nil {
		return g.shmRead(len(dst), func(off int, b []byte) { copy(dst[off:], b) })
	}
	prev := g.prevRank()
	// Deadlines per segment-sized read: the timeout bounds a pause, not
	// a whole large message.
	for len(dst) > 0 {
		d := dst[:min(len(dst), 4*g.seg)]
		dst = dst[len(d):]
		_ = g.prev.SetReadDeadline(time.Now().Add(g.timeout))
		if _, err := io.ReadFull(g.prev, d); err != nil {
			g.observeIO(prev, err)
			return err
		}
	}
	return nil
}

// reducePrev combines the next len(dst) elements of the predecessor's
// stream into dst with f(dst part, received part): straight out of
// shared memory, or through a reused scratch buffer from TCP.
func (g *Group) reducePrev(dst []float32, f func(d, s []float32)) error {
	if g.prevShm != nil {
		return g.shmRead(4*len(dst), func(off int, b []byte) { f(dst[off/4:off/4+len(b)/4], floatsOf(b)) })
	}
	prev := g.prevRank()
	for len(dst) > 0 {
		d := dst[:min(len(dst), g.seg)]
		dst = dst[len(d):]
		if cap(g.scratch) < len(d) {
			g.scratch = make([]float32, g.seg)
		}
		sc := g.scratch[:len(d)]
		_ = g.prev.SetReadDeadline(time.Now().Add(g.timeout))
		if _, err := io.ReadFull(g.prev, bytesOf(sc)); err != nil {
			g.observeIO(prev, err)
			return err
		}
		f(d, sc)
	}
	return nil
}
