package train

import (
	"context"
	"fmt"

	"github.com/hpcml/hpcml/internal/collective"
)

// GroupComm adapts a collective.Group to what data- and pipeline-parallel
// training need of it.
func GroupComm(g *collective.Group) PipeComm { return groupComm{g} }

type groupComm struct{ g *collective.Group }

func (c groupComm) Rank() int { return c.g.Rank() }
func (c groupComm) Size() int { return c.g.Size() }

func (c groupComm) AllReduceSum(ctx context.Context, buf []float32) error {
	return c.g.AllReduce(ctx, buf, collective.Sum)
}

func (c groupComm) Broadcast(ctx context.Context, buf []float32, root int) error {
	return c.g.Broadcast(ctx, buf, root)
}

// AllGather places send in this rank's shard of a buffer the group fills.
func (c groupComm) AllGather(ctx context.Context, send, recv []float32) error {
	n := c.g.Size()
	if len(recv) != n*len(send) {
		return fmt.Errorf("all-gather: %d values received for %d ranks of %d", len(recv), n, len(send))
	}
	lo, hi := collective.Shard(len(recv), n, c.g.Rank())
	if hi-lo != len(send) {
		return fmt.Errorf("all-gather: shard [%d, %d) for %d values", lo, hi, len(send))
	}
	copy(recv[lo:hi], send)
	return c.g.AllGather(ctx, recv)
}

func (c groupComm) Send(ctx context.Context, to int, buf []float32) error {
	return c.g.Send(ctx, to, buf)
}

func (c groupComm) Recv(ctx context.Context, from int, buf []float32) error {
	return c.g.Recv(ctx, from, buf)
}
