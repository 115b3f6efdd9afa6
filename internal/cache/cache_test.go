package cache

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
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
			p, err := c.Get(context.Background(), sum(data), int64(len(data)), opener(data, &calls), &st)
			if err != nil {
				t.Error(err)
				return
			}
			if b, _ := os.ReadFile(p); !bytes.Equal(b, data) {
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
	_, err := c.Get(context.Background(), sum([]byte("expected")), 8, opener([]byte("tampered"), &calls), &st)
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
		if _, err := c.Get(context.Background(), sum(b), int64(len(b)), opener(b, &calls), &st); err != nil {
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
	if _, err := c.Get(context.Background(), sum(bytes.Repeat([]byte("x"), 300)), 300, opener(bytes.Repeat([]byte("x"), 300), &calls), &st); err == nil {
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
func onDisk(t *testing.T, dir string) (state, objects, temps int64) {
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
	var b [8]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		t.Fatal(err)
	}
	state = int64(binary.LittleEndian.Uint64(b[:]))
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
	return state, objects, temps
}

// Every miss used to walk the whole dir: N inserts cost N walks of it.
// Now a walk comes only when a reservation does not fit, and frees a
// tenth of the cache for the misses after it.
func TestInsertsWalkOncePerTenthOfTheCache(t *testing.T) {
	const n, size, fit = 1000, 100, 100
	dir := t.TempDir()
	c, err := New(dir, fit*size)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var st Stats
	for i := 0; i < n; i++ {
		b := object(i, size)
		if _, err := c.Get(context.Background(), sum(b), size, fetcher(b), &st); err != nil {
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
		if _, err := c2.Get(context.Background(), sum(b), size, fetcher(b), &st); err != nil {
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
		if _, err := c.Get(context.Background(), sum(b), 100, fetcher(b), &st); err != nil {
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
		c, err := New(dir, limit)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		caches = append(caches, c)
	}
	check := func() {
		if state, objects, temps := onDisk(t, dir); objects+temps > limit || state > limit {
			t.Errorf("state %d, objects %d bytes, reservations %d bytes: over the limit %d", state, objects, temps, limit)
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
				_, err := c.Get(context.Background(), sum(b), int64(len(b)), func(context.Context) (io.ReadCloser, error) {
					check() // this fetch's reservation is in the view
					return io.NopCloser(bytes.NewReader(b)), nil
				}, &st)
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
		if _, err := c.Get(context.Background(), sum(big), limit, open, &st); err == nil {
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
		_, err := c.Get(context.Background(), sum(b), 600, func(context.Context) (io.ReadCloser, error) {
			close(first)
			<-fail
			return nil, errors.New("source gone")
		}, &st)
		firstDone <- err
	}()
	<-first
	b := object(4, 600)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := c.Get(ctx, sum(b), 600, fetcher(b), &st)
	cancel()
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a fetch that does not fit beside another: %v", err)
	}
	got := make(chan error)
	go func() {
		_, err := c.Get(context.Background(), sum(b), 600, fetcher(b), &st)
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	close(fail)
	if err := <-firstDone; err == nil {
		t.Fatal("the failing fetch succeeded")
	}
	if err := <-got; err != nil {
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
		if _, err := c.Get(context.Background(), sum(b), 100, fetcher(b), &st); err != nil {
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
	if _, err := c.Get(context.Background(), sum(b), 100, fetcher(b), &st); err != nil || st.Hits.Load() != 1 {
		t.Fatalf("a cached object after reopening: %v, %d hits", err, st.Hits.Load())
	}
}

// A fetch killed with -9 (a real process) leaves its temp file and its
// reservation: the next open removes the one and uncounts the other,
// while an open during the fetch leaves both alone.
func TestKilledFetchIsCleanedAtOpen(t *testing.T) {
	if dir := os.Getenv("HPCML_CACHE_KILL_DIR"); dir != "" {
		c, err := New(dir, 1<<20)
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		b := object(7, 4000)
		c.Get(context.Background(), sum(b), 4000, func(context.Context) (io.ReadCloser, error) {
			fmt.Println("fetching")
			select {} // until killed
		}, &Stats{})
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledFetchIsCleanedAtOpen$")
	cmd.Env = append(os.Environ(), "HPCML_CACHE_KILL_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "fetching\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
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
	c, err := New(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
		if _, err := c.Get(context.Background(), sum(b), 100, fetcher(b), &st); err != nil {
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
