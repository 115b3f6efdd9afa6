// Package cache is a node's content-addressed object cache: objects are
// kept under their SHA-256, so a dataset version's objects are fetched
// once per node and shared by every job that reads them, whatever name
// each gives them. The cache has a size limit; the least recently used
// objects go first. Objects enter only after their checksum is verified,
// so a cached object is always the right bytes.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Cache is one node's cache dir. Safe for concurrent use within a
// process; several processes may share a dir (entries are renamed into
// place whole).
type Cache struct {
	dir   string
	limit int64

	mu       sync.Mutex
	inflight map[string]*fetch // by checksum: one download per object at a time
}

type fetch struct {
	done chan struct{}
	err  error
}

// Stats count what Get did; safe for concurrent Gets.
type Stats struct {
	Hits, Misses, BytesFetched atomic.Int64
}

// New opens (making) a cache in dir holding at most limit bytes.
func New(dir string, limit int64) (*Cache, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, fmt.Errorf("cache dir: %w", err)
	}
	return &Cache{dir: dir, limit: limit, inflight: map[string]*fetch{}}, nil
}

// Path is where the object with checksum sum is kept.
func (c *Cache) Path(sum string) string { return filepath.Join(c.dir, "sha256", sum[:2], sum) }

// Get makes sure the object with checksum sum and size is in the cache,
// fetching it with open on a miss, and returns its path. A fetched
// object whose bytes do not hash to sum is refused.
func (c *Cache) Get(ctx context.Context, sum string, size int64, open func(context.Context) (io.ReadCloser, error), st *Stats) (string, error) {
	if len(sum) != 64 {
		return "", fmt.Errorf("cache: %q is not a SHA-256", sum)
	}
	p := c.Path(sum)
	for {
		if info, err := os.Stat(p); err == nil && info.Size() == size {
			now := time.Now()
			os.Chtimes(p, now, now) // recently used
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
	if err := c.makeRoom(size); err != nil {
		return err
	}
	r, err := open(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	tmp, err := os.CreateTemp(filepath.Join(c.dir, "tmp"), sum[:12]+"-*")
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fetch: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum || n != size {
		return fmt.Errorf("fetched object does not match its manifest: %d bytes with SHA-256 %s, want %d bytes with %s", n, got, size, sum)
	}
	p := c.Path(sum)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	// Read-only: jobs get hard links to it and must not change it.
	os.Chmod(tmp.Name(), 0o444)
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	st.Misses.Add(1)
	st.BytesFetched.Add(n)
	return nil
}

// makeRoom evicts least recently used objects until size more bytes fit.
func (c *Cache) makeRoom(size int64) error {
	if c.limit <= 0 {
		return nil
	}
	if size > c.limit {
		return fmt.Errorf("cache: an object of %d bytes is larger than the cache (%d bytes)", size, c.limit)
	}
	type entry struct {
		path string
		size int64
		used time.Time
	}
	var entries []entry
	var total int64
	filepath.WalkDir(filepath.Join(c.dir, "sha256"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			entries = append(entries, entry{p, info.Size(), info.ModTime()})
			total += info.Size()
		}
		return nil
	})
	if total+size <= c.limit {
		return nil
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].used.Before(entries[j].used) })
	for _, e := range entries {
		if total+size <= c.limit {
			break
		}
		// A job holding a hard link keeps its copy; the cache forgets it.
		if err := os.Remove(e.path); err == nil || errors.Is(err, os.ErrNotExist) {
			total -= e.size
		}
	}
	return nil
}

// Usage is the cache's object count and bytes.
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
