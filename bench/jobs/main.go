// Command jobs benchmarks end-to-end job throughput and submit-to-start
// latency: it starts an hpcml server on a scratch data dir, submits N
// trivial jobs (`true`) through the REST API with C concurrent clients,
// waits for all of them, and reads the timings back from the job records.
// With -slurm it runs the same load through plain `sbatch --wrap true` on
// the Slurm cluster at hand, in the same run, for the ratio.
//
//	go run ./bench/jobs -n 1000 -c 8
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/hpcml/hpcml/bench/internal/load"
	"github.com/hpcml/hpcml/internal/job"
)

type result struct {
	Tool       string  `json:"tool"`
	Jobs       int     `json:"jobs"`
	CPUs       float64 `json:"cpus_per_job"`
	WallSec    float64 `json:"wall_seconds"`
	JobsPerSec float64 `json:"jobs_per_second"`
	// SubmitSec: how long the burst's submissions took, all clients
	// together (the jobs run meanwhile).
	SubmitSec float64 `json:"submit_seconds"`
	// Submit-to-start under the burst (includes queueing behind the burst).
	P50ms float64 `json:"burst_submit_to_start_p50_ms"`
	P99ms float64 `json:"burst_submit_to_start_p99_ms"`
	// Submit-to-start of jobs submitted one at a time to an idle system.
	IdleP50ms float64 `json:"idle_submit_to_start_p50_ms"`
	IdleP99ms float64 `json:"idle_submit_to_start_p99_ms"`
	// One array job of Jobs tasks: tasks per second from its submission
	// to its last task's end.
	ArrayPerSec float64 `json:"array_tasks_per_second,omitempty"`
}

func main() {
	n := flag.Int("n", 1000, "jobs to run in the burst")
	idle := flag.Int("idle", 200, "jobs to run one at a time for the idle latency")
	conc := flag.Int("c", 8, "concurrent submitting clients")
	cpus := flag.Float64("cpus", 1, "CPUs each job asks for")
	bin := flag.String("hpcml", "", "hpcml binary (default: build it)")
	jsonOut := flag.Bool("json", false, "print results as JSON")
	scratchBase := flag.String("scratch", "", "put job dirs (--scratch-dir) under this dir, e.g. /dev/shm; default: in the data dir")
	arrayN := flag.Int("array", 0, "also run one array job of this many tasks and report tasks/s")
	slurm := flag.Bool("slurm", false, "also run the load through plain sbatch on the cluster at $SLURM_CONF, in the same invocation")
	runs := flag.Int("runs", 1, "repeat the whole measurement; the last line is the median run (by jobs/s)")
	flag.Parse()
	ctx := context.Background()

	exe := *bin
	if exe == "" {
		exe = filepath.Join(os.TempDir(), "hpcml-bench")
		build := exec.Command("go", "build", "-o", exe, "./cmd/hpcml")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			log.Fatalf("build hpcml: %v", err)
		}
	}
	b := &bench{}
	defer b.cleanup()
	measure := func(tool string, run func() (*result, error)) *result {
		var all []*result
		for i := 0; i < *runs; i++ {
			res, err := run()
			if err != nil {
				log.Fatalf("%s: %v", tool, err)
			}
			all = append(all, res)
			if !*jsonOut {
				printResult(res, false)
			}
		}
		slices.SortFunc(all, func(a, b *result) int { return cmp.Compare(a.JobsPerSec, b.JobsPerSec) })
		median := *all[len(all)/2]
		if *runs > 1 && !*jsonOut {
			median.Tool = tool + "-median"
			printResult(&median, false)
			median.Tool = tool
		}
		return &median
	}
	if !*jsonOut {
		printResult(nil, true)
	}
	results := []*result{measure("hpcml", func() (*result, error) {
		return b.runHPCML(ctx, exe, *scratchBase, *n, *idle, *conc, *cpus, *arrayN)
	})}
	if *slurm {
		results = append(results, measure("slurm", func() (*result, error) {
			return b.runSlurm(ctx, *n, min(*idle, 20), *conc, *cpus, *arrayN)
		}))
	}
	if *jsonOut {
		json.NewEncoder(os.Stdout).Encode(results)
		return
	}
	if len(results) == 2 && results[1].JobsPerSec > 0 {
		fmt.Printf("hpcml/slurm: throughput %.1fx, idle submit-to-start p50 %.1fx lower",
			results[0].JobsPerSec/results[1].JobsPerSec, results[1].IdleP50ms/results[0].IdleP50ms)
		if results[1].ArrayPerSec > 0 {
			fmt.Printf(", array tasks/s %.1fx", results[0].ArrayPerSec/results[1].ArrayPerSec)
		}
		fmt.Println()
	}
}

func printResult(res *result, header bool) {
	if header {
		fmt.Printf("%-13s %6s %6s %8s %8s %8s %14s %14s %13s %13s\n", "tool", "jobs", "cpus", "submit_s", "wall_s", "jobs/s",
			"burst_p50_ms", "burst_p99_ms", "idle_p50_ms", "idle_p99_ms")
	}
	if res == nil {
		return
	}
	fmt.Printf("%-13s %6d %6g %8.2f %8.2f %8.1f %14.2f %14.2f %13.2f %13.2f", res.Tool, res.Jobs, res.CPUs, res.SubmitSec, res.WallSec,
		res.JobsPerSec, res.P50ms, res.P99ms, res.IdleP50ms, res.IdleP99ms)
	if res.ArrayPerSec > 0 {
		fmt.Printf("   array: %.1f tasks/s", res.ArrayPerSec)
	}
	fmt.Println()
}

// bench remembers the scratch dirs of its runs, removed only at exit: on
// ext4 without a journal, files created right after many deletions are
// slow to allocate, and a run must not pay for the previous one's cleanup.
type bench struct{ scratch []string }

func (b *bench) cleanup() {
	for _, d := range b.scratch {
		os.RemoveAll(d)
	}
}

func (b *bench) runHPCML(ctx context.Context, exe, scratchBase string, n, idle, conc int, cpus float64, arrayN int) (*result, error) {
	dir, err := os.MkdirTemp("", "hpcml-bench-*")
	if err != nil {
		return nil, err
	}
	b.scratch = append(b.scratch, dir)
	addr := "127.0.0.1:18181"
	var args []string
	if scratchBase != "" {
		sd, err := os.MkdirTemp(scratchBase, "hpcml-bench-jobs-*")
		if err != nil {
			return nil, err
		}
		b.scratch = append(b.scratch, sd)
		args = append(args, "--scratch-dir", sd)
	}
	srv, err := load.StartServer(ctx, exe, dir, addr, os.Stderr, args...)
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	c := srv.Client
	// Warm up: the first job starts the node executor.
	warm, err := c.SubmitJob(ctx, &job.Spec{Command: []string{"true"}})
	if err != nil {
		return nil, err
	}
	if _, err := c.WaitJob(ctx, fmt.Sprint(warm.ID)); err != nil {
		return nil, err
	}

	// Idle latency: one job at a time, each waited for.
	var idleLat []float64
	for i := 0; i < idle; i++ {
		j, err := c.SubmitJob(ctx, &job.Spec{Command: []string{"true"}, Resources: job.Resources{CPUs: cpus}})
		if err != nil {
			return nil, err
		}
		if j, err = c.WaitJob(ctx, fmt.Sprint(j.ID)); err != nil {
			return nil, err
		}
		if j.StartedAt == nil {
			return nil, fmt.Errorf("job %d ended %s without starting: %s", j.ID, j.State, j.Reason)
		}
		idleLat = append(idleLat, j.StartedAt.Sub(j.SubmittedAt).Seconds()*1000)
	}
	slices.Sort(idleLat)

	ids := make([]int64, n)
	start := time.Now()
	err = load.InParallel(n, conc, func(i int) error {
		j, err := c.SubmitJob(ctx, &job.Spec{Command: []string{"true"}, Resources: job.Resources{CPUs: cpus}})
		if err == nil {
			ids[i] = j.ID
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("submit: %w", err)
	}
	submitted := time.Since(start)
	// Waited for as `hpcml job wait` does: one long poll for all of them.
	names := make([]string, n)
	for i, id := range ids {
		names[i] = strconv.FormatInt(id, 10)
	}
	ended, err := c.WaitJobs(ctx, names)
	if err != nil {
		return nil, err
	}
	var lat []float64
	var lastEnd time.Time
	for i, j := range ended {
		id := ids[i]
		if j.State != job.Succeeded || j.StartedAt == nil || j.EndedAt == nil {
			return nil, fmt.Errorf("job %d ended %s: %s", id, j.State, j.Reason)
		}
		lat = append(lat, j.StartedAt.Sub(j.SubmittedAt).Seconds()*1000)
		if j.EndedAt.After(lastEnd) {
			lastEnd = *j.EndedAt
		}
	}
	wall := lastEnd.Sub(start).Seconds()
	slices.Sort(lat)
	res := &result{Tool: "hpcml", Jobs: n, CPUs: cpus, SubmitSec: submitted.Seconds(), WallSec: wall, JobsPerSec: float64(n) / wall,
		P50ms: load.Pct(lat, 0.50), P99ms: load.Pct(lat, 0.99), IdleP50ms: load.Pct(idleLat, 0.50), IdleP99ms: load.Pct(idleLat, 0.99)}
	if arrayN > 0 {
		arr, err := c.SubmitJob(ctx, &job.Spec{Command: []string{"true"}, Resources: job.Resources{CPUs: cpus},
			Array: fmt.Sprintf("0-%d", arrayN-1)})
		if err != nil {
			return nil, fmt.Errorf("submit array: %w", err)
		}
		done, err := c.WaitJob(ctx, fmt.Sprint(arr.ID))
		if err != nil {
			return nil, err
		}
		if done.State != job.Succeeded || done.EndedAt == nil {
			return nil, fmt.Errorf("array %d ended %s: %s", arr.ID, done.State, done.Reason)
		}
		res.ArrayPerSec = float64(arrayN) / done.EndedAt.Sub(done.SubmittedAt).Seconds()
	}
	return res, nil
}
