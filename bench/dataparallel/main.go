// Command dataparallel measures data-parallel training on this machine:
// training samples/s of the cnn algorithm's default LeNet on MNIST with two
// single-threaded workers against one, for hpcml (internal/train over
// internal/collective) and, in the same run, for PyTorch's
// DistributedDataParallel over gloo.
//
//	make bench-dataparallel
//	go run ./bench/dataparallel                       # -runs 3 -warmup 20 -steps 400
//	go run ./bench/dataparallel -tools hpcml -runs 1 -cpuprofile /tmp/dp -trace /tmp/dp
//	go run ./bench/dataparallel -tools hpcml -calls -save /tmp/dp.json   # every all-reduce's timestamps
//	go run ./bench/dataparallel -pin                  # rank r on CPU r (taskset)
//
// hpcml: the benchmark binary re-executes itself as the ranks, one OS
// process per worker with GOMAXPROCS=1 set in its environment, and each
// rank does what an `hpcml train --workers N --cpus 1` task (hpcml __run)
// does: it joins the others through collective.Join from the HPCML_*
// variables (with the same config fingerprint), then calls train.Run with
// the group as its Comm. One worker runs train.Run without a Comm, as a
// one-task job does. The run is the cnn algorithm with its defaults (LeNet:
// conv 16 5×5, relu, maxpool, conv 32 5×5, relu, maxpool, dense 128, relu,
// dropout 0.25, dense 10; Adam, lr 1e-3, batch 64 per worker, inputs
// standardised) except validation=0 (no held-out split), patience=0 and
// checkpoints only at the end, on a subset of MNIST's training images of
// exactly (warmup+steps) × 64 × workers images, one epoch: every
// configuration runs warmup+steps steps of 64 images per worker. Samples/s
// is steps × 64 × workers over the time between the metric points rank 0
// wrote to metrics.jsonl at the end of step warmup and of step
// warmup+steps (log_every 10), so it counts everything the trainer does
// between them (slicing the batch, the metrics' gather). The compute and
// wait breakdown is the sum of those windows' rank{r}_compute_seconds,
// rank{r}_comm_wait_seconds, comm_seconds and (weighted) allreduce_gbps.
// Each rank also measures itself over the same steps (CPU, GC, allocation,
// page faults, context switches) and timestamps its all-reduce calls; the
// driver splits the all-reduces' time into waiting for the last rank to
// call (the ranks' compute skew) and the transfer after it.
//
// PyTorch: bench/dataparallel/ddp_bench.py on /usr/bin/python3 (Debian's
// python3-torch 1.13), one process per worker started by this program with
// RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT, torch.set_num_threads(1)
// and OMP/OPENBLAS/MKL_NUM_THREADS=1; the same net, Adam, batch 64 per
// worker, the same data subset and steps; DistributedDataParallel over
// gloo for two workers, the plain model for one. It times the steps after
// a barrier; samples/s is the global samples over the slower rank's time.
//
// With -runs R every configuration runs R times, in rotating order; the
// median run counts, and the ratio is the median of two workers over the
// median of one (goal ≥ 1.7×); the ratios of each run's pair are printed
// too. others_cpu is the CPU time the rest of the machine used during the
// timed steps (/proc/stat minus the ranks' own), steal the time the
// hypervisor took from this VM's CPUs. With -max-others S a run during
// which others used more than S CPU-seconds is thrown away and made again
// (the log says so; the report counts them in "repeated").
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/bench/internal/load"
	"github.com/hpcml/hpcml/internal/train"
)

//go:embed ddp_bench.py
var torchScript []byte

// childEnv makes this binary a rank (its value: the rankSpec as JSON).
const childEnv = "HPCML_BENCH_DATAPARALLEL_RANK"

type params struct {
	batch, warmup, steps, logEvery int
	seed                           uint64
	lr                             float64
	dataDir                        string // the MNIST files
	tmp                            string
	python                         string
	script                         string
	cpuProfile, trace              string
	keep                           bool
	calls                          bool // keep the ranks' all-reduce timestamps in the report
	pin                            bool // rank r on CPU r mod NumCPU (taskset)
}

// result is one configuration's run.
type result struct {
	Tool          string  `json:"tool"`
	Workers       int     `json:"workers"`
	Run           int     `json:"run"`
	SamplesPerSec float64 `json:"samples_per_sec"`
	Seconds       float64 `json:"seconds"`
	MsPerStep     float64 `json:"ms_per_step"`
	CPUSeconds    float64 `json:"cpu_seconds"`        // the ranks' own, summed
	OtherCPU      float64 `json:"others_cpu_seconds"` // the rest of the machine's
	Steal         float64 `json:"steal_seconds"`      // the hypervisor's, both CPUs
	Repeated      int     `json:"repeated,omitempty"` // disturbed runs before this one (-max-others)
	// hpcml: the rank processes' own measurements and the metrics'
	// breakdown; PyTorch: each rank's output.
	Ranks     []rankStats `json:"ranks,omitempty"`
	Breakdown *breakdown  `json:"breakdown,omitempty"`
	Torch     []torchRank `json:"pytorch_ranks,omitempty"`
}

// breakdown is the sum over the timed metrics windows of hpcml's
// data-parallel metrics.
type breakdown struct {
	Compute       []float64 `json:"rank_compute_seconds"`
	CommWait      []float64 `json:"rank_comm_wait_seconds"`
	Other         []float64 `json:"rank_other_seconds"` // window time minus compute and wait: slicing, metrics
	RankRate      []float64 `json:"rank_samples_per_sec"`
	CommSeconds   float64   `json:"comm_seconds"`
	AllReduceGBps float64   `json:"allreduce_gbps"`
	Windows       int       `json:"windows"`
	// From the ranks' own timestamps of their all-reduce calls: the time
	// each rank's calls waited for the last rank to call, and the time
	// from that last call to its return (the transfer proper, with its
	// wake-ups), summed over the timed steps.
	ArrivalWait []float64 `json:"rank_allreduce_arrival_wait_seconds"`
	Transfer    []float64 `json:"rank_allreduce_transfer_seconds"`
}

type torchRank struct {
	Rank         int                `json:"rank"`
	Seconds      float64            `json:"seconds"`
	CPUSeconds   float64            `json:"cpu_seconds"`
	MachineBusy  float64            `json:"machine_busy_seconds"`
	MachineSteal float64            `json:"machine_steal_seconds"`
	Phases       map[string]float64 `json:"phases"`
	Torch        string             `json:"torch"`
	Threads      int                `json:"threads"`
	Python       string             `json:"python"`
}

type report struct {
	Machine  string            `json:"machine"`
	Versions map[string]string `json:"versions"`
	LoadAvg  string            `json:"loadavg_at_start"`
	Batch    int               `json:"batch_per_worker"`
	Warmup   int               `json:"warmup_steps"`
	Steps    int               `json:"steps"`
	Runs     []result          `json:"runs"`
	Summary  []summary         `json:"summary"`
}

type summary struct {
	Tool string `json:"tool"`
	// OneRuns and TwoRuns are the first and second worker counts'
	// samples/s, run by run; Ratio is their medians' ratio.
	OneRuns      []float64 `json:"one_worker_samples_per_sec"`
	TwoRuns      []float64 `json:"two_workers_samples_per_sec"`
	OneMedian    float64   `json:"one_worker_median"`
	TwoMedian    float64   `json:"two_workers_median"`
	Ratio        float64   `json:"ratio"`
	PairedRatios []float64 `json:"paired_ratios"` // run by run
}

func main() {
	if spec := os.Getenv(childEnv); spec != "" {
		if err := rank(spec); err != nil {
			fmt.Fprintln(os.Stderr, "hpcml rank:", err)
			os.Exit(1)
		}
		return
	}
	log.SetFlags(0)
	log.SetPrefix("bench/dataparallel: ")
	var p params
	flag.IntVar(&p.batch, "batch", 64, "batch size per worker")
	flag.IntVar(&p.warmup, "warmup", 20, "untimed steps first (a multiple of -log-every)")
	flag.IntVar(&p.steps, "steps", 400, "timed steps (a multiple of -log-every)")
	flag.IntVar(&p.logEvery, "log-every", 10, "hpcml's metrics window, in steps")
	flag.Uint64Var(&p.seed, "seed", 1, "seed")
	flag.Float64Var(&p.lr, "lr", 1e-3, "Adam learning rate")
	runs := flag.Int("runs", 3, "runs of every configuration; the median counts")
	maxOthers := flag.Float64("max-others", 0, "repeat a run (up to 5 times, after 30 s) during which the rest of the machine used more than this many CPU-seconds (0: never)")
	workers := flag.String("workers", "1,2", "worker counts")
	tools := flag.String("tools", "hpcml,pytorch", "sides: hpcml, pytorch")
	flag.StringVar(&p.dataDir, "data", "/var/cache/hpcml-samples/mnist", "MNIST's IDX files (scripts/sample-data.sh)")
	flag.StringVar(&p.python, "python", "/usr/bin/python3", "Python with PyTorch (Debian's python3-torch)")
	flag.StringVar(&p.cpuProfile, "cpuprofile", "", "hpcml ranks write CPU profiles of their timed steps to PREFIX-wN-rankR-runK.pprof")
	flag.StringVar(&p.trace, "trace", "", "hpcml ranks write execution traces of their timed steps to PREFIX-wN-rankR-runK.trace")
	flag.BoolVar(&p.keep, "keep", false, "keep the scratch directory (runs' metrics.jsonl)")
	flag.BoolVar(&p.pin, "pin", false, "pin rank r to CPU r (taskset; hpcml's executor does not pin tasks)")
	flag.BoolVar(&p.calls, "calls", false, "keep every timed all-reduce's start and end (Unix ns) per hpcml rank in the JSON report")
	out := flag.String("o", "table", "output: table or json")
	save := flag.String("save", "", "also write the JSON report to this file")
	flag.Parse()
	if p.batch < 1 || p.steps < 1 || p.warmup < 0 || p.logEvery < 1 || *runs < 1 {
		log.Fatal("-batch, -steps, -log-every and -runs must be at least 1, -warmup at least 0")
	}
	if p.warmup%p.logEvery != 0 || p.steps%p.logEvery != 0 || p.warmup == 0 {
		log.Fatalf("-warmup (%d) and -steps (%d) must be positive multiples of -log-every (%d)", p.warmup, p.steps, p.logEvery)
	}
	var counts []int
	for _, w := range strings.Split(*workers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 1 || n > 16 {
			log.Fatalf("-workers %q: want counts from 1 to 16", *workers)
		}
		counts = append(counts, n)
	}
	sides := strings.Split(*tools, ",")
	for _, s := range sides {
		if s != "hpcml" && s != "pytorch" {
			log.Fatalf("-tools: unknown side %q (want hpcml, pytorch)", s)
		}
	}

	var err error
	if p.tmp, err = os.MkdirTemp("", "hpcml-bench-dataparallel-*"); err != nil {
		log.Fatal(err)
	}
	if p.keep {
		log.Printf("scratch directory: %s", p.tmp)
	} else {
		defer os.RemoveAll(p.tmp)
	}
	rep := report{Machine: machine(), LoadAvg: load.LoadAvg(), Batch: p.batch, Warmup: p.warmup, Steps: p.steps,
		Versions: map[string]string{"go": runtime.Version(), "hpcml": load.TreeVersion()}}
	log.Printf("%s; load average %s; batch %d per worker, %d warm-up + %d timed steps, %d runs", rep.Machine, rep.LoadAvg, p.batch, p.warmup, p.steps, *runs)

	// Subsets of MNIST with exactly the images the steps take.
	images, labels, err := readMNIST(p.dataDir)
	if err != nil {
		log.Fatalf("%v (scripts/sample-data.sh fetches MNIST)", err)
	}
	for _, w := range counts {
		n := (p.warmup + p.steps) * p.batch * w
		if err := writeSubset(filepath.Join(p.tmp, fmt.Sprintf("data-w%d", w)), images, labels, n); err != nil {
			log.Fatal(err)
		}
	}
	if slices.Contains(sides, "pytorch") {
		if _, err := load.LookPath(p.python, "python3", "scripts/bench-deps.sh train installs Debian's python3-torch"); err != nil {
			log.Fatal(err)
		}
		p.script = filepath.Join(p.tmp, "ddp_bench.py")
		if err := os.WriteFile(p.script, torchScript, 0o644); err != nil {
			log.Fatal(err)
		}
	}

	type cfg struct {
		tool    string
		workers int
	}
	var cfgs []cfg
	for _, s := range sides {
		for _, w := range counts {
			cfgs = append(cfgs, cfg{s, w})
		}
	}
	for run := 1; run <= *runs; run++ {
		for i := range cfgs {
			c := cfgs[(i+run-1)%len(cfgs)] // rotate, so no configuration always follows the same one
			var r result
			for attempt := 0; ; attempt++ {
				var err error
				if c.tool == "hpcml" {
					r, err = runHpcml(p, c.workers, run)
				} else {
					r, err = runTorch(p, c.workers, run)
					if err == nil && len(r.Torch) > 0 {
						rep.Versions["pytorch"] = r.Torch[0].Torch
						rep.Versions["python"] = r.Torch[0].Python
					}
				}
				if err != nil {
					log.Fatalf("%s, %d workers, run %d: %v", c.tool, c.workers, run, err)
				}
				r.Repeated = attempt
				if *maxOthers <= 0 || r.OtherCPU <= *maxOthers || attempt == 5 {
					break
				}
				log.Printf("run %d: %s %d worker(s): %.0f samples/s, but the rest of the machine used %.1f CPU-s meanwhile: again in 30 s",
					run, c.tool, c.workers, r.SamplesPerSec, r.OtherCPU)
				time.Sleep(30 * time.Second)
			}
			log.Printf("run %d: %-7s %d worker(s): %7.0f samples/s  %6.2f ms/step  cpu %6.2fs  others' cpu %5.2fs  steal %4.2fs%s",
				run, c.tool, c.workers, r.SamplesPerSec, r.MsPerStep, r.CPUSeconds, r.OtherCPU, r.Steal, r.detail())
			rep.Runs = append(rep.Runs, r)
		}
	}
	for _, s := range sides {
		rep.Summary = append(rep.Summary, summarize(rep.Runs, s, counts))
	}
	js, _ := json.MarshalIndent(rep, "", "  ")
	if *save != "" {
		if err := os.WriteFile(*save, append(js, '\n'), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	if *out == "json" {
		fmt.Println(string(js))
		return
	}
	printTable(rep, counts)
}

// detail is a run's one-line breakdown.
func (r result) detail() string {
	var b strings.Builder
	if bd := r.Breakdown; bd != nil {
		for i := range bd.Compute {
			fmt.Fprintf(&b, "  r%d compute %.2fs wait %.2fs other %.2fs", i, bd.Compute[i], bd.CommWait[i], bd.Other[i])
		}
		fmt.Fprintf(&b, "  all-reduce %.3fs %.2f GB/s", bd.CommSeconds, bd.AllReduceGBps)
		for i := range bd.ArrivalWait {
			fmt.Fprintf(&b, "  r%d all-reduce: waits for the last %.3fs, transfer %.3fs", i, bd.ArrivalWait[i], bd.Transfer[i])
		}
	}
	for _, rs := range r.Ranks {
		fmt.Fprintf(&b, "  r%d cpu %.2fs (sys %.2fs) gc %d (%.2fs) alloc %.0f MiB faults %d ivcsw %d", rs.Rank, rs.CPUSeconds, rs.SysSeconds,
			rs.GCCycles, rs.GCCPU, float64(rs.AllocBytes)/(1<<20), rs.MinorFaults, rs.InvoluntaryCtx)
	}
	for _, t := range r.Torch {
		fmt.Fprintf(&b, "  r%d fwd %.2fs bwd %.2fs opt %.2fs data %.2fs", t.Rank, t.Phases["forward"], t.Phases["backward"], t.Phases["optimizer"], t.Phases["data"])
	}
	return b.String()
}

// runHpcml trains on n rank processes of this binary.
func runHpcml(p params, n, run int) (result, error) {
	out := filepath.Join(p.tmp, fmt.Sprintf("hpcml-w%d-run%d", n, run))
	cfg := train.Config{Algorithm: "cnn", Data: filepath.Join(p.tmp, fmt.Sprintf("data-w%d", n)), Epochs: 1, Seed: p.seed,
		HP: map[string]string{"batch_size": strconv.Itoa(p.batch), "lr": strconv.FormatFloat(p.lr, 'g', -1, 64), "optimizer": "adam",
			"validation": "0", "patience": "0", "checkpoint_every": "1000000", "log_every": strconv.Itoa(p.logEvery)}}
	if n > 1 {
		cfg.Workers = n
	}
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	port, err := load.FreePort()
	if err != nil {
		return result{}, err
	}
	argv := make([][]string, n)
	env := make([][]string, n)
	for r := range n {
		spec := rankSpec{Config: cfg, Out: out, Warmup: p.warmup, Steps: p.steps, LogEvery: p.logEvery}
		name := fmt.Sprintf("-w%d-rank%d-run%d", n, r, run)
		if p.cpuProfile != "" {
			spec.CPUProfile = p.cpuProfile + name + ".pprof"
		}
		if p.trace != "" {
			spec.Trace = p.trace + name + ".trace"
		}
		js, _ := json.Marshal(spec)
		argv[r] = []string{self}
		env[r] = []string{childEnv + "=" + string(js), "GOMAXPROCS=1"}
		if n > 1 {
			env[r] = append(env[r], "HPCML_RANK="+strconv.Itoa(r), "HPCML_WORLD_SIZE="+strconv.Itoa(n),
				"HPCML_MASTER_ADDR=127.0.0.1", "HPCML_MASTER_PORT="+strconv.Itoa(port))
		}
	}
	lines, err := runRanks(p.pinned(argv), env)
	if err != nil {
		return result{}, err
	}
	res := result{Tool: "hpcml", Workers: n, Run: run}
	for _, line := range lines {
		var st rankStats
		if err := json.Unmarshal(line, &st); err != nil {
			return result{}, fmt.Errorf("rank output %q: %w", line, err)
		}
		if st.GOMAXPROCS != 1 {
			return result{}, fmt.Errorf("rank %d ran with GOMAXPROCS %d", st.Rank, st.GOMAXPROCS)
		}
		res.Ranks = append(res.Ranks, st)
		res.CPUSeconds += st.CPUSeconds
	}
	slices.SortFunc(res.Ranks, func(a, b rankStats) int { return a.Rank - b.Rank })
	res.OtherCPU = math.Max(0, res.Ranks[0].MachineBusy-res.CPUSeconds)
	res.Steal = res.Ranks[0].MachineSteal
	if err := fromMetrics(&res, filepath.Join(out, train.MetricsFile), p, n); err != nil {
		return result{}, err
	}
	if n > 1 {
		if err := splitCalls(res.Breakdown, res.Ranks, p.calls); err != nil {
			return result{}, err
		}
	}
	if !p.keep {
		os.RemoveAll(out)
	}
	return res, nil
}

// fromMetrics takes the samples/s and the breakdown from rank 0's
// metrics.jsonl: the step points at the ends of steps warmup and
// warmup+steps, and the windows between them.
func fromMetrics(res *result, path string, p params, n int) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var t0, t1 time.Time
	bd := &breakdown{Compute: make([]float64, n), CommWait: make([]float64, n), Other: make([]float64, n), RankRate: make([]float64, n)}
	var gbWeighted, windowSecs float64
	for _, line := range bytes.Split(data, []byte("\n")) {
		var pt train.Point
		if len(line) == 0 || json.Unmarshal(line, &pt) != nil || pt.Kind != "step" {
			continue
		}
		switch {
		case pt.Step == p.warmup:
			t0 = pt.Time
		case pt.Step > p.warmup && pt.Step <= p.warmup+p.steps:
			if pt.Step == p.warmup+p.steps {
				t1 = pt.Time
			}
			if n == 1 {
				continue
			}
			bd.Windows++
			secs := float64(p.logEvery*p.batch*n) / pt.Values["samples_per_sec"]
			windowSecs += secs
			for r := range n {
				c, w := pt.Values[fmt.Sprintf("rank%d_compute_seconds", r)], pt.Values[fmt.Sprintf("rank%d_comm_wait_seconds", r)]
				bd.Compute[r] += c
				bd.CommWait[r] += w
				bd.Other[r] += secs - c - w
			}
			bd.CommSeconds += pt.Values["comm_seconds"]
			gbWeighted += pt.Values["allreduce_gbps"] * pt.Values["comm_seconds"]
		}
	}
	if t0.IsZero() || t1.IsZero() {
		return fmt.Errorf("%s: no step points at steps %d and %d", path, p.warmup, p.warmup+p.steps)
	}
	res.Seconds = t1.Sub(t0).Seconds()
	res.SamplesPerSec = float64(p.steps*p.batch*n) / res.Seconds
	res.MsPerStep = res.Seconds * 1e3 / float64(p.steps)
	if n > 1 {
		if bd.CommSeconds > 0 {
			bd.AllReduceGBps = gbWeighted / bd.CommSeconds
		}
		for r := range n {
			bd.RankRate[r] = float64(p.steps*p.batch) / windowSecs
		}
		res.Breakdown = bd
	}
	return nil
}

// splitCalls splits the ranks' all-reduce calls into waiting for the last
// rank to arrive and the rest; the calls stay in the report only with keep.
func splitCalls(bd *breakdown, ranks []rankStats, keep bool) error {
	n := len(ranks)
	bd.ArrivalWait, bd.Transfer = make([]float64, n), make([]float64, n)
	for r := range ranks {
		if len(ranks[r].Calls) != len(ranks[0].Calls) {
			return fmt.Errorf("rank %d made %d all-reduces in the timed steps, rank 0 %d", r, len(ranks[r].Calls), len(ranks[0].Calls))
		}
	}
	for i := range ranks[0].Calls {
		var last int64
		for _, rs := range ranks {
			last = max(last, rs.Calls[i][0])
		}
		for r, rs := range ranks {
			bd.ArrivalWait[r] += float64(last-rs.Calls[i][0]) / 1e9
			bd.Transfer[r] += float64(rs.Calls[i][1]-last) / 1e9
		}
	}
	if !keep {
		for r := range ranks {
			ranks[r].Calls = nil
		}
	}
	return nil
}

// runTorch trains on n Python processes.
func runTorch(p params, n, run int) (result, error) {
	port, err := load.FreePort()
	if err != nil {
		return result{}, err
	}
	argv := make([][]string, n)
	env := make([][]string, n)
	for r := range n {
		argv[r] = []string{p.python, p.script, filepath.Join(p.tmp, fmt.Sprintf("data-w%d", n)), strconv.Itoa(p.batch),
			strconv.Itoa(p.warmup), strconv.Itoa(p.steps), strconv.FormatUint(p.seed, 10), strconv.FormatFloat(p.lr, 'g', -1, 64)}
		env[r] = []string{"RANK=" + strconv.Itoa(r), "WORLD_SIZE=" + strconv.Itoa(n), "MASTER_ADDR=127.0.0.1",
			"MASTER_PORT=" + strconv.Itoa(port), "OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1", "MKL_NUM_THREADS=1"}
	}
	lines, err := runRanks(p.pinned(argv), env)
	if err != nil {
		return result{}, err
	}
	res := result{Tool: "pytorch", Workers: n, Run: run}
	var busy float64
	for _, line := range lines {
		var t torchRank
		if err := json.Unmarshal(line, &t); err != nil {
			return result{}, fmt.Errorf("rank output %q: %w", line, err)
		}
		if t.Threads != 1 {
			return result{}, fmt.Errorf("rank %d ran with %d threads", t.Rank, t.Threads)
		}
		res.Torch = append(res.Torch, t)
		res.Seconds = math.Max(res.Seconds, t.Seconds)
		res.CPUSeconds += t.CPUSeconds
		busy += t.MachineBusy // rank 0's alone
		res.Steal += t.MachineSteal
	}
	slices.SortFunc(res.Torch, func(a, b torchRank) int { return a.Rank - b.Rank })
	res.SamplesPerSec = float64(p.steps*p.batch*n) / res.Seconds
	res.MsPerStep = res.Seconds * 1e3 / float64(p.steps)
	res.OtherCPU = math.Max(0, busy-res.CPUSeconds)
	return res, nil
}

// pinned runs rank r on CPU r mod NumCPU with -pin.
func (p params) pinned(argv [][]string) [][]string {
	if !p.pin {
		return argv
	}
	out := make([][]string, len(argv))
	for r, a := range argv {
		out[r] = append([]string{"taskset", "-c", strconv.Itoa(r % runtime.NumCPU())}, a...)
	}
	return out
}

// runRanks starts the ranks, passes their stderr through, and returns
// the JSON line each printed on stdout. When one fails the others are
// killed (they would wait for it until their timeout).
func runRanks(argv, env [][]string) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmds := make([]*exec.Cmd, len(argv))
	outs := make([]*bytes.Buffer, len(argv))
	for r := range argv {
		c := exec.CommandContext(ctx, argv[r][0], argv[r][1:]...)
		c.Env = append(os.Environ(), env[r]...)
		outs[r] = &bytes.Buffer{}
		c.Stdout, c.Stderr = outs[r], os.Stderr
		if err := c.Start(); err != nil {
			cancel()
			for _, o := range cmds[:r] {
				o.Wait()
			}
			return nil, err
		}
		cmds[r] = c
	}
	errs := make(chan error, len(cmds))
	for r, c := range cmds {
		go func() {
			err := c.Wait()
			if err != nil {
				err = fmt.Errorf("rank %d: %w", r, err)
				cancel()
			}
			errs <- err
		}()
	}
	var first error
	for range cmds {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return nil, first
	}
	lines := make([][]byte, len(outs))
	for r, o := range outs {
		sc := bufio.NewScanner(o)
		for sc.Scan() {
			if l := bytes.TrimSpace(sc.Bytes()); len(l) > 0 && l[0] == '{' {
				lines[r] = slices.Clone(l)
			}
		}
		if lines[r] == nil {
			return nil, fmt.Errorf("rank %d printed no result", r)
		}
	}
	return lines, nil
}

func summarize(runs []result, tool string, counts []int) summary {
	s := summary{Tool: tool}
	per := map[int][]float64{}
	for _, r := range runs {
		if r.Tool == tool {
			per[r.Workers] = append(per[r.Workers], r.SamplesPerSec)
		}
	}
	if len(counts) < 2 {
		return s
	}
	s.OneRuns, s.TwoRuns = per[counts[0]], per[counts[1]]
	s.OneMedian, s.TwoMedian = load.Median(s.OneRuns), load.Median(s.TwoRuns)
	if s.OneMedian > 0 {
		s.Ratio = load.Round(s.TwoMedian/s.OneMedian, 3)
	}
	for i := range min(len(s.OneRuns), len(s.TwoRuns)) {
		s.PairedRatios = append(s.PairedRatios, load.Round(s.TwoRuns[i]/s.OneRuns[i], 3))
	}
	return s
}

func printTable(rep report, counts []int) {
	fmt.Printf("\n%s; %s; load average at start %s\n", rep.Machine, versions(rep.Versions), rep.LoadAvg)
	fmt.Printf("LeNet on MNIST, batch %d per worker, %d timed steps after %d warm-up, 1 thread per worker\n\n", rep.Batch, rep.Steps, rep.Warmup)
	fmt.Printf("%-8s %8s %12s %s\n", "tool", "workers", "samples/s", "runs")
	for _, s := range rep.Summary {
		for _, w := range counts {
			var xs []float64
			for _, r := range rep.Runs {
				if r.Tool == s.Tool && r.Workers == w {
					xs = append(xs, r.SamplesPerSec)
				}
			}
			var runs []string
			for _, x := range xs {
				runs = append(runs, fmt.Sprintf("%.0f", x))
			}
			fmt.Printf("%-8s %8d %12.0f [%s]\n", s.Tool, w, load.Median(xs), strings.Join(runs, " "))
		}
	}
	if len(counts) >= 2 {
		fmt.Printf("\n%-8s %22s %s\n", "tool", fmt.Sprintf("ratio %d/%d workers", counts[1], counts[0]), "paired by run")
		for _, s := range rep.Summary {
			fmt.Printf("%-8s %22.2f %v\n", s.Tool, s.Ratio, s.PairedRatios)
		}
	}
	// hpcml's breakdown of the median multi-worker run.
	for _, w := range counts[1:] {
		var rs []result
		for _, r := range rep.Runs {
			if r.Tool == "hpcml" && r.Workers == w && r.Breakdown != nil {
				rs = append(rs, r)
			}
		}
		if len(rs) == 0 {
			continue
		}
		slices.SortFunc(rs, func(a, b result) int { return cmp.Compare(a.SamplesPerSec, b.SamplesPerSec) })
		r := rs[len(rs)/2]
		fmt.Printf("\nhpcml, %d workers, median run (%d): %.2f s for %d steps\n", w, r.Run, r.Seconds, rep.Steps)
		fmt.Printf("%-6s %10s %10s %12s %12s %10s %10s %8s %10s %8s\n", "rank", "compute s", "wait s", "(for last)", "(transfer)", "other s", "cpu s", "gc", "alloc MiB", "ivcsw")
		bd := r.Breakdown
		for i := range bd.Compute {
			st := r.Ranks[i]
			fmt.Printf("%-6d %10.2f %10.3f %12.3f %12.3f %10.3f %10.2f %8d %10.0f %8d\n", i, bd.Compute[i], bd.CommWait[i], bd.ArrivalWait[i], bd.Transfer[i],
				bd.Other[i], st.CPUSeconds, st.GCCycles, float64(st.AllocBytes)/(1<<20), st.InvoluntaryCtx)
		}
		fmt.Printf("all-reduce: %.3f s in total (mean over ranks, overlapped with compute), %.2f GB/s algbw\n", r.Breakdown.CommSeconds, r.Breakdown.AllReduceGBps)
	}
}

func versions(v map[string]string) string {
	var keys []string
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+" "+v[k])
	}
	return strings.Join(parts, ", ")
}

// readMNIST reads the training images and labels IDX files (gzipped or
// not), raw: their headers are written again for each subset.
func readMNIST(dir string) (images, labels []byte, err error) {
	read := func(name string) ([]byte, error) {
		for _, n := range []string{name, name + ".gz"} {
			f, err := os.Open(filepath.Join(dir, n))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			defer f.Close()
			var r io.Reader = f
			if strings.HasSuffix(n, ".gz") {
				zr, err := gzip.NewReader(f)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", n, err)
				}
				r = zr
			}
			return io.ReadAll(r)
		}
		return nil, fmt.Errorf("%s[.gz] not in %s", name, dir)
	}
	if images, err = read("train-images-idx3-ubyte"); err != nil {
		return nil, nil, err
	}
	if labels, err = read("train-labels-idx1-ubyte"); err != nil {
		return nil, nil, err
	}
	if len(images) < 16 || binary.BigEndian.Uint32(images) != 0x803 || len(labels) < 8 || binary.BigEndian.Uint32(labels) != 0x801 {
		return nil, nil, fmt.Errorf("%s: not MNIST's IDX files", dir)
	}
	return images, labels, nil
}

// writeSubset writes the first n images and labels as IDX files in dir.
func writeSubset(dir string, images, labels []byte, n int) error {
	total := int(binary.BigEndian.Uint32(images[4:]))
	rows, cols := int(binary.BigEndian.Uint32(images[8:])), int(binary.BigEndian.Uint32(images[12:]))
	if n > total {
		return fmt.Errorf("the steps take %d images; MNIST has %d: fewer -steps or -warmup", n, total)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	img := binary.BigEndian.AppendUint32(nil, 0x803)
	img = binary.BigEndian.AppendUint32(img, uint32(n))
	img = binary.BigEndian.AppendUint32(img, uint32(rows))
	img = binary.BigEndian.AppendUint32(img, uint32(cols))
	img = append(img, images[16:16+n*rows*cols]...)
	lab := binary.BigEndian.AppendUint32(nil, 0x801)
	lab = binary.BigEndian.AppendUint32(lab, uint32(n))
	lab = append(lab, labels[8:8+n]...)
	if err := os.WriteFile(filepath.Join(dir, "train-images-idx3-ubyte"), img, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "train-labels-idx1-ubyte"), lab, 0o644)
}

// machine describes the CPU, cores and memory.
func machine() string {
	return fmt.Sprintf("%s, %d CPUs", load.CPUModel(), runtime.NumCPU())
}

// busyCPU is the CPU time the whole machine has spent busy and the time
// the hypervisor has stolen from it, in seconds (from /proc/stat: busy is
// user, nice, system, irq and softirq; guest time is in user already).
func busyCPU() (busy, steal float64) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseFloat(v, 64)
		switch {
		case i == 7:
			steal = n / 100
		case i == 3 || i == 4 || i > 7:
		default:
			busy += n / 100 // USER_HZ
		}
	}
	return busy, steal
}
