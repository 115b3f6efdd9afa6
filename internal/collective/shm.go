package collective

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

// Ring neighbours on the same host move the collectives' data through
// shared memory instead of the kernel's TCP stack, as MPI's and NCCL's
// intra-node transports do: the sender copies a piece into a slot of a
// mapping both processes share and the receiver reduces (or copies)
// straight out of it, one copy fewer than through a socket and no
// protocol processing.
//
// The link is a byte stream of pieces: the sender fills a free slot,
// records its length and advances the shared "filled" counter; the
// receiver consumes slots in order and advances "freed". Each side
// waiting for the other first spins on the counter for up to spinWait —
// in the middle of an operation the other side is usually microseconds
// away, and a blocked goroutine takes tens of microseconds to wake — then
// sets its "waiting" flag and blocks reading one byte from the TCP
// connection, which the other side writes when it finds the flag set.
// Both flag and counter are read and written with sequentially consistent
// atomics (flag, then counter on one side; counter, then flag on the
// other), so at least one side sees the other's write: a wake-up cannot
// be lost, and the compare-and-swap on the flag makes exactly one byte
// travel per wait that needed one. The TCP connection stays open beside
// the mapping: it carries those bytes, and its deadlines, closing and
// end-of-file give waiting, cancellation and a dead peer the same
// behaviour as over TCP.
//
// The sender creates the mapping, a file in /dev/shm named after the
// session, and offers its name and a random cookie in its ring hello; the
// receiver maps it, checks the cookie (which proves it is the same host:
// another machine's /dev/shm has no such file) and deletes the name, so
// nothing is left behind once both have it mapped. A receiver that cannot
// map it answers "TCP", and the pair uses TCP.

const (
	shmSlots = 4 // slots per direction: the pipeline depth
	// shmMaxSlot bounds a slot; a longer write travels in several.
	shmMaxSlot = 2 << 20
	shmDir     = "/dev/shm"
	// The mapping: a page of counters (each on a cache line of its own,
	// so the two sides do not contend for one), a page of piece lengths,
	// then the slots.
	shmCookie      = 0
	shmFilled      = 64
	shmFreed       = 128
	shmRecvWaiting = 192
	shmSendWaiting = 256
	shmLengths     = 4096
	shmData        = 8192
	// spinWait is how long a waiting rank keeps polling before it
	// sleeps. Measured on this machine, tens of microseconds cover the
	// other side's next piece while both are busy; spinning longer
	// only burns a core another process may want.
	spinWait = 50 * time.Microsecond

	doorbell = 'D' // "a piece is filled", to a receiver that waits
	slotFree = 'A' // "a slot is free", to a sender that waits
)

// Ring hello acknowledgements.
const (
	ackTCP = 1 // accepted; data over TCP
	ackShm = 3 // accepted; data through the offered shared memory
)

// shmChan is one direction of a ring link through shared memory, from
// one end's point of view.
type shmChan struct {
	mem  []byte
	slot int    // bytes per slot
	seq  uint64 // pieces this end has filled (sender) or consumed (receiver)
	// The receiver's place in the piece it is consuming.
	off, plen int
	path      string // the sender's, until the receiver has mapped it
	// wake receives a value when the other side's wake-up byte arrives
	// (readWakes); extra values only cause a spurious check.
	wake chan struct{}
	// dead is closed when the TCP connection has ended, deadErr why.
	dead    chan struct{}
	deadErr error
}

func newShmChan(mem []byte, slot int, path string) *shmChan {
	return &shmChan{mem: mem, slot: slot, path: path, wake: make(chan struct{}, 1), dead: make(chan struct{})}
}

// shmSlotBytes is the slot size for segments of seg elements: a segment,
// within bounds. At least a lock-step step (runLockstep) with its
// header, so that a step is one piece: the ring of lock-step ranks cannot
// then fill every slot of every link at once and wait on itself.
func shmSlotBytes(seg int) int {
	least := (lockstepBytes + headerSize + 4095) &^ 4095
	return min(max(4*seg, least), shmMaxSlot)
}

func shmSize(slot int) int { return shmData + shmSlots*slot }

func (s *shmChan) u64(off int) *uint64 { return (*uint64)(unsafe.Pointer(&s.mem[off])) }
func (s *shmChan) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&s.mem[off])) }

// piece is slot i's memory and its length field.
func (s *shmChan) piece(i uint64) ([]byte, *uint32) {
	k := int(i % shmSlots)
	off := shmData + k*s.slot
	return s.mem[off : off+s.slot], s.u32(shmLengths + 4*k)
}

// offerShm creates the mapping for this rank's link to its successor.
func offerShm(session string, rank, slot int) (*shmChan, []byte, error) {
	if fi, err := os.Stat(shmDir); err != nil || !fi.IsDir() {
		return nil, nil, errors.New("no " + shmDir)
	}
	path := filepath.Join(shmDir, fmt.Sprintf("hpcml-collective-%s-%d", session, rank))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	size := shmSize(slot)
	if err := f.Truncate(int64(size)); err != nil {
		os.Remove(path)
		return nil, nil, err
	}
	mem, err := mapShared(f, size)
	if err != nil {
		os.Remove(path)
		return nil, nil, err
	}
	cookie := make([]byte, 16)
	rand.Read(cookie)
	copy(mem[shmCookie:], cookie)
	return newShmChan(mem, slot, path), cookie, nil
}

// acceptShm maps a predecessor's offer, checks its cookie and removes its
// name.
func acceptShm(path string, cookie []byte, slot int) (*shmChan, error) {
	if filepath.Dir(path) != shmDir || slot < 4 || slot > shmMaxSlot || slot%4 != 0 {
		return nil, errors.New("bad offer")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := shmSize(slot)
	if fi, err := f.Stat(); err != nil || fi.Size() != int64(size) {
		return nil, errors.New("size differs")
	}
	mem, err := mapShared(f, size)
	if err != nil {
		return nil, err
	}
	if len(cookie) != 16 || !bytes.Equal(mem[shmCookie:shmCookie+16], cookie) {
		unmapShared(mem)
		return nil, errors.New("cookie differs")
	}
	os.Remove(path)
	return newShmChan(mem, slot, ""), nil
}

// drop undoes an offer the successor did not take.
func (s *shmChan) drop() {
	if s.path != "" {
		os.Remove(s.path)
	}
	unmapShared(s.mem)
}

// shmWrite sends the concatenation of parts to the successor: into free
// slots, a slot at a time, each published as soon as it is filled (so
// the successor can start on it) and at the end.
func (g *Group) shmWrite(parts ...[]byte) error {
	s := g.nextShm
	next := g.nextRank()
	freed := s.u64(shmFreed)
	for {
		var n int
		for _, p := range parts {
			n += len(p)
		}
		if n == 0 {
			return nil
		}
		// A free slot: fewer than shmSlots filled and not yet freed.
		if err := g.shmWait(func() bool { return s.seq-atomic.LoadUint64(freed) < shmSlots },
			s, s.u32(shmSendWaiting), next); err != nil {
			return err
		}
		slot, length := s.piece(s.seq)
		filled := 0
		for len(parts) > 0 && filled < len(slot) {
			c := copy(slot[filled:], parts[0])
			filled += c
			if parts[0] = parts[0][c:]; len(parts[0]) == 0 {
				parts = parts[1:]
			}
		}
		g.shmPublish(s, length, filled)
	}
}

// shmPublish hands the successor the slot just filled with n bytes
// (length is its length word) and wakes it if it sleeps.
func (g *Group) shmPublish(s *shmChan, length *uint32, n int) {
	*length = uint32(n)
	s.seq++
	atomic.StoreUint64(s.u64(shmFilled), s.seq)
	g.shmWake(s.u32(shmRecvWaiting), g.next, doorbell)
}

// shmRead consumes n bytes of the predecessor's stream, handing them to
// use in contiguous spans of slot memory, with their offset among the n:
// use reads them in place (a reduction adds them straight from the slot).
// A slot is freed as soon as it is consumed.
func (g *Group) shmRead(n int, use func(off int, b []byte)) error {
	s := g.prevShm
	prev := g.prevRank()
	filled := s.u64(shmFilled)
	for done := 0; ; {
		base := done
		done += g.shmTake(s, n-done, func(off int, b []byte) { use(base+off, b) })
		if done == n {
			return nil
		}
		// shmTake stopped at a slot not filled yet.
		if err := g.shmWait(func() bool { return atomic.LoadUint64(filled) > s.seq },
			s, s.u32(shmRecvWaiting), prev); err != nil {
			return err
		}
	}
}

// shmWait returns when ready() holds: at once, after spinning up to
// g.spin, or after blocking until the other side's wake-up byte
// arrives on s (waiting flags it wants one).
func (g *Group) shmWait(ready func() bool, s *shmChan, waiting *uint32, peer int) error {
	if g.spinUntil(ready) {
		return nil
	}
	t := time.NewTimer(g.timeout)
	defer t.Stop()
	for {
		atomic.StoreUint32(waiting, 1)
		if ready() {
			// If the other side took the flag meanwhile, its byte
			// arrives later and only wakes a later wait spuriously.
			atomic.CompareAndSwapUint32(waiting, 1, 0)
			return nil
		}
		select {
		case <-s.wake:
		case <-s.dead:
			if ready() {
				return nil
			}
			g.observeIO(peer, s.deadErr)
			return s.deadErr
		case <-g.aborted:
			return errAborted{}
		case <-t.C:
			g.observeIO(peer, os.ErrDeadlineExceeded)
			return os.ErrDeadlineExceeded
		}
		if ready() {
			return nil
		}
	}
}

// spin polls ready for up to g.spin, letting other goroutines of this
// process run between polls (the backward pass a gradient all-reduce
// overlaps with, say).
func (g *Group) spinUntil(ready func() bool) bool {
	if ready() {
		return true
	}
	for start := time.Now(); time.Since(start) < g.spin; {
		for range 64 {
			if ready() {
				return true
			}
		}
		runtime.Gosched()
	}
	return false
}

// errAborted ends a wait when the group's connections were closed (a
// failure, observed here or decided by rank 0, or Close).
type errAborted struct{}

func (errAborted) Error() string { return "aborted" }

// readWakes reads the wake-up bytes the other side of a shared-memory
// link sends on its TCP connection, for as long as the connection lasts,
// and passes them on to the waits. When the connection ends it tells the
// waits (which report it, naming the peer, if an operation was waiting:
// an idle rank reports nothing, as over TCP).
func (g *Group) readWakes(s *shmChan, c net.Conn, want byte) {
	defer g.wg.Done()
	var b [64]byte
	for {
		n, err := c.Read(b[:])
		if err == nil && bytes.Count(b[:n], []byte{want}) != n {
			err = errors.New("stream out of sync: not a wake-up")
		}
		if err != nil {
			s.deadErr = err
			close(s.dead)
			return
		}
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// shmWake writes the wake-up byte if the other side waits for it. A
// failed write is not an error here: the other side may have finished
// and left (it may take the flag and then find it needs no byte), and if
// it did not, its end of the connection fails its wait and it reports.
func (g *Group) shmWake(waiting *uint32, c net.Conn, wake byte) {
	if !atomic.CompareAndSwapUint32(waiting, 1, 0) {
		return
	}
	_ = c.SetWriteDeadline(time.Now().Add(g.timeout))
	_, _ = c.Write([]byte{wake})
}
