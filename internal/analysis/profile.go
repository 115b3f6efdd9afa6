// Package analysis runs the data analyses of `hpcml data` — profile
// first — over a table's partitions: in this process, a partition per
// worker, or as jobs on the scheduler whose partial states a last job
// merges. Either way the same partitions make the same states, so a
// report does not depend on where it was computed.
package analysis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/hpcml/hpcml/internal/profile"
	"github.com/hpcml/hpcml/internal/table"
)

// ProfileOptions say how to read and profile a table.
type ProfileOptions struct {
	Table   table.Options
	Profile profile.Options
	// Partitions is how many parts the table is cut into (0: a few per
	// worker here; as jobs, one per Table.PartitionBytes).
	Partitions int
	// Workers is how many partitions are read at once in this process
	// (0: one per CPU).
	Workers int
	// Rows, if set, is added the rows read as they are (for progress).
	Rows *atomic.Int64
}

// Plan cuts the table at url into partitions.
func Plan(ctx context.Context, url string, opts ProfileOptions) ([]table.Partition, error) {
	parts, err := table.Split(ctx, url, opts.Table, opts.Partitions)
	if err != nil {
		return nil, err
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("%s: no data", url)
	}
	return parts, nil
}

// partitionsPerWorker is how many partitions a local profile makes per
// worker when not told.
const partitionsPerWorker = 4

// ProfileLocal profiles the table at url in this process, its
// partitions read by Workers goroutines, and merges their states in
// partition order. Without Partitions it makes a few per worker.
func ProfileLocal(ctx context.Context, url string, opts ProfileOptions) (*profile.State, []table.Partition, error) {
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if opts.Partitions <= 0 {
		// Here, partitions only spread the work: a few per worker keep
		// every core busy to the end (one per 128 MiB left the last
		// partition running alone).
		opts.Partitions = partitionsPerWorker * workers
	}
	parts, err := Plan(ctx, url, opts)
	if err != nil {
		return nil, nil, err
	}
	workers = min(workers, len(parts))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	states := make([]*profile.State, len(parts))
	errs := make([]error, len(parts))
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(parts) || ctx.Err() != nil {
					return
				}
				states[i], errs[i] = ProfilePartition(ctx, parts[i], opts)
				if errs[i] != nil {
					cancel() // the first error is the answer; stop reading
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs { // in partition order: the earliest bad row
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	merged, err := Merge(states)
	return merged, parts, err
}

// ProfilePartition reads one partition into a profile state.
func ProfilePartition(ctx context.Context, p table.Partition, opts ProfileOptions) (*profile.State, error) {
	r, err := table.OpenPartition(ctx, p, opts.Table)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	st := profile.NewState(r.Schema(), opts.Profile)
	for {
		rec, err := r.Next(ctx)
		if err == io.EOF {
			return st, nil
		}
		if err != nil {
			return nil, err
		}
		err = st.Add(rec)
		n := rec.NumRows()
		rec.Release()
		if err != nil {
			return nil, fmt.Errorf("partition %d: %w", p.Index, err)
		}
		if opts.Rows != nil {
			opts.Rows.Add(n)
		}
	}
}

// Merge merges partial states into the first, in the order given, and
// returns it.
func Merge(states []*profile.State) (*profile.State, error) {
	if len(states) == 0 {
		return nil, errors.New("no states to merge")
	}
	merged := states[0]
	for i, s := range states[1:] {
		if err := merged.Merge(s); err != nil {
			return nil, fmt.Errorf("merge partition %d: %w", i+1, err)
		}
	}
	return merged, nil
}
