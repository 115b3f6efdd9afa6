package collective

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// handshakeTimeout bounds reading a connection's hello: a peer sends it
// at once, so a connection that stays silent is not one.
const handshakeTimeout = 10 * time.Second

// welcomeGrace is how much longer than its own timeout a rank waits for
// rank 0's answer after registering: rank 0 may have started later, and
// it always answers (the table, or why the group cannot form, such as a
// rank that never came) within its timeout.
const welcomeGrace = 10 * time.Second

// errJoinTimeout marks the end of Join's own time limit, as opposed to
// the caller's context ending.
var errJoinTimeout = errors.New("rendezvous timeout")

type registration struct {
	h    hello
	conn net.Conn
	from string // the connection's remote address, for errors
}

// Join forms the group: it returns when this rank has found every other
// rank and is connected to its ring neighbours.
//
// Rank 0 listens on cfg.MasterAddr:cfg.MasterPort (on every interface if
// MasterAddr is a host name other than localhost); the others connect to
// it (retrying while it is not up yet: ranks may start in any order),
// each listening on an ephemeral port of the address it reaches rank 0
// from, and register their rank, world size, fingerprint and that
// address. Rank 0 checks that the world sizes and fingerprints agree and
// no rank came twice, then sends every rank the address table (or the
// same error to all). Ranks then connect to their ring neighbours; other
// pairs connect on their first Send.
//
// Join fails after cfg.Timeout (default 60 s) naming the ranks that did
// not come, or when ctx ends. A group of one (WorldSize 1) needs no
// network: Join returns at once.
func Join(ctx context.Context, cfg Config) (*Group, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("collective: %w", err)
	}
	if !littleEndian() {
		return nil, errors.New("collective: big-endian hosts are not supported (data travels as little-endian float32)")
	}
	g := newGroup(cfg)
	if cfg.WorldSize == 1 {
		close(g.joined)
		return g, nil
	}
	jctx, cancel := context.WithTimeoutCause(ctx, cfg.joinTimeout(), errJoinTimeout)
	defer cancel()
	var err error
	if cfg.Rank == 0 {
		err = g.joinMaster(ctx, jctx)
	} else {
		err = g.joinWorker(ctx, jctx)
	}
	close(g.joined)
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("collective: %w", err)
	}
	return g, nil
}

// timedOut reports whether jctx ended on Join's own time limit.
func timedOut(jctx context.Context) bool {
	return errors.Is(context.Cause(jctx), errJoinTimeout)
}

func (g *Group) masterAddr() string {
	return net.JoinHostPort(g.cfg.MasterAddr, strconv.Itoa(g.cfg.MasterPort))
}

// listenAddr is where rank 0 listens: MasterAddr itself when it is an IP
// address or localhost; every interface when it is another host name,
// since a name can resolve differently on its own host than on the
// others (Debian maps a machine's name to 127.0.1.1 in /etc/hosts, which
// no other node can reach).
func listenAddr(host string, port int) string {
	if net.ParseIP(host) != nil || host == "localhost" {
		return net.JoinHostPort(host, strconv.Itoa(port))
	}
	return net.JoinHostPort("", strconv.Itoa(port))
}

func (g *Group) joinMaster(ctx, jctx context.Context) error {
	addr := g.masterAddr()
	var lc net.ListenConfig
	ln, err := lc.Listen(jctx, "tcp", listenAddr(g.cfg.MasterAddr, g.cfg.MasterPort))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("rendezvous port %s is in use: %w", addr, err)
		}
		return fmt.Errorf("rendezvous: listen on %s: %w", addr, err)
	}
	g.ln = ln
	g.addrs[0] = addr
	var sid [16]byte
	rand.Read(sid[:])
	g.session = hex.EncodeToString(sid[:])

	regs := make(chan registration)
	g.wg.Add(1)
	go g.acceptLoop(regs)

	var got []registration
	abandon := func() {
		for _, r := range got {
			r.conn.Close()
		}
	}
	for len(got) < g.size-1 {
		select {
		case r := <-regs:
			got = append(got, r)
			continue
		case <-jctx.Done():
		}
		problem := fmt.Sprintf("%s did not join within %s", missing(got, g.size), seconds(g.cfg.joinTimeout()))
		var cause error
		if !timedOut(jctx) {
			cause = context.Cause(ctx)
			problem = fmt.Sprintf("%s had not joined when rank 0's rendezvous was cancelled (%v)", missing(got, g.size), cause)
		}
		if p := problems(got, g.size, g.cfg.Fingerprint); p != "" {
			problem = p + "; " + problem
		}
		tell(got, welcome{Error: problem})
		abandon()
		if cause != nil {
			return fmt.Errorf("rendezvous: %s: %w", problem, cause)
		}
		return errors.New("rendezvous: " + problem)
	}
	if p := problems(got, g.size, g.cfg.Fingerprint); p != "" {
		tell(got, welcome{Error: p})
		abandon()
		return errors.New("rendezvous: " + p)
	}
	conns := make([]net.Conn, g.size)
	for _, r := range got {
		g.addrs[r.h.Rank] = r.h.Addr
		conns[r.h.Rank] = r.conn
	}
	tell(got, welcome{Session: g.session, Addrs: g.addrs})
	g.ctrl = newControl(g, conns)
	g.ctrl.start()
	// The rendezvous succeeded: the ring gets its own full timeout.
	rctx, cancel := context.WithTimeoutCause(ctx, g.cfg.joinTimeout(), errJoinTimeout)
	defer cancel()
	return g.connectRing(rctx)
}

// tell sends every registered rank the same answer.
func tell(got []registration, w welcome) {
	for _, r := range got {
		_ = r.conn.SetWriteDeadline(time.Now().Add(ctrlWriteTimeout))
		_ = writeMsg(r.conn, w)
		_ = r.conn.SetWriteDeadline(time.Time{})
	}
}

// missing names the ranks that have not registered: "rank 3 of 4",
// "ranks 2, 3 of 4".
func missing(got []registration, size int) string {
	seen := make([]bool, size)
	seen[0] = true
	for _, r := range got {
		if r.h.Rank >= 0 && r.h.Rank < size {
			seen[r.h.Rank] = true
		}
	}
	var ks []string
	for k, ok := range seen {
		if !ok {
			ks = append(ks, strconv.Itoa(k))
		}
	}
	if len(ks) == 1 {
		return fmt.Sprintf("rank %s of %d", ks[0], size)
	}
	return fmt.Sprintf("ranks %s of %d", strings.Join(ks, ", "), size)
}

// problems lists what is wrong with the registrations, "" if nothing:
// ranks out of range or twice, world sizes and fingerprints that differ
// from rank 0's.
func problems(got []registration, size int, fingerprint string) string {
	var out []string
	byRank := map[int][]string{}
	sizes := map[int][]int{}
	prints := map[string][]int{fingerprint: {0}}
	for _, r := range got {
		k := r.h.Rank
		if k <= 0 || k >= size {
			if k == 0 {
				out = append(out, fmt.Sprintf("a second rank 0 registered from %s", r.from))
			} else {
				out = append(out, fmt.Sprintf("rank %d registered from %s, outside 0 to %d for world size %d", k, r.from, size-1, size))
			}
			continue
		}
		byRank[k] = append(byRank[k], r.from)
		if r.h.WorldSize != size {
			sizes[r.h.WorldSize] = append(sizes[r.h.WorldSize], k)
		}
		prints[r.h.Fingerprint] = append(prints[r.h.Fingerprint], k)
	}
	for _, k := range sortedKeys(byRank) {
		if from := byRank[k]; len(from) > 1 {
			out = append(out, fmt.Sprintf("rank %d registered %d times (from %s)", k, len(from), strings.Join(from, ", ")))
		}
	}
	if len(sizes) > 0 {
		parts := []string{fmt.Sprintf("rank 0 has %d", size)}
		for _, ws := range sortedKeys(sizes) {
			parts = append(parts, fmt.Sprintf("%s %d", rankList(sizes[ws]), ws))
		}
		out = append(out, "world sizes differ: "+strings.Join(parts, ", "))
	}
	if len(prints) > 1 {
		// Rank 0's value first: it is the one the others are held to.
		parts := []string{fmt.Sprintf("%s %q", rankList(prints[fingerprint]), shorten(fingerprint))}
		for _, fp := range sortedKeys(prints) {
			if fp != fingerprint {
				parts = append(parts, fmt.Sprintf("%s %q", rankList(prints[fp]), shorten(fp)))
			}
		}
		out = append(out, "fingerprints differ: "+strings.Join(parts, ", "))
	}
	return strings.Join(out, "; ")
}

func rankList(ks []int) string {
	ks = slices.Clone(ks)
	slices.Sort(ks)
	ks = slices.Compact(ks)
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = strconv.Itoa(k)
	}
	if len(ks) == 1 {
		return "rank " + s[0] + " has"
	}
	return "ranks " + strings.Join(s, ", ") + " have"
}

func shorten(s string) string {
	if len(s) > 64 {
		return s[:61] + "..."
	}
	return s
}

func sortedKeys[K int | string, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (g *Group) joinWorker(ctx, jctx context.Context) error {
	master := g.masterAddr()
	g.addrs[0] = master
	// Rank 0 may not be listening yet: retry, backing off to half a
	// second, until the rendezvous timeout.
	var conn net.Conn
	var lastErr error
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		var d net.Dialer
		c, err := d.DialContext(jctx, "tcp", master)
		if err == nil {
			conn = c
			break
		}
		lastErr = err
		t := time.NewTimer(wait)
		select {
		case <-t.C:
			continue
		case <-jctx.Done():
			t.Stop()
		}
		if !timedOut(jctx) {
			return fmt.Errorf("rendezvous: cancelled while connecting to rank 0 at %s: %w", master, context.Cause(ctx))
		}
		return fmt.Errorf("rendezvous: rank 0 at %s could not be reached within %s: %w", master, seconds(g.cfg.joinTimeout()), lastErr)
	}
	ctrl := []net.Conn{conn}
	// Listen where rank 0 sees this rank come from: an address the
	// others can reach too.
	local := conn.LocalAddr().(*net.TCPAddr)
	ln, err := net.Listen("tcp", net.JoinHostPort(local.IP.String(), "0"))
	if err != nil {
		conn.Close()
		return fmt.Errorf("rendezvous: listen on %s: %w", local.IP, err)
	}
	g.ln = ln
	g.addrs[g.rank] = ln.Addr().String()
	h := hello{Kind: kindRegister, Rank: g.rank, WorldSize: g.size, Fingerprint: g.cfg.Fingerprint, Addr: g.addrs[g.rank]}
	_ = conn.SetDeadline(time.Now().Add(ctrlWriteTimeout))
	if err := writeMsg(conn, h); err != nil {
		conn.Close()
		return fmt.Errorf("rendezvous: register with rank 0 at %s: %w", master, err)
	}
	_ = conn.SetDeadline(time.Now().Add(g.cfg.joinTimeout() + welcomeGrace))
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	var w welcome
	err = readMsg(conn, &w)
	stop()
	_ = conn.SetDeadline(time.Time{})
	switch {
	case err != nil && ctx.Err() != nil:
		conn.Close()
		return fmt.Errorf("rendezvous: cancelled while waiting for rank 0 at %s: %w", master, context.Cause(ctx))
	case err != nil:
		conn.Close()
		return fmt.Errorf("rendezvous: waiting for the address table from rank 0 at %s: %w", master, err)
	case w.Error != "":
		conn.Close()
		return errors.New("rendezvous: " + w.Error)
	case len(w.Addrs) != g.size || w.Session == "":
		conn.Close()
		return fmt.Errorf("rendezvous: rank 0 sent an address table of %d ranks for a world of %d", len(w.Addrs), g.size)
	}
	g.session = w.Session
	copy(g.addrs, w.Addrs)
	g.ctrl = newControl(g, ctrl)
	g.ctrl.start()
	// The listener was up before registering, so connections that came
	// before the table wait in its backlog until now.
	g.wg.Add(1)
	go g.acceptLoop(nil)
	// The rendezvous succeeded: the ring gets its own full timeout.
	rctx, cancel := context.WithTimeoutCause(ctx, g.cfg.joinTimeout(), errJoinTimeout)
	defer cancel()
	return g.connectRing(rctx)
}

// connectRing dials this rank's successor and waits for its
// predecessor's connection.
func (g *Group) connectRing(ctx context.Context) error {
	next, prev := g.nextRank(), g.prevRank()
	h := hello{Kind: kindRing, Rank: g.rank, Session: g.session}
	var offer *shmChan
	if !g.cfg.NoSharedMemory {
		slot := shmSlotBytes(g.seg)
		var cookie []byte
		var err error
		// No offer if /dev/shm is missing or full: then TCP.
		if offer, cookie, err = offerShm(g.session, g.rank, slot); err == nil {
			h.Shm, h.Cookie, h.SlotBytes = offer.path, hex.EncodeToString(cookie), slot
		}
	}
	c, ack, err := g.dial(ctx, next, h)
	if err != nil {
		if offer != nil {
			offer.drop()
		}
		return fmt.Errorf("connect to rank %d (%s): %w", next, g.addrs[next], err)
	}
	g.next = c
	if offer != nil {
		if ack == ackShm {
			offer.path = "" // the successor has removed the name
			g.nextShm = offer
		} else {
			offer.drop()
		}
	}
	select {
	case g.prev = <-g.ringIn:
		// Over shared memory the TCP connections carry only wake-ups,
		// read for the group's life.
		if g.nextShm != nil {
			g.wg.Add(1)
			go g.readWakes(g.nextShm, g.next, slotFree)
		}
		if g.prevShm != nil {
			g.wg.Add(1)
			go g.readWakes(g.prevShm, g.prev, doorbell)
		}
		return nil
	case <-g.fail.done:
		return g.Err()
	case <-ctx.Done():
		if timedOut(ctx) {
			return fmt.Errorf("rank %d (%s) did not connect within %s", prev, g.addrs[prev], seconds(g.cfg.joinTimeout()))
		}
		return fmt.Errorf("cancelled while waiting for rank %d (%s) to connect: %w", prev, g.addrs[prev], context.Cause(ctx))
	}
}

// dial opens a data connection to rank k with hello h and waits for its
// acceptance (ackTCP or ackShm).
func (g *Group) dial(ctx context.Context, k int, h hello) (net.Conn, byte, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", g.addrs[k])
	if err != nil {
		return nil, 0, err
	}
	tune(c)
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	}
	if err := writeMsg(c, h); err != nil {
		c.Close()
		return nil, 0, err
	}
	var ack [1]byte
	if _, err := c.Read(ack[:]); err != nil || (ack[0] != ackTCP && ack[0] != ackShm) {
		c.Close()
		if err == nil {
			err = errors.New("refused")
		}
		return nil, 0, fmt.Errorf("handshake: %w", err)
	}
	_ = c.SetDeadline(time.Time{})
	if !g.addConn(c) {
		return nil, 0, errors.New("the group has failed")
	}
	return c, ack[0], nil
}

// acceptLoop takes connections on this rank's listener until it is
// closed: registrations (rank 0, during Join), the ring predecessor and
// point-to-point links.
func (g *Group) acceptLoop(regs chan<- registration) {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, do not spin.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.handshake(c, regs)
		}()
	}
}

func (g *Group) handshake(c net.Conn, regs chan<- registration) {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	var h hello
	if err := readMsg(c, &h); err != nil {
		c.Close() // not a peer, or a dead one: nothing to tell
		return
	}
	switch h.Kind {
	case kindRegister:
		if regs == nil {
			c.Close()
			return
		}
		_ = c.SetDeadline(time.Time{})
		select {
		case regs <- registration{h: h, conn: c, from: c.RemoteAddr().String()}:
		case <-g.joined:
			_ = c.SetWriteDeadline(time.Now().Add(ctrlWriteTimeout))
			_ = writeMsg(c, welcome{Error: fmt.Sprintf("rank %d registered after the group had formed (or given up)", h.Rank)})
			c.Close()
		}
		return
	case kindRing, kindP2P:
	default:
		c.Close()
		return
	}
	if h.Session != g.session || h.Rank < 0 || h.Rank >= g.size || h.Rank == g.rank {
		c.Close()
		return
	}
	prev := g.prevRank()
	if h.Kind == kindRing {
		// One predecessor, once: a second hello (which a valid session
		// rules out) must not replace the link in use.
		g.connMu.Lock()
		taken := g.ringTaken
		g.ringTaken = true
		g.connMu.Unlock()
		if h.Rank != prev || taken {
			c.Close()
			return
		}
	}
	var l *link
	if h.Kind == kindP2P {
		// Claim the link before acknowledging: a sender dials it once.
		l = g.in[h.Rank]
		g.connMu.Lock()
		dup := l.conn != nil
		if !dup {
			l.conn = c
		}
		g.connMu.Unlock()
		if dup {
			c.Close()
			return
		}
	}
	ack := byte(ackTCP)
	if h.Kind == kindRing && h.Shm != "" && !g.cfg.NoSharedMemory {
		if cookie, err := hex.DecodeString(h.Cookie); err == nil {
			if s, err := acceptShm(h.Shm, cookie, h.SlotBytes); err == nil {
				// Set before the connection is handed over on ringIn,
				// which orders it before every use.
				g.prevShm = s
				ack = ackShm
			}
		}
	}
	tune(c)
	if _, err := c.Write([]byte{ack}); err != nil {
		c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	if !g.addConn(c) {
		return
	}
	if h.Kind == kindRing {
		g.ringIn <- c // buffered for the one predecessor
		return
	}
	close(l.ready)
}
