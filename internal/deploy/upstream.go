package deploy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// upstream is the gateway's HTTP/1.1 client to replicas: keep-alive
// connections used by one request at a time, written and read by the
// request's own goroutine. net/http's Transport hands every request to
// a writer and a reader goroutine per connection; on a loaded 2-core
// machine each hand-off is a wake-up that can wait for a core, and the
// gateway's job is to add as little latency as it can.
type upstream struct {
	mu        sync.Mutex
	idle      map[string][]*upConn
	maxIdle   int // per replica
	dialer    net.Dialer
	lastSweep time.Time
	// timeout bounds one exchange, answer body included: a replica that
	// accepts a request and never answers must not hold it (and its
	// place in the least-outstanding count) for ever.
	timeout time.Duration
}

// upstreamTimeout is a replica's own default request limit (hpcml serve
// --timeout 60s, which endpoints do not change) and a margin: the
// replica answers 503/504 first when it can.
const upstreamTimeout = 65 * time.Second

type upConn struct {
	c        net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	lastUsed time.Time
}

// idleFor bounds how long an idle connection is kept: shorter than any
// replica's idle timeout, so a kept connection is still open.
const idleFor = 30 * time.Second

func newUpstream() *upstream {
	return &upstream{idle: map[string][]*upConn{}, maxIdle: 256, timeout: upstreamTimeout,
		dialer: net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}}
}

// get takes an idle connection to addr that the replica has not closed,
// or dials a new one (always, when fresh).
func (u *upstream) get(ctx context.Context, addr string, fresh bool) (*upConn, bool, error) {
	now := time.Now()
	for !fresh {
		u.mu.Lock()
		list := u.idle[addr]
		if len(list) == 0 {
			u.mu.Unlock()
			break
		}
		pc := list[len(list)-1]
		u.idle[addr] = list[:len(list)-1]
		u.mu.Unlock()
		// Checked outside the lock that every replica's requests share:
		// it is a syscall.
		if now.Sub(pc.lastUsed) < idleFor && !closedByPeer(pc.c) {
			return pc, true, nil
		}
		pc.c.Close()
	}
	c, err := u.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return &upConn{c: c, br: bufio.NewReaderSize(c, 16<<10), bw: bufio.NewWriterSize(c, 16<<10)}, false, nil
}

func (u *upstream) put(addr string, pc *upConn) {
	pc.c.SetDeadline(time.Time{}) // the exchange's deadline ends with it
	pc.lastUsed = time.Now()
	u.mu.Lock()
	if pc.lastUsed.Sub(u.lastSweep) > idleFor {
		// Replicas that were replaced come back on new ports: close the
		// connections to addresses nobody asks for any more, or they
		// would hold their sockets until the gateway closes.
		u.lastSweep = pc.lastUsed
		for a, list := range u.idle {
			keep := list[:0]
			for _, c := range list {
				if pc.lastUsed.Sub(c.lastUsed) < idleFor {
					keep = append(keep, c)
				} else {
					c.c.Close()
				}
			}
			if len(keep) == 0 {
				delete(u.idle, a)
			} else {
				u.idle[a] = keep
			}
		}
	}
	if len(u.idle[addr]) < u.maxIdle {
		u.idle[addr] = append(u.idle[addr], pc)
		pc = nil
	}
	u.mu.Unlock()
	if pc != nil {
		pc.c.Close()
	}
}

// closedByPeer reports whether the replica closed or reset an idle
// connection (or, which it must not, wrote to it), by a non-blocking peek
// at the socket: a replica that exits or drains closes its idle
// connections, and a request written to one would be lost. (A Go read
// with a deadline in the past returns before it reaches the socket, so it
// cannot tell.)
func closedByPeer(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// EAGAIN: open with nothing to read, as an idle connection is.
		// Anything else (end of stream, a reset, bytes nobody asked
		// for) makes it unusable.
		closed = err != syscall.EAGAIN && err != syscall.EINTR
		return true // never wait for readiness
	})
	return closed || err != nil // a closed descriptor, or a deadline already past
}

// dropIdle closes the idle connections to addr: once one of them turned
// out dead, the replica has most likely gone and closed them all.
func (u *upstream) dropIdle(addr string) {
	u.mu.Lock()
	list := u.idle[addr]
	delete(u.idle, addr)
	u.mu.Unlock()
	for _, pc := range list {
		pc.c.Close()
	}
}

func (u *upstream) closeIdle() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for addr, list := range u.idle {
		for _, pc := range list {
			pc.c.Close()
		}
		delete(u.idle, addr)
	}
}

// errNotSent: the request did not reach the replica (the dial failed),
// so it may go to another.
type errNotSent struct{ err error }

func (e errNotSent) Error() string { return e.err.Error() }
func (e errNotSent) Unwrap() error { return e.err }

// upstreamResponse is a response being read; Close returns the
// connection to the pool when the body was read to its end.
type upstreamResponse struct {
	*http.Response
	u    *upstream
	addr string
	pc   *upConn
	stop func() bool
}

func (r *upstreamResponse) finish(complete bool) {
	// stop is false when the caller's context ended and the deadline
	// may be set: that connection is not reused.
	if r.stop() && complete && !r.Close && r.pc.br.Buffered() == 0 {
		r.u.put(r.addr, r.pc)
		return
	}
	r.pc.c.Close()
}

// do sends one request and reads the response's head. header holds the
// request's end-to-end headers; Host, Content-Length and Authorization
// (Bearer token, if token is set) are the gateway's to set. A connection from the pool that turns out to
// be closed by the replica before answering anything is replaced by a
// newly dialled one once (the pool's other connections to it are dropped),
// as net/http's Transport does for a request whose body it can send again.
func (u *upstream) do(ctx context.Context, addr, method, target string, header http.Header, token string, body []byte) (*upstreamResponse, error) {
	for attempt := 0; ; attempt++ {
		pc, reused, err := u.get(ctx, addr, attempt > 0)
		if err != nil {
			if attempt > 0 {
				// The request went out on the pooled connection before:
				// the replica may have acted on it (and died of it), so
				// it must not go to another replica.
				return nil, err
			}
			return nil, errNotSent{err}
		}
		// The caller going away (or the request's deadline) interrupts
		// the connection's reads and writes.
		pc.c.SetDeadline(time.Now().Add(u.timeout))
		stop := context.AfterFunc(ctx, func() { pc.c.SetDeadline(time.Unix(1, 0)) })
		resp, got, err := roundTrip(pc, addr, method, target, header, token, body)
		if err == nil {
			return &upstreamResponse{Response: resp, u: u, addr: addr, pc: pc, stop: stop}, nil
		}
		stop()
		pc.c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if reused && !got && attempt == 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err)) {
			u.dropIdle(addr)
			continue
		}
		return nil, err
	}
}

// isReset: the connection failed under a read or write — not a timeout:
// a replica that took the whole limit over a request may have computed
// it, and must not be sent it again.
func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && (op.Op == "read" || op.Op == "write") && !op.Timeout()
}

// roundTrip writes the request on pc and reads the response head; got
// reports whether any byte of a response arrived.
func roundTrip(pc *upConn, addr, method, target string, header http.Header, token string, body []byte) (*http.Response, bool, error) {
	w := pc.bw
	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(addr)
	w.WriteString("\r\nContent-Length: ")
	w.WriteString(strconv.Itoa(len(body)))
	if token != "" {
		w.WriteString("\r\nAuthorization: Bearer ")
		w.WriteString(token)
	}
	w.WriteString("\r\n")
	named := connectionHeaders(header)
	for k, vs := range header {
		if hopHeader(k) || k == "Host" || k == "Content-Length" || named[k] {
			continue
		}
		for _, v := range vs {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	w.WriteString("\r\n")
	w.Write(body)
	if err := w.Flush(); err != nil {
		return nil, false, err
	}
	if _, err := pc.br.Peek(1); err != nil {
		return nil, false, err
	}
	req := &http.Request{Method: method} // ReadResponse knows a HEAD's answer has no body
	resp, err := http.ReadResponse(pc.br, req)
	if err != nil {
		return nil, true, fmt.Errorf("read the replica's answer: %w", err)
	}
	for resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		// Interim answers (100 Continue, 103 Early Hints) need nothing
		// from us: the body has been sent; the final answer follows.
		if resp, err = http.ReadResponse(pc.br, req); err != nil {
			return nil, true, fmt.Errorf("read the replica's answer: %w", err)
		}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Close = true // never reuse a connection that changed protocol
	}
	return resp, true, nil
}

// connectionHeaders are the headers the request's Connection header
// names: they are the hop's own (RFC 9110 §7.6.1) and are not forwarded.
func connectionHeaders(h http.Header) map[string]bool {
	var named map[string]bool
	for _, v := range h["Connection"] {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				if named == nil {
					named = map[string]bool{}
				}
				named[http.CanonicalHeaderKey(f)] = true
			}
		}
	}
	return named
}
