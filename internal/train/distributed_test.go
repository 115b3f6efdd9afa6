package train

import (
	"context"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/collective"
)

// groups joins n ranks as goroutines of this process over loopback TCP.
func groups(t *testing.T, n int) []*collective.Group {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	gs := make([]*collective.Group, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range gs {
		wg.Go(func() {
			gs[r], errs[r] = collective.Join(context.Background(), collective.Config{Rank: r, WorldSize: n,
				MasterAddr: "127.0.0.1", MasterPort: port, Timeout: 30 * time.Second})
		})
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	t.Cleanup(func() {
		for _, g := range gs {
			g.Close()
		}
	})
	return gs
}

// runRanks runs cfg on n ranks sharing one output, as a job's tasks do.
func runRanks(t *testing.T, cfg Config, n int) string {
	t.Helper()
	out, dir := outDir(t)
	gs := groups(t, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range gs {
		wg.Go(func() {
			_, errs[r] = Run(context.Background(), cfg, Options{Out: out, Comm: GroupComm(gs[r])})
		})
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	return dir
}

// finalWeights are the weights of a run's newest checkpoint (the one at
// its last epoch's end).
func finalWeights(t *testing.T, dir string) []float32 {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "checkpoints", "ckpt-*.bin"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no checkpoints in %s: %v", dir, err)
	}
	data, err := os.ReadFile(names[len(names)-1])
	if err != nil {
		t.Fatal(err)
	}
	c, err := DecodeCheckpoint(data)
	if err != nil {
		t.Fatal(err)
	}
	return c.Weights
}

// closeWeights compares two weight vectors within float32 round-off
// of differently ordered sums.
func closeWeights(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d weights, want %d", what, len(got), len(want))
	}
	var worst float64
	for i := range got {
		d := math.Abs(float64(got[i] - want[i]))
		if d > 1e-4+1e-3*math.Abs(float64(want[i])) {
			t.Fatalf("%s: weight %d is %g, want %g", what, i, got[i], want[i])
		}
		worst = max(worst, d)
	}
	t.Logf("%s: %d weights agree, largest difference %.3g", what, len(got), worst)
}

// TestDataParallelEqualsOneBigBatch: N workers with batches of B end
// with the weights of one worker with batches of N×B.
func TestDataParallelEqualsOneBigBatch(t *testing.T) {
	// 549 training rows: an epoch's last global batch does not split
	// evenly (5 rows for 2 ranks), so the ranks' shares must weigh in.
	csv := writeCSV(t, moonsCSV(610))
	for _, n := range []int{2, 3} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			base := Config{Algorithm: "mlp", Data: csv, Label: "y", Epochs: 3, Seed: 5,
				HP: map[string]string{"hidden": "32,16", "patience": "0", "batch_size": strconv.Itoa(16 * n), "optimizer": "sgd", "lr": "0.1"}}
			out, oneDir := outDir(t)
			if _, err := Run(context.Background(), base, Options{Out: out}); err != nil {
				t.Fatal(err)
			}
			dp := base
			dp.Workers = n
			dp.HP = map[string]string{"hidden": "32,16", "patience": "0", "batch_size": "16", "optimizer": "sgd", "lr": "0.1"}
			dpDir := runRanks(t, dp, n)
			closeWeights(t, "data parallel", finalWeights(t, dpDir), finalWeights(t, oneDir))
			if _, err := os.Stat(filepath.Join(dpDir, ModelFile)); err != nil {
				t.Fatalf("rank 0 wrote no model: %v", err)
			}
		})
	}
}

// TestPipelineEqualsUnpartitioned: the network cut into K stages, each
// batch into micro-batches, trains to the weights of the whole network.
func TestPipelineEqualsUnpartitioned(t *testing.T) {
	csv := writeCSV(t, moonsCSV(600))
	for _, k := range []int{2, 3} {
		t.Run(strconv.Itoa(k), func(t *testing.T) {
			hp := map[string]string{"hidden": "32,32,16", "patience": "0", "batch_size": "32", "micro_batches": "4", "activation": "tanh"}
			base := Config{Algorithm: "mlp", Data: csv, Label: "y", Epochs: 3, Seed: 7, HP: hp}
			out, oneDir := outDir(t)
			if _, err := Run(context.Background(), base, Options{Out: out}); err != nil {
				t.Fatal(err)
			}
			pp := base
			pp.PipelineStages = k
			ppDir := runRanks(t, pp, k)
			closeWeights(t, "pipeline", finalWeights(t, ppDir), finalWeights(t, oneDir))
			if _, err := os.Stat(filepath.Join(ppDir, ModelFile)); err != nil {
				t.Fatalf("rank 0 wrote no model: %v", err)
			}
		})
	}
}
