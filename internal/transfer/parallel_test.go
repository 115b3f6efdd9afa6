package transfer

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

func TestInParallel(t *testing.T) {
	const n, workers = 1000, 7
	var running, peak atomic.Int32
	seen := make([]atomic.Int32, n)
	err := inParallel(context.Background(), workers, n, func(ctx context.Context, i int) error {
		r := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); r > p && !peak.CompareAndSwap(p, r); p = peak.Load() {
		}
		seen[i].Add(1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range seen {
		if c := seen[i].Load(); c != 1 {
			t.Fatalf("index %d called %d times", i, c)
		}
	}
	if p := peak.Load(); p > workers {
		t.Fatalf("%d calls at once, want at most %d", p, workers)
	}

	// The first error is returned, the other calls' context ends, and
	// the calls not begun are not made. (Indexes 0-2 wait for that end
	// on three of the four workers; 3 fails on the fourth.)
	boom := errors.New("boom")
	var calls atomic.Int32
	err = inParallel(context.Background(), 4, n, func(ctx context.Context, i int) error {
		calls.Add(1)
		if i == 3 {
			return boom
		}
		<-ctx.Done()
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want boom", err)
	}
	if c := calls.Load(); c > 10 {
		t.Fatalf("%d calls made after an error, want the few begun", c)
	}

	if err := inParallel(context.Background(), 4, 0, func(context.Context, int) error { return boom }); err != nil {
		t.Fatalf("no indexes: %v", err)
	}
}
