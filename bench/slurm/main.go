// Command slurm measures what hpcml adds on top of Slurm: N trivial jobs
// submitted through hpcml to a queue on the Slurm backend against the
// same N jobs submitted with plain `sbatch --wrap`, on the cluster that
// SLURM_CONF points at, in the same invocation.
//
//	scripts/slurm-dev-cluster.sh up 2 && eval "$(scripts/slurm-dev-cluster.sh env)"
//	go run ./bench/slurm -n 100
//
// Both sides submit from -c concurrent clients and are done when the
// client sees every job ended. Each job records when its command started
// (`date +%s.%N`), so submit-to-start is measured from the submitting
// call to the command's first instruction (Slurm's own times have
// one-second resolution).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/bench/internal/load"
	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
)

// result is one tool's run.
type result struct {
	Tool        string  `json:"tool"`
	Jobs        int     `json:"jobs"`
	WallSec     float64 `json:"wall_s"`
	JobsPerSec  float64 `json:"jobs_per_s"`
	StartP50ms  float64 `json:"submit_to_start_p50_ms"`
	StartP99ms  float64 `json:"submit_to_start_p99_ms"`
	IdleStartms float64 `json:"idle_submit_to_start_p50_ms"`
}

func main() {
	n := flag.Int("n", 100, "jobs per tool")
	conc := flag.Int("c", 4, "concurrent submitting clients")
	idle := flag.Int("idle", 5, "jobs run one at a time for the idle submit-to-start latency")
	runs := flag.Int("runs", 1, "repeat both measurements (alternating); the median run counts")
	bin := flag.String("hpcml", "", "hpcml binary (default: build it)")
	jsonOut := flag.Bool("json", false, "print results as JSON")
	flag.Parse()
	if os.Getenv("SLURM_CONF") == "" {
		log.Fatal("SLURM_CONF is not set: scripts/slurm-dev-cluster.sh up 2 && eval \"$(scripts/slurm-dev-cluster.sh env)\"")
	}
	ctx := context.Background()
	exe := *bin
	if exe == "" {
		exe = filepath.Join(os.TempDir(), "hpcml-bench-slurm")
		build := exec.Command("go", "build", "-o", exe, "./cmd/hpcml")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			log.Fatalf("build hpcml: %v", err)
		}
	}
	var sb, hp []*result
	for i := 0; i < *runs; i++ {
		r, err := runSbatch(ctx, *n, *conc, *idle)
		if err != nil {
			log.Fatalf("sbatch: %v", err)
		}
		sb = append(sb, r)
		if r, err = runHPCML(ctx, exe, *n, *conc, *idle); err != nil {
			log.Fatalf("hpcml: %v", err)
		}
		hp = append(hp, r)
	}
	med := func(rs []*result) *result {
		slices.SortFunc(rs, func(a, b *result) int { return int((a.WallSec - b.WallSec) * 1e6) })
		return rs[len(rs)/2]
	}
	s, h := med(sb), med(hp)
	if *jsonOut {
		json.NewEncoder(os.Stdout).Encode(map[string]any{"sbatch": s, "hpcml": h, "overhead": h.WallSec/s.WallSec - 1})
		return
	}
	fmt.Printf("%-7s %5s %8s %7s %14s %14s %15s\n", "tool", "jobs", "wall_s", "jobs/s", "start_p50_ms", "start_p99_ms", "idle_start_ms")
	for _, r := range []*result{s, h} {
		fmt.Printf("%-7s %5d %8.2f %7.2f %14.0f %14.0f %15.0f\n", r.Tool, r.Jobs, r.WallSec, r.JobsPerSec, r.StartP50ms, r.StartP99ms, r.IdleStartms)
	}
	fmt.Printf("hpcml overhead over sbatch: %+.1f%% wall time, %+.0f ms idle submit-to-start\n",
		(h.WallSec/s.WallSec-1)*100, h.IdleStartms-s.IdleStartms)
}

// startedAt reads the `date +%s.%N` a job printed.
func startedAt(out []byte) (time.Time, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("job output %q: %w", out, err)
	}
	return time.Unix(0, int64(f*1e9)), nil
}

func runSbatch(ctx context.Context, n, conc, idle int) (*result, error) {
	dir, err := os.MkdirTemp("", "hpcml-bench-sbatch-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	submit := func() (string, time.Time, error) {
		at := time.Now()
		out, err := exec.CommandContext(ctx, "sbatch", "--parsable", "-o", filepath.Join(dir, "%j.out"), "--wrap", "date +%s.%N").Output()
		if err != nil {
			return "", at, fmt.Errorf("sbatch: %w", err)
		}
		id, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
		return id, at, nil
	}
	waitAll := func(ids []string) error {
		for {
			out, err := exec.CommandContext(ctx, "squeue", "-h", "-o", "%i", "-t", "PD,R,CF,CG", "-j", strings.Join(ids, ",")).Output()
			if err != nil {
				return fmt.Errorf("squeue: %w", err)
			}
			if strings.TrimSpace(string(out)) == "" {
				return nil
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	latency := func(id string, at time.Time) (float64, error) {
		b, err := os.ReadFile(filepath.Join(dir, id+".out"))
		if err != nil {
			return 0, err
		}
		st, err := startedAt(b)
		return st.Sub(at).Seconds() * 1000, err
	}
	var idleLat []float64
	for i := 0; i < idle; i++ {
		id, at, err := submit()
		if err != nil {
			return nil, err
		}
		if err := waitAll([]string{id}); err != nil {
			return nil, err
		}
		l, err := latency(id, at)
		if err != nil {
			return nil, err
		}
		idleLat = append(idleLat, l)
	}
	ids := make([]string, n)
	subAt := make([]time.Time, n)
	start := time.Now()
	if err := load.InParallel(n, conc, func(i int) error {
		var err error
		ids[i], subAt[i], err = submit()
		return err
	}); err != nil {
		return nil, err
	}
	if err := waitAll(ids); err != nil {
		return nil, err
	}
	wall := time.Since(start).Seconds()
	var lat []float64
	for i, id := range ids {
		l, err := latency(id, subAt[i])
		if err != nil {
			return nil, err
		}
		lat = append(lat, l)
	}
	return summarize("sbatch", n, wall, lat, idleLat), nil
}

func runHPCML(ctx context.Context, exe string, n, conc, idle int) (*result, error) {
	dir, err := os.MkdirTemp("", "hpcml-bench-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	addr := "127.0.0.1:18182"
	srv, err := load.StartServer(ctx, exe, dir, addr, nil, "--backend", "slurm")
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	c := srv.Client
	spec := job.Spec{Command: []string{"date +%s.%N"}, Shell: true}
	submit := func() (int64, time.Time, error) {
		at := time.Now()
		sp := spec
		j, err := c.SubmitJob(ctx, &sp)
		if err != nil {
			return 0, at, err
		}
		return j.ID, at, nil
	}
	latency := func(id int64, at time.Time) (float64, error) {
		j, err := c.WaitJob(ctx, fmt.Sprint(id))
		if err != nil {
			return 0, err
		}
		if j.State != job.Succeeded {
			return 0, fmt.Errorf("job %d ended %s: %s", id, j.State, j.Reason)
		}
		rc, err := c.Logs(ctx, fmt.Sprint(id), client.LogOptions{})
		if err != nil {
			return 0, err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			return 0, err
		}
		st, err := startedAt(b)
		return st.Sub(at).Seconds() * 1000, err
	}
	var idleLat []float64
	for i := 0; i < idle; i++ {
		id, at, err := submit()
		if err != nil {
			return nil, err
		}
		l, err := latency(id, at)
		if err != nil {
			return nil, err
		}
		idleLat = append(idleLat, l)
	}
	ids := make([]int64, n)
	subAt := make([]time.Time, n)
	start := time.Now()
	if err := load.InParallel(n, conc, func(i int) error {
		var err error
		ids[i], subAt[i], err = submit()
		return err
	}); err != nil {
		return nil, err
	}
	for _, id := range ids {
		if _, err := c.WaitJob(ctx, fmt.Sprint(id)); err != nil {
			return nil, err
		}
	}
	wall := time.Since(start).Seconds()
	var lat []float64
	for i, id := range ids {
		l, err := latency(id, subAt[i])
		if err != nil {
			return nil, err
		}
		lat = append(lat, l)
	}
	return summarize("hpcml", n, wall, lat, idleLat), nil
}

func summarize(tool string, n int, wall float64, lat, idleLat []float64) *result {
	slices.Sort(lat)
	slices.Sort(idleLat)
	return &result{Tool: tool, Jobs: n, WallSec: wall, JobsPerSec: float64(n) / wall,
		StartP50ms: load.Pct(lat, 0.5), StartP99ms: load.Pct(lat, 0.99), IdleStartms: load.Pct(idleLat, 0.5)}
}
