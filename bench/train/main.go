// Command train benchmarks hpcml's NN engine (internal/nn) against PyTorch
// CPU in the same invocation: training throughput (samples/s) of the same
// MLP and the same small CNN with the same batch size and thread count,
// and the wall time each needs to reach a test accuracy on MNIST.
//
//	make bench-train                          # pure Go, then OpenBLAS
//	go run ./bench/train                      # both models, both measurements
//	go run ./bench/train -models cnn -tta=false -rounds 7
//	go run -tags openblas ./bench/train       # GEMM through OpenBLAS (cgo)
//	go run ./bench/train -tta=false -cpuprofile /tmp/train   # + /tmp/train-{mlp,cnn}.pprof
//	go run ./bench/train -tta=false -layers   # per-layer times, torch.profiler's table
//	go run ./bench/train -o json
//
// Models, exactly alike on both sides: mlp is hpcml's mlp algorithm with its
// defaults (784-256-128-10, ReLU, He-normal hidden layers, Xavier output),
// cnn its cnn algorithm's default "lenet" net (internal/train/algorithm.go:
// conv 16 5×5 pad 2, relu, maxpool 2, conv 32 5×5 pad 2, relu, maxpool 2,
// flatten, dense 128, relu, dropout 0.25, dense 10). hpcml draws the
// initial weights and PyTorch loads the same values (the layouts agree).
// Adam, learning rate 1e-3 (β 0.9/0.999, ε 1e-8), softmax cross-entropy,
// batch 64, inputs scaled to [0, 1] (no standardisation on either side),
// the same MNIST IDX files read into memory by each side.
//
// Threads: GOMAXPROCS and, in the OpenBLAS build, OPENBLAS_NUM_THREADS
// (-openblas-threads; the program re-executes itself to set it before
// OpenBLAS loads) on hpcml's side; torch.set_num_threads and OMP_NUM_THREADS
// on PyTorch's. PyTorch runs in up to three configurations (-pytorch), one
// Python process each: Debian's python3-torch does its convolutions with
// oneDNN on its OpenMP threads and its dense products with the system BLAS,
// the pthreads build of OpenBLAS, whose own threads compete with OpenMP's for
// the same cores:
//
//	default  as installed, OPENBLAS_NUM_THREADS=threads
//	blas1    OPENBLAS_NUM_THREADS=1
//	openmp   the OpenMP build of OpenBLAS (LD_LIBRARY_PATH), sharing the
//	         OpenMP pool
//
// Ratios are taken against the configuration fastest on each model, and
// time to accuracy runs that one.
//
// Throughput: each round runs -warmup untimed steps then -steps timed steps
// on each side, hpcml first, then each PyTorch configuration (long-lived
// Python processes driven over pipes, so rounds interleave); only the
// training step is timed (zero the gradients, forward, loss, backward, Adam
// step) over batches that are views of a training set shuffled once
// beforehand. The median round counts. The ratio is hpcml samples/s over
// PyTorch's (goal: ≥ 0.5 pure Go, ≥ 0.9 with OpenBLAS).
//
// Time to accuracy: each side trains from the same initial weights, one
// shuffled epoch at a time (the batch gathered by index, in the epoch time),
// and evaluates on the 10,000 test images after each epoch, until the test
// accuracy reaches -target-mlp / -target-cnn or -max-epochs pass; the time
// includes the evaluations. With -tta-runs N the sides alternate N times from
// the same start and the median run counts. Dropout masks and the shuffles
// differ between the sides (each its own RNG).
//
// On a shared machine other work disturbs the timings: other_cpu is the CPU
// time the rest of the machine used while a side was timed (/proc/stat).
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hpcml/hpcml/bench/internal/load"
	"github.com/hpcml/hpcml/internal/nn"
)

//go:embed torch_bench.py
var torchScript []byte

// models are the two networks, as hpcml's algorithms build them for
// 28×28 grey images and 10 classes.
var models = map[string]nn.Spec{
	"mlp": {Input: []int{784}, Layers: []nn.LayerSpec{
		{Type: "dense", Units: 256, Init: "he"}, {Type: "relu"},
		{Type: "dense", Units: 128, Init: "he"}, {Type: "relu"},
		{Type: "dense", Units: 10, Init: "xavier"},
	}},
	"cnn": {Input: []int{1, 28, 28}, Layers: []nn.LayerSpec{
		{Type: "conv2d", Filters: 16, Kernel: 5, Padding: 2}, {Type: "relu"}, {Type: "maxpool2d", Kernel: 2},
		{Type: "conv2d", Filters: 32, Kernel: 5, Padding: 2}, {Type: "relu"}, {Type: "maxpool2d", Kernel: 2},
		{Type: "flatten"}, {Type: "dense", Units: 128}, {Type: "relu"},
		{Type: "dropout", Rate: 0.25},
		{Type: "dense", Units: 10, Init: "xavier"},
	}},
}

// config is what both sides are run with.
type config struct {
	batch, threads, warmup, rounds int
	steps                          map[string]int
	lr                             float64
	seed                           uint64
	maxEpochs                      int
	target                         map[string]float64
}

// Results, as -o json prints them.
type report struct {
	Machine    string            `json:"machine"`
	BLAS       string            `json:"blas"`
	Versions   map[string]string `json:"versions"`
	Batch      int               `json:"batch"`
	Threads    int               `json:"threads"`
	LoadAvg    string            `json:"loadavg_at_start"`
	Throughput []throughput      `json:"throughput,omitempty"`
	TTA        []tta             `json:"time_to_accuracy,omitempty"`
}

type throughput struct {
	Model  string   `json:"model"`
	Warmup int      `json:"warmup_steps"`
	Steps  int      `json:"steps"`
	Rounds int      `json:"rounds"`
	Hpcml  sideRate `json:"hpcml"`
	// Torch has one entry per PyTorch configuration (-pytorch).
	Torch []sideRate `json:"pytorch"`
	// TorchBest is the configuration with the highest median samples/s,
	// the one the ratios and time to accuracy use.
	TorchBest string `json:"pytorch_best"`
	// Ratio is hpcml samples/s over the best PyTorch configuration's, of
	// the median rounds; BestRatio of each side's fastest round.
	Ratio     float64 `json:"ratio"`
	BestRatio float64 `json:"best_ratio"`
}

type sideRate struct {
	Config        string    `json:"config,omitempty"` // PyTorch: which configuration
	SamplesPerSec float64   `json:"samples_per_sec"`  // median round
	Rounds        []float64 `json:"rounds_samples_per_sec"`
	Best          float64   `json:"best_samples_per_sec"`
	MsPerStep     float64   `json:"ms_per_step"`
	CPUPerStepMs  float64   `json:"cpu_ms_per_step"`       // the side's own CPU, median round
	OtherCPU      float64   `json:"other_cpu_seconds"`     // the rest of the machine's, summed over rounds
	AllocPerStep  float64   `json:"alloc_mib_per_step"`    // hpcml: heap allocated per step
	GCPerStep     float64   `json:"gc_cycles_per_step"`    // hpcml
	GCCPUShare    float64   `json:"gc_cpu_share,omitzero"` // hpcml: GC's share of the process's CPU
}

type tta struct {
	Model     string   `json:"model"`
	Target    float64  `json:"target"`
	MaxEpochs int      `json:"max_epochs"`
	Hpcml     sideTTA  `json:"hpcml"`
	Torch     sideTTA  `json:"pytorch"`         // the best configuration by throughput
	Ratio     *float64 `json:"ratio,omitempty"` // PyTorch seconds / hpcml seconds, when both reached the target
}

type sideTTA struct {
	Config       string  `json:"config,omitempty"`
	Reached      bool    `json:"reached"`
	Epochs       []epoch `json:"epochs"`
	Seconds      float64 `json:"seconds"`
	TrainSeconds float64 `json:"train_seconds"`
	EvalSeconds  float64 `json:"eval_seconds"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	OtherCPU     float64 `json:"other_cpu_seconds"`
	// RunsSeconds are every run's seconds when there were several (the
	// fields above are the median run's).
	RunsSeconds []float64 `json:"runs_seconds,omitempty"`
}

type epoch struct {
	Epoch        int     `json:"epoch"`
	Accuracy     float64 `json:"accuracy"`
	TrainSeconds float64 `json:"train_seconds"`
	EvalSeconds  float64 `json:"eval_seconds"`
	Elapsed      float64 `json:"elapsed"`
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("bench/train: ")
	modelsFlag := flag.String("models", "mlp,cnn", "models, comma-separated: mlp, cnn")
	batch := flag.Int("batch", 64, "batch size")
	threads := flag.Int("threads", 2, "threads on each side: GOMAXPROCS (and OPENBLAS_NUM_THREADS), torch.set_num_threads")
	obThreads := flag.Int("openblas-threads", 0, "OPENBLAS_NUM_THREADS of hpcml's OpenBLAS build (0: -threads)")
	warmup := flag.Int("warmup", 10, "untimed steps before each round's timed ones")
	steps := flag.String("steps", "mlp=500,cnn=100", "timed training steps per round, per model (model=N,... or one N for all)")
	rounds := flag.Int("rounds", 5, "throughput rounds (hpcml then PyTorch in each); the median counts")
	doTTA := flag.Bool("tta", true, "also measure the time to the target test accuracy")
	targetMLP := flag.Float64("target-mlp", 0.975, "test accuracy the MLP trains to")
	targetCNN := flag.Float64("target-cnn", 0.985, "test accuracy the CNN trains to")
	maxEpochs := flag.Int("max-epochs", 10, "epochs after which time-to-accuracy gives up")
	ttaRuns := flag.String("tta-runs", "mlp=3,cnn=1", "time-to-accuracy runs per model (model=N,... or one N); the median run counts")
	lr := flag.Float64("lr", 1e-3, "Adam learning rate")
	seed := flag.Uint64("seed", 1, "seed of the initial weights, shuffles and dropout")
	dataDir := flag.String("data", defaultData(), "directory of the MNIST IDX files (scripts/sample-data.sh puts them there)")
	python := flag.String("python", "/usr/bin/python3", "Python with PyTorch (Debian's python3-torch)")
	tools := flag.String("tools", "hpcml,pytorch", "sides to run: hpcml, pytorch")
	torchConfigs := flag.String("pytorch", "default,blas1,openmp", "PyTorch configurations, comma-separated (see above): default, blas1, openmp")
	ompDir := flag.String("openblas-openmp", defaultOMPDir(), "directory of the OpenMP build of OpenBLAS (libblas.so.3, libopenblas.so.0) for -pytorch openmp")
	out := flag.String("o", "table", "output: table or json")
	save := flag.String("save", "", "also write the JSON report to this file")
	cpuProfile := flag.String("cpuprofile", "", "after the rounds, profile -steps more hpcml steps per model (untimed) into PREFIX-MODEL.pprof")
	layers := flag.Bool("layers", false, "after the rounds, time hpcml's layers one by one and print PyTorch's torch.profiler table (stderr)")
	flag.Parse()

	if *out != "table" && *out != "json" {
		log.Fatalf("-o %q: want table or json", *out)
	}
	if *batch < 1 || *threads < 1 || *rounds < 1 || *warmup < 0 || *maxEpochs < 1 {
		log.Fatal("-batch, -threads, -rounds and -max-epochs must be at least 1, -warmup at least 0")
	}
	// OpenBLAS reads its thread count once, when the library loads: set it
	// and start again.
	if *obThreads == 0 {
		*obThreads = *threads
	}
	if nn.BLAS == "openblas" && os.Getenv("OPENBLAS_NUM_THREADS") != strconv.Itoa(*obThreads) {
		self, err := os.Executable()
		if err != nil {
			log.Fatal(err)
		}
		os.Setenv("OPENBLAS_NUM_THREADS", strconv.Itoa(*obThreads))
		log.Fatal(syscall.Exec(self, os.Args, os.Environ()))
	}
	runtime.GOMAXPROCS(*threads)

	names := strings.Split(*modelsFlag, ",")
	for _, n := range names {
		if _, ok := models[n]; !ok {
			log.Fatalf("-models: unknown model %q (want mlp, cnn)", n)
		}
	}
	stepsOf, err := perModel(*steps, names)
	if err != nil {
		log.Fatalf("-steps: %v", err)
	}
	ttaRunsOf, err := perModel(*ttaRuns, names)
	if err != nil {
		log.Fatalf("-tta-runs: %v", err)
	}
	sides := strings.Split(*tools, ",")
	runHpcml, runTorch := slices.Contains(sides, "hpcml"), slices.Contains(sides, "pytorch")
	if !runHpcml && !runTorch {
		log.Fatal("-tools: want hpcml, pytorch or both")
	}
	cfg := config{
		batch: *batch, threads: *threads, warmup: *warmup, rounds: *rounds, steps: stepsOf,
		lr: *lr, seed: *seed, maxEpochs: *maxEpochs,
		target: map[string]float64{"mlp": *targetMLP, "cnn": *targetCNN},
	}

	rep := report{Machine: load.Machine(), BLAS: nn.BLAS, Batch: cfg.batch, Threads: cfg.threads, LoadAvg: load.LoadAvg(),
		Versions: map[string]string{"go": runtime.Version(), "hpcml": load.TreeVersion()}}
	if nn.BLAS == "openblas" {
		rep.BLAS = fmt.Sprintf("openblas (%s, OPENBLAS_NUM_THREADS=%d", mappedLib(os.Getpid(), "libopenblas"), *obThreads)
		if t := os.Getenv("OPENBLAS_THREAD_TIMEOUT"); t != "" {
			rep.BLAS += ", OPENBLAS_THREAD_TIMEOUT=" + t
		}
		rep.BLAS += ")"
	}
	log.Printf("%s; hpcml BLAS %s; batch %d, %d threads; load average %s", rep.Machine, rep.BLAS, cfg.batch, cfg.threads, rep.LoadAvg)

	start := time.Now()
	mn, err := loadMNIST(*dataDir)
	if err != nil {
		log.Fatalf("%v (scripts/sample-data.sh fetches MNIST)", err)
	}
	log.Printf("MNIST: %d training and %d test images from %s in %.1fs", len(mn.trainY), len(mn.testY), *dataDir, time.Since(start).Seconds())

	tmp, err := os.MkdirTemp("", "hpcml-bench-train-*")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)

	var pys []*torchProc
	if runTorch {
		if _, err := load.LookPath(*python, "python3", "scripts/bench-deps.sh train installs Debian's python3-torch"); err != nil {
			log.Fatal(err)
		}
		script := filepath.Join(tmp, "torch_bench.py")
		if err := os.WriteFile(script, torchScript, 0o644); err != nil {
			log.Fatal(err)
		}
		for _, c := range strings.Split(*torchConfigs, ",") {
			env, err := torchEnv(c, cfg.threads, *ompDir)
			if err != nil {
				log.Fatalf("-pytorch: %v", err)
			}
			py, err := startTorch(c, *python, script, *dataDir, cfg.threads, env)
			if err != nil {
				log.Fatalf("PyTorch (%s): %v (scripts/bench-deps.sh train installs Debian's python3-torch)", c, err)
			}
			defer py.close()
			pys = append(pys, py)
			rep.Versions["pytorch"] = py.info.Torch
			rep.Versions["python"] = py.info.Python
			rep.Versions["numpy"] = py.info.Numpy
			log.Printf("PyTorch %s (Python %s) %s: %d threads, %d inter-op, oneDNN %v; %s; BLAS: %s", py.info.Torch, py.info.Python,
				c, py.info.Threads, py.info.InteropThreads, py.info.MKLDNN, strings.Join(env, " "), torchBLAS(py.info.Config, py.blas))
		}
	}

	for _, name := range names {
		spec := models[name]
		h, err := newHpcml(name, spec, mn, cfg)
		if err != nil {
			log.Fatalf("%s: %v", name, err)
		}
		initPath := filepath.Join(tmp, name+"-init.f32")
		if err := h.writeInit(initPath); err != nil {
			log.Fatal(err)
		}
		var shapes [][]int
		for _, p := range h.init {
			shapes = append(shapes, p.Value.Shape)
		}
		for _, py := range pys {
			if _, err := py.call(map[string]any{"cmd": "setup", "model": name, "batch": cfg.batch, "lr": cfg.lr,
				"seed": cfg.seed, "init": initPath, "shapes": shapes}); err != nil {
				log.Fatalf("%s: PyTorch (%s) setup: %v", name, py.name, err)
			}
		}

		tp := throughput{Model: name, Warmup: cfg.warmup, Steps: cfg.steps[name], Rounds: cfg.rounds}
		var hr []roundResult
		tr := make([][]roundResult, len(pys))
		for round := 1; round <= cfg.rounds; round++ {
			if runHpcml {
				r := h.throughput(cfg.warmup, cfg.steps[name])
				hr = append(hr, r)
				log.Printf("%s round %d: hpcml   %8.0f samples/s  %6.2f ms/step  cpu %6.2f ms/step  others' cpu %5.2fs  alloc %5.2f MiB/step",
					name, round, r.rate, r.secs*1e3/float64(r.steps), r.cpu*1e3/float64(r.steps), r.other, r.alloc/float64(r.steps)/(1<<20))
			}
			for i, py := range pys {
				r, err := py.throughput(cfg.warmup, cfg.steps[name], cfg.batch)
				if err != nil {
					log.Fatalf("%s: PyTorch (%s): %v", name, py.name, err)
				}
				tr[i] = append(tr[i], r)
				log.Printf("%s round %d: pytorch %8.0f samples/s  %6.2f ms/step  cpu %6.2f ms/step  others' cpu %5.2fs  (%s)",
					name, round, r.rate, r.secs*1e3/float64(r.steps), r.cpu*1e3/float64(r.steps), r.other, py.name)
			}
		}
		tp.Hpcml = summarize(hr)
		var best *torchProc
		var bestRate sideRate
		for i, py := range pys {
			s := summarize(tr[i])
			s.Config = py.name
			tp.Torch = append(tp.Torch, s)
			if best == nil || s.SamplesPerSec > bestRate.SamplesPerSec {
				best, bestRate = py, s
			}
		}
		if best != nil {
			tp.TorchBest = best.name
			if tp.Hpcml.SamplesPerSec > 0 {
				tp.Ratio = load.Round(tp.Hpcml.SamplesPerSec/bestRate.SamplesPerSec, 3)
				tp.BestRatio = load.Round(tp.Hpcml.Best/bestRate.Best, 3)
			}
		}
		rep.Throughput = append(rep.Throughput, tp)

		if runHpcml && *cpuProfile != "" {
			p := *cpuProfile + "-" + name + ".pprof"
			if err := h.profile(p, cfg.steps[name]); err != nil {
				log.Fatalf("-cpuprofile: %v", err)
			}
			log.Printf("%s: CPU profile of %d hpcml steps in %s", name, cfg.steps[name], p)
		}
		if *layers {
			if runHpcml {
				h.layerTimes(os.Stderr, cfg.steps[name])
			}
			for _, py := range pys {
				fmt.Fprintf(os.Stderr, "\nPyTorch (%s) %s, torch.profiler over %d steps:\n", py.name, name, min(cfg.steps[name], 50))
				if _, err := py.call(map[string]any{"cmd": "profile", "steps": min(cfg.steps[name], 50)}); err != nil {
					log.Fatalf("%s: PyTorch (%s) profile: %v", name, py.name, err)
				}
			}
		}

		if *doTTA {
			t := tta{Model: name, Target: cfg.target[name], MaxEpochs: cfg.maxEpochs}
			var hs, ts []sideTTA
			for range ttaRunsOf[name] {
				if runHpcml {
					hs = append(hs, h.timeToAccuracy(cfg.target[name], cfg.maxEpochs))
				}
				if best != nil {
					r, err := best.tta(cfg.target[name], cfg.maxEpochs)
					if err != nil {
						log.Fatalf("%s: PyTorch (%s): %v", name, best.name, err)
					}
					r.Config = best.name
					ts = append(ts, r)
				}
			}
			t.Hpcml, t.Torch = medianTTA(hs), medianTTA(ts)
			if t.Hpcml.Reached && t.Torch.Reached {
				r := load.Round(t.Torch.Seconds/t.Hpcml.Seconds, 3)
				t.Ratio = &r
			}
			rep.TTA = append(rep.TTA, t)
		}
	}

	if *save != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err == nil {
			err = os.WriteFile(*save, append(data, '\n'), 0o644)
		}
		if err != nil {
			log.Fatalf("-save: %v", err)
		}
	}
	if *out == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			log.Fatal(err)
		}
		return
	}
	printTable(os.Stdout, rep, pys)
}

// defaultData is $HPCML_SAMPLES/mnist, else /var/cache/hpcml-samples/mnist
// (where scripts/sample-data.sh puts MNIST).
func defaultData() string {
	if d := os.Getenv("HPCML_SAMPLES"); d != "" {
		return filepath.Join(d, "mnist")
	}
	return "/var/cache/hpcml-samples/mnist"
}

// perModel parses "mlp=500,cnn=100" or a single number for every model.
func perModel(s string, names []string) (map[string]int, error) {
	m := map[string]int{}
	if n, err := strconv.Atoi(s); err == nil {
		for _, name := range names {
			m[name] = n
		}
	} else {
		for _, kv := range strings.Split(s, ",") {
			k, v, ok := strings.Cut(kv, "=")
			n, err := strconv.Atoi(v)
			if !ok || err != nil {
				return nil, fmt.Errorf("%q: want model=N", kv)
			}
			m[k] = n
		}
	}
	for _, name := range names {
		if m[name] < 1 {
			return nil, fmt.Errorf("no step count ≥ 1 for %s", name)
		}
	}
	return m, nil
}

// mnist is the data set in memory, pixels scaled to [0, 1].
type mnist struct {
	trainX, testX []float32 // N×784
	trainY, testY []int
}

func loadMNIST(dir string) (*mnist, error) {
	var m mnist
	var err error
	if m.trainX, m.trainY, err = loadIDXPair(dir, "train"); err != nil {
		return nil, err
	}
	if m.testX, m.testY, err = loadIDXPair(dir, "t10k"); err != nil {
		return nil, err
	}
	return &m, nil
}

func loadIDXPair(dir, prefix string) ([]float32, []int, error) {
	dims, img, err := readIDX(dir, prefix+"-images-idx3-ubyte")
	if err != nil {
		return nil, nil, err
	}
	if len(dims) != 3 || dims[1] != 28 || dims[2] != 28 {
		return nil, nil, fmt.Errorf("%s images: shape %v, want N×28×28", prefix, dims)
	}
	ldims, lab, err := readIDX(dir, prefix+"-labels-idx1-ubyte")
	if err != nil {
		return nil, nil, err
	}
	if len(ldims) != 1 || ldims[0] != dims[0] {
		return nil, nil, fmt.Errorf("%s labels: shape %v for %d images", prefix, ldims, dims[0])
	}
	x := make([]float32, len(img))
	for i, v := range img {
		x[i] = float32(v) / 255
	}
	y := make([]int, len(lab))
	for i, v := range lab {
		if v > 9 {
			return nil, nil, fmt.Errorf("%s labels: label %d", prefix, v)
		}
		y[i] = int(v)
	}
	return x, y, nil
}

// readIDX reads an unsigned-byte IDX file NAME or NAME.gz from dir.
func readIDX(dir, name string) ([]int, []byte, error) {
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		path += ".gz"
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReader(f)
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		r = gz
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) < 4 || data[0] != 0 || data[1] != 0 || data[2] != 0x08 || data[3] == 0 {
		return nil, nil, fmt.Errorf("%s: not an unsigned-byte IDX file", path)
	}
	nd := int(data[3])
	if len(data) < 4+4*nd {
		return nil, nil, fmt.Errorf("%s: truncated header", path)
	}
	dims, total := make([]int, nd), 1
	for i := range dims {
		dims[i] = int(binary.BigEndian.Uint32(data[4+4*i:]))
		total *= dims[i]
	}
	if body := data[4+4*nd:]; len(body) != total {
		return nil, nil, fmt.Errorf("%s: %d values for dimensions %v", path, len(body), dims)
	} else {
		return dims, body, nil
	}
}

// hpcmlSide trains one model through internal/nn in this process.
type hpcmlSide struct {
	name  string
	spec  nn.Spec
	cfg   config
	data  *mnist
	model *nn.Model
	opt   nn.Optimizer
	ctx   *nn.Context
	init  []*nn.Param // the initial weights, for PyTorch and for time-to-accuracy

	// Throughput batches: views of the training set shuffled once.
	xs     *nn.Tensor
	ys     []int
	cursor int
}

func newHpcml(name string, spec nn.Spec, data *mnist, cfg config) (*hpcmlSide, error) {
	h := &hpcmlSide{name: name, spec: spec, cfg: cfg, data: data}
	if err := h.reset(); err != nil {
		return nil, err
	}
	for _, p := range h.model.Params() {
		h.init = append(h.init, &nn.Param{Name: p.Name, Value: p.Value.Clone()})
	}
	n, px := len(data.trainY), 28*28
	perm := rand.New(rand.NewPCG(cfg.seed, 1)).Perm(n)
	xs := make([]float32, n*px)
	h.ys = make([]int, n)
	for i, j := range perm {
		copy(xs[i*px:(i+1)*px], data.trainX[j*px:(j+1)*px])
		h.ys[i] = data.trainY[j]
	}
	h.xs = h.tensor(xs, n)
	return h, nil
}

// reset builds the model from the seed (the same initial weights every
// time) with a fresh optimiser.
func (h *hpcmlSide) reset() error {
	m, err := nn.Build(h.spec, h.cfg.seed)
	if err != nil {
		return err
	}
	opt, err := nn.NewOptimizer(nn.OptimizerConfig{Name: "adam"})
	if err != nil {
		return err
	}
	h.model, h.opt = m, opt
	h.ctx = &nn.Context{Training: true, RNG: rand.New(rand.NewPCG(h.cfg.seed, 2))}
	return nil
}

// tensor shapes n images for the model's input.
func (h *hpcmlSide) tensor(x []float32, n int) *nn.Tensor {
	t, err := nn.FromData(x, append([]int{n}, h.spec.Input...)...)
	if err != nil {
		panic(err)
	}
	return t
}

func (h *hpcmlSide) writeInit(path string) error {
	var buf bytes.Buffer
	for _, p := range h.init {
		if err := binary.Write(&buf, binary.LittleEndian, p.Value.Data); err != nil {
			return err
		}
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

// step is one training step: what PyTorch's opt.zero_grad(), model(x),
// cross_entropy, backward() and opt.step() do.
func (h *hpcmlSide) step(x *nn.Tensor, y []int) {
	h.model.ZeroGrad()
	out, pass, err := h.model.Forward(h.ctx, x)
	if err != nil {
		panic(err)
	}
	_, grad, err := nn.SoftmaxCrossEntropy(out, y, nil)
	if err != nil {
		panic(err)
	}
	h.model.Backward(pass, grad)
	h.opt.Step(h.model.Params(), h.cfg.lr)
}

func (h *hpcmlSide) steps(n int) {
	b := h.cfg.batch
	nb := len(h.ys) / b
	for range n {
		lo := (h.cursor % nb) * b
		h.cursor++
		h.step(h.xs.Rows(lo, lo+b), h.ys[lo:lo+b])
	}
}

// roundResult is one side's timed steps.
type roundResult struct {
	steps       int
	secs, rate  float64
	cpu, other  float64
	alloc, gcs  float64
	gcCPU, pCPU float64
}

var gcMetrics = []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/total:cpu-seconds"}}

func (h *hpcmlSide) throughput(warmup, steps int) roundResult {
	h.steps(warmup)
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	metrics.Read(gcMetrics)
	gc0, tot0 := gcMetrics[0].Value.Float64(), gcMetrics[1].Value.Float64()
	busy0, cpu0 := load.BusyCPU(), selfCPU()
	t0 := time.Now()
	h.steps(steps)
	secs := time.Since(t0).Seconds()
	cpu := selfCPU() - cpu0
	busy := load.BusyCPU() - busy0
	metrics.Read(gcMetrics)
	runtime.ReadMemStats(&m1)
	return roundResult{
		steps: steps, secs: secs, rate: float64(steps*h.cfg.batch) / secs, cpu: cpu, other: max(0, busy-cpu),
		alloc: float64(m1.TotalAlloc - m0.TotalAlloc), gcs: float64(m1.NumGC - m0.NumGC),
		gcCPU: gcMetrics[0].Value.Float64() - gc0, pCPU: gcMetrics[1].Value.Float64() - tot0,
	}
}

func summarize(rs []roundResult) sideRate {
	if len(rs) == 0 {
		return sideRate{}
	}
	var s sideRate
	for _, r := range rs {
		s.Rounds = append(s.Rounds, load.Round(r.rate, 1))
		s.OtherCPU += r.other
	}
	s.OtherCPU = load.Round(s.OtherCPU, 2)
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b roundResult) int { return cmp.Compare(a.rate, b.rate) })
	med := sorted[len(sorted)/2]
	s.SamplesPerSec, s.Best = load.Round(med.rate, 1), load.Round(sorted[len(sorted)-1].rate, 1)
	n := float64(med.steps)
	s.MsPerStep, s.CPUPerStepMs = load.Round(med.secs*1e3/n, 3), load.Round(med.cpu*1e3/n, 3)
	s.AllocPerStep, s.GCPerStep = load.Round(med.alloc/n/(1<<20), 3), load.Round(med.gcs/n, 3)
	if med.pCPU > 0 {
		s.GCCPUShare = load.Round(med.gcCPU/med.pCPU, 3)
	}
	return s
}

// profile writes a CPU profile of steps more training steps.
func (h *hpcmlSide) profile(path string, steps int) error {
	h.steps(3)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	h.steps(steps)
	pprof.StopCPUProfile()
	return f.Close()
}

// layerTimes runs steps training steps layer by layer, as Model.Forward
// and Backward do, and prints each layer's forward and backward time.
func (h *hpcmlSide) layerTimes(w io.Writer, steps int) {
	m := h.model
	fwd, bwd := make([]time.Duration, len(m.Layers)), make([]time.Duration, len(m.Layers))
	var loss, zero, opt time.Duration
	caches := make([]any, len(m.Layers))
	b := h.cfg.batch
	nb := len(h.ys) / b
	for range steps {
		lo := (h.cursor % nb) * b
		h.cursor++
		x, y := h.xs.Rows(lo, lo+b), h.ys[lo:lo+b]
		t := time.Now()
		m.ZeroGrad()
		zero += time.Since(t)
		for i, l := range m.Layers {
			t = time.Now()
			x, caches[i] = l.Forward(h.ctx, x)
			fwd[i] += time.Since(t)
		}
		t = time.Now()
		_, dy, err := nn.SoftmaxCrossEntropy(x, y, nil)
		if err != nil {
			panic(err)
		}
		loss += time.Since(t)
		for i := len(m.Layers) - 1; i >= 0; i-- {
			t = time.Now()
			dy = m.Layers[i].Backward(caches[i], dy, i > 0)
			bwd[i] += time.Since(t)
		}
		t = time.Now()
		h.opt.Step(m.Params(), h.cfg.lr)
		opt += time.Since(t)
	}
	ms := func(d time.Duration) float64 { return d.Seconds() * 1e3 / float64(steps) }
	var total time.Duration
	fmt.Fprintf(w, "\nhpcml %s, per step (batch %d, mean of %d steps), ms:\n%-4s %-10s %9s %9s\n", h.name, b, steps, "", "layer", "forward", "backward")
	for i, l := range m.Layers {
		fmt.Fprintf(w, "%-4d %-10s %9.3f %9.3f\n", i, l.Kind(), ms(fwd[i]), ms(bwd[i]))
		total += fwd[i] + bwd[i]
	}
	fmt.Fprintf(w, "     %-10s %9.3f\n     %-10s %9.3f\n     %-10s %9.3f\n     %-10s %9.3f\n",
		"loss", ms(loss), "zero_grad", ms(zero), "adam", ms(opt), "total", ms(total+loss+zero+opt))
}

// timeToAccuracy trains from the initial weights until the test accuracy
// reaches target, evaluating after every epoch.
func (h *hpcmlSide) timeToAccuracy(target float64, maxEpochs int) sideTTA {
	if err := h.reset(); err != nil {
		panic(err)
	}
	rng := rand.New(rand.NewPCG(h.cfg.seed, 3))
	n, b, px := len(h.data.trainY), h.cfg.batch, 28*28
	xbuf, ybuf := make([]float32, b*px), make([]int, b)
	var res sideTTA
	busy0, cpu0 := load.BusyCPU(), selfCPU()
	start := time.Now()
	for e := 1; e <= maxEpochs; e++ {
		t0 := time.Now()
		perm := rng.Perm(n)
		for lo := 0; lo < n; lo += b {
			idx := perm[lo:min(lo+b, n)]
			for i, j := range idx {
				copy(xbuf[i*px:(i+1)*px], h.data.trainX[j*px:(j+1)*px])
				ybuf[i] = h.data.trainY[j]
			}
			h.step(h.tensor(xbuf[:len(idx)*px], len(idx)), ybuf[:len(idx)])
		}
		t1 := time.Now()
		acc := h.accuracy()
		t2 := time.Now()
		ep := epoch{Epoch: e, Accuracy: acc, TrainSeconds: load.Round(t1.Sub(t0).Seconds(), 2),
			EvalSeconds: load.Round(t2.Sub(t1).Seconds(), 2), Elapsed: load.Round(t2.Sub(start).Seconds(), 2)}
		res.Epochs = append(res.Epochs, ep)
		res.TrainSeconds += t1.Sub(t0).Seconds()
		res.EvalSeconds += t2.Sub(t1).Seconds()
		log.Printf("%s hpcml epoch %d: test accuracy %.4f, %.1fs train + %.1fs eval", h.name, e, acc, ep.TrainSeconds, ep.EvalSeconds)
		if acc >= target {
			res.Reached = true
			break
		}
	}
	res.Seconds = load.Round(time.Since(start).Seconds(), 2)
	res.CPUSeconds = load.Round(selfCPU()-cpu0, 2)
	res.OtherCPU = load.Round(max(0, load.BusyCPU()-busy0-res.CPUSeconds), 2)
	res.TrainSeconds, res.EvalSeconds = load.Round(res.TrainSeconds, 2), load.Round(res.EvalSeconds, 2)
	return res
}

// medianTTA is the run with the median time, with every run's time.
func medianTTA(rs []sideTTA) sideTTA {
	if len(rs) == 0 {
		return sideTTA{}
	}
	var secs []float64
	for _, r := range rs {
		secs = append(secs, r.Seconds)
	}
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b sideTTA) int { return cmp.Compare(a.Seconds, b.Seconds) })
	m := sorted[len(sorted)/2]
	if len(rs) > 1 {
		m.RunsSeconds = secs
	}
	return m
}

func (h *hpcmlSide) accuracy() float64 {
	n, px := len(h.data.testY), 28*28
	correct := 0
	for lo := 0; lo < n; lo += 1000 {
		hi := min(lo+1000, n)
		out, err := h.model.Predict(h.tensor(h.data.testX[lo*px:hi*px], hi-lo))
		if err != nil {
			panic(err)
		}
		c := out.SampleLen()
		for i := range hi - lo {
			row := out.Data[i*c : (i+1)*c]
			if argmax(row) == h.data.testY[lo+i] {
				correct++
			}
		}
	}
	return float64(correct) / float64(n)
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// torchProc is the PyTorch side: torch_bench.py, fed commands on stdin.
type torchProc struct {
	name string // the configuration
	blas string // where its libblas.so.3 comes from
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	info struct {
		Torch          string `json:"torch"`
		Numpy          string `json:"numpy"`
		Python         string `json:"python"`
		Threads        int    `json:"threads"`
		InteropThreads int    `json:"interop_threads"`
		MKLDNN         bool   `json:"mkldnn"`
		Config         string `json:"config"`
	}
}

// torchEnv is the environment of a PyTorch configuration:
//
//	default  OPENBLAS_NUM_THREADS=threads: Debian's PyTorch as installed, its
//	         BLAS the pthreads build of OpenBLAS (the libblas.so.3
//	         alternative), whose threads and PyTorch's OpenMP threads each
//	         want every core
//	blas1    OPENBLAS_NUM_THREADS=1: the dense products on one thread, no
//	         second thread pool competing with OpenMP's
//	openmp   LD_LIBRARY_PATH=DIR: Debian's OpenMP build of OpenBLAS (package
//	         libopenblas0-openmp, unpacked, not installed, by
//	         scripts/bench-deps.sh train), which shares PyTorch's OpenMP pool
//
// OMP_NUM_THREADS is threads in all (torch.set_num_threads sets it too).
func torchEnv(config string, threads int, ompDir string) ([]string, error) {
	t := strconv.Itoa(threads)
	env := []string{"OMP_NUM_THREADS=" + t}
	switch config {
	case "default":
		return append(env, "OPENBLAS_NUM_THREADS="+t), nil
	case "blas1":
		return append(env, "OPENBLAS_NUM_THREADS=1"), nil
	case "openmp":
		if _, err := os.Stat(filepath.Join(ompDir, "libblas.so.3")); err != nil {
			return nil, fmt.Errorf("openmp: no OpenMP OpenBLAS in %s (scripts/bench-deps.sh train unpacks it there): %v", ompDir, err)
		}
		return append(env, "OPENBLAS_NUM_THREADS="+t, "LD_LIBRARY_PATH="+ompDir), nil
	}
	return nil, fmt.Errorf("unknown PyTorch configuration %q (want default, blas1, openmp)", config)
}

// defaultOMPDir is where scripts/bench-deps.sh train unpacks the OpenMP
// build of OpenBLAS: $HPCML_BENCH_OPENBLAS_OMP, else
// /var/cache/hpcml-bench/openblas-openmp.
func defaultOMPDir() string {
	if d := os.Getenv("HPCML_BENCH_OPENBLAS_OMP"); d != "" {
		return d
	}
	return "/var/cache/hpcml-bench/openblas-openmp"
}

func startTorch(name, python, script, dataDir string, threads int, env []string) (*torchProc, error) {
	cmd := exec.Command(python, script, dataDir, strconv.Itoa(threads), "pytorch "+name)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "OMP_NUM_THREADS=") || strings.HasPrefix(kv, "OPENBLAS_NUM_THREADS=") || strings.HasPrefix(kv, "LD_LIBRARY_PATH=")
	}), env...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &torchProc{name: name, cmd: cmd, in: in, out: bufio.NewScanner(out)}
	p.out.Buffer(make([]byte, 1<<20), 16<<20)
	if !p.out.Scan() {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("%s exited before starting: %v", python, p.out.Err())
	}
	if err := json.Unmarshal(p.out.Bytes(), &p.info); err != nil {
		p.close()
		return nil, fmt.Errorf("start-up line %q: %v", p.out.Text(), err)
	}
	p.blas = mappedLib(cmd.Process.Pid, "libblas.so.3")
	return p, nil
}

func (p *torchProc) call(c map[string]any) (json.RawMessage, error) {
	line, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	if _, err := p.in.Write(append(line, '\n')); err != nil {
		return nil, err
	}
	if !p.out.Scan() {
		return nil, fmt.Errorf("the Python process ended (%v)", p.out.Err())
	}
	var e struct {
		Error string `json:"error"`
	}
	raw := json.RawMessage(slices.Clone(p.out.Bytes()))
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("reply %q: %v", raw, err)
	}
	if e.Error != "" {
		return nil, errors.New(e.Error)
	}
	return raw, nil
}

func (p *torchProc) throughput(warmup, steps, batch int) (roundResult, error) {
	busy0 := load.BusyCPU()
	raw, err := p.call(map[string]any{"cmd": "throughput", "warmup": warmup, "steps": steps})
	busy := load.BusyCPU() - busy0
	if err != nil {
		return roundResult{}, err
	}
	var r struct {
		Seconds    float64 `json:"seconds"`
		CPUSeconds float64 `json:"cpu_seconds"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return roundResult{}, err
	}
	// busy spans the warm-up too: others' share is scaled to the timed part.
	other := 0.0
	if steps+warmup > 0 {
		other = max(0, busy*float64(steps)/float64(steps+warmup)-r.CPUSeconds)
	}
	return roundResult{steps: steps, secs: r.Seconds, rate: float64(steps*batch) / r.Seconds, cpu: r.CPUSeconds, other: other}, nil
}

func (p *torchProc) tta(target float64, maxEpochs int) (sideTTA, error) {
	busy0 := load.BusyCPU()
	raw, err := p.call(map[string]any{"cmd": "tta", "target": target, "max_epochs": maxEpochs})
	busy := load.BusyCPU() - busy0
	if err != nil {
		return sideTTA{}, err
	}
	var r sideTTA
	if err := json.Unmarshal(raw, &r); err != nil {
		return sideTTA{}, err
	}
	r.Seconds, r.TrainSeconds, r.EvalSeconds, r.CPUSeconds = load.Round(r.Seconds, 2), load.Round(r.TrainSeconds, 2), load.Round(r.EvalSeconds, 2), load.Round(r.CPUSeconds, 2)
	for i := range r.Epochs {
		e := &r.Epochs[i]
		e.TrainSeconds, e.EvalSeconds, e.Elapsed = load.Round(e.TrainSeconds, 2), load.Round(e.EvalSeconds, 2), load.Round(e.Elapsed, 2)
	}
	r.OtherCPU = load.Round(max(0, busy-r.CPUSeconds), 2)
	return r, nil
}

func (p *torchProc) close() {
	p.in.Write([]byte(`{"cmd": "quit"}` + "\n"))
	p.in.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// mappedLib is the file a process has mapped whose name starts with lib
// (from /proc/PID/maps), with symbolic links resolved.
func mappedLib(pid int, lib string) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && strings.HasPrefix(filepath.Base(f[5]), lib) {
			if p, err := filepath.EvalSymlinks(f[5]); err == nil {
				return p
			}
			return f[5]
		}
	}
	return ""
}

// torchBLAS picks the BLAS and convolution back ends out of
// torch.__config__.show() and the libblas.so.3 the process loaded.
func torchBLAS(config, blas string) string {
	var parts []string
	for _, line := range strings.Split(config, "\n") {
		line = strings.TrimSpace(line)
		if strings.Contains(line, "MKL-DNN") {
			parts = append(parts, strings.TrimPrefix(line, "- "))
		}
		if i := strings.Index(line, "BLAS_INFO="); i >= 0 {
			v, _, _ := strings.Cut(line[i:], ",")
			parts = append(parts, v)
		}
	}
	if blas != "" {
		parts = append(parts, "libblas.so.3 = "+blas)
	}
	return strings.Join(parts, "; ")
}

func printTable(w io.Writer, rep report, pys []*torchProc) {
	fmt.Fprintf(w, "# %s\n# hpcml %s, BLAS %s; batch %d, %d threads each side; load average at start %s\n",
		rep.Machine, rep.Versions["hpcml"], rep.BLAS, rep.Batch, rep.Threads, rep.LoadAvg)
	for _, py := range pys {
		fmt.Fprintf(w, "# PyTorch %s (%s; Python %s, NumPy %s): %s\n", rep.Versions["pytorch"], py.name, rep.Versions["python"],
			rep.Versions["numpy"], torchBLAS(py.info.Config, py.blas))
	}
	if len(rep.Throughput) > 0 {
		fmt.Fprintf(w, "\ntraining throughput, samples/s (median of rounds; fastest round)\n%-5s %-16s %10s %10s %9s %11s %9s %10s  %s\n",
			"model", "side", "samples/s", "fastest", "ms/step", "cpu ms/step", "MiB/step", "others' s", "rounds")
		for _, t := range rep.Throughput {
			rows := []sideRate{t.Hpcml}
			rows = append(rows, t.Torch...)
			for i, r := range rows {
				if r.SamplesPerSec == 0 {
					continue
				}
				side, alloc := "hpcml", fmt.Sprintf("%.2f", r.AllocPerStep)
				if i > 0 {
					side, alloc = "pytorch "+r.Config, "-"
				}
				fmt.Fprintf(w, "%-5s %-16s %10.0f %10.0f %9.2f %11.2f %9s %10.1f  %v\n", t.Model, side, r.SamplesPerSec, r.Best,
					r.MsPerStep, r.CPUPerStepMs, alloc, r.OtherCPU, r.Rounds)
			}
		}
		fmt.Fprintf(w, "\nhpcml / PyTorch samples/s, against PyTorch's fastest configuration (goal: >= 0.5 pure Go, >= 0.9 OpenBLAS; this build: %s)\n%-5s %-10s %8s %8s\n",
			rep.BLAS, "model", "pytorch", "median", "fastest")
		for _, t := range rep.Throughput {
			if t.Ratio > 0 {
				fmt.Fprintf(w, "%-5s %-10s %7.2fx %7.2fx%s\n", t.Model, t.TorchBest, t.Ratio, t.BestRatio, goalNote(rep.BLAS, t.Ratio))
			}
		}
	}
	if len(rep.TTA) > 0 {
		fmt.Fprintf(w, "\ntime to test accuracy (evaluated after each epoch; median run)\n%-5s %7s %-16s %8s %7s %9s %9s %9s %10s  %s\n",
			"model", "target", "side", "reached", "epochs", "seconds", "train_s", "eval_s", "others' s", "accuracy by epoch")
		for _, t := range rep.TTA {
			for i, r := range []sideTTA{t.Hpcml, t.Torch} {
				if len(r.Epochs) == 0 {
					continue
				}
				side := "hpcml"
				if i > 0 {
					side = "pytorch " + r.Config
				}
				var accs []string
				for _, e := range r.Epochs {
					accs = append(accs, fmt.Sprintf("%.4f", e.Accuracy))
				}
				runs := ""
				if len(r.RunsSeconds) > 1 {
					runs = fmt.Sprintf("  runs %v s", r.RunsSeconds)
				}
				fmt.Fprintf(w, "%-5s %6.1f%% %-16s %8v %7d %9.1f %9.1f %9.1f %10.1f  %s%s\n", t.Model, 100*t.Target, side, r.Reached,
					len(r.Epochs), r.Seconds, r.TrainSeconds, r.EvalSeconds, r.OtherCPU, strings.Join(accs, " "), runs)
			}
			if t.Ratio != nil {
				fmt.Fprintf(w, "%-5s PyTorch seconds / hpcml seconds: %.2fx\n", t.Model, *t.Ratio)
			}
		}
	}
}

func goalNote(blas string, r float64) string {
	goal := 0.5
	if strings.HasPrefix(blas, "openblas") {
		goal = 0.9
	}
	if r < goal {
		return fmt.Sprintf("  (below the %.1fx goal)", goal)
	}
	return fmt.Sprintf("  (meets the %.1fx goal)", goal)
}

// selfCPU is this process's user+system CPU time, seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
