package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/bench/internal/load"
)

// runSlurm runs the same load through plain sbatch on the Slurm cluster
// that SLURM_CONF points at (scripts/slurm-dev-cluster.sh up 1 gives one
// node with this machine's CPUs, the capacity hpcml's local backend has).
// Each job records when it started (`date +%s.%N`), so submit-to-start is
// measured from sbatch's call to the command's first instruction; Slurm's
// own StartTime has one-second resolution.
func (b *bench) runSlurm(ctx context.Context, n, idle, conc int, cpus float64, arrayN int) (*result, error) {
	if os.Getenv("SLURM_CONF") == "" {
		return nil, fmt.Errorf("SLURM_CONF is not set: start a cluster with scripts/slurm-dev-cluster.sh up 1 and eval its env")
	}
	dir, err := os.MkdirTemp("", "hpcml-bench-slurm-*")
	if err != nil {
		return nil, err
	}
	b.scratch = append(b.scratch, dir)
	ncpu := max(1, int(cpus+0.999)) // Slurm allocates whole CPUs
	submit := func() (string, time.Time, error) {
		at := time.Now()
		out, err := exec.CommandContext(ctx, "sbatch", "--parsable", "--cpus-per-task", strconv.Itoa(ncpu),
			"-o", filepath.Join(dir, "%j.out"), "--wrap", "date +%s.%N").Output()
		if err != nil {
			return "", at, fmt.Errorf("sbatch: %w", err)
		}
		return strings.TrimSpace(strings.Split(string(out), ";")[0]), at, nil
	}
	startedAt := func(id string) (time.Time, error) {
		b, err := os.ReadFile(filepath.Join(dir, id+".out"))
		if err != nil {
			return time.Time{}, err
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("job %s output %q: %w", id, b, err)
		}
		return time.Unix(0, int64(f*1e9)), nil
	}
	waitAll := func() error {
		for {
			out, err := exec.CommandContext(ctx, "squeue", "-h", "-o", "%i", "-t", "PD,R,CF,CG").Output()
			if err != nil {
				return fmt.Errorf("squeue: %w", err)
			}
			if strings.TrimSpace(string(out)) == "" {
				return nil
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	var idleLat []float64
	for i := 0; i < idle; i++ {
		id, at, err := submit()
		if err != nil {
			return nil, err
		}
		if err := waitAll(); err != nil {
			return nil, err
		}
		st, err := startedAt(id)
		if err != nil {
			return nil, err
		}
		idleLat = append(idleLat, st.Sub(at).Seconds()*1000)
	}
	slices.Sort(idleLat)

	ids := make([]string, n)
	subAt := make([]time.Time, n)
	start := time.Now()
	err = load.InParallel(n, conc, func(i int) error {
		id, at, err := submit()
		ids[i], subAt[i] = id, at
		return err
	})
	if err != nil {
		return nil, err
	}
	submitted := time.Since(start)
	if err := waitAll(); err != nil {
		return nil, err
	}
	end := time.Now()
	var lat []float64
	for i, id := range ids {
		st, err := startedAt(id)
		if err != nil {
			return nil, err
		}
		lat = append(lat, st.Sub(subAt[i]).Seconds()*1000)
	}
	slices.Sort(lat)
	wall := end.Sub(start).Seconds()
	res := &result{Tool: "slurm", Jobs: n, CPUs: float64(ncpu), SubmitSec: submitted.Seconds(), WallSec: wall, JobsPerSec: float64(n) / wall,
		P50ms: load.Pct(lat, 0.50), P99ms: load.Pct(lat, 0.99), IdleP50ms: load.Pct(idleLat, 0.50), IdleP99ms: load.Pct(idleLat, 0.99)}
	if arrayN > 0 {
		at := time.Now()
		if err := exec.CommandContext(ctx, "sbatch", "--parsable", "--cpus-per-task", strconv.Itoa(ncpu),
			"--array", fmt.Sprintf("0-%d", arrayN-1), "-o", "/dev/null", "--wrap", "true").Run(); err != nil {
			return nil, fmt.Errorf("sbatch --array: %w", err)
		}
		if err := waitAll(); err != nil {
			return nil, err
		}
		res.ArrayPerSec = float64(arrayN) / time.Since(at).Seconds()
	}
	return res, nil
}
