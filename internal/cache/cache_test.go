package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
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
