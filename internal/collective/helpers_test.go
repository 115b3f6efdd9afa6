package collective

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// freePort returns a TCP port that was free on the loopback interface a
// moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// configs returns the configs of a group of n ranks on loopback.
func configs(t *testing.T, n int, edit func(*Config)) []Config {
	port := freePort(t)
	cfgs := make([]Config, n)
	for r := range cfgs {
		cfgs[r] = Config{Rank: r, WorldSize: n, MasterAddr: "127.0.0.1", MasterPort: port, Timeout: 30 * time.Second}
		if edit != nil {
			edit(&cfgs[r])
		}
	}
	return cfgs
}

// joinAll joins every config concurrently and returns the groups (nil
// where Join failed) and the errors.
func joinAll(ctx context.Context, cfgs []Config) ([]*Group, []error) {
	gs := make([]*Group, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for r, cfg := range cfgs {
		wg.Go(func() { gs[r], errs[r] = Join(ctx, cfg) })
	}
	wg.Wait()
	return gs, errs
}

// group forms a group of n ranks as goroutines of this process, closed
// when the test ends.
func group(t *testing.T, n int, edit func(*Config)) []*Group {
	t.Helper()
	gs, errs := joinAll(context.Background(), configs(t, n, edit))
	t.Cleanup(func() {
		for _, g := range gs {
			if g != nil {
				g.Close()
			}
		}
	})
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: Join: %v", r, err)
		}
	}
	return gs
}

// each runs fn on every rank concurrently and returns the errors by rank.
func each(gs []*Group, fn func(r int, g *Group) error) []error {
	errs := make([]error, len(gs))
	var wg sync.WaitGroup
	for r, g := range gs {
		wg.Go(func() { errs[r] = fn(r, g) })
	}
	wg.Wait()
	return errs
}

func noErrors(t *testing.T, what string, errs []error) {
	t.Helper()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("%s: rank %d: %v", what, r, err)
		}
	}
}

// inputs returns n random buffers of length l, values of mixed
// magnitude so the order of additions shows in the last bits.
func inputs(seed uint64, n, l int) [][]float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	xs := make([][]float32, n)
	for r := range xs {
		xs[r] = make([]float32, l)
		for i := range xs[r] {
			xs[r][i] = float32(rng.NormFloat64() * float64(int(1)<<rng.IntN(12)))
		}
	}
	return xs
}

// ringReduce is the documented result of a reduction over the ring: for
// an element of chunk c, ((x[c+1] + x[c+2]) + ...) + x[c], divided by n
// for Mean.
func ringReduce(xs [][]float32, op Op) []float32 {
	n, l := len(xs), len(xs[0])
	out := make([]float32, l)
	for c := range n {
		lo, hi := Shard(l, n, c)
		for i := lo; i < hi; i++ {
			acc := xs[(c+1)%n][i]
			for k := 2; k <= n; k++ {
				acc += xs[(c+k)%n][i]
			}
			if op == Mean {
				acc /= float32(n)
			}
			out[i] = acc
		}
	}
	return out
}

func clone(xs [][]float32) [][]float32 {
	out := make([][]float32, len(xs))
	for i, x := range xs {
		out[i] = append([]float32(nil), x...)
	}
	return out
}

// transports are the two ways ring neighbours on one host exchange data.
var transports = []struct {
	name string
	edit func(*Config)
}{
	{"shm", nil},
	{"tcp", func(c *Config) { c.NoSharedMemory = true }},
}

// both applies a and then b.
func both(a, b func(*Config)) func(*Config) {
	return func(c *Config) {
		for _, f := range []func(*Config){a, b} {
			if f != nil {
				f(c)
			}
		}
	}
}
