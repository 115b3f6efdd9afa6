//go:build linux

package collective

import (
	"errors"
	"io"
	"os"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// runTCP runs plan p on this goroutine when both of this rank's ring
// links are TCP: the progress loop of runShm over sockets, as MPI's TCP
// transport runs one. Each turn it writes what the successor's socket
// takes of the current segment and reads what the predecessor's socket
// holds, with non-blocking system calls; when neither moves it keeps
// trying for g.spin (the other side is usually microseconds away in the
// middle of an operation, while waking a goroutine parked on the network
// poller costs tens of microseconds), yielding the CPU between tries,
// then sleeps in poll(2) on both sockets. One goroutine, one busy thread
// per rank: no hand-offs between goroutines.
//
// The bytes on the wire are exactly those of the two-goroutine path (a
// header, then the payload in plan order), so neighbours may run either.
func (g *Group) runTCP(buf []float32, p *plan) error {
	next, prev := g.nextRank(), g.prevRank()
	wc, err1 := g.next.(syscall.Conn).SyscallConn()
	rc, err2 := g.prev.(syscall.Conn).SyscallConn()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	seg := g.segment(p, false)
	var hb [headerSize]byte
	p.hdr.encode(&hb)

	// Sending: p.send[si], next segment at slo; out holds what is left of
	// the segment being written (the header in front of the first).
	si, slo := firstXfer(p.send, p.sendHdr)
	hdrOut := p.sendHdr
	var out [2][]byte
	outHi, outBusy := 0, false
	sendDone := func() bool { return si >= len(p.send) && !hdrOut && !outBusy }
	// Receiving: the header, then p.recv[ri]'s segment [rlo, rhi), rgot
	// bytes of it read (into the buffer, or the scratch for a reduction).
	ri, rlo := firstXfer(p.recv, p.recvHdr)
	hdrIn := p.recvHdr
	var hbIn [headerSize]byte
	hdrGot, rgot := 0, 0
	recvDone := func() bool { return ri >= len(p.recv) && !hdrIn }
	skip := func() {
		skipEmptyXfers(p.send, &si, &slo)
		skipEmptyXfers(p.recv, &ri, &rlo)
	}
	skip()
	if cap(g.scratch) < seg {
		g.scratch = make([]float32, seg)
	}
	tokens, sentRel, usedRel := 0, 0, 0
	var sent, got int64
	lastMove := time.Now()
	idleSince := time.Time{}

	for !sendDone() || !recvDone() {
		moved := false
		wantWrite, wantRead := false, false

		// Start the next segment when it is ready.
		if !outBusy && !sendDone() {
			if si < len(p.send) {
				if x := p.send[si]; !x.chained || tokens > 0 {
					outHi = min(slo+seg, x.hi)
					out[1] = bytesOf(buf[slo:outHi])
					outBusy = true
				}
			} else {
				outHi, out[1], outBusy = slo, nil, true // the header alone
			}
			if outBusy && hdrOut {
				out[0], hdrOut = hb[:], false
			}
		}
		if outBusy {
			k, err := writevNow(wc, out[:])
			if err != nil {
				g.observeIO(next, err)
				return err
			}
			if k > 0 {
				moved = true
				for i := range out {
					d := min(k, len(out[i]))
					out[i], k = out[i][d:], k-d
				}
			}
			if len(out[0])+len(out[1]) > 0 {
				wantWrite = true
			} else {
				outBusy = false
				if si < len(p.send) {
					x := p.send[si]
					if x.chained {
						tokens--
					}
					if x.released {
						sentRel++
					}
					sent += int64(4 * (outHi - slo))
					slo = outHi
					skip()
				}
			}
		}

		if !recvDone() {
			var dst []byte
			var y xfer
			switch {
			case hdrIn:
				dst = hbIn[hdrGot:]
			default:
				y = p.recv[ri]
				if y.released && usedRel >= sentRel {
					break // not before this rank has sent what it overwrites
				}
				rhi := min(rlo+seg, y.hi)
				if y.reduce {
					dst = bytesOf(g.scratch[:rhi-rlo])[rgot:]
				} else {
					dst = bytesOf(buf[rlo:rhi])[rgot:]
				}
			}
			if dst != nil {
				k, err := readNow(rc, dst)
				if err != nil {
					g.observeIO(prev, err)
					return err
				}
				if k > 0 {
					moved = true
				} else {
					wantRead = true
				}
				complete := k == len(dst)
				if hdrIn {
					hdrGot += k
					if complete {
						hdrIn = false
						if err := g.checkHeader(p, &hbIn); err != nil {
							return err
						}
					}
				} else if rgot += k; complete {
					rhi := min(rlo+seg, y.hi)
					if y.reduce {
						g.reduceStep(buf[rlo:rhi], g.scratch[:rhi-rlo], y, p.hdr.op)
					}
					if y.chained {
						tokens++
					}
					if y.released {
						usedRel++
					}
					got += int64(4 * (rhi - rlo))
					rlo, rgot = rhi, 0
					skip()
				}
			}
		}

		if moved {
			lastMove, idleSince = time.Now(), time.Time{}
			continue
		}
		if !wantWrite && !wantRead {
			continue // cannot happen: a turn with nothing to wait for has moved
		}
		// Nothing moved: keep trying for a while, then sleep in poll(2).
		now := time.Now()
		if idleSince.IsZero() {
			idleSince = now
		}
		if now.Sub(idleSince) < g.spin {
			// Let whatever else is runnable here go first: other
			// goroutines of this process, and on a busy machine the
			// kernel thread that moves the packets this loop waits for
			// (ksoftirqd); spinning over it halved the bandwidth in some
			// runs.
			runtime.Gosched()
			syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
			continue
		}
		if now.Sub(lastMove) > g.timeout {
			peer := next
			if wantRead {
				peer = prev
			}
			g.observeIO(peer, os.ErrDeadlineExceeded)
			return os.ErrDeadlineExceeded
		}
		if err := g.pollLinks(wc, rc, wantWrite, wantRead); err != nil {
			return err
		}
	}
	g.stats.sent.Add(sent)
	g.stats.recv.Add(got)
	return nil
}

// readNow reads what the socket holds, without waiting: 0 if nothing,
// io.EOF when the peer has closed.
func readNow(rc syscall.RawConn, b []byte) (int, error) {
	var n int
	var err error
	if cerr := rc.Read(func(fd uintptr) bool {
		for {
			n, err = unix.Read(int(fd), b)
			if err != unix.EINTR {
				return true
			}
		}
	}); cerr != nil {
		return 0, cerr
	}
	switch {
	case err == unix.EAGAIN:
		return 0, nil
	case err != nil:
		return 0, os.NewSyscallError("read", err)
	case n == 0 && len(b) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// writevNow writes what the socket takes of bufs, without waiting.
func writevNow(rc syscall.RawConn, bufs [][]byte) (int, error) {
	var n int
	var err error
	if cerr := rc.Write(func(fd uintptr) bool {
		for {
			n, err = unix.Writev(int(fd), bufs)
			if err != unix.EINTR {
				return true
			}
		}
	}); cerr != nil {
		return 0, cerr
	}
	if err == unix.EAGAIN {
		return 0, nil
	}
	if err != nil {
		return 0, os.NewSyscallError("writev", err)
	}
	return n, nil
}

// pollLinks sleeps until the successor's socket takes data (wantWrite)
// or the predecessor's has some (wantRead), for at most 10 ms: then the
// caller checks its deadline, and a Close or failure elsewhere (which
// closes the connections, after this returns) is seen soon.
func (g *Group) pollLinks(wc, rc syscall.RawConn, wantWrite, wantRead bool) error {
	select {
	case <-g.aborted:
		return errAborted{}
	default:
	}
	var perr error
	cerr := wc.Control(func(wfd uintptr) {
		cerr := rc.Control(func(rfd uintptr) {
			var fds []unix.PollFd
			if wantWrite {
				fds = append(fds, unix.PollFd{Fd: int32(wfd), Events: unix.POLLOUT})
			}
			if wantRead {
				fds = append(fds, unix.PollFd{Fd: int32(rfd), Events: unix.POLLIN})
			}
			if _, err := unix.Poll(fds, 10); err != nil && err != unix.EINTR {
				perr = os.NewSyscallError("poll", err)
			}
		})
		if cerr != nil {
			perr = cerr
		}
	})
	if cerr != nil {
		perr = cerr
	}
	if perr != nil {
		select {
		case <-g.aborted:
			return errAborted{}
		default:
		}
		g.observeIO(g.prevRank(), perr)
	}
	return perr
}

// tcpLoop reports whether this platform has runTCP.
const tcpLoop = true
