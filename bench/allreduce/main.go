// Command allreduce measures all-reduce bandwidth of hpcml's collective
// package against torch.distributed's gloo backend and Open MPI's
// MPI_Allreduce, two ranks on this machine, in the same run.
//
//	go run ./bench/allreduce [-min 1024] [-max 268435456] [-factor 4] [-runs 3]
//
// Every runner does the same for each message size (float32 sums, in
// place): warm-up iterations, a barrier, timed iterations; the time is the
// average per iteration, the maximum over the ranks. Bandwidths follow
// NCCL-tests: algbw = bytes / time, busbw = algbw × 2(n−1)/n. With -runs
// R every runner goes R times (in rotating order, so slow phases of a
// shared machine do not always hit the same one) and the median time per
// size is reported. The machine may be shared: before each runner the
// program waits until the CPUs were at most -quiet busy over 3 s (default
// 25 %) and prints what it measured.
//
// Runners: hpcml (this binary, started twice as ranks with the HPCML_*
// variables of an hpcml job; the ranks share a host, so their ring links
// use shared memory), hpcml-tcp (the same over TCP: Config.NoSharedMemory),
// gloo (bench/allreduce/peers/gloo_allreduce.py
// on /usr/bin/python3 with Debian's python3-torch), mpi-tcp and mpi-sm
// (bench/allreduce/peers/mpi_allreduce.c built with mpicc, run with mpirun and
// the ob1 messaging layer over the tcp or the vader shared-memory
// transport).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/bench/internal/load"
)

// childEnv makes this binary an hpcml rank instead of the driver.
const childEnv = "HPCML_BENCH_ALLREDUCE_RANK"

type params struct {
	min, max, factor int64
	target           int64 // bytes to move per size: iterations = target / size, within [minIters, maxIters]
	minIters         int64
	maxIters         int64
	segment          int
}

func (p params) args() []string {
	return []string{strconv.FormatInt(p.min, 10), strconv.FormatInt(p.max, 10), strconv.FormatInt(p.factor, 10),
		strconv.FormatInt(p.target, 10), strconv.FormatInt(p.minIters, 10), strconv.FormatInt(p.maxIters, 10)}
}

func main() {
	if os.Getenv(childEnv) != "" {
		if err := rank(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "hpcml rank:", err)
			os.Exit(1)
		}
		return
	}
	var p params
	flag.Int64Var(&p.min, "min", 1<<10, "smallest message in bytes")
	flag.Int64Var(&p.max, "max", 256<<20, "largest message in bytes")
	flag.Int64Var(&p.factor, "factor", 4, "ratio of successive sizes")
	flag.Int64Var(&p.target, "target", 1<<30, "bytes to all-reduce per size and runner (sets the iteration count)")
	flag.Int64Var(&p.minIters, "min-iters", 5, "fewest timed iterations per size")
	flag.Int64Var(&p.maxIters, "max-iters", 1000, "most timed iterations per size")
	flag.IntVar(&p.segment, "segment", 0, "hpcml's Config.SegmentBytes (0: the default)")
	runs := flag.Int("runs", 3, "runs of every runner; the median time per size is reported")
	quiet := flag.Float64("quiet", 0.25, "before each runner, wait (up to 10 minutes) until the CPUs were at most this busy over 3 s; 0 does not wait")
	peers := flag.String("peers", "hpcml,hpcml-tcp,gloo,mpi-tcp,mpi-sm", "runners, comma-separated")
	flag.Parse()
	if p.min < 4 || p.factor < 2 || p.max < p.min || p.min%4 != 0 {
		fail(fmt.Errorf("bad sizes: -min %d -max %d -factor %d", p.min, p.max, p.factor))
	}
	if err := drive(p, *runs, strings.Split(*peers, ","), *quiet); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "allreduce:", err)
	os.Exit(1)
}

// result is one runner's time per size (seconds), over the runs.
type result map[int64][]float64

func drive(p params, runs int, peers []string, quiet float64) error {
	dir, err := os.MkdirTemp("", "hpcml-bench-allreduce-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var src string
	if slices.ContainsFunc(peers, func(p string) bool { return !strings.HasPrefix(p, "hpcml") }) {
		if src, err = sourceDir(); err != nil {
			return err
		}
	}
	runners := map[string]launcher{}
	for _, name := range peers {
		switch name {
		case "hpcml", "hpcml-tcp":
			tcp := name == "hpcml-tcp"
			runners[name] = func(ctx context.Context) ([]*exec.Cmd, error) { return hpcmlRanks(ctx, p, tcp) }
		case "gloo":
			runners[name] = func(ctx context.Context) ([]*exec.Cmd, error) {
				return glooRanks(ctx, filepath.Join(src, "gloo_allreduce.py"), p)
			}
		case "mpi-tcp", "mpi-sm":
			bin := filepath.Join(dir, "mpi_allreduce")
			if _, err := os.Stat(bin); err != nil {
				out, err := exec.Command("mpicc", "-O2", "-o", bin, filepath.Join(src, "mpi_allreduce.c")).CombinedOutput()
				if err != nil {
					return fmt.Errorf("mpicc: %v\n%s", err, out)
				}
			}
			btl := "self,tcp"
			if name == "mpi-sm" {
				btl = "self,vader"
			}
			runners[name] = func(ctx context.Context) ([]*exec.Cmd, error) { return mpiRanks(ctx, bin, btl, p), nil }
		default:
			return fmt.Errorf("unknown runner %q (hpcml, hpcml-tcp, gloo, mpi-tcp, mpi-sm)", name)
		}
	}
	fmt.Printf("# all-reduce, 2 ranks, float32 sum, in place; %s; GOMAXPROCS %d; load average %s\n",
		time.Now().Format(time.RFC3339), runtime.GOMAXPROCS(0), load.LoadAvg())
	results := map[string]result{}
	for run := range runs {
		order := slices.Clone(peers)
		for range run % len(order) {
			order = append(order[1:], order[0])
		}
		for _, name := range order {
			busy := waitQuiet(quiet)
			start := time.Now()
			r, err := runOnce(runners[name])
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if results[name] == nil {
				results[name] = result{}
			}
			for size, t := range r {
				results[name][size] = append(results[name][size], t)
			}
			fmt.Printf("# run %d %-9s %5.1fs; CPUs %2.0f%% busy before, load average %s after\n", run+1, name, time.Since(start).Seconds(), 100*busy, load.LoadAvg())
		}
	}
	report(p, peers, results)
	return nil
}

// sourceDir finds the peers' sources, bench/allreduce/peers (a directory
// of its own: Go refuses C files in a package that does not use cgo),
// from the repository root (go run ./bench/allreduce) or bench/allreduce.
func sourceDir() (string, error) {
	for _, d := range []string{"bench/allreduce/peers", "peers"} {
		if _, err := os.Stat(filepath.Join(d, "gloo_allreduce.py")); err == nil {
			return filepath.Abs(d)
		}
	}
	return "", fmt.Errorf("run from the repository root: bench/allreduce/peers/gloo_allreduce.py not found")
}

// cpuBusy is the share of CPU time not idle over d, from /proc/stat.
func cpuBusy(d time.Duration) float64 {
	read := func() (busy, total float64) {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0
		}
		line, _, _ := strings.Cut(string(b), "\n")
		for i, f := range strings.Fields(line)[1:] {
			v, _ := strconv.ParseFloat(f, 64)
			total += v
			if i != 3 && i != 4 { // idle, iowait
				busy += v
			}
		}
		return busy, total
	}
	b0, t0 := read()
	time.Sleep(d)
	b1, t1 := read()
	if t1 <= t0 {
		return 0
	}
	return (b1 - b0) / (t1 - t0)
}

// waitQuiet waits until the machine's CPUs were at most max busy over 3 s
// (other users share it), at most 10 minutes, and returns the last
// measurement.
func waitQuiet(max float64) float64 {
	if max <= 0 {
		return cpuBusy(time.Second)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		b := cpuBusy(3 * time.Second)
		if b <= max || time.Now().After(deadline) {
			return b
		}
		fmt.Printf("# waiting: CPUs %.0f%% busy\n", 100*b)
		time.Sleep(10 * time.Second)
	}
}

// launcher makes the processes of one run; the first one's stdout
// carries the "SIZE ITERS SECONDS" lines (rank 0, or mpirun).
type launcher func(ctx context.Context) ([]*exec.Cmd, error)

// runOnce runs one runner and parses its lines.
func runOnce(start launcher) (map[int64]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmds, err := start(ctx)
	if err != nil {
		return nil, err
	}
	out, err := cmds[0].StdoutPipe()
	if err != nil {
		return nil, err
	}
	for _, c := range cmds {
		c.Stderr = os.Stderr
		if err := c.Start(); err != nil {
			return nil, err
		}
	}
	res := map[int64]float64{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		size, err1 := strconv.ParseInt(f[0], 10, 64)
		secs, err2 := strconv.ParseFloat(f[2], 64)
		if err1 == nil && err2 == nil {
			res[size] = secs
		}
	}
	var first error
	for _, c := range cmds {
		if err := c.Wait(); err != nil && first == nil {
			first = err
			cancel() // the other rank would wait for this one forever
		}
	}
	return res, first
}

// twoRanks starts argv twice, with the rank variables env gives each.
func twoRanks(ctx context.Context, argv []string, env func(rank, port int) []string) ([]*exec.Cmd, error) {
	port, err := load.FreePort()
	if err != nil {
		return nil, err
	}
	cmds := make([]*exec.Cmd, 2)
	for r := range cmds {
		c := exec.CommandContext(ctx, argv[0], argv[1:]...)
		c.Env = append(os.Environ(), env(r, port)...)
		cmds[r] = c
	}
	return cmds, nil
}

func hpcmlRanks(ctx context.Context, p params, tcp bool) ([]*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	argv := append([]string{self}, append(p.args(), strconv.Itoa(p.segment), strconv.FormatBool(tcp))...)
	return twoRanks(ctx, argv, func(rank, port int) []string {
		return []string{childEnv + "=1", "HPCML_RANK=" + strconv.Itoa(rank), "HPCML_WORLD_SIZE=2",
			"HPCML_MASTER_ADDR=127.0.0.1", "HPCML_MASTER_PORT=" + strconv.Itoa(port)}
	})
}

func glooRanks(ctx context.Context, script string, p params) ([]*exec.Cmd, error) {
	argv := append([]string{"/usr/bin/python3", script}, p.args()...)
	return twoRanks(ctx, argv, func(rank, port int) []string {
		return []string{"RANK=" + strconv.Itoa(rank), "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1",
			"MASTER_PORT=" + strconv.Itoa(port), "OMP_NUM_THREADS=1"}
	})
}

func mpiRanks(ctx context.Context, bin, btl string, p params) []*exec.Cmd {
	// ob1 with an explicit transport: Debian's Open MPI would otherwise
	// pick UCX, which ignores the btl setting.
	args := []string{"--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", "2",
		"--mca", "pml", "ob1", "--mca", "btl", btl, bin}
	return []*exec.Cmd{exec.CommandContext(ctx, "mpirun", append(args, p.args()...)...)}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// report prints a Markdown table: per size, each runner's median time and
// busbw; hpcml's ratio to the best peer, and hpcml-tcp's to the better of
// the peers on the same transport (gloo, mpi-tcp).
func report(p params, peers []string, res map[string]result) {
	const n = 2
	busFactor := 2.0 * (n - 1) / n
	fmt.Println()
	head := "| size |"
	rule := "|---:|"
	for _, name := range peers {
		head += fmt.Sprintf(" %s time | %s busbw |", name, name)
		rule += "---:|---:|"
	}
	has := func(names ...string) bool {
		for _, n := range names {
			if _, ok := res[n]; ok {
				return true
			}
		}
		return false
	}
	overall := has("hpcml") && has("gloo", "mpi-tcp", "mpi-sm")
	sameTransport := has("hpcml-tcp") && has("gloo", "mpi-tcp")
	if overall {
		head += " hpcml / best peer |"
		rule += "---:|"
	}
	if sameTransport {
		head += " hpcml-tcp / best TCP peer |"
		rule += "---:|"
	}
	// Every measurement: time, algbw and busbw (equal for two ranks).
	fmt.Println("| size | runner | time | algbw | busbw | runs |")
	fmt.Println("|---:|---|---:|---:|---:|---:|")
	for size := p.min; size <= p.max; size *= p.factor {
		for _, name := range peers {
			if ts := res[name][size]; len(ts) > 0 {
				t := load.Median(ts)
				alg := float64(size) / t / 1e9
				fmt.Printf("| %s | %s | %s | %.2f GB/s | %.2f GB/s | %d |\n", humanBytes(size), name, fmtTime(t), alg, alg*busFactor, len(ts))
			}
		}
	}
	fmt.Println()
	fmt.Println(head)
	fmt.Println(rule)
	for size := p.min; size <= p.max; size *= p.factor {
		row := fmt.Sprintf("| %s |", humanBytes(size))
		bus := map[string]float64{}
		for _, name := range peers {
			ts := res[name][size]
			if len(ts) == 0 {
				row += " – | – |"
				continue
			}
			t := load.Median(ts)
			bus[name] = float64(size) / t / 1e9 * busFactor // algbw × 2(n−1)/n; algbw = busbw for n = 2
			row += fmt.Sprintf(" %s | %.2f GB/s |", fmtTime(t), bus[name])
		}
		if overall {
			row += fmt.Sprintf(" %.2f× |", bus["hpcml"]/max(bus["gloo"], bus["mpi-tcp"], bus["mpi-sm"]))
		}
		if sameTransport {
			row += fmt.Sprintf(" %.2f× |", bus["hpcml-tcp"]/max(bus["gloo"], bus["mpi-tcp"]))
		}
		fmt.Println(row)
	}
}

func fmtTime(s float64) string {
	switch {
	case s >= 1:
		return fmt.Sprintf("%.2f s", s)
	case s >= 1e-3:
		return fmt.Sprintf("%.2f ms", s*1e3)
	}
	return fmt.Sprintf("%.1f µs", s*1e6)
}
