// Package cache is a node's content-addressed object cache: objects are
// kept under their SHA-256, so a dataset version's objects are fetched
// once per node and shared by every job that reads them, whatever name
// each gives them. The cache has a size limit that covers the objects
// and the fetches under way; the least recently used objects go first.
// Objects enter only after their checksum is verified, so a cached
// object is always the right bytes.
//
// # Several processes, one dir
//
// A dir is shared by every process that opens it: on a Slurm node each
// job's wrapper is its own process on $TMPDIR/hpcml-cache, so a
// per-process count of the bytes in the dir would miss the others'
// fetches and evictions. So:
//
//   - the file "state" holds the bytes in use (objects plus
//     reservations, of every process), the bytes of reservations alone,
//     and the claim of a waiting fetch (below); every change to them
//     — reserving, releasing, committing an object, evicting, walking —
//     is made under an exclusive flock on it. A miss takes it twice
//     (to reserve, to commit), each time for a 48-byte read and write
//     and a few file operations, never a walk of the dir;
//   - a fetch reserves its object's size before it starts: it is a temp
//     file in tmp/ made under that lock, truncated to the object's size
//     and flocked by its writer for as long as the fetch lasts. So the
//     count never lets concurrent fetches (of any process) together pass
//     the limit, and a walk sees every process's reservations;
//   - the dir is the truth and the state a sum of it. When a reservation
//     does not fit but the other reservations leave room for it, the
//     dir is walked under the lock: the walk recounts the bytes, removes
//     temp files nobody holds (their writer died: kill -9 frees its
//     flocks, and live writers make and lock theirs under the state
//     lock, so a walk never sees one unlocked), and evicts the least
//     recently used objects by modification time, which every process's
//     hits set. It evicts a tenth of the limit more than asked, so walks
//     are one per tenth of the cache fetched, not one per miss. A process
//     killed mid-change leaves the state counting too much, never too
//     little, until a walk or a look at tmp/ (below);
//   - Get hands out an open file, never a path to open later: opened on a
//     hit, or on a miss under the lock that commits the object, so no
//     walk can evict it first. An evicted object stays readable through
//     every file open on it (Linux frees an unlinked file's bytes at its
//     last close); the cache forgets it at once. Hits take no lock.
//
// # Waiting for room
//
// A fetch that does not fit while other fetches' reservations fill the
// cache waits: it reads the state again (cheap) each time a reservation
// of its process ends and every 100 ms, and walks only once the
// reservations alone leave room, since every object can be evicted but
// no reservation can. Reservations of killed fetches are found by a look
// at tmp/ alone (one file per fetch under way), at most once a second
// per node, not by a walk.
//
// The first waiter that finds no live claim claims its size: other
// fetches then reserve only while the reservations leave that much room
// beside theirs, so the reservations drain for it and a large object is
// not starved by a stream of small ones. The waiter renews its claim at
// each look and it lapses a second after the last, so a killed waiter
// holds nobody up for long. It is one claim, not a queue: the waiters
// behind it race for the next claim when it is used.
package cache

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// pollRoom is how often a fetch waiting for room reads the state
	// again: other processes' reservations end without telling this one.
	pollRoom = 100 * time.Millisecond
	// rescanTemps is how long a node's waiters go between looks at tmp/
	// for the reservations of killed fetches, which only such a look (or
	// a walk) finds.
	rescanTemps = time.Second
	// claimTTL is how long a claim outlives its waiter's last look: ten
	// looks, so a live waiter keeps it, and a killed one frees the room
	// soon.
	claimTTL = 10 * pollRoom
)

// Cache is one node's cache dir. Safe for concurrent use within a
// process, and by several processes at once (see the package comment).
type Cache struct {
	dir   string
	limit int64
	state *os.File // the state file (see state); its flock guards every change to it (under shared)

	// shared makes this process's goroutines take the state's flock one
	// at a time: a flock belongs to the open file, so goroutines sharing
	// state would all hold it at once.
	shared sync.Mutex

	mu       sync.Mutex
	inflight map[string]*fetch // by checksum (or tag): one download per object at a time
	freed    chan struct{}     // closed (and replaced) when reserved bytes are released or become evictable

	claimTTL time.Duration // claimTTL; longer in tests, so a slow machine's waiter keeps its claim

	walks atomic.Int64 // directory walks: at open, then only when a reservation does not fit
	waits atomic.Int64 // looks at the state that found no room
}

// state is the content of the state file: six little-endian int64s.
type state struct {
	used     int64 // objects plus reservations
	reserved int64 // reservations alone: what no eviction frees

	// A waiting fetch's claim (claimID 0: none): other fetches leave
	// claimSize bytes free of reservations until claimUntil (Unix ns).
	claimID, claimSize, claimUntil int64

	rescanned int64 // Unix ns of the last look at tmp/ (or walk)
}

const stateSize = 6 * 8

func (s *state) decode(b []byte) bool {
	v := [6]*int64{&s.used, &s.reserved, &s.claimID, &s.claimSize, &s.claimUntil, &s.rescanned}
	for i, p := range v {
		*p = int64(binary.LittleEndian.Uint64(b[i*8:]))
	}
	return s.used >= 0 && s.reserved >= 0 && s.reserved <= s.used
}

func (s *state) encode(b []byte) {
	for i, x := range [6]int64{s.used, s.reserved, s.claimID, s.claimSize, s.claimUntil, s.rescanned} {
		binary.LittleEndian.PutUint64(b[i*8:], uint64(x))
	}
}

// claimed is the room another waiter's live claim keeps from a fetch
// whose own claim (if any) is id. A claim further ahead than ttl was
// made before the clock stepped back: it counts as lapsed, or a killed
// waiter's claim would outlive it by the step.
func (s *state) claimed(id int64, now time.Time, ttl time.Duration) int64 {
	left := s.claimUntil - now.UnixNano()
	if s.claimID == 0 || s.claimID == id || left <= 0 || left > int64(ttl) {
		return 0
	}
	return s.claimSize
}

type fetch struct {
	done chan struct{}
	err  error
}

// Stats count what Get did; safe for concurrent Gets.
type Stats struct {
	Hits, Misses, BytesFetched atomic.Int64
}

// New opens (making) a cache in dir holding at most limit bytes (no
// limit if limit <= 0). It walks dir once: temp files of fetches killed
// before they ended are removed and the bytes in use recounted.
func New(dir string, limit int64) (*Cache, error) {
	c := &Cache{dir: dir, limit: limit, inflight: map[string]*fetch{}, freed: make(chan struct{}), claimTTL: claimTTL}
	if err := c.reopen(); err != nil {
		return nil, err
	}
	if err := c.locked(true, func(*state) error { return nil }); err != nil {
		c.state.Close()
		return nil, err
	}
	return c, nil
}

// reopen opens the state file (and remakes the dir's layout), for New or
// when the file was removed. Only under c.shared (or before New returns).
func (c *Cache) reopen() error {
	if err := os.MkdirAll(filepath.Join(c.dir, "tmp"), 0o755); err != nil {
		return fmt.Errorf("cache dir: %w", err)
	}
	state, err := os.OpenFile(filepath.Join(c.dir, "state"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("cache state: %w", err)
	}
	if c.state != nil {
		c.state.Close()
	}
	c.state = state
	return nil
}

// Close lets go of the cache's state file. Objects stay.
func (c *Cache) Close() error {
	c.shared.Lock()
	defer c.shared.Unlock()
	return c.state.Close()
}

// Path is where the object with checksum sum is kept.
func (c *Cache) Path(sum string) string { return filepath.Join(c.dir, "sha256", sum[:2], sum) }

// Get makes sure the object with checksum sum and size is in the cache,
// fetching it with open on a miss, and returns it open for reading; the
// caller closes it. It is open before any walk can evict it, and stays
// readable if one does. A fetched object whose bytes do not hash to sum
// is refused. A miss waits while the cache is full of other fetches.
func (c *Cache) Get(ctx context.Context, sum string, size int64, open func(context.Context) (io.ReadCloser, error), st *Stats) (*os.File, error) {
	if !isSum(sum) {
		return nil, fmt.Errorf("cache: %q is not a SHA-256", sum)
	}
	p := c.Path(sum)
	return c.get(ctx, sum, func() *os.File { return hit(p, size) }, func() (*os.File, error) {
		obj, _, err := c.fill(ctx, sum, size, open, st)
		return obj, err
	}, st)
}

// GetTagged is Get for an object named by tag rather than by its
// SHA-256: by what identifies its content where it is kept, such as its
// URL, ETag and size (an ETag changes with the content). Its bytes are
// kept by their SHA-256 like any other object's, and so shared with
// every other copy of them; the SHA-256 of its fetch is remembered under
// the tag, so that a later read of the same content is a hit. A fetched
// object of another size than size is refused, and so is one whose
// SHA-256 is not want, if want is given (what the store recorded).
func (c *Cache) GetTagged(ctx context.Context, tag, want string, size int64, open func(context.Context) (io.ReadCloser, error), st *Stats) (*os.File, error) {
	if want != "" && !isSum(want) {
		return nil, fmt.Errorf("cache: %q is not a SHA-256", want)
	}
	tp := c.tagPath(tag)
	return c.get(ctx, "tag "+tp, func() *os.File {
		b, err := os.ReadFile(tp)
		if err != nil || !isSum(string(b)) || want != "" && string(b) != want {
			return nil
		}
		return hit(c.Path(string(b)), size)
	}, func() (*os.File, error) {
		obj, sum, err := c.fill(ctx, want, size, open, st)
		if err == nil {
			// Not kept, the tag costs the next read a fetch: no more.
			c.writeTag(tp, sum)
		}
		return obj, err
	}, st)
}

// Holds reports whether an object of size bytes can be kept at all.
func (c *Cache) Holds(size int64) bool { return c.limit <= 0 || size <= c.limit }

// get returns what look finds, else what fill gets, filling each key
// once at a time in this process.
func (c *Cache) get(ctx context.Context, key string, look func() *os.File, fill func() (*os.File, error), st *Stats) (*os.File, error) {
	for {
		if f := look(); f != nil {
			st.Hits.Add(1)
			return f, nil
		}
		c.mu.Lock()
		f := c.inflight[key]
		if f == nil {
			f = &fetch{done: make(chan struct{})}
			c.inflight[key] = f
			c.mu.Unlock()
			obj, err := fill()
			f.err = err
			c.mu.Lock()
			delete(c.inflight, key)
			c.mu.Unlock()
			close(f.done)
			return obj, err
		}
		c.mu.Unlock()
		// Another job fetches it: wait, then look again. Should a walk
		// evict it before this one opens it, this one fetches it again.
		select {
		case <-f.done:
			if f.err != nil {
				if ctx.Err() == nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) {
					// The fetcher's own request ended (its job was
					// cancelled), not this one's: fetch it here.
					continue
				}
				return nil, f.err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// isSum reports whether s is a SHA-256 in lower-case hex (the form
// fill computes and objects are kept under).
func isSum(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// tagPath is where the SHA-256 of the object tag names is remembered.
func (c *Cache) tagPath(tag string) string {
	h := sha256.Sum256([]byte(tag))
	x := hex.EncodeToString(h[:])
	return filepath.Join(c.dir, "tags", x[:2], x)
}

// writeTag remembers sum at tp, whole or not at all.
func (c *Cache) writeTag(tp, sum string) {
	if err := os.MkdirAll(filepath.Dir(tp), 0o755); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(tp), ".tag-*")
	if err != nil {
		return
	}
	_, err = tmp.WriteString(sum)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), tp)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
}

// hit opens the cached object at p if it is there with its size (another
// size is a damaged copy, which a fetch replaces).
func hit(p string, size int64) *os.File {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	if info, err := f.Stat(); err != nil || info.Size() != size {
		f.Close()
		return nil
	}
	// The modification time is the LRU clock: every process's walk reads
	// it.
	now := time.Now()
	os.Chtimes(p, now, now)
	return f
}

// fill fetches an object into the cache and returns it open, with its
// SHA-256: which must be want, if want is given.
func (c *Cache) fill(ctx context.Context, want string, size int64, open func(context.Context) (io.ReadCloser, error), st *Stats) (*os.File, string, error) {
	tmp, err := c.reserve(ctx, cmp.Or(want, "untagged0000"), size)
	if err != nil {
		return nil, "", err
	}
	committing := false
	defer func() {
		if !committing {
			c.release(tmp, size)
		}
	}()
	r, err := open(ctx)
	if err != nil {
		return nil, "", err
	}
	defer r.Close()
	h := sha256.New()
	// A byte more than the manifest's size is enough to refuse the
	// object; reading on would overrun the reservation.
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, size+1))
	if err != nil {
		return nil, "", fmt.Errorf("fetch: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	switch {
	case want != "" && (sum != want || n != size):
		return nil, "", fmt.Errorf("fetched object does not match its manifest: %d bytes with SHA-256 %s, want %d bytes with %s", n, sum, size, want)
	case n != size:
		return nil, "", fmt.Errorf("fetched object changed: %d bytes, where the store said %d", n, size)
	}
	// Read-only: lazy mounts serve it in place, and no job may change the
	// bytes the others share.
	tmp.Chmod(0o444)
	committing = true
	obj, err := c.commit(tmp, sum, size)
	if err != nil {
		return nil, "", err
	}
	st.Misses.Add(1)
	st.BytesFetched.Add(n)
	return obj, sum, nil
}

// waiter is what one reservation remembers between its looks at the
// state.
type waiter struct {
	id int64 // its claim's id, never 0
	// The bytes in use and reserved after a walk that did not make room
	// although the reservations left it (objects it could not remove):
	// it walks again only once they change.
	failed                 bool
	failedUsed, failedRsvd int64
}

// reserve counts size more bytes as in use, evicting to make room, and
// returns the temp file that holds the reservation: the caller writes
// the object into it and then commits or releases it. It waits (until
// ctx ends) while other fetches' reservations fill the cache.
func (c *Cache) reserve(ctx context.Context, sum string, size int64) (*os.File, error) {
	if c.limit > 0 && size > c.limit {
		return nil, fmt.Errorf("cache: an object of %d bytes is larger than the cache (%d bytes)", size, c.limit)
	}
	w := waiter{id: rand.Int64N(math.MaxInt64) + 1}
	for {
		var tmp *os.File
		var freed <-chan struct{}
		err := c.locked(false, func(s *state) error {
			if !c.room(s, size, &w, time.Now()) {
				// Taken under the state lock, which a release of this
				// process takes before it signals: no signal is missed.
				c.mu.Lock()
				freed = c.freed
				c.mu.Unlock()
				return nil
			}
			f, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), sum[:12]+"-*")
			if err != nil {
				return fmt.Errorf("cache: %w", err)
			}
			// Locked while it is written, so walks know a live fetch owns
			// it; sized now (sparse), so walks count the reservation.
			err = flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
			if err == nil {
				err = f.Truncate(size)
			}
			if err != nil {
				f.Close()
				os.Remove(f.Name())
				return fmt.Errorf("cache: reserve %d bytes: %w", size, err)
			}
			tmp = f
			s.used += size
			s.reserved += size
			if s.claimID == w.id {
				s.claimID, s.claimSize, s.claimUntil = 0, 0, 0
			}
			return nil
		})
		if err != nil || tmp != nil {
			return tmp, err // a claim this fetch held lapses
		}
		c.waits.Add(1)
		t := time.NewTimer(pollRoom)
		select {
		case <-freed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			c.locked(false, func(s *state) error {
				if s.claimID == w.id {
					s.claimID, s.claimSize, s.claimUntil = 0, 0, 0
				}
				return nil
			})
			return nil, fmt.Errorf("cache: waiting for room for %d bytes: %w", size, ctx.Err())
		}
		t.Stop()
	}
}

// room reports whether size more bytes may be reserved, making room if a
// walk can: every object may be evicted, no reservation may. If not, w
// claims the room it needs unless another waiter's claim is live. Only
// under the state lock.
func (c *Cache) room(s *state, size int64, w *waiter, now time.Time) bool {
	if c.limit <= 0 {
		return true
	}
	ahead := s.claimed(w.id, now, c.claimTTL)
	fits := func() bool { return s.used+size <= c.limit && s.reserved+size+ahead <= c.limit }
	if fits() {
		return true
	}
	// Fetches killed mid-way leave their reservations counted; a look at
	// tmp/ alone finds them, far cheaper than a walk, and once a second
	// is enough for every waiter of the node.
	if since := now.UnixNano() - s.rescanned; since >= int64(rescanTemps) || since < 0 {
		c.rescan(s, now)
		if fits() {
			return true
		}
	}
	if s.reserved+size+ahead <= c.limit && !(w.failed && s.used == w.failedUsed && s.reserved == w.failedRsvd) {
		// A tenth of the limit more than needed: the next misses then
		// fit without walking again.
		c.recount(s, c.limit-c.limit/10-size, now)
		if fits() {
			return true
		}
		w.failed, w.failedUsed, w.failedRsvd = true, s.used, s.reserved
	}
	if ahead == 0 { // no claim, a lapsed one, or w's own: (re)claim
		// From now, not from before the walk above, which may have
		// taken longer than the claim lives.
		s.claimID, s.claimSize, s.claimUntil = w.id, size, time.Now().Add(c.claimTTL).UnixNano()
	}
	return false
}

// recount walks the dir (evicting down to keep bytes) into s.
func (c *Cache) recount(s *state, keep int64, now time.Time) {
	s.used, s.reserved = c.walk(keep)
	s.rescanned = now.UnixNano()
}

// rescan recounts the reservations from tmp/ alone, removing the temp
// files of dead fetches: what those reserved leaves the bytes in use too.
// A reservation gone some other way stays in use: its fetch may have been
// killed between renaming its object into place and counting it, and the
// count must err high (a walk corrects it), never low.
func (c *Cache) rescan(s *state, now time.Time) {
	live, dead := c.temps()
	s.used = max(s.used-dead, live)
	s.reserved = live
	s.rescanned = now.UnixNano()
}

// commit puts a verified temp file in place as the object sum and
// returns the object open; the reservation becomes the object's bytes.
// On failure the reservation is released.
func (c *Cache) commit(tmp *os.File, sum string, size int64) (*os.File, error) {
	p := c.Path(sum)
	var obj *os.File
	ran := false
	err := c.locked(false, func(s *state) error {
		ran = true
		s.reserved -= size
		// Unlocked only under the state lock, which walks take too: no
		// walk sees it unlocked and takes it for a dead fetch's. Closing
		// before the rename also reports a failed write.
		err := tmp.Close()
		if err == nil {
			err = os.MkdirAll(filepath.Dir(p), 0o755)
		}
		var damaged int64
		replace := true
		if err == nil {
			if info, serr := os.Lstat(p); serr == nil {
				if info.Size() == size {
					// Another process fetched it meanwhile: theirs is
					// already counted.
					os.Remove(tmp.Name())
					s.used -= size
					replace = false
				} else {
					// Objects never change: another size is a damaged
					// copy (Get refetches it), which ours replaces.
					damaged = info.Size()
				}
			}
			if replace {
				err = os.Rename(tmp.Name(), p)
			}
		}
		if err != nil {
			os.Remove(tmp.Name())
			s.used -= size
			return fmt.Errorf("cache: %w", err)
		}
		s.used -= damaged
		// Opened under the lock that commits it: a walk (of any process)
		// waiting for room would otherwise be free to evict it before the
		// caller opened it.
		obj, err = os.Open(p)
		if err != nil {
			return fmt.Errorf("cache: %w", err)
		}
		return nil
	})
	if !ran {
		// No lock: the state counts the reservation until the next look
		// at tmp/, which finds its temp file gone. Without this the file
		// and its flock would live as long as the process, and every
		// walk would count it as a live fetch's.
		tmp.Close()
		os.Remove(tmp.Name())
	}
	c.signalFreed()
	return obj, err
}

// release gives back a reservation whose fetch failed.
func (c *Cache) release(tmp *os.File, size int64) {
	err := c.locked(false, func(s *state) error {
		tmp.Close()
		os.Remove(tmp.Name())
		s.used -= size
		s.reserved -= size
		return nil
	})
	if err != nil {
		// No lock: the state counts the bytes until the next look at
		// tmp/, which a fetch that does not fit makes.
		tmp.Close()
		os.Remove(tmp.Name())
	}
	c.signalFreed()
}

func (c *Cache) signalFreed() {
	c.mu.Lock()
	close(c.freed)
	c.freed = make(chan struct{})
	c.mu.Unlock()
}

// locked runs f with the state's flock held and the state, recounted
// from the dir first if recount or if the state is new or damaged, and
// stores what f leaves in it.
func (c *Cache) locked(recount bool, f func(s *state) error) error {
	c.shared.Lock()
	defer c.shared.Unlock()
	for {
		if err := flock(c.state, syscall.LOCK_EX); err != nil {
			return fmt.Errorf("cache: lock state: %w", err)
		}
		mine, merr := c.state.Stat()
		named, nerr := os.Stat(filepath.Join(c.dir, "state"))
		if merr == nil && nerr == nil && os.SameFile(mine, named) {
			break
		}
		// The state was removed (a /tmp cleaner, an rm of the dir): a
		// lock on it would exclude no process that opens the dir now.
		flock(c.state, syscall.LOCK_UN)
		if err := c.reopen(); err != nil {
			return err
		}
	}
	defer flock(c.state, syscall.LOCK_UN)
	var b [stateSize]byte
	var s state
	n, _ := c.state.ReadAt(b[:], 0)
	valid := n == len(b) && s.decode(b[:])
	if !valid {
		s = state{} // new, damaged, or of an older layout
	}
	stored := s
	if recount || !valid {
		c.recount(&s, math.MaxInt64, time.Now())
	}
	err := f(&s)
	if s != stored || !valid {
		s.encode(b[:])
		if _, werr := c.state.WriteAt(b[:], 0); werr != nil {
			// An empty state makes the next lock holder recount from the
			// dir rather than trust a stale sum.
			c.state.Truncate(0)
		}
	}
	return err
}

// walk recounts the bytes in use from the dir and evicts the least
// recently used objects until at most keep bytes are used or no object
// is left; it returns the bytes in use and those of reservations. Only
// under the state lock.
func (c *Cache) walk(keep int64) (used, reserved int64) {
	c.walks.Add(1)
	reserved, _ = c.temps()
	used = reserved
	type object struct {
		path string
		size int64
		used time.Time
	}
	var objects []object
	filepath.WalkDir(filepath.Join(c.dir, "sha256"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			objects = append(objects, object{p, info.Size(), info.ModTime()})
			used += info.Size()
		}
		return nil
	})
	defer c.pruneTags()
	if used <= keep {
		return used, reserved
	}
	sort.Slice(objects, func(i, j int) bool { return objects[i].used.Before(objects[j].used) })
	for _, o := range objects {
		if used <= keep {
			break
		}
		// A job holding the object open keeps its copy; the cache forgets it.
		if err := os.Remove(o.path); err == nil || errors.Is(err, fs.ErrNotExist) {
			used -= o.size
		}
	}
	return used, reserved
}

// temps is the bytes the temp files in tmp/ reserve for live fetches,
// and the bytes of dead fetches' temp files, which it removes. Only under
// the state lock.
func (c *Cache) temps() (live, dead int64) {
	tmpDir := filepath.Join(c.dir, "tmp")
	tmps, _ := os.ReadDir(tmpDir)
	for _, d := range tmps {
		l, dd := reservation(filepath.Join(tmpDir, d.Name()))
		live += l
		dead += dd
	}
	return live, dead
}

// reservation is what the temp file p reserves: its size as live while
// its fetch lives (holds its flock); else its size as dead, and it is
// removed. Only under the state lock: fetches make and lock their temp
// files under it.
func reservation(p string) (live, dead int64) {
	f, err := os.Open(p)
	if err != nil {
		return 0, 0 // committed or released meanwhile
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, 0
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return info.Size(), 0
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, 0 // its owner removed it meanwhile
		}
		return info.Size(), 0 // still there, still taking room
	}
	return 0, info.Size()
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// pruneTags removes the tags whose object is no longer kept, and the
// temp files of tag writes that did not finish (a killed process's):
// tags are not counted against the limit, so they must not outlive what
// they name. Only under the state lock (with a walk).
func (c *Cache) pruneTags() {
	filepath.WalkDir(filepath.Join(c.dir, "tags"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".tag-") {
			if info, err := d.Info(); err == nil && time.Since(info.ModTime()) > time.Minute {
				os.Remove(p)
			}
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		if !isSum(string(b)) {
			os.Remove(p)
		} else if _, err := os.Stat(c.Path(string(b))); errors.Is(err, fs.ErrNotExist) {
			os.Remove(p)
		}
		return nil
	})
}

// Usage is the cache's object count and bytes, by a walk of the dir.
func (c *Cache) Usage() (objects int, bytes int64) {
	filepath.WalkDir(filepath.Join(c.dir, "sha256"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				objects++
				bytes += info.Size()
			}
		}
		return nil
	})
	return objects, bytes
}
