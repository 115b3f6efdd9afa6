package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/hpcml/hpcml/internal/collective"
)

// rank is one hpcml rank: it joins from the HPCML_* variables, as a
// program in an hpcml job would, and times AllReduce like the other
// runners. Args: MIN MAX FACTOR TARGET MIN_ITERS MAX_ITERS SEGMENT_BYTES
// TCP_ONLY.
func rank(args []string) error {
	if len(args) != 8 {
		return fmt.Errorf("want 8 arguments, got %d", len(args))
	}
	tcp, err := strconv.ParseBool(args[7])
	if err != nil {
		return fmt.Errorf("argument 8: %w", err)
	}
	v := make([]int64, 7)
	for i, a := range args[:7] {
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			return fmt.Errorf("argument %d: %w", i+1, err)
		}
		v[i] = n
	}
	minb, maxb, factor, target, minIters, maxIters := v[0], v[1], v[2], v[3], v[4], v[5]
	ctx := context.Background()
	cfg, err := collective.ConfigFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	cfg.SegmentBytes = int(v[6])
	cfg.NoSharedMemory = tcp
	g, err := collective.Join(ctx, cfg)
	if err != nil {
		return err
	}
	defer g.Close()
	buf := make([]float32, maxb/4)
	times := make([]float32, g.Size())
	for size := minb; size <= maxb; size *= factor {
		b := buf[:size/4]
		iters := min(max(target/size, minIters), maxIters)
		for range max(2, iters/10) {
			if err := g.AllReduce(ctx, b, collective.Sum); err != nil {
				return err
			}
		}
		if err := g.Barrier(ctx); err != nil {
			return err
		}
		start := time.Now()
		for range iters {
			if err := g.AllReduce(ctx, b, collective.Sum); err != nil {
				return err
			}
		}
		avg := time.Since(start).Seconds() / float64(iters)
		// The maximum over ranks: each fills its own slot, a sum gathers them.
		clear(times)
		times[g.Rank()] = float32(avg)
		if err := g.AllReduce(ctx, times, collective.Sum); err != nil {
			return err
		}
		if g.Rank() == 0 {
			fmt.Printf("%d %d %.9f\n", size, iters, slices.Max(times))
		}
		// Not timed: the result must be right, or the time means nothing.
		for i := range b {
			b[i] = float32(g.Rank() + 1 + i%3)
		}
		if err := g.AllReduce(ctx, b, collective.Sum); err != nil {
			return err
		}
		n := g.Size()
		for i, v := range b {
			if want := float32(n*(n+1)/2 + n*(i%3)); v != want {
				return fmt.Errorf("%d bytes: element %d = %v, want %v", size, i, v, want)
			}
		}
		clear(b)
	}
	return nil
}
