package collective

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
	"unsafe"
)

// Ring neighbours on the same host move the collectives' data through
// shared memory instead of the kernel's TCP stack, as MPI's and NCCL's
// intra-node transports do: the sender copies a piece into a slot of a
// mapping both processes share and the receiver reduces (or copies)
// straight out of it, one copy fewer than through a socket and no
// protocol processing. The TCP connection stays: it carries the
// operation headers, one-byte doorbells ("slot filled") forward and
// acknowledgements ("slot free") back, so waiting, deadlines, cancellation
// and a peer's death work exactly as over TCP.
//
// The sender creates the mapping, a file in /dev/shm named after the
// session, and offers its name and a random cookie in its ring hello; the
// receiver maps it, checks the cookie (which proves it is the same host:
// another machine's /dev/shm has no such file) and deletes the name, so
// nothing is left behind once both have it mapped. A receiver that cannot
// map it answers "TCP", and the pair uses TCP.

const (
	shmSlots = 4 // slots per direction: the pipeline depth
	// shmMaxSlot bounds a slot; a longer segment travels in several.
	shmMaxSlot = 2 << 20
	// shmHeader holds the cookie; a page, so the slots stay aligned.
	shmHeader = 4096
	shmDir    = "/dev/shm"

	doorbell = 'D'
	slotFree = 'A'
)

// Ring hello acknowledgements.
const (
	ackTCP = 1 // accepted; data over TCP
	ackShm = 3 // accepted; data through the offered shared memory
)

// shmChan is one direction of a ring link through shared memory.
type shmChan struct {
	mem  []byte
	slot int    // bytes per slot
	next uint64 // slots filled (sender) or emptied (receiver) so far
	// avail is, for the sender, the free slots it knows of; for the
	// receiver, the doorbells read but not yet served.
	avail int
	buf   [shmSlots]byte // doorbells or acknowledgements read at once
	path  string         // the sender's, until the receiver has mapped it
}

func shmSlotBytes(seg int) int { return min(4*seg, shmMaxSlot) }

// at is slot i's memory.
func (s *shmChan) at(i uint64, n int) []byte {
	off := shmHeader + int(i%shmSlots)*s.slot
	return s.mem[off : off+n]
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
	size := shmHeader + shmSlots*slot
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
	copy(mem, cookie)
	return &shmChan{mem: mem, slot: slot, avail: shmSlots, path: path}, cookie, nil
}

// acceptShm maps a predecessor's offer, checks its cookie and removes its
// name.
func acceptShm(path string, cookie []byte, slot int) (*shmChan, error) {
	if filepath.Dir(path) != shmDir || slot <= 0 || slot > shmMaxSlot || slot%4 != 0 {
		return nil, errors.New("bad offer")
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := shmHeader + shmSlots*slot
	if fi, err := f.Stat(); err != nil || fi.Size() != int64(size) {
		return nil, errors.New("size differs")
	}
	mem, err := mapShared(f, size)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(mem[:len(cookie)], cookie) || len(cookie) != 16 {
		unmapShared(mem)
		return nil, errors.New("cookie differs")
	}
	os.Remove(path)
	return &shmChan{mem: mem, slot: slot}, nil
}

// drop undoes an offer the successor did not take.
func (s *shmChan) drop() {
	if s.path != "" {
		os.Remove(s.path)
	}
	unmapShared(s.mem)
}

// shmSend sends data to the successor through shared memory: for each
// piece, wait for a free slot, fill it, ring the doorbell (the first
// doorbell carries pending, the operation's header).
func (g *Group) shmSend(data []byte, pending []byte) error {
	s, c := g.nextShm, g.next
	next := (g.rank + 1) % g.size
	for len(data) > 0 {
		piece := data[:min(len(data), s.slot)]
		data = data[len(piece):]
		for s.avail == 0 {
			// Only acknowledgements flow back on this connection; those
			// not read before the operation ends are read by the next.
			_ = c.SetReadDeadline(time.Now().Add(g.timeout))
			n, err := c.Read(s.buf[:])
			if err == nil && bytes.Count(s.buf[:n], []byte{slotFree}) != n {
				err = errors.New("stream out of sync: not an acknowledgement")
			}
			if err != nil {
				g.observeIO(next, err)
				return err
			}
			s.avail += n
		}
		copy(s.at(s.next, len(piece)), piece)
		s.next++
		s.avail--
		_ = c.SetWriteDeadline(time.Now().Add(g.timeout))
		var err error
		if pending != nil {
			bufs := net.Buffers{pending, {doorbell}}
			_, err = bufs.WriteTo(c)
			pending = nil
		} else {
			_, err = c.Write([]byte{doorbell})
		}
		if err != nil {
			g.observeIO(next, err)
			return err
		}
	}
	return nil
}

// shmRecv receives dst from the predecessor through shared memory, adding
// it in (dividing at the last step of a Mean) or copying it, straight out
// of each slot.
func (g *Group) shmRecv(dst []float32, x xfer, op Op) error {
	s, c := g.prevShm, g.prev
	prev := (g.rank + g.size - 1) % g.size
	for len(dst) > 0 {
		d := dst[:min(len(dst), s.slot/4)]
		dst = dst[len(d):]
		for s.avail == 0 {
			// Never more doorbells than this call still needs: what
			// follows them may be the next operation's header.
			want := min(shmSlots, (len(d)+len(dst)+s.slot/4-1)/(s.slot/4))
			_ = c.SetReadDeadline(time.Now().Add(g.timeout))
			n, err := c.Read(s.buf[:want])
			if err == nil && bytes.Count(s.buf[:n], []byte{doorbell}) != n {
				err = errors.New("stream out of sync: not a doorbell")
			}
			if err != nil {
				g.observeIO(prev, err)
				return err
			}
			s.avail += n
		}
		b := s.at(s.next, 4*len(d))
		src := unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(d))
		switch {
		case !x.reduce:
			copy(d, src)
		case x.final && op == Mean:
			g.red.addDiv(d, src, float32(g.size))
		default:
			g.red.add(d, src)
		}
		s.next++
		s.avail--
		_ = c.SetWriteDeadline(time.Now().Add(g.timeout))
		if _, err := c.Write([]byte{slotFree}); err != nil {
			g.observeIO(prev, err)
			return err
		}
	}
	return nil
}
