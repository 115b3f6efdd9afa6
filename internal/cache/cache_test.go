package cache

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// got closes the file Get returned, if any, and passes its error on.
func got(f *os.File, err error) error {
	if f != nil {
		f.Close()
	}
	return err
}

func opener(b []byte, calls *atomic.Int64) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) {
		calls.Add(1)
		time.Sleep(10 * time.Millisecond) // let concurrent Gets meet
		return io.NopCloser(bytes.NewReader(b)), nil
	}
}

func TestGetFetchesOnceAndHits(t *testing.T) {
	c, err := New(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("dataset object")
	var calls atomic.Int64
	var st Stats
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := c.Get(context.Background(), sum(data), int64(len(data)), opener(data, &calls), &st)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			if b, _ := io.ReadAll(f); !bytes.Equal(b, data) {
				t.Errorf("cached %q", b)
			}
		}()
	}
	wg.Wait()
	if calls.Load() != 1 || st.Misses.Load() != 1 || st.Hits.Load() != 7 {
		t.Fatalf("fetched %d times, misses %d hits %d; want 1, 1, 7", calls.Load(), st.Misses.Load(), st.Hits.Load())
	}
}

func TestWrongBytesAreRefused(t *testing.T) {
	c, _ := New(t.TempDir(), 0)
	var calls atomic.Int64
	var st Stats
	err := got(c.Get(context.Background(), sum([]byte("expected")), 8, opener([]byte("tampered"), &calls), &st))
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("err %v", err)
	}
	if n, _ := c.Usage(); n != 0 {
		t.Fatalf("%d objects cached after a bad fetch", n)
	}
}

func TestLeastRecentlyUsedIsEvicted(t *testing.T) {
	c, _ := New(t.TempDir(), 250)
	var calls atomic.Int64
	var st Stats
	objs := [][]byte{bytes.Repeat([]byte("a"), 100), bytes.Repeat([]byte("b"), 100), bytes.Repeat([]byte("c"), 100)}
	get := func(b []byte) {
		t.Helper()
		if err := got(c.Get(context.Background(), sum(b), int64(len(b)), opener(b, &calls), &st)); err != nil {
			t.Fatal(err)
		}
	}
	get(objs[0])
	get(objs[1])
	old := time.Now().Add(-time.Hour)
	os.Chtimes(c.Path(sum(objs[1])), old, old) // b is the least recently used
	get(objs[2])                               // needs room: b goes, a stays
	if _, err := os.Stat(c.Path(sum(objs[1]))); err == nil {
		t.Fatal("the least recently used object was kept")
	}
	if _, err := os.Stat(c.Path(sum(objs[0]))); err != nil {
		t.Fatal("a recently used object was evicted")
	}
	if n, b := c.Usage(); n != 2 || b != 200 {
		t.Fatalf("usage %d objects %d bytes", n, b)
	}
	if err := got(c.Get(context.Background(), sum(bytes.Repeat([]byte("x"), 300)), 300, opener(bytes.Repeat([]byte("x"), 300), &calls), &st)); err == nil {
		t.Fatal("an object larger than the cache was accepted")
	}
}

// object is a distinct n-byte object, the i-th of its kind.
func object(i, n int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("%08d", i)), n/8+1)[:n]
}

func fetcher(b []byte) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

// onDisk is what the dir holds, read under the state lock as a walk
// would: the state's count, and the bytes of objects and of temp files
// (each a reservation, sized to its object).
func onDisk(t *testing.T, dir string) (used, objects, temps int64) {
	t.Helper()
	s, objects, temps := onDiskState(t, dir)
	return s.used, objects, temps
}

// onDiskState is onDisk with the whole state.
func onDiskState(t *testing.T, dir string) (s state, objects, temps int64) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "state"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	var b [stateSize]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		t.Fatal(err)
	}
	if !s.decode(b[:]) {
		t.Fatalf("damaged state %+v", s)
	}
	for _, sub := range []string{"sha256", "tmp"} {
		filepath.WalkDir(filepath.Join(dir, sub), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if info, err := d.Info(); err == nil {
					if sub == "tmp" {
						temps += info.Size()
					} else {
						objects += info.Size()
					}
				}
			}
			return nil
		})
	}
	return s, objects, temps
}

// Every miss used to walk the whole dir: N inserts cost N walks of it.
// Now a walk comes only when a reservation does not fit, and frees a
// tenth of the cache for the misses after it.
func TestInsertsWalkOncePerTenthOfTheCache(t *testing.T) {
	const n, size, fit = 1000, 100, 100
	dir := t.TempDir()
	c := openCache(t, dir, fit*size)
	var st Stats
	for i := 0; i < n; i++ {
		b := object(i, size)
		if err := got(c.Get(context.Background(), sum(b), size, fetcher(b), &st)); err != nil {
			t.Fatal(err)
		}
		if i%25 != 24 {
			continue
		}
		if state, objects, temps := onDisk(t, dir); state != objects || temps != 0 || objects > fit*size {
			t.Fatalf("after %d inserts: state %d, objects %d bytes, temp files %d bytes; limit %d", i+1, state, objects, temps, fit*size)
		}
	}
	if w := c.walks.Load(); w > 1+n/10 {
		t.Fatalf("%d inserts walked the dir %d times, want at most %d", n, w, 1+n/10)
	}
	if st.Misses.Load() != n {
		t.Fatalf("%d misses", st.Misses.Load())
	}
	// Without a limit the only walk is the one at open.
	c2, _ := New(t.TempDir(), 0)
	defer c2.Close()
	for i := 0; i < 100; i++ {
		b := object(i, size)
		if err := got(c2.Get(context.Background(), sum(b), size, fetcher(b), &st)); err != nil {
			t.Fatal(err)
		}
	}
	if w := c2.walks.Load(); w != 1 {
		t.Fatalf("an unlimited cache walked %d times", w)
	}
}

// Hits move an object to the back of the eviction queue.
func TestHitsKeepAnObject(t *testing.T) {
	c, _ := New(t.TempDir(), 1000)
	defer c.Close()
	var st Stats
	get := func(i int) {
		t.Helper()
		b := object(i, 100)
		if err := got(c.Get(context.Background(), sum(b), 100, fetcher(b), &st)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 10; i++ {
		get(i)
		time.Sleep(20 * time.Millisecond) // distinct modification times
	}
	get(0) // a hit: 1 is now the least recently used
	get(10)
	if _, err := os.Stat(c.Path(sum(object(1, 100)))); err == nil {
		t.Fatal("the least recently used object was kept")
	}
	if _, err := os.Stat(c.Path(sum(object(0, 100)))); err != nil {
		t.Fatal("the object just hit was evicted")
	}
}

// Two caches on one dir are two processes sharing it: each has its own
// file for the state's flock. Fetches of both, some of the same objects,
// race; no consistent view of the dir may ever exceed the limit.
func TestLimitHoldsUnderConcurrentFetches(t *testing.T) {
	const limit = 2000
	dir := t.TempDir()
	var caches []*Cache
	for i := 0; i < 2; i++ {
		c := openCache(t, dir, limit)
		caches = append(caches, c)
	}
	check := func() {
		s, objects, temps := onDiskState(t, dir)
		if objects+temps > limit || s.used > limit {
			t.Errorf("state %d, objects %d bytes, reservations %d bytes: over the limit %d", s.used, objects, temps, limit)
		}
		if s.reserved != temps {
			t.Errorf("state counts %d bytes reserved, temp files hold %d", s.reserved, temps)
		}
	}
	stop := make(chan struct{})
	checked := make(chan struct{})
	go func() { // a view between any two changes
		defer close(checked)
		for {
			select {
			case <-stop:
				return
			default:
				check()
			}
		}
	}()
	var st Stats
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		c := caches[g%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				k := g*1000 + i
				if i%4 == 0 {
					k = i // the same object for every goroutine
				}
				b := object(k, 100+k%4*100)
				err := got(c.Get(context.Background(), sum(b), int64(len(b)), func(context.Context) (io.ReadCloser, error) {
					check() // this fetch's reservation is in the view
					return io.NopCloser(bytes.NewReader(b)), nil
				}, &st))
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-checked
	if state, objects, temps := onDisk(t, dir); state != objects || temps != 0 {
		t.Fatalf("at rest: state %d, objects %d bytes, temp files %d bytes", state, objects, temps)
	}
}

func TestFailedFetchesReleaseTheirReservations(t *testing.T) {
	const limit = 1000
	dir := t.TempDir()
	c, _ := New(dir, limit)
	defer c.Close()
	var st Stats
	big := object(1, limit)
	failures := map[string]func(context.Context) (io.ReadCloser, error){
		"open fails": func(context.Context) (io.ReadCloser, error) { return nil, errors.New("no such key") },
		"read fails": func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(io.MultiReader(bytes.NewReader(big[:500]), iotest.ErrReader(errors.New("reset")))), nil
		},
		"wrong bytes": fetcher(object(2, limit)),
		"too long":    fetcher(append(big, 'x')),
	}
	for name, open := range failures {
		if err := got(c.Get(context.Background(), sum(big), limit, open, &st)); err == nil {
			t.Fatalf("%s: no error", name)
		}
		if state, objects, temps := onDisk(t, dir); state != 0 || objects != 0 || temps != 0 {
			t.Fatalf("%s: state %d, objects %d, temp files %d bytes after the failure", name, state, objects, temps)
		}
	}

	// A fetch waits for room while another holds it, and gets it when
	// that one fails.
	first := make(chan struct{})
	fail := make(chan struct{})
	firstDone := make(chan error)
	go func() {
		b := object(3, 600)
		err := got(c.Get(context.Background(), sum(b), 600, func(context.Context) (io.ReadCloser, error) {
			close(first)
			<-fail
			return nil, errors.New("source gone")
		}, &st))
		firstDone <- err
	}()
	<-first
	b := object(4, 600)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	err := got(c.Get(ctx, sum(b), 600, fetcher(b), &st))
	cancel()
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a fetch that does not fit beside another: %v", err)
	}
	waited := make(chan error)
	go func() { waited <- got(c.Get(context.Background(), sum(b), 600, fetcher(b), &st)) }()
	time.Sleep(20 * time.Millisecond)
	close(fail)
	if err := <-firstDone; err == nil {
		t.Fatal("the failing fetch succeeded")
	}
	if err := <-waited; err != nil {
		t.Fatalf("the waiting fetch: %v", err)
	}
	if state, objects, temps := onDisk(t, dir); state != 600 || objects != 600 || temps != 0 {
		t.Fatalf("state %d, objects %d, temp files %d bytes", state, objects, temps)
	}
}

func TestReopenRecountsAndRemovesLeftoverTempFiles(t *testing.T) {
	dir := t.TempDir()
	c, _ := New(dir, 1<<20)
	var st Stats
	for i := 0; i < 3; i++ {
		b := object(i, 100)
		if err := got(c.Get(context.Background(), sum(b), 100, fetcher(b), &st)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	// A fetch killed mid-way leaves its temp file, unlocked; a live one
	// of another process holds its lock.
	if err := os.WriteFile(filepath.Join(dir, "tmp", "dead"), object(9, 500), 0o600); err != nil {
		t.Fatal(err)
	}
	live, err := os.Create(filepath.Join(dir, "tmp", "live"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	live.Truncate(200)
	if err := syscall.Flock(int(live.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "state"), []byte{1, 2, 3}, 0o644) // damaged
	c, err = New(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := os.Stat(filepath.Join(dir, "tmp", "dead")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("leftover temp file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tmp", "live")); err != nil {
		t.Fatalf("a live fetch's temp file was removed: %v", err)
	}
	if state, objects, _ := onDisk(t, dir); state != 300+200 || objects != 300 {
		t.Fatalf("state %d, objects %d bytes; want 500 and 300", state, objects)
	}
	if w := c.walks.Load(); w != 1 {
		t.Fatalf("%d walks at open, want 1", w)
	}
	b := object(0, 100)
	if err := got(c.Get(context.Background(), sum(b), 100, fetcher(b), &st)); err != nil || st.Hits.Load() != 1 {
		t.Fatalf("a cached object after reopening: %v, %d hits", err, st.Hits.Load())
	}
}

// A fetch killed with -9 (a real process) leaves its temp file and its
// reservation: the next open removes the one and uncounts the other,
// while an open during the fetch leaves both alone.
func TestKilledFetchIsCleanedAtOpen(t *testing.T) {
	dir, cmd := startHangingFetch(t, "TestKilledFetchIsCleanedAtOpen", 1<<20)
	during, err := New(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	during.Close()
	if state, _, temps := onDisk(t, dir); state != 4000 || temps != 4000 {
		t.Fatalf("an open during a fetch: state %d, temp files %d bytes; want the reservation kept", state, temps)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if state, _, temps := onDisk(t, dir); state != 4000 || temps != 4000 {
		t.Fatalf("after kill -9: state %d, temp files %d bytes", state, temps)
	}
	openCache(t, dir, 1<<20) // the open cleans up after the dead fetch
	if state, _, temps := onDisk(t, dir); state != 0 || temps != 0 {
		t.Fatalf("reopened: state %d, temp files %d bytes", state, temps)
	}
}

// A /tmp cleaner may remove the state file under a running process; it
// must then lock the file that processes opening the dir now lock.
func TestRemovedStateIsReopened(t *testing.T) {
	dir := t.TempDir()
	c, _ := New(dir, 1<<20)
	defer c.Close()
	var st Stats
	get := func(c *Cache, i int) {
		t.Helper()
		b := object(i, 100)
		if err := got(c.Get(context.Background(), sum(b), 100, fetcher(b), &st)); err != nil {
			t.Fatal(err)
		}
	}
	get(c, 0)
	os.Remove(filepath.Join(dir, "state"))
	c2, err := New(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	get(c, 1)
	get(c2, 2)
	if state, objects, temps := onDisk(t, dir); state != 300 || objects != 300 || temps != 0 {
		t.Fatalf("state %d, objects %d, temp files %d bytes; want 300, 300, 0", state, objects, temps)
	}
}

// until polls cond (the state of other goroutines or processes, which
// say nothing when they get there) until it holds.
func until(cond func() bool) {
	for !cond() {
		time.Sleep(time.Millisecond)
	}
}

// held is a fetch of b that lasts until the returned func is called.
func held(b []byte) (func(context.Context) (io.ReadCloser, error), func()) {
	release := make(chan struct{})
	return func(context.Context) (io.ReadCloser, error) {
		<-release
		return io.NopCloser(bytes.NewReader(b)), nil
	}, func() { close(release) }
}

// A fetch waiting for room evicts every object it must, down to one
// committed a moment ago: reservations cannot be evicted. Get used to
// return that object's path, which its caller found gone when it opened
// it; it returns the object open, which eviction leaves readable.
func TestJustCommittedObjectStaysReadable(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, 100)
	var st Stats
	ctx := context.Background()
	a, b, x := object(1, 40), object(2, 40), object(3, 40)
	fetchA, releaseA := held(a)
	fetchB, releaseB := held(b)
	type result struct {
		f   *os.File
		err error
	}
	gotA := make(chan result, 1)
	go func() {
		f, err := c.Get(ctx, sum(a), 40, fetchA, &st)
		gotA <- result{f, err}
	}()
	doneB := make(chan error, 1)
	go func() { doneB <- got(c.Get(ctx, sum(b), 40, fetchB, &st)) }()
	until(func() bool { _, _, temps := onDisk(t, dir); return temps == 80 })
	doneX := make(chan error, 1)
	go func() { doneX <- got(c.Get(ctx, sum(x), 40, fetcher(x), &st)) }()
	until(func() bool { return c.waits.Load() > 0 }) // x waits for room
	releaseA()
	r := <-gotA
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.f.Close()
	if err := <-doneX; err != nil {
		t.Fatal(err)
	}
	// x's room could only come from a's object.
	if _, err := os.Stat(c.Path(sum(a))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a's object was not evicted (%v): the test did not test", err)
	}
	if data, err := io.ReadAll(r.f); err != nil || !bytes.Equal(data, a) {
		t.Fatalf("a's object, returned by Get and evicted since: %d bytes, %v", len(data), err)
	}
	releaseB()
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
}

// A walk cannot evict reservations: a fetch waiting for other fetches'
// reservations used to walk the whole dir at every look (ten a second,
// under the lock every fetch needs). It now reads the state, and walks
// once those reservations leave room. The two caches are two processes:
// the waiter hears nothing when the other's fetch ends.
func TestWaiterWalksOnlyWhenAWalkMakesRoom(t *testing.T) {
	dir := t.TempDir()
	c1, _ := New(dir, 100)
	defer c1.Close()
	c2, _ := New(dir, 100)
	defer c2.Close()
	var st Stats
	ctx := context.Background()
	a, b := object(1, 60), object(2, 60)
	fetchA, releaseA := held(a)
	doneA := make(chan error, 1)
	go func() { doneA <- got(c1.Get(ctx, sum(a), 60, fetchA, &st)) }()
	until(func() bool { _, _, temps := onDisk(t, dir); return temps == 60 })
	walks := c2.walks.Load()
	doneB := make(chan error, 1)
	go func() { doneB <- got(c2.Get(ctx, sum(b), 60, fetcher(b), &st)) }()
	until(func() bool { return c2.waits.Load() >= 5 })
	if w := c2.walks.Load() - walks; w != 0 {
		t.Fatalf("a fetch waiting for another's reservation walked the dir %d times in 5 looks", w)
	}
	releaseA()
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
	if w := c2.walks.Load() - walks; w != 1 {
		t.Fatalf("the waiter walked %d times, want once: to evict a's object once it was committed", w)
	}
	if s, objects, temps := onDiskState(t, dir); s.used != 60 || objects != 60 || s.reserved != 0 || temps != 0 || s.claimID != 0 {
		t.Fatalf("state %+v, objects %d bytes, temp files %d bytes", s, objects, temps)
	}
}

// A large fetch that waits claims its room: a small one that would fit
// beside the reservations under way used to take it, and a stream of
// them could starve the large one. Two caches: two processes.
func TestWaiterClaimsItsRoom(t *testing.T) {
	dir := t.TempDir()
	var caches []*Cache
	for i := 0; i < 2; i++ {
		c, _ := New(dir, 100)
		defer c.Close()
		c.claimTTL = time.Hour // the big fetch keeps its claim however slow the machine
		caches = append(caches, c)
	}
	small, big := caches[0], caches[1]
	var st Stats
	ctx := context.Background()
	s1, s2, b := object(1, 30), object(2, 30), object(3, 80)
	var mu sync.Mutex
	var order []string
	opened := func(name string, data []byte) func(context.Context) (io.ReadCloser, error) {
		return func(context.Context) (io.ReadCloser, error) {
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			return io.NopCloser(bytes.NewReader(data)), nil
		}
	}
	fetchS1, releaseS1 := held(s1)
	done := make(chan error, 3)
	go func() { done <- got(small.Get(ctx, sum(s1), 30, fetchS1, &st)) }()
	until(func() bool { _, _, temps := onDisk(t, dir); return temps == 30 })
	go func() { done <- got(big.Get(ctx, sum(b), 80, opened("big", b), &st)) }()
	until(func() bool { s, _, _ := onDiskState(t, dir); return s.claimSize == 80 })
	go func() { done <- got(small.Get(ctx, sum(s2), 30, opened("s2", s2), &st)) }()
	until(func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(order) > 0 || small.waits.Load() > 0
	})
	releaseS1()
	for i := 0; i < 3; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if len(order) != 2 || order[0] != "big" {
		t.Fatalf("fetches began in order %v: the small one took the room the big one waited for", order)
	}
	if s, _, _ := onDiskState(t, dir); s.claimID != 0 || s.reserved != 0 {
		t.Fatalf("at rest: %+v", s)
	}
}

// A claim lapses when its waiter stops renewing it (killed), and one
// further ahead than a claim can be (the clock stepped back since) counts
// as lapsed at once: neither holds other fetches up for good.
func TestClaimsLapse(t *testing.T) {
	for name, ahead := range map[string]time.Duration{"killed waiter": claimTTL, "clock stepped back": time.Hour} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			c, _ := New(dir, 100)
			defer c.Close()
			err := c.locked(false, func(s *state) error {
				s.claimID, s.claimSize, s.claimUntil = 42, 80, time.Now().Add(ahead).UnixNano()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			b := object(1, 30)
			if err := got(c.Get(context.Background(), sum(b), 30, fetcher(b), &Stats{})); err != nil {
				t.Fatal(err)
			}
			if w := c.waits.Load(); ahead == time.Hour && w != 0 {
				t.Fatalf("a claim from before the clock stepped back held a fetch up for %d looks", w)
			}
		})
	}
}

// A fetch killed with -9 leaves its reservation counted; a fetch waiting
// for that room finds it gone by a look at tmp/, without a walk.
func TestWaiterGetsAKilledFetchsRoom(t *testing.T) {
	dir, cmd := startHangingFetch(t, "TestWaiterGetsAKilledFetchsRoom", 10000)
	c := openCache(t, dir, 10000)
	walks := c.walks.Load()
	b := object(8, 8000)
	done := make(chan error, 1)
	go func() { done <- got(c.Get(context.Background(), sum(b), 8000, fetcher(b), &Stats{})) }()
	until(func() bool { return c.waits.Load() > 0 })
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if w := c.walks.Load() - walks; w != 0 {
		t.Fatalf("%d walks to find a killed fetch's room", w)
	}
	if s, objects, temps := onDiskState(t, dir); s.used != 8000 || s.reserved != 0 || objects != 8000 || temps != 0 {
		t.Fatalf("state %+v, objects %d bytes, temp files %d bytes", s, objects, temps)
	}
}

// A commit that cannot take the state lock (here the state cannot be
// reopened) used to keep its temp file open and flocked for the life of
// the process, which every walk then counted as a live fetch's
// reservation. It lets go of it as a failed fetch does.
func TestCommitWithoutTheLockLetsGoOfItsTempFile(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, 1000)
	b := object(1, 100)
	err := got(c.Get(context.Background(), sum(b), 100, func(context.Context) (io.ReadCloser, error) {
		// Removed (as a /tmp cleaner would) and replaced by what no
		// process can open as the state.
		if err := os.Remove(filepath.Join(dir, "state")); err != nil {
			return nil, err
		}
		if err := os.Mkdir(filepath.Join(dir, "state"), 0o755); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}, &Stats{}))
	if err == nil || !strings.Contains(err.Error(), "cache state") {
		t.Fatalf("a commit without a state: %v", err)
	}
	if tmps, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmps) != 0 {
		t.Fatalf("temp file %s left behind", tmps[0].Name())
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		if p, _ := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); strings.HasPrefix(p, filepath.Join(dir, "tmp")) {
			t.Fatalf("fd %s still open on %s", fd.Name(), p)
		}
	}
	if err := os.Remove(filepath.Join(dir, "state")); err != nil {
		t.Fatal(err)
	}
	c2, err := New(dir, 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if s, objects, temps := onDiskState(t, dir); s.used != 0 || s.reserved != 0 || objects != 0 || temps != 0 {
		t.Fatalf("state %+v, objects %d bytes, temp files %d bytes", s, objects, temps)
	}
}

// startHangingFetch runs test (the caller) again in a child process that
// opens a cache of limit bytes on a fresh dir and starts a fetch of 4000
// bytes that never ends, and returns once the fetch has begun: the caller
// kills the child (-9) when it wants. The child's part of test is the
// branch that finds HPCML_CACHE_KILL_DIR set.
func startHangingFetch(t *testing.T, test string, limit int64) (string, *exec.Cmd) {
	t.Helper()
	if dir := os.Getenv("HPCML_CACHE_KILL_DIR"); dir != "" {
		c, err := New(dir, limit)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		b := object(7, 4000)
		c.Get(context.Background(), sum(b), 4000, func(context.Context) (io.ReadCloser, error) {
			fmt.Println("fetching")
			select {} // until killed
		}, &Stats{})
		os.Exit(0)
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$")
	cmd.Env = append(os.Environ(), "HPCML_CACHE_KILL_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "fetching\n" {
		cmd.Process.Kill()
		t.Fatalf("the fetching process said %q, %v", line, err)
	}
	return dir, cmd
}

// A Get waiting on another's fetch of the same object is not failed by
// that fetch's own cancellation (one job cancelled must not fail another
// job's staging): it fetches the object itself.
func TestWaiterOutlivesCancelledFetch(t *testing.T) {
	c := openCache(t, t.TempDir(), 0)
	b := object(3, 1000)
	ctxA, cancelA := context.WithCancel(context.Background())
	started := make(chan struct{})
	go c.Get(ctxA, sum(b), 1000, func(ctx context.Context) (io.ReadCloser, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	}, &Stats{})
	<-started
	res := make(chan error, 1)
	go func() { res <- got(c.Get(context.Background(), sum(b), 1000, fetcher(b), &Stats{})) }()
	time.Sleep(50 * time.Millisecond) // B waits on A's fetch (were it later, B would fetch alone: the test could only pass)
	cancelA()
	if err := <-res; err != nil {
		t.Fatalf("a Get with a live context failed with the other's cancellation: %v", err)
	}
}

// A fetch killed after renaming its object into place but before counting
// it leaves a reservation without a temp file: a look at tmp/ keeps those
// bytes counted (too many, until a walk), never drops them (too few: the
// cache would pass its limit).
func TestKillAfterRenameCountsHigh(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, 10000)
	b := object(4, 4000)
	tmp, err := c.reserve(context.Background(), sum(b), 4000)
	if err != nil {
		t.Fatal(err)
	}
	tmp.Write(b)
	tmp.Close() // killed: its flock goes with it
	if err := os.MkdirAll(filepath.Dir(c.Path(sum(b))), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), c.Path(sum(b))); err != nil {
		t.Fatal(err)
	}
	var s state
	c.locked(false, func(st *state) error { c.rescan(st, time.Now()); s = *st; return nil })
	if s.used < 4000 || s.reserved != 0 {
		t.Fatalf("after a look at tmp/: used %d, reserved %d; the object's 4000 bytes must stay counted", s.used, s.reserved)
	}
	big := object(5, 9000)
	if err := got(c.Get(context.Background(), sum(big), 9000, fetcher(big), &Stats{})); err != nil {
		t.Fatal(err)
	}
	if _, bytes := c.Usage(); bytes > 10000 {
		t.Fatalf("the cache holds %d bytes, over its limit of 10000", bytes)
	}
}

// openCache opens a cache for the test, closed when it ends.
func openCache(t *testing.T, dir string, limit int64) *Cache {
	t.Helper()
	c, err := New(dir, limit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestGetTagged: an object known by a tag, not a checksum, is fetched
// once (however many ask at once), kept by its SHA-256 — shared with a
// Get of the same bytes — and a hit afterwards; another tag (new
// content) fetches again; a fetch of the wrong size is refused and
// leaves no tag.
func TestGetTagged(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, dir, 1<<20)
	ctx := context.Background()
	data := []byte("an object of a store that records no checksum")
	var calls atomic.Int64
	var st Stats
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := c.GetTagged(ctx, "s3://b k etag1", "", int64(len(data)), opener(data, &calls), &st)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			if b, _ := io.ReadAll(f); !bytes.Equal(b, data) {
				t.Errorf("read %q", b)
			}
		}()
	}
	wg.Wait()
	if calls.Load() != 1 || st.Misses.Load() != 1 || st.Hits.Load() != 5 {
		t.Fatalf("6 tagged gets at once: %d fetches, %d misses, %d hits; want 1, 1, 5", calls.Load(), st.Misses.Load(), st.Hits.Load())
	}
	if _, err := os.Stat(c.Path(sum(data))); err != nil {
		t.Fatalf("the object is not kept by its SHA-256: %v", err)
	}
	// The same bytes asked for by checksum: a hit.
	if err := got(c.Get(ctx, sum(data), int64(len(data)), opener(data, &calls), &st)); err != nil || calls.Load() != 1 {
		t.Fatalf("get by checksum after the tagged fetch: %v, %d fetches", err, calls.Load())
	}
	// A reopened cache (another process) remembers the tag.
	c2 := openCache(t, dir, 1<<20)
	if err := got(c2.GetTagged(ctx, "s3://b k etag1", "", int64(len(data)), opener(data, &calls), &st)); err != nil || calls.Load() != 1 {
		t.Fatalf("tagged get in a reopened cache: %v, %d fetches", err, calls.Load())
	}
	// New content comes with a new tag: fetched.
	newer := []byte("the same key, rewritten")
	if err := got(c.GetTagged(ctx, "s3://b k etag2", sum(newer), int64(len(newer)), opener(newer, &calls), &st)); err != nil || calls.Load() != 2 {
		t.Fatalf("tagged get of new content: %v, %d fetches", err, calls.Load())
	}
	// The wrong size: refused, and no tag left to point at it.
	if err := got(c.GetTagged(ctx, "s3://b short etag", "", int64(len(data))+1, opener(data, &calls), &st)); err == nil {
		t.Fatal("a fetch one byte short was accepted")
	}
	if _, err := os.Stat(c.tagPath("s3://b short etag")); err == nil {
		t.Fatal("a refused fetch left a tag")
	}
	// Bytes that are not what the store recorded: refused, not kept.
	other := []byte("recorded for something else!")
	if err := got(c.GetTagged(ctx, "s3://b lie etag", sum(data), int64(len(other)), opener(other, &calls), &st)); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("bytes other than the recorded SHA-256: %v", err)
	}
	if _, err := os.Stat(c.Path(sum(other))); err == nil {
		t.Fatal("bytes that did not match the recorded SHA-256 were kept")
	}
	// A walk forgets the tags of evicted objects.
	if err := os.Remove(c.Path(sum(newer))); err != nil {
		t.Fatal(err)
	}
	c.locked(true, func(*state) error { return nil })
	if _, err := os.Stat(c.tagPath("s3://b k etag2")); err == nil {
		t.Fatal("the tag of an evicted object outlived a walk")
	}
	if _, err := os.Stat(c.tagPath("s3://b k etag1")); err != nil {
		t.Fatalf("the tag of a kept object: %v", err)
	}
}
