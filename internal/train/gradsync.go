package train

import (
	"context"
	"fmt"
	"time"

	"github.com/hpcml/hpcml/internal/nn"
)

// Comm is what data-parallel training needs of its process group
// (internal/collective's Group satisfies it through an adapter). Every
// rank must call the same operations in the same order.
type Comm interface {
	Rank() int
	Size() int
	// AllReduceSum replaces buf by the element-wise sum over the ranks,
	// bit-identical on every rank.
	AllReduceSum(ctx context.Context, buf []float32) error
	// Broadcast replaces buf on every rank by root's.
	Broadcast(ctx context.Context, buf []float32, root int) error
	// AllGather puts every rank's send, in rank order, into recv.
	AllGather(ctx context.Context, send, recv []float32) error
}

// bucketValues is how many gradient values one all-reduce carries: big
// enough that the transfer, not the latency, dominates, small enough that
// the first bucket leaves while the earlier layers are still computing
// (PyTorch DDP's default is 25 MB; a smaller one overlaps better on the
// small networks trained here).
const bucketValues = 256 << 10 // 1 MiB of float32

// gradSync averages gradients across data-parallel ranks in buckets that
// are all-reduced, in order, by one goroutine while the backward pass goes
// on. Each rank's gradients are weighted by its share of the global batch
// before the sum, so N ranks with batches of B give the gradient of one
// batch of N×B.
type gradSync struct {
	comm  Comm
	share float32 // this rank's examples / the global batch's, for this step

	pending []*nn.Param
	size    int
	work    chan bucket
	done    chan struct{}
	err     error // set by run, read after done

	busy  time.Duration // time spent in all-reduce
	bytes int64         // bytes all-reduced

	// buf is the all-reduce buffer, run's alone, kept from step to step:
	// grown value by value with append it cost ~4 MiB of allocation and
	// copying per step for LeNet's 215k gradients, on the critical path
	// after the backward pass.
	buf []float32
}

// bucket is a set of parameters to reduce; the last of a step also
// carries the step's extras (loss, counts) to sum.
type bucket struct {
	params []*nn.Param
	extras []float32
}

// begin starts a step's synchronisation; layerDone and finish follow.
func (g *gradSync) begin(ctx context.Context, share float64) {
	g.share = float32(share)
	g.pending, g.size = g.pending[:0], 0
	g.work = make(chan bucket, 64)
	g.done = make(chan struct{})
	go g.run(ctx)
}

// layerDone hands over the parameters whose gradients are final.
func (g *gradSync) layerDone(params []*nn.Param) {
	for _, p := range params {
		g.pending = append(g.pending, p)
		g.size += len(p.Grad.Data)
	}
	if g.size >= bucketValues {
		g.work <- bucket{params: g.pending}
		g.pending, g.size = nil, 0
	}
}

// finish reduces what is left together with extras (replaced by their
// sum over the ranks) and waits for every bucket.
func (g *gradSync) finish(extras []float32) error {
	g.work <- bucket{params: g.pending, extras: extras} // possibly no params: it carries the extras
	g.pending = nil
	close(g.work)
	<-g.done
	return g.err
}

func (g *gradSync) run(ctx context.Context) {
	defer close(g.done)
	for b := range g.work {
		if g.err != nil {
			continue // drain
		}
		n := len(b.extras)
		for _, p := range b.params {
			n += len(p.Grad.Data)
		}
		if cap(g.buf) < n {
			g.buf = make([]float32, n)
		}
		buf := g.buf[:n]
		off := 0
		for _, p := range b.params {
			scaleInto(buf[off:off+len(p.Grad.Data)], p.Grad.Data, g.share)
			off += len(p.Grad.Data)
		}
		copy(buf[off:], b.extras)
		start := time.Now()
		if err := g.comm.AllReduceSum(ctx, buf); err != nil {
			g.err = fmt.Errorf("average gradients: %w", err)
			continue
		}
		g.busy += time.Since(start)
		g.bytes += int64(4 * len(buf))
		off = 0
		for _, p := range b.params {
			off += copy(p.Grad.Data, buf[off:])
		}
		copy(b.extras, buf[off:])
	}
}

// scaleInto sets dst to src × s (len(dst) == len(src)).
func scaleInto(dst, src []float32, s float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = v * s
	}
}
