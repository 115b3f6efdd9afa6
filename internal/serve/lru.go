package serve

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// errTooLarge is a model whose size alone is over the cache's budget: it
// could never be loaded (507, as SageMaker answers a multi-model
// endpoint that has no memory for a model).
var errTooLarge = errors.New("the model is larger than the model cache")

// modelCache holds a MultiServer's loaded models, bounded by bytes and
// evicted least recently used. A model is loaded once however many
// requests wait for it (they share the load: singleflight), and a model
// with requests in flight is never torn down under them: eviction skips
// it, and an explicit unload only takes it out of the cache, closing it
// when its last request is done.
type modelCache struct {
	budget  int64
	timeout time.Duration // bounds one load
	load    func(ctx context.Context, name, version string) (*Server, int64, error)
	m       *cacheMetrics
	log     *slog.Logger

	mu      sync.Mutex
	entries map[string]*cacheEntry // by name + "\x00" + version; loading ones too
	lru     list.List              // loaded entries in the cache, most recently used first
	used    int64                  // bytes of loaded models not yet closed (the cache's and those draining)
	closed  bool
	// loadSlot lets one load run at a time: the budget is checked when a
	// load has ended, so cold requests for many models at once would
	// otherwise hold all of them in memory before any eviction (ten 3 GB
	// models against a 4 GB budget). One at a time, the cache exceeds its
	// budget by one model at most, and only until that load's eviction.
	loadSlot chan struct{}
}

// cacheEntry is one model version in the cache: loading, loaded, or
// taken out of the cache and waiting for its last request.
type cacheEntry struct {
	name, version string
	loading       chan struct{} // closed when the load has ended
	err           error         // the load's error, once loading is closed
	srv           *Server
	size          int64
	refs          int // requests holding it, and waiters for its load
	elem          *list.Element
	out           bool // taken out of the cache: closed when refs reaches 0
	loadedAt      time.Time
	lastUsed      time.Time
}

func cacheKey(name, version string) string { return name + "\x00" + version }

func newModelCache(budget int64, timeout time.Duration, m *cacheMetrics, log *slog.Logger,
	load func(ctx context.Context, name, version string) (*Server, int64, error)) *modelCache {
	c := &modelCache{budget: budget, timeout: timeout, load: load, m: m, log: log, entries: map[string]*cacheEntry{},
		loadSlot: make(chan struct{}, 1)}
	m.budget.Set(float64(budget))
	return c
}

// acquire returns the loaded model, loading it if it is not in the
// cache, and holds it until release. ctx bounds the caller's wait only:
// the load itself runs to its end (bounded by the cache's timeout) for
// whoever else waits, or for the next request.
func (c *modelCache) acquire(ctx context.Context, name, version string) (*cacheEntry, error) {
	key := cacheKey(name, version)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errStopped
	}
	e := c.entries[key]
	if e == nil {
		e = &cacheEntry{name: name, version: version, loading: make(chan struct{})}
		c.entries[key] = e
		go c.loadEntry(key, e)
	}
	e.refs++
	select {
	case <-e.loading:
		if e.err == nil {
			c.touch(e)
		}
	default:
	}
	c.mu.Unlock()
	select {
	case <-e.loading:
	case <-ctx.Done():
		c.release(e)
		return nil, ctx.Err()
	}
	if e.err != nil {
		c.release(e)
		return nil, e.err
	}
	return e, nil
}

// touch marks e used now. c.mu is held.
func (c *modelCache) touch(e *cacheEntry) {
	e.lastUsed = time.Now()
	if e.elem != nil {
		c.lru.MoveToFront(e.elem)
	}
}

// loadEntry loads e's model and puts it in the cache, or removes the
// entry with its error so that the next request tries again.
func (c *modelCache) loadEntry(key string, e *cacheEntry) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	var srv *Server
	var size int64
	var err error
	var seconds float64 // the load's own, not its wait for the slot
	select {
	case c.loadSlot <- struct{}{}:
		start := time.Now()
		srv, size, err = c.load(ctx, e.name, e.version)
		seconds = time.Since(start).Seconds()
		<-c.loadSlot
	case <-ctx.Done():
		err = fmt.Errorf("model %s version %s: waited %s for other models' loads to end: %w", e.name, e.version, c.timeout, ctx.Err())
	}
	if err == nil && size > c.budget {
		srv.Close()
		err = fmt.Errorf("model %s version %s needs %d bytes, more than the whole model cache (%d bytes; raise --model-cache-bytes): %w",
			e.name, e.version, size, c.budget, errTooLarge)
	}
	var victims []*cacheEntry
	c.mu.Lock()
	if err == nil && c.closed {
		srv.Close()
		err = errStopped
	}
	if err != nil {
		e.err = err
		delete(c.entries, key)
		c.m.loadFailures.Inc()
		level := slog.LevelWarn
		if errors.Is(err, ErrModelNotFound) {
			level = slog.LevelDebug // the caller's mistake, answered 404: not the server's to report
		}
		c.log.Log(ctx, level, "model load failed", "model", e.name, "version", e.version, "seconds", seconds, "err", err)
	} else {
		e.srv, e.size, e.loadedAt, e.lastUsed = srv, size, time.Now(), time.Now()
		e.elem = c.lru.PushFront(e)
		c.used += size
		c.m.loads.Inc()
		c.m.loadSeconds.Observe(seconds)
		victims = c.evict()
		c.gauges()
		c.log.Info("model loaded", "model", e.name, "version", e.version, "bytes", size, "seconds", seconds,
			"cache_bytes", c.used, "budget", c.budget)
	}
	close(e.loading)
	c.mu.Unlock()
	c.closeAll(victims)
}

// evict takes least recently used models out of the cache until what it
// holds fits the budget, skipping those with requests in flight, and
// returns those that can be closed now. c.mu is held.
func (c *modelCache) evict() []*cacheEntry {
	var victims []*cacheEntry
	for el := c.lru.Back(); el != nil && c.used > c.budget; {
		e := el.Value.(*cacheEntry)
		el = el.Prev()
		if e.refs > 0 {
			continue
		}
		c.takeOut(e, "evicted (least recently used)")
		victims = append(victims, c.closing(e))
	}
	if c.used > c.budget {
		// Every other model has requests in flight: the cache is over its
		// budget until they end (release evicts again).
		c.log.Debug("model cache over budget: the rest is in use", "cache_bytes", c.used, "budget", c.budget)
	}
	return victims
}

// takeOut removes a loaded entry from the cache (not yet closed). c.mu
// is held.
func (c *modelCache) takeOut(e *cacheEntry, why string) {
	c.lru.Remove(e.elem)
	e.elem = nil
	e.out = true
	delete(c.entries, cacheKey(e.name, e.version))
	c.log.Info("model unloaded", "model", e.name, "version", e.version, "bytes", e.size, "why", why)
}

// closing marks e, taken out with no request left, as about to be
// closed: its bytes leave the count now, so that an eviction in progress
// stops as soon as what it frees is enough (counting them until the
// close itself made evict empty the cache). c.mu is held.
func (c *modelCache) closing(e *cacheEntry) *cacheEntry {
	c.used -= e.size
	return e
}

// closeAll closes models taken out of the cache with no request left
// (passed through closing); c.mu is not held (closing waits for a
// batcher).
func (c *modelCache) closeAll(es []*cacheEntry) {
	for _, e := range es {
		e.srv.Close()
	}
	if len(es) == 0 {
		return
	}
	c.mu.Lock()
	for range es {
		c.m.unloads.Inc()
	}
	c.gauges()
	c.mu.Unlock()
}

// release ends a hold taken by acquire.
func (c *modelCache) release(e *cacheEntry) {
	var victims []*cacheEntry
	c.mu.Lock()
	e.refs--
	if e.refs == 0 && e.srv != nil {
		if e.out {
			victims = append(victims, c.closing(e))
		} else if c.used > c.budget {
			victims = c.evict()
		}
	}
	c.mu.Unlock()
	c.closeAll(victims)
}

// unload takes a model version out of the cache (closing it once its
// requests are done); false if it was not loaded.
func (c *modelCache) unload(name, version string) bool {
	c.mu.Lock()
	e := c.entries[cacheKey(name, version)]
	if e == nil || e.srv == nil {
		c.mu.Unlock()
		return false
	}
	c.takeOut(e, "unloaded by request")
	var victims []*cacheEntry
	if e.refs == 0 {
		victims = append(victims, c.closing(e))
	}
	c.mu.Unlock()
	c.closeAll(victims)
	return true
}

// loadedModel is one model in the cache, for the repository index.
type loadedModel struct {
	name, version string
	size          int64
	loading       bool
	inFlight      int
	lastUsed      time.Time
}

// snapshot lists the cache's models, loading ones too.
func (c *modelCache) snapshot() []loadedModel {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]loadedModel, 0, len(c.entries))
	for _, e := range c.entries {
		lm := loadedModel{name: e.name, version: e.version, size: e.size, inFlight: e.refs, lastUsed: e.lastUsed}
		select {
		case <-e.loading:
		default:
			lm.loading = true
		}
		out = append(out, lm)
	}
	return out
}

// loaded reports whether a model version is in the cache, loaded.
func (c *modelCache) loaded(name, version string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[cacheKey(name, version)]
	return e != nil && e.srv != nil
}

// close unloads everything. Call it once no request is in flight.
func (c *modelCache) close() {
	c.mu.Lock()
	c.closed = true
	var victims []*cacheEntry
	for el := c.lru.Front(); el != nil; {
		e := el.Value.(*cacheEntry)
		el = el.Next()
		c.takeOut(e, "server stopping")
		if e.refs == 0 {
			victims = append(victims, c.closing(e))
		}
	}
	c.mu.Unlock()
	c.closeAll(victims)
}

// gauges sets the cache's gauges. c.mu is held.
func (c *modelCache) gauges() {
	c.m.loaded.Set(float64(c.lru.Len()))
	c.m.bytes.Set(float64(c.used))
}
