package collective

import (
	"os"
	"sync/atomic"
	"time"
)

// runShm runs plan p on this goroutine when both of this rank's ring
// links are shared memory: a progress loop, as MPI's and NCCL's are. Each
// turn it fills a slot for the successor if one is free and the next
// segment is ready, and consumes what the predecessor has filled; when
// neither can move it spins, then sleeps until a wake-up. Without a
// second goroutine there is no hand-off between goroutines to wait for:
// on a machine with as many cores as ranks each rank keeps one core busy
// instead of two threads contending for it.
//
// The order of the work and its dependencies are those of the two
// goroutines of run: a chained send waits for the matching receive (a
// token), a released receive for the matching send.
func (g *Group) runShm(buf []float32, p *plan) error {
	out, in := g.nextShm, g.prevShm
	next, prev := g.nextRank(), g.prevRank()
	// A segment is one piece, the first with the header in front.
	seg := min(g.segment(p, true), (min(out.slot, in.slot)-headerSize)/4)
	var hb [headerSize]byte
	p.hdr.encode(&hb)

	// The sending side: p.send[si], next segment at slo.
	si, slo := firstXfer(p.send, p.sendHdr)
	hdrOut := p.sendHdr
	sendDone := func() bool { return si >= len(p.send) && !hdrOut }
	// The receiving side: p.recv[ri], segment [rlo, min(rlo+seg, hi)),
	// roff elements of it done; the header first.
	ri, rlo := firstXfer(p.recv, p.recvHdr)
	roff := 0
	hdrIn := p.recvHdr
	var hbIn [headerSize]byte
	hdrGot := 0
	recvDone := func() bool { return ri >= len(p.recv) && !hdrIn }
	// Skip empty ranges: they have no segments on either side.
	skip := func() {
		skipEmptyXfers(p.send, &si, &slo)
		skipEmptyXfers(p.recv, &ri, &rlo)
	}
	skip()
	tokens, sentRel, usedRel := 0, 0, 0
	var sent, got int64
	freed, filled := out.u64(shmFreed), in.u64(shmFilled)
	slotFree := func() bool { return out.seq-atomic.LoadUint64(freed) < shmSlots }
	dataIn := func() bool { return in.plen > 0 || atomic.LoadUint64(filled) > in.seq }

	for !sendDone() || !recvDone() {
		moved := false
		wantSlot, wantData := false, false

		// Send the next segment if it is ready and a slot is free.
		if !sendDone() {
			var x xfer
			ready := true
			if si < len(p.send) {
				x = p.send[si]
				ready = !x.chained || tokens > 0
			}
			switch {
			case !ready:
			case !slotFree():
				wantSlot = true
			default:
				var data []byte
				hi := slo
				if si < len(p.send) {
					hi = min(slo+seg, x.hi)
					data = bytesOf(buf[slo:hi])
				}
				var pending []byte
				if hdrOut {
					pending, hdrOut = hb[:], false
				}
				g.shmPut(out, pending, data)
				if si < len(p.send) {
					if x.chained {
						tokens--
					}
					if x.released {
						sentRel++
					}
					sent += int64(4 * (hi - slo))
					slo = hi
					skip()
				}
				moved = true
			}
		}

		// Consume what the predecessor has filled, up to the end of the
		// current segment.
		if !recvDone() {
			switch {
			case !dataIn():
				if hdrIn || !p.recv[ri].released || usedRel < sentRel {
					wantData = true
				}
			case hdrIn:
				hdrGot += g.shmTake(in, headerSize-hdrGot, func(off int, b []byte) { copy(hbIn[hdrGot+off:], b) })
				if hdrGot == headerSize {
					hdrIn = false
					if err := g.checkHeader(p, &hbIn); err != nil {
						return err
					}
				}
				moved = true
			case p.recv[ri].released && usedRel >= sentRel:
				// Not before this rank has sent what it overwrites.
			default:
				y := p.recv[ri]
				hi := min(rlo+seg, y.hi)
				dst := buf[rlo+roff : hi]
				var took int
				if y.reduce {
					took = g.shmTake(in, 4*len(dst), func(off int, b []byte) {
						g.reduceStep(dst[off/4:off/4+len(b)/4], floatsOf(b), y, p.hdr.op)
					})
				} else {
					took = g.shmTake(in, 4*len(dst), func(off int, b []byte) { copy(bytesOf(dst)[off:], b) })
				}
				roff += took / 4
				got += int64(took)
				if rlo+roff == hi {
					if y.chained {
						tokens++
					}
					if y.released {
						usedRel++
					}
					rlo, roff = hi, 0
					skip()
				}
				moved = true
			}
		}

		if moved {
			continue
		}
		if err := g.shmIdle(wantSlot, wantData, slotFree, dataIn, next, prev); err != nil {
			return err
		}
	}
	g.stats.sent.Add(sent)
	g.stats.recv.Add(got)
	return nil
}

// shmPut fills one slot of out with pending and data (together at most
// a slot) and publishes it. The caller has seen the slot free.
func (g *Group) shmPut(out *shmChan, pending, data []byte) {
	slot, length := out.piece(out.seq)
	k := copy(slot, pending)
	k += copy(slot[k:], data)
	g.shmPublish(out, length, k)
}

// shmTake consumes up to n bytes the predecessor has filled (without
// waiting), handing them to use in place; it frees each slot it
// finishes. It returns the bytes taken.
func (g *Group) shmTake(in *shmChan, n int, use func(off int, b []byte)) int {
	done := 0
	for done < n {
		if in.plen == 0 {
			if atomic.LoadUint64(in.u64(shmFilled)) <= in.seq {
				break
			}
			_, length := in.piece(in.seq)
			in.off, in.plen = 0, int(*length)
		}
		slot, _ := in.piece(in.seq)
		take := min(n-done, in.plen-in.off)
		use(done, slot[in.off:in.off+take])
		done += take
		if in.off += take; in.off < in.plen {
			continue
		}
		in.seq++
		in.off, in.plen = 0, 0
		atomic.StoreUint64(in.u64(shmFreed), in.seq)
		g.shmWake(in.u32(shmSendWaiting), g.prev, slotFree)
	}
	return done
}

// shmIdle waits until a slot is free (if wantSlot) or data has come (if
// wantData): spinning first, then asleep until a wake-up byte.
func (g *Group) shmIdle(wantSlot, wantData bool, slotFree, dataIn func() bool, next, prev int) error {
	ready := func() bool { return (wantSlot && slotFree()) || (wantData && dataIn()) }
	if !wantSlot && !wantData {
		// Cannot happen: a turn with nothing to wait for has moved.
		return nil
	}
	if g.spinUntil(ready) {
		return nil
	}
	out, in := g.nextShm, g.prevShm
	// Only the links waited on matter: a successor may finish and leave
	// while this rank still waits for its predecessor.
	var outWake, inWake, outDead, inDead <-chan struct{}
	if wantSlot {
		outWake, outDead = out.wake, out.dead
	}
	if wantData {
		inWake, inDead = in.wake, in.dead
	}
	t := time.NewTimer(g.timeout)
	defer t.Stop()
	for {
		if wantSlot {
			atomic.StoreUint32(out.u32(shmSendWaiting), 1)
		}
		if wantData {
			atomic.StoreUint32(in.u32(shmRecvWaiting), 1)
		}
		if ready() {
			atomic.CompareAndSwapUint32(out.u32(shmSendWaiting), 1, 0)
			atomic.CompareAndSwapUint32(in.u32(shmRecvWaiting), 1, 0)
			return nil
		}
		select {
		case <-outWake:
		case <-inWake:
		case <-outDead:
			if ready() {
				return nil
			}
			g.observeIO(next, out.deadErr)
			return out.deadErr
		case <-inDead:
			if ready() {
				return nil
			}
			g.observeIO(prev, in.deadErr)
			return in.deadErr
		case <-g.aborted:
			return errAborted{}
		case <-t.C:
			peer := next
			if wantData {
				peer = prev
			}
			g.observeIO(peer, os.ErrDeadlineExceeded)
			return os.ErrDeadlineExceeded
		}
		if ready() {
			return nil
		}
	}
}
