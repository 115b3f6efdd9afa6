package collective

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"unsafe"
)

// Two kinds of traffic cross a group's connections.
//
// Messages (hellos, the rendezvous, the control plane) are rare and
// small: a 4-byte magic, a 4-byte big-endian length and a JSON object.
//
// Data (every operation) is a 32-byte binary header describing the
// operation, then the float32 payload as raw little-endian bytes, written
// straight from and read straight into the caller's slice: no per-element
// work on the network path.

const (
	msgMagic = "hpCm"
	// maxMsg bounds what a peer (or a stray client on the port) can make
	// us allocate; the largest message is the address table.
	maxMsg = 1 << 20
)

// Connection kinds, the first message on every connection.
const (
	kindRegister = "register" // a rank to rank 0: the rendezvous and, after it, the control plane
	kindRing     = "ring"     // a rank to its ring successor: the collectives' data
	kindP2P      = "p2p"      // a rank to any other: Send to Recv, one direction
)

// hello opens every connection.
type hello struct {
	Kind        string `json:"kind"`
	Rank        int    `json:"rank"`
	WorldSize   int    `json:"world_size,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Addr        string `json:"addr,omitempty"`    // register: where this rank accepts data connections
	Session     string `json:"session,omitempty"` // ring, p2p: the group's, from the address table
	// ring: a shared-memory link offered to the successor (shm.go).
	Shm       string `json:"shm,omitempty"`
	Cookie    string `json:"cookie,omitempty"`
	SlotBytes int    `json:"slot_bytes,omitempty"`
}

// welcome is rank 0's answer to a registration: the address table, or why
// the group cannot form (the same text for every rank).
type welcome struct {
	Error   string   `json:"error,omitempty"`
	Session string   `json:"session,omitempty"`
	Addrs   []string `json:"addrs,omitempty"`
}

// Control-plane messages on the registration connections after the
// rendezvous (see control.go).
const (
	ctrlReport = "report" // a rank to rank 0: what it observed
	ctrlAbort  = "abort"  // rank 0 to every rank: the verdict
	ctrlBye    = "bye"    // either way: Close was called, the end of the stream is not a failure
)

type ctrlMsg struct {
	Type   string `json:"type"`
	Rank   int    `json:"rank"`             // report, abort: the rank at the origin
	Reason string `json:"reason,omitempty"` // report, abort
	Weak   bool   `json:"weak,omitempty"`   // report: "the peer closed on me", which it may do because of another failure
}

func writeMsg(w io.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b := make([]byte, 8, 8+len(body))
	copy(b, msgMagic)
	binary.BigEndian.PutUint32(b[4:], uint32(len(body)))
	_, err = w.Write(append(b, body...))
	return err
}

var errNotHpcml = errors.New("not an hpcml collective peer")

func readMsg(r io.Reader, v any) error {
	var h [8]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return err
	}
	if string(h[:4]) != msgMagic {
		return errNotHpcml
	}
	n := binary.BigEndian.Uint32(h[4:])
	if n > maxMsg {
		return fmt.Errorf("message of %d bytes is too large", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return err
	}
	return json.Unmarshal(body, v)
}

// Operation kinds in a data header.
const (
	kindAllReduce uint8 = iota + 1
	kindReduceScatter
	kindAllGather
	kindBroadcast
	kindBarrier
	kindSend
)

const (
	dataMagic  = 0x6c6f6348 // "Hcol" little-endian
	headerSize = 32
)

// header precedes the payload of every operation on every connection it
// uses. The receiver compares it with its own view of the operation, so
// ranks that call different operations, lengths or roots, or are out of
// step, fail with an error that says so instead of exchanging garbage.
type header struct {
	kind  uint8
	op    Op
	root  int32
	seq   uint64 // collectives: the group's count; send: the pair's count
	count uint64 // float32 elements
}

func (h header) encode(b *[headerSize]byte) {
	*b = [headerSize]byte{}
	binary.LittleEndian.PutUint32(b[0:], dataMagic)
	b[4] = h.kind
	b[5] = uint8(h.op)
	binary.LittleEndian.PutUint32(b[8:], uint32(h.root))
	binary.LittleEndian.PutUint64(b[16:], h.seq)
	binary.LittleEndian.PutUint64(b[24:], h.count)
}

func decodeHeader(b *[headerSize]byte) (header, error) {
	if binary.LittleEndian.Uint32(b[0:]) != dataMagic {
		return header{}, errors.New("stream out of sync: no operation header where one was due")
	}
	return header{
		kind:  b[4],
		op:    Op(b[5]),
		root:  int32(binary.LittleEndian.Uint32(b[8:])),
		seq:   binary.LittleEndian.Uint64(b[16:]),
		count: binary.LittleEndian.Uint64(b[24:]),
	}, nil
}

// String describes the operation for a mismatch error.
func (h header) String() string {
	var s string
	switch h.kind {
	case kindAllReduce:
		s = fmt.Sprintf("all-reduce(%s, %d elements)", h.op, h.count)
	case kindReduceScatter:
		s = fmt.Sprintf("reduce-scatter(%s, %d elements)", h.op, h.count)
	case kindAllGather:
		s = fmt.Sprintf("all-gather(%d elements)", h.count)
	case kindBroadcast:
		s = fmt.Sprintf("broadcast(root %d, %d elements)", h.root, h.count)
	case kindBarrier:
		s = "barrier"
	case kindSend:
		return fmt.Sprintf("send of %d elements (message #%d)", h.count, h.seq+1)
	default:
		s = fmt.Sprintf("operation %d", h.kind)
	}
	return fmt.Sprintf("%s as collective #%d", s, h.seq+1)
}

// bytesOf views a float32 slice as its bytes, without copying. The wire
// format is little-endian, the byte order of every platform Go's hpcml
// targets; Join refuses big-endian hosts (littleEndian).
func bytesOf(s []float32) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), 4*len(s))
}

// floatsOf views bytes (a multiple of 4, 4-aligned) as float32s.
func floatsOf(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}

func littleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// socketBuffer is asked of the kernel for every data connection. Linux
// caps it at net.core.{r,w}mem_max (4 MiB on Debian's defaults); fixed
// buffers this size kept loopback transfers as fast as autotuning in our
// measurements while bounding memory per connection.
const socketBuffer = 4 << 20

// tune readies a data connection: no Nagle delay (headers are small and
// must not wait for an ACK), large kernel buffers so a whole segment
// fits in flight.
func tune(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	_ = tc.SetNoDelay(true)
	_ = tc.SetReadBuffer(socketBuffer)
	_ = tc.SetWriteBuffer(socketBuffer)
}
