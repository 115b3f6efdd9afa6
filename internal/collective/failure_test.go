package collective

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// crash makes g vanish as a killed process would: every connection
// closed at once, without a word to anyone.
func crash(g *Group) {
	g.closed.Store(true) // its own goroutines stay quiet
	g.ctrl.close()
	g.closeData()
}

// blames checks that err is a *PeerError naming rank with a reason that
// contains reason, and that its text names the rank and its address.
func blames(t *testing.T, who string, err error, rank int, reason string) {
	t.Helper()
	var pe *PeerError
	if !errors.As(err, &pe) {
		t.Fatalf("%s: %v: not a *PeerError", who, err)
	}
	if pe.Rank != rank || !strings.Contains(pe.Reason, reason) || !strings.Contains(err.Error(), fmt.Sprintf("rank %d (127.0.0.1:", rank)) {
		t.Fatalf("%s: %v\nwant it to blame rank %d: %q", who, err, rank, reason)
	}
}

func TestPeerDiesMidOperation(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { peerDies(t, tr.edit) })
	}
}

func peerDies(t *testing.T, edit func(*Config)) {
	ctx := context.Background()
	gs := group(t, 4, edit)
	started := make(chan struct{}, 4)
	result := make(chan []error)
	go func() {
		result <- each(gs, func(r int, g *Group) error {
			buf := make([]float32, 4<<20)
			for i := 0; ; i++ {
				if i == 2 {
					started <- struct{}{}
				}
				if err := g.AllReduce(ctx, buf, Sum); err != nil {
					return err
				}
			}
		})
	}()
	for range 4 {
		<-started
	}
	crash(gs[1])
	errs := <-result
	for _, r := range []int{0, 2, 3} {
		blames(t, fmt.Sprintf("rank %d", r), errs[r], 1, "lost: ")
		if !strings.HasPrefix(errs[r].Error(), "collective: all-reduce: rank 1 (127.0.0.1:") {
			t.Errorf("rank %d: %v", r, errs[r])
		}
		// The group stays failed, with the same verdict.
		err := gs[r].Broadcast(ctx, make([]float32, 3), 0)
		blames(t, fmt.Sprintf("rank %d, later", r), err, 1, "lost: ")
		if !strings.HasPrefix(err.Error(), "collective: broadcast: rank 1") {
			t.Errorf("rank %d, later: %v", r, err)
		}
	}
}

func TestPeerStalls(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { peerStalls(t, tr.edit) })
	}
}

func peerStalls(t *testing.T, edit func(*Config)) {
	ctx := context.Background()
	gs := group(t, 3, both(edit, func(c *Config) { c.Timeout = 500 * time.Millisecond }))
	// Rank 1 never calls: ranks 0 and 2 wait for it, and rank 0 also for
	// rank 2, which waits for rank 1. Both must blame rank 1.
	errs := each([]*Group{gs[0], gs[2]}, func(_ int, g *Group) error {
		return g.AllReduce(ctx, make([]float32, 1000), Sum)
	})
	for i, err := range errs {
		blames(t, fmt.Sprintf("rank %d", 2*i), err, 1, "lost: no progress for 500ms")
	}
	// Rank 1 is told too.
	<-gs[1].fail.done
	blames(t, "rank 1", gs[1].Barrier(ctx), 1, "lost: no progress for 500ms")
}

func TestCancel(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { cancelled(t, tr.edit) })
	}
}

func cancelled(t *testing.T, edit func(*Config)) {
	gs := group(t, 2, edit)
	// A context that ended before the call: the call fails, nothing was
	// exchanged, the group stays usable.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if err := gs[0].AllReduce(done, make([]float32, 10), Sum); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled before: %v", err)
	}
	noErrors(t, "Barrier", each(gs, func(r int, g *Group) error { return g.Barrier(context.Background()) }))

	// Cancelled while waiting for rank 1, which never comes.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	err := gs[0].AllReduce(ctx, make([]float32, 1<<20), Sum)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("rank 0: %v, want context.Canceled", err)
	}
	blames(t, "rank 0", err, 0, "cancelled the operation: context canceled")
	<-gs[1].fail.done
	blames(t, "rank 1", gs[1].AllReduce(context.Background(), make([]float32, 1<<20), Sum), 0, "cancelled the operation: context canceled")

	// A Recv cancelled while it waits for a message.
	gs = group(t, 2, edit)
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	if err := gs[1].Recv(ctx, 0, make([]float32, 4)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Recv: %v, want context.Canceled", err)
	}
}

func TestMismatch(t *testing.T) {
	ctx := context.Background()
	t.Run("length", func(t *testing.T) {
		gs := group(t, 2, nil)
		errs := each(gs, func(r int, g *Group) error { return g.AllReduce(ctx, make([]float32, 10+r), Sum) })
		for r, err := range errs {
			if err == nil || !strings.Contains(err.Error(), "all-reduce(sum, 11 elements) as collective #1 where rank 0 called all-reduce(sum, 10 elements)") &&
				!strings.Contains(err.Error(), "all-reduce(sum, 10 elements) as collective #1 where rank 1 called all-reduce(sum, 11 elements)") {
				t.Errorf("rank %d: %v", r, err)
			}
		}
		if errs[0] != nil && errs[1] != nil && errs[0].Error() != errs[1].Error() {
			t.Errorf("the ranks disagree:\n%v\n%v", errs[0], errs[1])
		}
	})
	t.Run("operation", func(t *testing.T) {
		gs := group(t, 3, nil)
		errs := each(gs, func(r int, g *Group) error {
			if r == 1 {
				return g.Broadcast(ctx, make([]float32, 10), 0)
			}
			return g.AllReduce(ctx, make([]float32, 10), Mean)
		})
		for r, err := range errs {
			if err == nil || !strings.Contains(err.Error(), "broadcast(root 0, 10 elements) as collective #1") ||
				!strings.Contains(err.Error(), "all-reduce(mean, 10 elements) as collective #1") {
				t.Errorf("rank %d: %v", r, err)
			}
		}
	})
	t.Run("recv length", func(t *testing.T) {
		gs := group(t, 2, nil)
		if err := gs[0].Send(ctx, 1, make([]float32, 10)); err != nil {
			t.Fatal(err)
		}
		err := gs[1].Recv(ctx, 0, make([]float32, 11))
		want := "sent 10 elements (message #1 to rank 1), but Recv on rank 1 expected 11"
		blames(t, "rank 1", err, 0, want)
		<-gs[0].fail.done
		blames(t, "rank 0", gs[0].Send(ctx, 1, nil), 0, want)
	})
}

func TestClose(t *testing.T) {
	ctx := context.Background()
	gs := group(t, 2, nil)
	gs[1].Close()
	if err := gs[1].Barrier(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if err := gs[1].Close(); err != nil {
		t.Fatal(err)
	}
	blames(t, "rank 0", gs[0].AllReduce(ctx, make([]float32, 100), Sum), 1, "closed the group")

	gs = group(t, 3, nil)
	gs[0].Close()
	blames(t, "rank 1", gs[1].AllReduce(ctx, make([]float32, 100), Sum), 0, "closed the group")
}

// A Close while an operation waits ends it with ErrClosed.
func TestCloseDuringOperation(t *testing.T) {
	gs := group(t, 2, nil)
	time.AfterFunc(100*time.Millisecond, func() { gs[0].Close() })
	if err := gs[0].Recv(context.Background(), 1, make([]float32, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v", err)
	}
}
