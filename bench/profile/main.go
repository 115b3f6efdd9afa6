// Command profile benchmarks `hpcml data profile` against pandas 1.5
// (describe() and corr()) and DuckDB (SUMMARIZE), in the same invocation, on
// the same table: 10M rows × 9 float64 columns by default, as Parquet and as
// CSV.
//
//	make build bench-profile
//	go run ./bench/profile -hpcml bin/hpcml -runs 3
//	go run ./bench/profile -rows 1000000 -tools hpcml,duckdb -formats parquet
//	go run ./bench/profile -data /var/tmp/hpcml-bench-profile -keep   # generate once, reuse
//	go run ./bench/profile -cpuprofile /tmp/prof -tools hpcml -runs 1 # + pprof of the profile in-process
//
// The table is generated once (under -data, or a temp dir) with the
// repository's own writers (internal/table): data.parquet (Snappy, row groups
// of 1Mi rows), data.csv (shortest round-trip floats, nulls as empty fields)
// and data.npy, the same values as a column-major NumPy array for pandas: Debian
// 12 packages neither pyarrow nor fastparquet, so pandas cannot read Parquet
// here, and on the Parquet row it loads the .npy (the fastest input it has: one
// read, no parsing, already the layout a DataFrame keeps) instead. Values are
// rounded to 4 decimals, as measurements written as text usually are, so the
// three files hold exactly the same numbers. Columns: x0 normal, x1 = 0.8·x0 +
// noise, x2 uniform, x3 exponential, x4 = -3·x2 + noise, x5 log-normal, x6
// integers 0..99, x7 normal with 2 % nulls, x8 = x0 + 5·x3 + noise.
//
// Tools (-tools):
//
//	hpcml        hpcml data profile FILE -o json (workers: one per CPU)
//	pandas       /usr/bin/python3: pd.read_csv(FILE) or pd.DataFrame(np.load(NPY)),
//	             then df.describe() and df.corr()
//	duckdb       node + @duckdb/node-api: SUMMARIZE SELECT * FROM read_parquet/read_csv(FILE)
//	duckdb-corr  DuckDB doing what pandas does: CREATE TABLE t AS SELECT * FROM FILE,
//	             SUMMARIZE t, and corr() of all 36 column pairs of t
//
// Each run is timed by wall clock from process start to exit (interpreter
// start-up and imports included), with the process's peak RSS (rusage
// maxrss) and CPU time (user+sys); every answer is checked against the
// generator (rows, mean of x0 within 1e-6 relative, nulls of x7, and
// corr(x0, x1) within 1e-6 where the tool computes it), so an empty run cannot
// pass. Each tool first profiles a 10,000-row copy of both formats, untimed
// but checked, so that binaries and modules are warm; the page cache is not
// dropped, so every tool reads from memory. With -runs N the tool order
// rotates and the median run counts. other_cpu_s is the CPU time the rest
// of the machine used while a tool ran (from /proc/stat): on a shared
// machine it says how much a timing was disturbed.
package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/hpcml/hpcml/bench/internal/load"
	"github.com/hpcml/hpcml/internal/analysis"
	"github.com/hpcml/hpcml/internal/table"
)

const (
	numCols  = 9
	genVer   = 1 // bump when the generated data changes
	nullCol  = 7
	nullRate = 0.02
)

var colNames = func() []string {
	var n []string
	for i := range numCols {
		n = append(n, fmt.Sprintf("x%d", i))
	}
	return n
}()

var allTools = []string{"hpcml", "pandas", "duckdb", "duckdb-corr"}

// truth is what the generator knows about the table, for the checks.
type truth struct {
	Version int     `json:"version"`
	Rows    int64   `json:"rows"`
	Mean0   float64 `json:"mean_x0"`
	Nulls7  int64   `json:"nulls_x7"`
	Corr01  float64 `json:"corr_x0_x1"`
	Seconds float64 `json:"generate_seconds"`
}

// dataset is the table in its three files.
type dataset struct {
	name    string
	dir     string
	parquet string
	csv     string
	npy     string
	truth   truth
}

// answer is what a tool reported, for the checks; NaN where it does not
// compute that.
type answer struct {
	rows   int64
	mean0  float64
	nulls7 int64
	// nullsTol is how far nulls7 may be off: DuckDB's SUMMARIZE gives
	// a null percentage with two decimals.
	nullsTol int64
	corr01   float64
	// inner holds the tool's own timings of its phases, seconds.
	inner   map[string]float64
	version string
}

// measurement is one tool's run on one format.
type measurement struct {
	Format     string  `json:"format"`
	Tool       string  `json:"tool"`
	Input      string  `json:"input"`
	Seconds    float64 `json:"seconds"`
	PeakMiB    float64 `json:"peak_rss_mib"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// OtherCPU is the CPU time the rest of the machine used meanwhile.
	OtherCPU float64            `json:"other_cpu_seconds"`
	Inner    map[string]float64 `json:"inner_seconds,omitempty"`
	// RunsSeconds are every run's seconds (in the median result), and
	// BestSeconds the fastest: on a shared machine the least disturbed.
	RunsSeconds []float64 `json:"runs_seconds,omitempty"`
	BestSeconds float64   `json:"best_seconds,omitempty"`
}

// ratio compares hpcml with the peers on one format.
type ratio struct {
	Format string `json:"format"`
	// PandasOverHpcml is pandas seconds / hpcml seconds (goal >= 3).
	PandasOverHpcml float64 `json:"pandas_over_hpcml,omitempty"`
	// HpcmlOverDuckDB is hpcml seconds / DuckDB SUMMARIZE seconds (goal <= 2).
	HpcmlOverDuckDB float64 `json:"hpcml_over_duckdb,omitempty"`
	// HpcmlOverDuckDBCorr is against DuckDB's SUMMARIZE + corr (no goal).
	HpcmlOverDuckDBCorr float64 `json:"hpcml_over_duckdb_corr,omitempty"`
	// Best: the same from every tool's fastest run.
	Best *ratio `json:"best,omitempty"`
}

type bench struct {
	self     string // this program, run as the spawner
	hpcml    string
	python   string
	node     string
	nodeAPI  string // the @duckdb/node-api package dir
	scripts  string // dir of the Python and JS scripts
	workers  int
	timeout  time.Duration
	versions map[string]string

	mu      sync.Mutex
	current *exec.Cmd
}

var (
	cleanups []func()
	cleanMu  sync.Mutex
)

func atExit(f func()) {
	cleanMu.Lock()
	defer cleanMu.Unlock()
	cleanups = append(cleanups, f)
}

func runCleanups() {
	cleanMu.Lock()
	defer cleanMu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}

func fatalf(format string, args ...any) {
	log.Printf("FAIL: "+format, args...)
	runCleanups()
	os.Exit(1)
}

func main() {
	if os.Getenv(spawnEnv) == "1" {
		spawn(os.Args[1:])
		return
	}
	log.SetFlags(0)
	log.SetPrefix("bench/profile: ")
	rows := flag.Int64("rows", 10_000_000, "rows of the table")
	runs := flag.Int("runs", 1, "repeat every measurement (tool order rotates); the median run counts")
	toolsFlag := flag.String("tools", strings.Join(allTools, ","), "tools to run, comma-separated: "+strings.Join(allTools, ", "))
	formatsFlag := flag.String("formats", "parquet,csv", "formats to profile, comma-separated")
	dataDir := flag.String("data", "", "directory for the generated files, reused when it holds this -rows table (default: a temp dir)")
	keep := flag.Bool("keep", false, "keep the temp dir at exit (a -data dir is always kept)")
	jsonOut := flag.Bool("json", false, "print the results as JSON on stdout")
	bin := flag.String("hpcml", "", "hpcml binary (default: build ./cmd/hpcml)")
	workers := flag.Int("workers", 0, "hpcml --workers (0: its default, one per CPU)")
	python := flag.String("python", "/usr/bin/python3", "Python with pandas (Debian's python3-pandas)")
	node := flag.String("node", "node", "node binary")
	nodeDir := flag.String("node-modules", "", "node_modules holding @duckdb/node-api (default: $HPCML_BENCH_NODE_DIR/node_modules, else /var/cache/hpcml-bench/node_modules)")
	timeout := flag.Duration("timeout", 30*time.Minute, "limit for one tool's run")
	cpuProfile := flag.String("cpuprofile", "", "also profile the table in this process (internal/analysis.ProfileLocal, untimed) and write CPU profiles to PREFIX-FORMAT.pprof")
	flag.Parse()
	if *rows < 100 || *runs < 1 {
		log.Fatal("-rows must be at least 100 and -runs at least 1")
	}
	tools := strings.Split(*toolsFlag, ",")
	for _, t := range tools {
		if !slices.Contains(allTools, t) {
			log.Fatalf("-tools: unknown tool %q (want %s)", t, strings.Join(allTools, ", "))
		}
	}
	formats := strings.Split(*formatsFlag, ",")
	for _, f := range formats {
		if f != "parquet" && f != "csv" {
			log.Fatalf("-formats: unknown format %q (want parquet, csv)", f)
		}
	}

	b := &bench{workers: *workers, timeout: *timeout, versions: map[string]string{}}
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	b.self = self
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	go func() {
		s := <-sig
		b.mu.Lock()
		if b.current != nil && b.current.Process != nil {
			b.current.Process.Kill()
		}
		b.mu.Unlock()
		fatalf("interrupted (%v)", s)
	}()

	tmp, err := os.MkdirTemp("", "hpcml-bench-profile-*")
	if err != nil {
		log.Fatal(err)
	}
	atExit(func() {
		if *keep {
			log.Printf("kept %s", tmp)
			return
		}
		os.RemoveAll(tmp)
	})
	root := *dataDir
	if root == "" {
		root = filepath.Join(tmp, "data")
	}

	b.hpcml = *bin
	if b.hpcml == "" {
		b.hpcml = filepath.Join(tmp, "hpcml")
		build := exec.Command("go", "build", "-o", b.hpcml, "./cmd/hpcml")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fatalf("build hpcml: %v", err)
		}
	} else if b.hpcml, err = filepath.Abs(b.hpcml); err != nil {
		fatalf("%v", err)
	}
	b.versions["hpcml"] = load.BuildVersion(b.hpcml, true)
	if slices.Contains(tools, "pandas") {
		b.python = mustLookPath(*python, "python3", "scripts/bench-deps.sh profile installs Debian's python3-pandas")
	}
	if slices.Contains(tools, "duckdb") || slices.Contains(tools, "duckdb-corr") {
		b.node = mustLookPath(*node, "node", "scripts/bench-deps.sh profile installs it")
		dir := *nodeDir
		if dir == "" {
			base := os.Getenv("HPCML_BENCH_NODE_DIR")
			if base == "" {
				base = "/var/cache/hpcml-bench"
			}
			dir = filepath.Join(base, "node_modules")
		}
		b.nodeAPI = filepath.Join(dir, "@duckdb", "node-api")
		if _, err := os.Stat(filepath.Join(b.nodeAPI, "package.json")); err != nil {
			fatalf("@duckdb/node-api not found in %s: scripts/bench-deps.sh profile installs it", dir)
		}
		b.versions["node"] = load.FirstLine(b.node, "--version")
	}
	b.scripts = filepath.Join(tmp, "scripts")
	if err := os.MkdirAll(b.scripts, 0o755); err != nil {
		fatalf("%v", err)
	}
	for name, text := range map[string]string{"pandas_profile.py": pandasScript, "duckdb_profile.js": duckdbScript} {
		if err := os.WriteFile(filepath.Join(b.scripts, name), []byte(text), 0o644); err != nil {
			fatalf("%v", err)
		}
	}

	warm := &dataset{name: "warmup", dir: filepath.Join(tmp, "warmup")}
	if err := warm.ensure(10_000, 2); err != nil {
		fatalf("generate warm-up table: %v", err)
	}
	ds := &dataset{name: "main", dir: root}
	if err := ds.ensure(*rows, 1); err != nil {
		fatalf("generate %s: %v", root, err)
	}
	sizes := map[string]int64{}
	for f, p := range map[string]string{"parquet": ds.parquet, "csv": ds.csv, "npy": ds.npy} {
		if fi, err := os.Stat(p); err == nil {
			sizes[f] = fi.Size()
		}
	}
	log.Printf("table: %d rows × %d float64 columns under %s: parquet %.0f MiB, csv %.0f MiB, npy %.0f MiB (generated in %.1fs)",
		ds.truth.Rows, numCols, ds.dir, mib(sizes["parquet"]), mib(sizes["csv"]), mib(sizes["npy"]), ds.truth.Seconds)

	if *cpuProfile != "" {
		for _, f := range formats {
			p := *cpuProfile + "-" + f + ".pprof"
			secs, err := profileInProcess(ds.file(f), p, *workers)
			if err != nil {
				fatalf("-cpuprofile %s: %v", f, err)
			}
			log.Printf("in-process profile of %s: %.2fs, CPU profile in %s", f, secs, p)
		}
	}

	// Warm-up: every tool on both formats of the small table, checked.
	for _, f := range formats {
		for _, t := range tools {
			b.run(t, f, warm)
		}
	}

	all := map[string][]measurement{}
	key := func(f, t string) string { return f + "/" + t }
	for run := 1; run <= *runs; run++ {
		order := slices.Clone(tools)
		for range (run - 1) % len(order) {
			order = append(order[1:], order[0])
		}
		for _, f := range formats {
			for _, t := range order {
				m := b.run(t, f, ds)
				all[key(f, t)] = append(all[key(f, t)], m)
				log.Printf("run %d: %-7s %-11s %8.2fs  peak %7.0f MiB  cpu %7.2fs  others' cpu %6.2fs  %s",
					run, f, t, m.Seconds, m.PeakMiB, m.CPUSeconds, m.OtherCPU, fmtInner(m.Inner))
			}
		}
	}

	var results []measurement
	var ratios []ratio
	for _, f := range formats {
		secs, best := map[string]float64{}, map[string]float64{}
		for _, t := range tools {
			ms := slices.Clone(all[key(f, t)])
			var runsSec []float64
			for _, m := range ms {
				runsSec = append(runsSec, m.Seconds)
			}
			slices.SortFunc(ms, func(a, b measurement) int { return cmp.Compare(a.Seconds, b.Seconds) })
			med := ms[len(ms)/2]
			if *runs > 1 {
				med.RunsSeconds = runsSec
				med.BestSeconds = ms[0].Seconds
			}
			results = append(results, med)
			secs[t], best[t] = med.Seconds, ms[0].Seconds
		}
		if secs["hpcml"] > 0 && len(secs) > 1 {
			r := ratios3(f, secs)
			if *runs > 1 {
				r.Best = ratios3(f, best)
			}
			ratios = append(ratios, *r)
		}
	}
	if *jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]any{
			"rows": ds.truth.Rows, "columns": numCols, "runs": *runs, "versions": b.versions,
			"machine": load.Machine(), "file_bytes": sizes, "results": results, "ratios": ratios,
		})
	} else {
		fmt.Printf("# %s\n", load.Machine())
		for _, t := range []string{"hpcml", "pandas", "numpy", "duckdb", "node"} {
			if v := b.versions[t]; v != "" {
				fmt.Printf("# %s %s\n", t, v)
			}
		}
		fmt.Printf("# %d rows × %d float64 columns; parquet %.0f MiB (snappy), csv %.0f MiB, npy %.0f MiB; %d run(s);\n"+
			"# page cache warm; pandas reads the .npy on the parquet rows (no Parquet reader for Debian's pandas)\n",
			ds.truth.Rows, numCols, mib(sizes["parquet"]), mib(sizes["csv"]), mib(sizes["npy"]), *runs)
		printTable(results, ratios, *runs)
	}
	runCleanups()
}

// ratios3 compares hpcml's seconds with the peers'.
func ratios3(format string, secs map[string]float64) *ratio {
	h := secs["hpcml"]
	r := &ratio{Format: format}
	if p := secs["pandas"]; p > 0 {
		r.PandasOverHpcml = load.Round(p/h, 2)
	}
	if d := secs["duckdb"]; d > 0 {
		r.HpcmlOverDuckDB = load.Round(h/d, 2)
	}
	if d := secs["duckdb-corr"]; d > 0 {
		r.HpcmlOverDuckDBCorr = load.Round(h/d, 2)
	}
	return r
}

func printTable(results []measurement, ratios []ratio, runs int) {
	title := "results"
	if runs > 1 {
		title = fmt.Sprintf("results (median of %d runs)", runs)
	}
	fmt.Printf("\n%s\n%-8s %-12s %-13s %9s %9s %8s %8s  %s\n", title,
		"format", "tool", "input", "seconds", "peak_MiB", "cpu_s", "other_s", "inner (tool's own timings)")
	for _, m := range results {
		extra := fmtInner(m.Inner)
		if len(m.RunsSeconds) > 1 {
			extra += fmt.Sprintf(" runs %v", m.RunsSeconds)
		}
		fmt.Printf("%-8s %-12s %-13s %9.2f %9.0f %8.2f %8.2f  %s\n", m.Format, m.Tool, m.Input,
			m.Seconds, m.PeakMiB, m.CPUSeconds, m.OtherCPU, extra)
	}
	if len(ratios) == 0 {
		return
	}
	fmt.Printf("\nratios of seconds (median runs; the fastest runs of each tool)\n%-8s %-7s %22s %22s %18s\n",
		"format", "runs", "pandas/hpcml (≥ 3)", "hpcml/duckdb (≤ 2)", "hpcml/duckdb-corr")
	for _, r := range ratios {
		for _, x := range []struct {
			name string
			r    *ratio
		}{{"median", &r}, {"fastest", r.Best}} {
			if x.r == nil {
				continue
			}
			fmt.Printf("%-8s %-7s %22s %22s %18s\n", r.Format, x.name, fmtRatio(x.r.PandasOverHpcml, 3, true),
				fmtRatio(x.r.HpcmlOverDuckDB, 2, false), fmtRatio(x.r.HpcmlOverDuckDBCorr, 0, false))
		}
	}
}

func fmtRatio(r, goal float64, atLeast bool) string {
	if r == 0 {
		return "-"
	}
	s := fmt.Sprintf("%.2fx", r)
	if goal > 0 && (atLeast && r < goal || !atLeast && r > goal) {
		s += " (miss)"
	}
	return s
}

func fmtInner(in map[string]float64) string {
	var keys []string
	for k := range in {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, in[k]))
	}
	return strings.Join(parts, ", ")
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// file is the input of a format.
func (ds *dataset) file(format string) string {
	if format == "csv" {
		return ds.csv
	}
	return ds.parquet
}

// run runs one tool on one format of a data set, checks its answer and
// returns the timing.
func (b *bench) run(tool, format string, ds *dataset) measurement {
	input := ds.file(format)
	var cmd *exec.Cmd
	switch tool {
	case "hpcml":
		args := []string{"data", "profile", input, "-o", "json"}
		if b.workers > 0 {
			args = append(args, "--workers", strconv.Itoa(b.workers))
		}
		cmd = exec.Command(b.hpcml, args...)
	case "pandas":
		if format == "parquet" {
			input = ds.npy
		}
		cmd = exec.Command(b.python, filepath.Join(b.scripts, "pandas_profile.py"), input, format, strings.Join(colNames, ","))
	case "duckdb", "duckdb-corr":
		corr := "0"
		if tool == "duckdb-corr" {
			corr = "1"
		}
		cmd = exec.Command(b.node, filepath.Join(b.scripts, "duckdb_profile.js"), b.nodeAPI, input, format, corr, strings.Join(colNames, ","))
	}
	args := cmd.Args
	cmd = exec.Command(b.self, args...)
	cmd.Env = append(os.Environ(), spawnEnv+"=1")
	usageR, usageW, err := os.Pipe()
	if err != nil {
		fatalf("%v", err)
	}
	cmd.ExtraFiles = []*os.File{usageW}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	busy0 := load.BusyCPU()
	b.mu.Lock()
	err = cmd.Start()
	b.current = cmd
	b.mu.Unlock()
	usageW.Close()
	if err != nil {
		fatalf("%s %s: %v", tool, format, err)
	}
	var u usage
	usageDone := make(chan error, 1)
	go func() { usageDone <- json.NewDecoder(usageR).Decode(&u) }()
	timer := time.AfterFunc(b.timeout, func() { cmd.Process.Kill() })
	err = cmd.Wait()
	timer.Stop()
	uerr := <-usageDone
	usageR.Close()
	busy := load.BusyCPU() - busy0
	b.mu.Lock()
	b.current = nil
	b.mu.Unlock()
	if err == nil && uerr != nil {
		err = fmt.Errorf("no resource usage from the spawner: %v", uerr)
	}
	if err == nil && u.Err != "" {
		err = errors.New(u.Err)
	}
	if err != nil {
		fatalf("%s %s %s: %v (after %.1fs)\n$ %s\n%s", tool, format, ds.name, err, u.Seconds,
			strings.Join(args, " "), tail(errOut.String()+out.String(), 4000))
	}
	a, err := parseAnswer(tool, out.Bytes())
	if err == nil {
		err = ds.check(tool, a)
	}
	if err != nil {
		fatalf("%s %s %s: wrong answer: %v\n$ %s\n%s", tool, format, ds.name, err,
			strings.Join(cmd.Args, " "), tail(errOut.String()+out.String(), 2000))
	}
	if a.version != "" {
		for _, kv := range strings.Split(a.version, ";") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				b.versions[k] = v
			}
		}
	}
	return measurement{
		Format: format, Tool: tool, Input: filepath.Base(input),
		Seconds: load.Round(u.Seconds, 3), PeakMiB: load.Round(float64(u.MaxRSSKiB)/1024, 1), CPUSeconds: load.Round(u.CPUSeconds, 2),
		// The spawner's own few milliseconds count as others'.
		OtherCPU: load.Round(max(0, busy-u.CPUSeconds), 2), Inner: a.inner,
	}
}

// spawnEnv makes this program a spawner: it runs its arguments as a
// command, with its own stdin, stdout and stderr, and writes the command's
// usage as JSON to fd 3. Tools are started through a spawner because Linux
// counts the RSS peak of the process that exec'd into a child (this
// benchmark, large after generating the table) in the child's maxrss; a
// fresh spawner is a few MiB.
const spawnEnv = "HPCML_BENCH_PROFILE_SPAWN"

// usage is what a spawner reports.
type usage struct {
	Seconds    float64 `json:"seconds"` // wall clock, process start to exit
	CPUSeconds float64 `json:"cpu_seconds"`
	MaxRSSKiB  int64   `json:"maxrss_kib"`
	Err        string  `json:"error,omitempty"`
}

func spawn(args []string) {
	out := os.NewFile(3, "usage")
	var u usage
	defer func() { json.NewEncoder(out).Encode(u) }()
	if len(args) == 0 {
		u.Err = "spawner: no command"
		return
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, spawnEnv+"=") })
	// The tool dies with its spawner (a timeout kills the spawner).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	err := cmd.Run()
	u.Seconds = time.Since(start).Seconds()
	if ps := cmd.ProcessState; ps != nil {
		u.CPUSeconds = (ps.UserTime() + ps.SystemTime()).Seconds()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			u.MaxRSSKiB = ru.Maxrss // KiB on Linux
		}
	}
	if err != nil {
		u.Err = err.Error()
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// parseAnswer reads a tool's output: hpcml's JSON report, or the one JSON
// line the scripts print last.
func parseAnswer(tool string, out []byte) (answer, error) {
	a := answer{mean0: math.NaN(), corr01: math.NaN(), nulls7: -1}
	if tool == "hpcml" {
		var rep struct {
			Seconds float64 `json:"seconds"`
			Profile struct {
				Table struct {
					Rows int64 `json:"rows"`
				} `json:"table"`
				Columns []struct {
					Name    string `json:"name"`
					Missing int64  `json:"missing"`
					Numeric *struct {
						Mean *float64 `json:"mean"`
					} `json:"numeric"`
				} `json:"columns"`
				Correlations *struct {
					Pearson [][]*float64 `json:"pearson"`
				} `json:"correlations"`
			} `json:"profile"`
		}
		if err := json.Unmarshal(out, &rep); err != nil {
			return a, fmt.Errorf("hpcml's report: %v", err)
		}
		p := rep.Profile
		a.rows = p.Table.Rows
		if len(p.Columns) != numCols {
			return a, fmt.Errorf("%d columns in the report, want %d", len(p.Columns), numCols)
		}
		if n := p.Columns[0].Numeric; n != nil && n.Mean != nil {
			a.mean0 = *n.Mean
		}
		a.nulls7 = p.Columns[nullCol].Missing
		if c := p.Correlations; c != nil && len(c.Pearson) > 1 && len(c.Pearson[0]) > 1 && c.Pearson[0][1] != nil {
			a.corr01 = *c.Pearson[0][1]
		}
		a.inner = map[string]float64{"profile": load.Round(rep.Seconds, 2)}
		return a, nil
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var r struct {
		Rows    int64              `json:"rows"`
		Mean0   *float64           `json:"mean_x0"`
		Nulls7  int64              `json:"nulls_x7"`
		Corr01  *float64           `json:"corr_x0_x1"`
		Inner   map[string]float64 `json:"seconds"`
		Version string             `json:"version"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		return a, fmt.Errorf("the script's last line: %v", err)
	}
	a.rows, a.nulls7, a.inner, a.version = r.Rows, r.Nulls7, r.Inner, r.Version
	if strings.HasPrefix(tool, "duckdb") {
		a.nullsTol = r.Rows/20000 + 1 // ±0.005 %
	}
	for k, v := range a.inner {
		a.inner[k] = load.Round(v, 2)
	}
	if r.Mean0 != nil {
		a.mean0 = *r.Mean0
	}
	if r.Corr01 != nil {
		a.corr01 = *r.Corr01
	}
	return a, nil
}

// check compares an answer with the generator's.
func (ds *dataset) check(tool string, a answer) error {
	t := ds.truth
	if a.rows != t.Rows {
		return fmt.Errorf("%d rows, want %d", a.rows, t.Rows)
	}
	if !(math.Abs(a.mean0-t.Mean0) <= 1e-6*math.Abs(t.Mean0)) {
		return fmt.Errorf("mean of x0 %v, want %v", a.mean0, t.Mean0)
	}
	if a.nulls7 < t.Nulls7-a.nullsTol || a.nulls7 > t.Nulls7+a.nullsTol {
		return fmt.Errorf("%d nulls in x7, want %d", a.nulls7, t.Nulls7)
	}
	wantCorr := tool != "duckdb"
	if wantCorr && !(math.Abs(a.corr01-t.Corr01) <= 1e-6) {
		return fmt.Errorf("corr(x0, x1) %v, want %v", a.corr01, t.Corr01)
	}
	return nil
}

// ensure makes the data set's files, unless dir already holds them for
// this many rows (truth.json is written last).
func (ds *dataset) ensure(rows int64, seed uint64) error {
	ds.parquet = filepath.Join(ds.dir, "data.parquet")
	ds.csv = filepath.Join(ds.dir, "data.csv")
	ds.npy = filepath.Join(ds.dir, "data.npy")
	truthFile := filepath.Join(ds.dir, "truth.json")
	if data, err := os.ReadFile(truthFile); err == nil {
		var t truth
		if json.Unmarshal(data, &t) == nil && t.Version == genVer && t.Rows == rows {
			ok := true
			for _, p := range []string{ds.parquet, ds.csv, ds.npy} {
				if _, err := os.Stat(p); err != nil {
					ok = false
				}
			}
			if ok {
				ds.truth = t
				return nil
			}
		}
	}
	if err := os.MkdirAll(ds.dir, 0o755); err != nil {
		return err
	}
	os.Remove(truthFile)
	start := time.Now()
	t, err := generate(ds, rows, seed)
	if err != nil {
		return err
	}
	t.Seconds = load.Round(time.Since(start).Seconds(), 1)
	ds.truth = t
	data, _ := json.MarshalIndent(t, "", "  ")
	return os.WriteFile(truthFile, append(data, '\n'), 0o644)
}

// generate writes the three files in batches and returns the statistics
// the checks compare with.
func generate(ds *dataset, rows int64, seed uint64) (truth, error) {
	ctx := context.Background()
	fields := make([]arrow.Field, numCols)
	for i, n := range colNames {
		fields[i] = arrow.Field{Name: n, Type: arrow.PrimitiveTypes.Float64, Nullable: true}
	}
	schema := arrow.NewSchema(fields, nil)
	pw, err := table.Create(ctx, ds.parquet, schema, table.WriteOptions{Compression: "snappy"})
	if err != nil {
		return truth{}, err
	}
	cw, err := table.Create(ctx, ds.csv, schema, table.WriteOptions{})
	if err != nil {
		pw.Abort()
		return truth{}, err
	}
	abort := func(err error) (truth, error) {
		pw.Abort()
		cw.Abort()
		return truth{}, err
	}
	npy, err := os.Create(ds.npy + ".tmp")
	if err != nil {
		return abort(err)
	}
	defer os.Remove(npy.Name())
	// NumPy's format 1.0: magic, version, header length, a dict padded
	// with spaces to a multiple of 64 bytes ending in \n; then the values,
	// column by column (fortran_order: a DataFrame keeps each column
	// contiguous, so this is the layout it wants).
	hdr := fmt.Sprintf("{'descr': '<f8', 'fortran_order': True, 'shape': (%d, %d), }", rows, numCols)
	pad := 64 - (10+len(hdr)+1)%64
	hdr += strings.Repeat(" ", pad%64) + "\n"
	head := append([]byte("\x93NUMPY\x01\x00"), byte(len(hdr)), byte(len(hdr)>>8))
	head = append(head, hdr...)
	if _, err := npy.Write(head); err != nil {
		npy.Close()
		return abort(err)
	}
	dataOff := int64(len(head))

	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	r4 := func(v float64) float64 { return math.Round(v*1e4) / 1e4 }
	const batch = 1 << 16
	builders := make([]*array.Float64Builder, numCols)
	for i := range builders {
		builders[i] = array.NewFloat64Builder(memory.DefaultAllocator)
	}
	vals := make([][]float64, numCols)
	for i := range vals {
		vals[i] = make([]float64, batch)
	}
	valid := make([]bool, batch)
	buf := make([]byte, 8*batch)
	var t truth
	t.Version, t.Rows = genVer, rows
	// Sums for mean(x0) and corr(x0, x1), shifted by the expected means
	// so that nothing cancels.
	var s0, s1, s00, s11, s01 float64
	for off := int64(0); off < rows; off += batch {
		n := int(min(batch, rows-off))
		for j := range n {
			x0 := r4(100 + 15*rng.NormFloat64())
			x2 := r4(rng.Float64())
			x3 := r4(2 * rng.ExpFloat64())
			row := [numCols]float64{
				x0,
				r4(0.8*x0 + 9*rng.NormFloat64()),
				x2,
				x3,
				r4(-3*x2 + rng.NormFloat64()),
				r4(math.Exp(rng.NormFloat64())),
				float64(rng.IntN(100)),
				r4(rng.NormFloat64()),
				r4(x0 + 5*x3 + rng.NormFloat64()),
			}
			valid[j] = rng.Float64() >= nullRate
			if !valid[j] {
				row[nullCol] = math.NaN()
				t.Nulls7++
			}
			for c := range numCols {
				vals[c][j] = row[c]
			}
			d0, d1 := row[0]-100, row[1]-80
			s0 += d0
			s1 += d1
			s00 += d0 * d0
			s11 += d1 * d1
			s01 += d0 * d1
		}
		cols := make([]arrow.Array, numCols)
		for c := range numCols {
			if c == nullCol {
				builders[c].AppendValues(vals[c][:n], valid[:n])
			} else {
				builders[c].AppendValues(vals[c][:n], nil)
			}
			cols[c] = builders[c].NewArray()
			for j := range n {
				binary.LittleEndian.PutUint64(buf[8*j:], math.Float64bits(vals[c][j]))
			}
			if _, err := npy.WriteAt(buf[:8*n], dataOff+(int64(c)*rows+off)*8); err != nil {
				npy.Close()
				return abort(err)
			}
		}
		rec := array.NewRecordBatch(schema, cols, int64(n))
		for _, a := range cols {
			a.Release()
		}
		err := pw.Write(rec)
		if err == nil {
			err = cw.Write(rec)
		}
		rec.Release()
		if err != nil {
			npy.Close()
			return abort(err)
		}
	}
	if err := npy.Close(); err != nil {
		return abort(err)
	}
	if err := pw.Close(); err != nil {
		cw.Abort()
		return truth{}, err
	}
	if err := cw.Close(); err != nil {
		return truth{}, err
	}
	if err := os.Rename(npy.Name(), ds.npy); err != nil {
		return truth{}, err
	}
	nf := float64(rows)
	t.Mean0 = 100 + s0/nf
	cov := s01/nf - (s0/nf)*(s1/nf)
	v0 := s00/nf - (s0/nf)*(s0/nf)
	v1 := s11/nf - (s1/nf)*(s1/nf)
	t.Corr01 = cov / math.Sqrt(v0*v1)
	return t, nil
}

// profileInProcess profiles a file with internal/analysis under the CPU
// profiler, as `hpcml data profile` does (less printing the report).
func profileInProcess(file, out string, workers int) (float64, error) {
	f, err := os.Create(out)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return 0, err
	}
	start := time.Now()
	st, _, err := analysis.ProfileLocal(context.Background(), file, analysis.ProfileOptions{Workers: workers})
	if err == nil {
		st.Report()
	}
	secs := time.Since(start).Seconds()
	pprof.StopCPUProfile()
	return secs, err
}

// pandasScript: argv = file, format, column names. Prints one JSON line.
const pandasScript = `import json, sys, time
t0 = time.perf_counter()
import numpy as np
import pandas as pd
t1 = time.perf_counter()
path, fmt, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
if fmt == "csv":
    df = pd.read_csv(path)
else:
    # No Parquet reader for Debian 12's pandas (no pyarrow, no fastparquet):
    # the same values from a column-major .npy, no copy.
    df = pd.DataFrame(np.load(path), columns=names, copy=False)
t2 = time.perf_counter()
d = df.describe()
t3 = time.perf_counter()
c = df.corr()
t4 = time.perf_counter()
print(json.dumps({
    "rows": len(df),
    "mean_x0": float(d.loc["mean", "x0"]),
    "nulls_x7": int(len(df) - d.loc["count", "x7"]),
    "corr_x0_x1": float(c.loc["x0", "x1"]),
    "seconds": {"import": t1 - t0, "load": t2 - t1, "describe": t3 - t2, "corr": t4 - t3},
    "version": "pandas=%s;numpy=%s;python=%s" % (pd.__version__, np.__version__, sys.version.split()[0]),
}))
`

// duckdbScript: argv = @duckdb/node-api dir, file, format, corr (0/1),
// column names. Prints one JSON line.
const duckdbScript = `const t0 = performance.now();
const [api, path, fmt, corr, names] = process.argv.slice(2);
const { DuckDBInstance, version } = require(api);
const cols = names.split(",");
const q = (s) => "'" + s.replaceAll("'", "''") + "'";
const src = fmt === "csv" ? "read_csv(" + q(path) + ")" : "read_parquet(" + q(path) + ")";
(async () => {
  const inst = await DuckDBInstance.create(":memory:");
  const conn = await inst.connect();
  const t1 = performance.now();
  const secs = { start: (t1 - t0) / 1000 };
  let from = src;
  if (corr === "1") {
    await conn.run("CREATE TABLE t AS SELECT * FROM " + src);
    from = "t";
    secs.load = (performance.now() - t1) / 1000;
  }
  const t2 = performance.now();
  const sum = (await conn.runAndReadAll("SUMMARIZE SELECT * FROM " + from)).getRowObjectsJson();
  const t3 = performance.now();
  secs.summarize = (t3 - t2) / 1000;
  const x0 = sum.find((r) => r.column_name === cols[0]);
  const x7 = sum.find((r) => r.column_name === cols[7]);
  const out = {
    rows: Number(x0.count),
    mean_x0: Number(x0.avg),
    nulls_x7: Math.load.Round(Number(x7.count) * Number(x7.null_percentage) / 100),
    seconds: secs,
    version: "duckdb=" + version(),
  };
  if (corr === "1") {
    const pairs = [];
    for (let i = 0; i < cols.length; i++)
      for (let j = i + 1; j < cols.length; j++)
        pairs.push("corr(" + cols[i] + ", " + cols[j] + ") AS c_" + i + "_" + j);
    const r = (await conn.runAndReadAll("SELECT " + pairs.join(", ") + " FROM t")).getRowObjectsJson()[0];
    out.corr_x0_x1 = Number(r.c_0_1);
    secs.corr = (performance.now() - t3) / 1000;
  }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
`

// mustLookPath resolves a peer tool or stops the benchmark saying how to
// get it.
func mustLookPath(bin, name, hint string) string {
	p, err := load.LookPath(bin, name, hint)
	if err != nil {
		fatalf("%v", err)
	}
	return p
}
