package collective

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"
)

// Lengths that divide by no world size, shorter than the world, empty,
// and longer than many segments (tests cut segments at 16 elements).
var awkward = []int{0, 1, 2, 3, 5, 7, 16, 17, 33, 1000, 1003, 4099}

func smallSegments(c *Config) { c.SegmentBytes = 64 }

// pipelined makes every ring operation over TCP take the two-goroutine
// path, which otherwise only ranks with one link of each kind take, for
// messages of more than lockstepBytes per step.
func pipelined(gs []*Group) {
	for _, g := range gs {
		g.lockstepMax = -1
		g.noLoop = true
	}
}

// lockstepped makes small ring operations over TCP run in lock step,
// which otherwise only ranks with one link of each kind do.
func lockstepped(gs []*Group) {
	for _, g := range gs {
		g.noLoop = true
	}
}

func TestAllReduce(t *testing.T) {
	ctx := context.Background()
	for n := 1; n <= 4; n++ {
		tcp := transports[1].edit
		for _, seg := range []struct {
			name string
			edit func(*Config)
			path func([]*Group)
		}{
			// Ranks whose links are all shared memory run runShm, all
			// TCP runTCP; the two-goroutine and lock-step paths are for
			// ranks with one link of each kind.
			{"shm/segment=16", smallSegments, nil},
			{"shm/default segment", nil, nil},
			{"tcp/segment=16", both(smallSegments, tcp), nil},
			{"tcp/default segment", tcp, nil},
			{"tcp/segment=16/goroutines", both(smallSegments, tcp), pipelined},
			{"tcp/segment=16/lockstep", both(smallSegments, tcp), lockstepped},
			{"tcp/default segment/goroutines", tcp, pipelined},
		} {
			t.Run(fmt.Sprintf("n=%d/%s", n, seg.name), func(t *testing.T) {
				gs := group(t, n, seg.edit)
				if seg.path != nil {
					seg.path(gs)
				}
				for _, l := range awkward {
					for _, op := range []Op{Sum, Mean} {
						xs := inputs(uint64(l*10+n), n, l)
						bufs := clone(xs)
						noErrors(t, "AllReduce", each(gs, func(r int, g *Group) error { return g.AllReduce(ctx, bufs[r], op) }))
						want := ringReduce(xs, op)
						for r := range n {
							// Bit-identical on every rank, and in the documented order.
							if !slices.Equal(bits(bufs[r]), bits(want)) {
								t.Fatalf("length %d, %v: rank %d differs from the ring order's result", l, op, r)
							}
						}
						// And close to the exact value.
						for i := range l {
							var exact float64
							for r := range n {
								exact += float64(xs[r][i])
							}
							if op == Mean {
								exact /= float64(n)
							}
							if d := math.Abs(float64(want[i]) - exact); d > 1e-5*math.Max(1, math.Abs(exact))*float64(n) {
								t.Fatalf("length %d, %v: element %d = %v, exact %v", l, op, i, want[i], exact)
							}
						}
					}
				}
			})
		}
	}
}

// bits compares float32s by their bits (NaN-safe, -0 ≠ +0).
func bits(xs []float32) []uint32 {
	out := make([]uint32, len(xs))
	for i, x := range xs {
		out[i] = math.Float32bits(x)
	}
	return out
}

// paths are the ways a rank runs a ring operation, by the links it has.
var paths = []struct {
	name string
	edit func(*Config)
	set  func([]*Group)
}{
	{"shm", nil, nil},
	{"tcp", func(c *Config) { c.NoSharedMemory = true }, nil},
	{"tcp/goroutines", func(c *Config) { c.NoSharedMemory = true }, pipelined},
}

func TestReduceScatterAllGather(t *testing.T) {
	for n := 1; n <= 4; n++ {
		for _, pa := range paths {
			t.Run(fmt.Sprintf("n=%d/%s", n, pa.name), func(t *testing.T) { reduceScatterAllGather(t, n, pa.edit, pa.set) })
		}
	}
}

func reduceScatterAllGather(t *testing.T, n int, edit func(*Config), set func([]*Group)) {
	ctx := context.Background()
	gs := group(t, n, both(smallSegments, edit))
	if set != nil {
		set(gs)
	}
	for _, l := range awkward {
		for _, op := range []Op{Sum, Mean} {
			xs := inputs(uint64(l+n), n, l)
			bufs := clone(xs)
			noErrors(t, "ReduceScatter", each(gs, func(r int, g *Group) error { return g.ReduceScatter(ctx, bufs[r], op) }))
			want := ringReduce(xs, op)
			for r := range n {
				lo, hi := Shard(l, n, r)
				if !slices.Equal(bits(bufs[r][lo:hi]), bits(want[lo:hi])) {
					t.Fatalf("ReduceScatter length %d %v: rank %d's shard [%d,%d) is wrong", l, op, r, lo, hi)
				}
			}
		}
		// AllGather: each rank contributes its shard, garbage elsewhere.
		xs := inputs(uint64(l+100*n), n, l)
		want := make([]float32, l)
		for r := range n {
			lo, hi := Shard(l, n, r)
			copy(want[lo:hi], xs[r][lo:hi])
		}
		bufs := clone(xs)
		noErrors(t, "AllGather", each(gs, func(r int, g *Group) error { return g.AllGather(ctx, bufs[r]) }))
		for r := range n {
			if !slices.Equal(bits(bufs[r]), bits(want)) {
				t.Fatalf("AllGather length %d: rank %d is wrong", l, r)
			}
		}
	}
}

func TestBroadcastBarrier(t *testing.T) {
	for n := 1; n <= 4; n++ {
		for _, pa := range paths {
			t.Run(fmt.Sprintf("n=%d/%s", n, pa.name), func(t *testing.T) { broadcastBarrier(t, n, pa.edit, pa.set) })
		}
	}
}

func broadcastBarrier(t *testing.T, n int, edit func(*Config), set func([]*Group)) {
	ctx := context.Background()
	gs := group(t, n, both(smallSegments, edit))
	if set != nil {
		set(gs)
	}
	for _, l := range awkward {
		for root := range n {
			xs := inputs(uint64(l+root), n, l)
			bufs := clone(xs)
			noErrors(t, "Broadcast", each(gs, func(r int, g *Group) error { return g.Broadcast(ctx, bufs[r], root) }))
			for r := range n {
				if !slices.Equal(bits(bufs[r]), bits(xs[root])) {
					t.Fatalf("Broadcast length %d root %d: rank %d is wrong", l, root, r)
				}
			}
		}
	}
	noErrors(t, "Barrier", each(gs, func(r int, g *Group) error { return g.Barrier(ctx) }))
	if err := gs[0].Broadcast(ctx, nil, n); err == nil {
		t.Fatal("Broadcast from a root outside the group: no error")
	}
	if err := gs[0].AllReduce(ctx, nil, Op(9)); err == nil {
		t.Fatal("AllReduce with an unknown Op: no error")
	}
	// Refused calls exchange nothing: the group still works.
	noErrors(t, "Barrier after refused calls", each(gs, func(r int, g *Group) error { return g.Barrier(ctx) }))
	st := gs[0].Stats()
	if st.Collectives == 0 || (n > 1 && st.BytesSent == 0) {
		t.Fatalf("Stats: %+v", st)
	}
}

// Ranks on one host use shared memory unless told not to, and leave
// nothing in /dev/shm.
func TestSharedMemoryChosen(t *testing.T) {
	for _, tr := range transports {
		gs := group(t, 3, tr.edit)
		session := gs[0].session
		for r, g := range gs {
			if (g.nextShm != nil) != (tr.name == "shm") || (g.prevShm != nil) != (tr.name == "shm") {
				t.Errorf("%s: rank %d: next %v, prev %v", tr.name, r, g.nextShm != nil, g.prevShm != nil)
			}
		}
		left, _ := filepath.Glob("/dev/shm/hpcml-collective-" + session + "-*")
		if len(left) > 0 {
			t.Errorf("%s: left in /dev/shm: %v", tr.name, left)
		}
	}
}

func TestBarrierWaitsForAll(t *testing.T) {
	ctx := context.Background()
	gs := group(t, 3, nil)
	entered := make(chan int, 3)
	done := make(chan int, 3)
	for r := range 2 {
		go func() {
			entered <- r
			gs[r].Barrier(ctx)
			done <- r
		}()
	}
	<-entered
	<-entered
	select {
	case r := <-done:
		t.Fatalf("rank %d left the barrier before rank 2 entered it", r)
	default:
	}
	if err := gs[2].Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	<-done
}

func TestSendRecv(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{2, 3, 4} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			gs := group(t, n, smallSegments)
			// Every ordered pair, several messages of awkward lengths, in order.
			noErrors(t, "all pairs", each(gs, func(r int, g *Group) error {
				errs := make(chan error, 2*n)
				for k := range n {
					if k == r {
						continue
					}
					go func() {
						for i, l := range awkward {
							msg := make([]float32, l)
							for j := range msg {
								msg[j] = float32(r*1e6 + k*1e4 + i*100 + j%100)
							}
							if err := g.Send(ctx, k, msg); err != nil {
								errs <- err
								return
							}
						}
						errs <- nil
					}()
					go func() {
						for i, l := range awkward {
							got := make([]float32, l)
							if err := g.Recv(ctx, k, got); err != nil {
								errs <- err
								return
							}
							for j := range got {
								if want := float32(k*1e6 + r*1e4 + i*100 + j%100); got[j] != want {
									errs <- fmt.Errorf("message %d from %d: element %d = %v, want %v", i, k, j, got[j], want)
									return
								}
							}
						}
						errs <- nil
					}()
				}
				for range 2 * (n - 1) {
					if err := <-errs; err != nil {
						return err
					}
				}
				return nil
			}))
		})
	}
}

// Large messages both ways at once, while every rank runs an all-reduce:
// the two directions are links of their own, so neither Send waits for
// the other rank's Recv, and neither waits behind the collective.
func TestSendRecvBothWays(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			gs := group(t, n, nil)
			big := 3 << 20
			a, b := make([]float32, big), make([]float32, big)
			for i := range a {
				a[i] = float32(i)
			}
			xs := inputs(5, n, 1<<20+3)
			bufs := clone(xs)
			reduced := make(chan []error, 1)
			go func() {
				reduced <- each(gs, func(r int, g *Group) error { return g.AllReduce(ctx, bufs[r], Sum) })
			}()
			noErrors(t, "exchange", each(gs[:2], func(r int, g *Group) error {
				errc := make(chan error, 1)
				go func() {
					if r == 0 {
						errc <- g.Send(ctx, 1, a)
					} else {
						errc <- g.Send(ctx, 0, a)
					}
				}()
				var err error
				if r == 0 {
					err = g.Recv(ctx, 1, b)
				} else {
					err = g.Recv(ctx, 0, make([]float32, big))
				}
				if err != nil {
					return err
				}
				return <-errc
			}))
			if !slices.Equal(a, b) {
				t.Fatal("large message corrupted")
			}
			noErrors(t, "AllReduce beside the messages", <-reduced)
			if want := ringReduce(xs, Sum); !slices.Equal(bits(bufs[n-1]), bits(want)) {
				t.Fatal("AllReduce beside the messages: wrong result")
			}
			if err := gs[0].Send(ctx, 0, nil); err == nil {
				t.Fatal("Send to itself: no error")
			}
			if err := gs[0].Recv(ctx, n, nil); err == nil {
				t.Fatal("Recv from outside the group: no error")
			}
		})
	}
}

func TestWorldOfOne(t *testing.T) {
	ctx := context.Background()
	g, err := Join(ctx, Config{Rank: 0, WorldSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	buf := []float32{1, 2, 3}
	for _, f := range []func() error{
		func() error { return g.AllReduce(ctx, buf, Mean) },
		func() error { return g.ReduceScatter(ctx, buf, Sum) },
		func() error { return g.AllGather(ctx, buf) },
		func() error { return g.Broadcast(ctx, buf, 0) },
		func() error { return g.Barrier(ctx) },
	} {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(buf, []float32{1, 2, 3}) {
		t.Fatalf("buf changed: %v", buf)
	}
	if err := g.Send(ctx, 0, buf); err == nil {
		t.Fatal("Send in a world of one: no error")
	}
	g.Close()
	if err := g.Barrier(ctx); err == nil {
		t.Fatal("Barrier after Close: no error")
	}
}

// A rank that refuses shared memory: its links use TCP, its neighbours
// have one link of each kind (and run the two-goroutine or lock-step
// path over both transports), the others' links stay shared memory.
func TestMixedTransports(t *testing.T) {
	ctx := context.Background()
	const n = 4
	for _, pipe := range []bool{false, true} {
		t.Run(fmt.Sprintf("pipelined=%v", pipe), func(t *testing.T) {
			gs := group(t, n, func(c *Config) {
				c.SegmentBytes = 4096
				c.NoSharedMemory = c.Rank == 1
			})
			if pipe {
				pipelined(gs)
			}
			if gs[0].nextShm != nil || gs[1].prevShm != nil || gs[2].prevShm != nil || gs[2].nextShm == nil || gs[3].nextShm == nil {
				t.Fatalf("links: %v %v %v %v", gs[0].nextShm != nil, gs[1].prevShm != nil, gs[2].prevShm != nil, gs[2].nextShm != nil)
			}
			for _, l := range append(slices.Clone(awkward), 100_003) {
				xs := inputs(uint64(l), n, l)
				bufs := clone(xs)
				noErrors(t, "AllReduce", each(gs, func(r int, g *Group) error { return g.AllReduce(ctx, bufs[r], Mean) }))
				want := ringReduce(xs, Mean)
				for r := range n {
					if !slices.Equal(bits(bufs[r]), bits(want)) {
						t.Fatalf("length %d: rank %d differs", l, r)
					}
				}
				for root := range n {
					bufs := clone(xs)
					noErrors(t, "Broadcast", each(gs, func(r int, g *Group) error { return g.Broadcast(ctx, bufs[r], root) }))
					for r := range n {
						if !slices.Equal(bits(bufs[r]), bits(xs[root])) {
							t.Fatalf("Broadcast length %d root %d: rank %d differs", l, root, r)
						}
					}
				}
			}
		})
	}
}
