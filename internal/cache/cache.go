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
//     reservations, of every process), and every change to those bytes
//     — reserving, releasing, committing an object, evicting, walking —
//     is made under an exclusive flock on it. A miss takes it twice
//     (to reserve, to commit), each time for an 8-byte read and write
//     and a few file operations, never a walk of the dir;
//   - a fetch reserves its object's size before it starts: it is a temp
//     file in tmp/ made under that lock, truncated to the object's size
//     and flocked by its writer for as long as the fetch lasts. So the
//     count never lets concurrent fetches (of any process) together pass
//     the limit, and a walk sees every process's reservations;
//   - the dir is the truth and the state a sum of it. When a reservation
//     does not fit, the dir is walked under the lock: the walk recounts
//     the bytes, removes temp files nobody holds (their writer died:
//     kill -9 frees its flocks, and live writers make and lock theirs
//     under the state lock, so a walk never sees one unlocked), and
//     evicts the least recently used objects by modification time, which
//     every process's hits set. It evicts a tenth of the limit more than
//     asked, so walks are one per tenth of the cache fetched, not one per
//     miss. A process killed mid-change leaves the state counting too
//     much, never too little, until that walk;
//   - hits take no lock. An object evicted while a job reads it stays
//     readable through the job's open file (Linux frees an unlinked
//     file's bytes at its last close); a job that has its path but has
//     not yet opened it gets ENOENT.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// pollRoom is how often a fetch waiting for room looks again: other
// processes' reservations end without telling this one.
const pollRoom = 100 * time.Millisecond

// Cache is one node's cache dir. Safe for concurrent use within a
// process, and by several processes at once (see the package comment).
type Cache struct {
	dir   string
	limit int64
	state *os.File // bytes in use; its flock guards every change to them (under shared)

	// shared makes this process's goroutines take the state's flock one
	// at a time: a flock belongs to the open file, so goroutines sharing
	// state would all hold it at once.
	shared sync.Mutex

	mu       sync.Mutex
	inflight map[string]*fetch // by checksum: one download per object at a time
	freed    chan struct{}     // closed (and replaced) when reserved bytes are released or become evictable

	walks atomic.Int64 // directory walks: at open, then only when a reservation does not fit
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
	c := &Cache{dir: dir, limit: limit, inflight: map[string]*fetch{}, freed: make(chan struct{})}
	if err := c.reopen(); err != nil {
		return nil, err
	}
	if err := c.locked(true, func(*int64) error { return nil }); err != nil {
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
// fetching it with open on a miss, and returns its path. A fetched
// object whose bytes do not hash to sum is refused. A miss waits while
// the cache is full of other fetches.
func (c *Cache) Get(ctx context.Context, sum string, size int64, open func(context.Context) (io.ReadCloser, error), st *Stats) (string, error) {
	if len(sum) != 64 {
		return "", fmt.Errorf("cache: %q is not a SHA-256", sum)
	}
	p := c.Path(sum)
	for {
		if info, err := os.Stat(p); err == nil && info.Size() == size {
			// The modification time is the LRU clock: every process's
			// walk reads it.
			now := time.Now()
			os.Chtimes(p, now, now)
			st.Hits.Add(1)
			return p, nil
		}
		c.mu.Lock()
		f := c.inflight[sum]
		if f == nil {
			f = &fetch{done: make(chan struct{})}
			c.inflight[sum] = f
			c.mu.Unlock()
			f.err = c.fill(ctx, sum, size, open, st)
			c.mu.Lock()
			delete(c.inflight, sum)
			c.mu.Unlock()
			close(f.done)
			if f.err != nil {
				return "", f.err
			}
			return p, nil
		}
		c.mu.Unlock()
		select { // another job fetches it: wait, then look again
		case <-f.done:
			if f.err != nil {
				return "", f.err
			}
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

func (c *Cache) fill(ctx context.Context, sum string, size int64, open func(context.Context) (io.ReadCloser, error), st *Stats) error {
	tmp, err := c.reserve(ctx, sum, size)
	if err != nil {
		return err
	}
	committing := false
	defer func() {
		if !committing {
			c.release(tmp, size)
		}
	}()
	r, err := open(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	h := sha256.New()
	// A byte more than the manifest's size is enough to refuse the
	// object; reading on would overrun the reservation.
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, size+1))
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum || n != size {
		return fmt.Errorf("fetched object does not match its manifest: %d bytes with SHA-256 %s, want %d bytes with %s", n, got, size, sum)
	}
	// Read-only: lazy mounts serve it in place, and no job may change the
	// bytes the others share.
	tmp.Chmod(0o444)
	committing = true
	if err := c.commit(tmp, sum, size); err != nil {
		return err
	}
	st.Misses.Add(1)
	st.BytesFetched.Add(n)
	return nil
}

// reserve counts size more bytes as in use, evicting to make room, and
// returns the temp file that holds the reservation: the caller writes
// the object into it and then commits or releases it. It waits (until
// ctx ends) while other fetches' reservations fill the cache.
func (c *Cache) reserve(ctx context.Context, sum string, size int64) (*os.File, error) {
	if c.limit > 0 && size > c.limit {
		return nil, fmt.Errorf("cache: an object of %d bytes is larger than the cache (%d bytes)", size, c.limit)
	}
	for {
		var tmp *os.File
		var freed <-chan struct{}
		err := c.locked(false, func(used *int64) error {
			if c.limit > 0 && *used+size > c.limit {
				// A tenth of the limit more than needed: the next misses
				// then fit without walking again.
				*used = c.walk(c.limit - c.limit/10 - size)
				if *used+size > c.limit { // the rest is fetches under way
					c.mu.Lock()
					freed = c.freed
					c.mu.Unlock()
					return nil
				}
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
			*used += size
			return nil
		})
		if err != nil || tmp != nil {
			return tmp, err
		}
		t := time.NewTimer(pollRoom)
		select {
		case <-freed:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("cache: waiting for room for %d bytes: %w", size, ctx.Err())
		}
		t.Stop()
	}
}

// commit puts a verified temp file in place as the object sum; the
// reservation becomes the object's bytes. On failure the reservation is
// released.
func (c *Cache) commit(tmp *os.File, sum string, size int64) error {
	p := c.Path(sum)
	err := c.locked(false, func(used *int64) error {
		// Unlocked only under the state lock, which walks take too: no
		// walk sees it unlocked and takes it for a dead fetch's. Closing
		// before the rename also reports a failed write.
		err := tmp.Close()
		if err == nil {
			err = os.MkdirAll(filepath.Dir(p), 0o755)
		}
		var damaged int64
		if err == nil {
			if info, serr := os.Lstat(p); serr == nil {
				if info.Size() == size {
					// Another process fetched it meanwhile: theirs is
					// already counted.
					os.Remove(tmp.Name())
					*used -= size
					return nil
				}
				// Objects never change: another size is a damaged copy
				// (Get refetches it), which ours replaces.
				damaged = info.Size()
			}
			err = os.Rename(tmp.Name(), p)
		}
		if err != nil {
			os.Remove(tmp.Name())
			*used -= size
			return fmt.Errorf("cache: %w", err)
		}
		*used -= damaged
		return nil
	})
	c.signalFreed()
	return err
}

// release gives back a reservation whose fetch failed.
func (c *Cache) release(tmp *os.File, size int64) {
	err := c.locked(false, func(used *int64) error {
		tmp.Close()
		os.Remove(tmp.Name())
		*used -= size
		return nil
	})
	if err != nil {
		// No lock: the state counts the bytes until the next walk,
		// which a fetch that does not fit makes.
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

// locked runs f with the state's flock held and the bytes in use,
// recounted from the dir first if recount or if the state is new or
// damaged, and stores what f leaves in *used.
func (c *Cache) locked(recount bool, f func(used *int64) error) error {
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
	var b [8]byte
	used := int64(-1)
	if n, _ := c.state.ReadAt(b[:], 0); n == len(b) {
		used = int64(binary.LittleEndian.Uint64(b[:]))
	}
	stored := used // -1: new or damaged
	if recount || stored < 0 {
		used = c.walk(math.MaxInt64)
	}
	err := f(&used)
	if used != stored {
		binary.LittleEndian.PutUint64(b[:], uint64(used))
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
// is left; it returns the bytes in use. Only under the state lock.
func (c *Cache) walk(keep int64) int64 {
	c.walks.Add(1)
	var used int64
	tmpDir := filepath.Join(c.dir, "tmp")
	tmps, _ := os.ReadDir(tmpDir)
	for _, d := range tmps {
		used += reservation(filepath.Join(tmpDir, d.Name()))
	}
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
	if used <= keep {
		return used
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
	return used
}

// reservation is the bytes the temp file p reserves: its size while its
// fetch lives (holds its flock), else nothing, and it is removed. Only
// under the state lock: fetches make and lock their temp files under it.
func reservation(p string) int64 {
	f, err := os.Open(p)
	if err != nil {
		return 0 // committed or released meanwhile
	}
	defer f.Close()
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if info, err := f.Stat(); err == nil {
			return info.Size()
		}
		return 0
	}
	if err := os.Remove(p); err != nil {
		if info, err := f.Stat(); err == nil {
			return info.Size() // still there, still taking room
		}
	}
	return 0
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
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
