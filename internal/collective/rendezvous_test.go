package collective

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestJoinInAnyOrder(t *testing.T) {
	cfgs := configs(t, 3, nil)
	gs := make([]*Group, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	// Rank 0 last: the others retry until it listens.
	for _, r := range []int{2, 1, 0} {
		wg.Go(func() { gs[r], errs[r] = Join(context.Background(), cfgs[r]) })
		time.Sleep(150 * time.Millisecond)
	}
	wg.Wait()
	noErrors(t, "Join", errs)
	noErrors(t, "Barrier", each(gs, func(r int, g *Group) error { return g.Barrier(context.Background()) }))
	for _, g := range gs {
		g.Close()
	}
}

// joinFails joins cfgs and checks that every rank in ranks fails with an
// error containing each of want.
func joinFails(t *testing.T, cfgs []Config, ranks []int, want ...string) {
	t.Helper()
	sub := make([]Config, len(ranks))
	for i, r := range ranks {
		sub[i] = cfgs[r]
	}
	gs, errs := joinAll(context.Background(), sub)
	for i, err := range errs {
		if gs[i] != nil {
			gs[i].Close()
		}
		if err == nil {
			t.Errorf("rank %d: Join succeeded", sub[i].Rank)
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("rank %d: %v\nwant it to contain %q", sub[i].Rank, err, w)
			}
		}
	}
}

func TestJoinErrors(t *testing.T) {
	t.Run("world size", func(t *testing.T) {
		cfgs := configs(t, 3, nil)
		cfgs[1].WorldSize = 4
		joinFails(t, cfgs, []int{0, 1, 2}, "collective: rendezvous: world sizes differ: rank 0 has 3, rank 1 has 4")
	})
	t.Run("fingerprint", func(t *testing.T) {
		cfgs := configs(t, 3, func(c *Config) { c.Fingerprint = "shapes:784x256,256x10" })
		cfgs[2].Fingerprint = "shapes:784x128,128x10"
		joinFails(t, cfgs, []int{0, 1, 2}, `fingerprints differ: ranks 0, 1 have "shapes:784x256,256x10", rank 2 has "shapes:784x128,128x10"`)
	})
	t.Run("duplicate rank", func(t *testing.T) {
		cfgs := configs(t, 3, nil)
		cfgs[2].Rank = 1
		joinFails(t, cfgs, []int{0, 1, 2}, "rank 1 registered 2 times (from 127.0.0.1:")
	})
	t.Run("port in use", func(t *testing.T) {
		cfgs := configs(t, 2, nil)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", cfgs[0].MasterPort))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		_, err = Join(context.Background(), cfgs[0])
		if want := fmt.Sprintf("collective: rendezvous port 127.0.0.1:%d is in use", cfgs[0].MasterPort); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("got %v, want %q", err, want)
		}
	})
	t.Run("rank never shows up", func(t *testing.T) {
		cfgs := configs(t, 4, func(c *Config) { c.Timeout = time.Second })
		joinFails(t, cfgs, []int{0, 1, 2}, "collective: rendezvous: rank 3 of 4 did not join within 1s")
	})
	t.Run("two ranks never show up", func(t *testing.T) {
		cfgs := configs(t, 4, func(c *Config) { c.Timeout = 500 * time.Millisecond })
		joinFails(t, cfgs, []int{0, 2}, "ranks 1, 3 of 4 did not join within 500ms")
	})
	t.Run("no rank 0", func(t *testing.T) {
		cfgs := configs(t, 2, func(c *Config) { c.Timeout = 300 * time.Millisecond })
		// The last dial's own error is "connection refused" on a quiet
		// machine and "i/o timeout" when the deadline falls inside a
		// dial on a loaded one: the message must name the rank, its
		// address and the time waited either way.
		joinFails(t, cfgs, []int{1}, "rank 0 at 127.0.0.1:", "could not be reached within 300ms")
	})
	t.Run("cancelled", func(t *testing.T) {
		cfgs := configs(t, 3, nil)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		_, errs := joinAll(ctx, cfgs[:2])
		for r, err := range errs {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("rank %d: %v, want context.Canceled", r, err)
			}
		}
	})
	t.Run("late rank", func(t *testing.T) {
		cfgs := configs(t, 2, nil)
		gs := group(t, 2, func(c *Config) { c.MasterPort = cfgs[0].MasterPort })
		_ = gs
		_, err := Join(context.Background(), cfgs[1])
		if err == nil || !strings.Contains(err.Error(), "rank 1 registered after the group had formed") {
			t.Fatalf("got %v", err)
		}
	})
}
