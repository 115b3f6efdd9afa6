package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"sync"
	"syscall"
	"time"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/collective"
	"github.com/hpcml/hpcml/internal/train"
)

// rankSpec is what the driver hands a rank process (as JSON in childEnv).
type rankSpec struct {
	Config   train.Config `json:"config"`
	Out      string       `json:"out"` // the run's directory; rank 0 writes metrics.jsonl there
	Warmup   int          `json:"warmup"`
	Steps    int          `json:"steps"`
	LogEvery int          `json:"log_every"`
	// CPUProfile and Trace, if set, cover this rank's timed steps.
	CPUProfile string `json:"cpu_profile,omitempty"`
	Trace      string `json:"trace,omitempty"`
}

// rankStats is what a rank measured of itself over the timed steps (from
// the end of step Warmup to the end of step Warmup+Steps), printed as one
// JSON line on stdout.
type rankStats struct {
	Rank        int     `json:"rank"`
	GOMAXPROCS  int     `json:"gomaxprocs"`
	Seconds     float64 `json:"seconds"`
	CPUSeconds  float64 `json:"cpu_seconds"` // user + system, this process
	SysSeconds  float64 `json:"sys_seconds"` // of which system
	MinorFaults int64   `json:"minor_faults"`
	// MachineBusy is the whole machine's busy CPU time over the same span
	// (/proc/stat), for the others' share.
	MachineBusy  float64 `json:"machine_busy_seconds"`
	MachineSteal float64 `json:"machine_steal_seconds"`
	GCCycles     uint64  `json:"gc_cycles"`
	GCCPU        float64 `json:"gc_cpu_seconds"` // runtime/metrics /cpu/classes/gc/total
	AllocBytes   uint64  `json:"alloc_bytes"`
	// AllReduces and AllReduceSeconds are the gradient all-reduces this
	// rank called and the time they took (on the gradient goroutine,
	// partly overlapped with the backward pass).
	AllReduces       int     `json:"allreduces"`
	AllReduceSeconds float64 `json:"allreduce_seconds"`
	InvoluntaryCtx   int64   `json:"involuntary_context_switches"`
	VoluntaryCtx     int64   `json:"voluntary_context_switches"`
	// Calls are the timed steps' all-reduces: start and end, Unix
	// nanoseconds (the ranks share the clock), for the driver to split
	// their time into waiting for the other ranks and the transfer.
	Calls [][2]int64 `json:"allreduce_calls,omitempty"`
}

// snapshot is a rank's counters at one moment.
type snapshot struct {
	at        time.Time
	cpu       float64
	sys       float64
	minflt    int64
	busy      float64
	steal     float64
	gcCycles  uint64
	gcCPU     float64
	alloc     uint64
	reduces   int
	reduceDur time.Duration
	nivcsw    int64
	nvcsw     int64
}

var metricNames = []string{"/gc/cycles/total:gc-cycles", "/cpu/classes/gc/total:cpu-seconds", "/gc/heap/allocs:bytes"}

// meter takes the snapshots at the ends of steps Warmup and
// Warmup+Steps, and starts and stops the profiles between them.
type meter struct {
	spec       rankSpec
	mu         sync.Mutex
	reduces    int
	reduceDur  time.Duration
	calls      [][2]int64 // while timing
	timing     bool
	start, end *snapshot
	profFile   *os.File
	traceFile  *os.File
	err        error
}

func (m *meter) take() *snapshot {
	s := &snapshot{at: time.Now()}
	s.busy, s.steal = busyCPU()
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		s.sys = time.Duration(ru.Stime.Nano()).Seconds()
		s.nivcsw, s.nvcsw, s.minflt = ru.Nivcsw, ru.Nvcsw, ru.Minflt
	}
	samples := make([]metrics.Sample, len(metricNames))
	for i, n := range metricNames {
		samples[i].Name = n
	}
	metrics.Read(samples)
	if samples[0].Value.Kind() == metrics.KindUint64 {
		s.gcCycles = samples[0].Value.Uint64()
	}
	if samples[1].Value.Kind() == metrics.KindFloat64 {
		s.gcCPU = samples[1].Value.Float64()
	}
	if samples[2].Value.Kind() == metrics.KindUint64 {
		s.alloc = samples[2].Value.Uint64()
	}
	m.mu.Lock()
	s.reduces, s.reduceDur = m.reduces, m.reduceDur
	m.mu.Unlock()
	return s
}

// stepDone is called at the end of a metrics window (every LogEvery steps).
func (m *meter) stepDone(step int) {
	switch step {
	case m.spec.Warmup:
		m.start = m.take()
		m.mu.Lock()
		m.timing = true
		m.mu.Unlock()
		if m.spec.CPUProfile != "" {
			f, err := os.Create(m.spec.CPUProfile)
			if err == nil {
				err = pprof.StartCPUProfile(f)
			}
			m.profFile, m.err = f, errors.Join(m.err, err)
		}
		if m.spec.Trace != "" {
			f, err := os.Create(m.spec.Trace)
			if err == nil {
				err = trace.Start(f)
			}
			m.traceFile, m.err = f, errors.Join(m.err, err)
		}
	case m.spec.Warmup + m.spec.Steps:
		if m.profFile != nil {
			pprof.StopCPUProfile()
			m.err = errors.Join(m.err, m.profFile.Close())
			m.profFile = nil
		}
		if m.traceFile != nil {
			trace.Stop()
			m.err = errors.Join(m.err, m.traceFile.Close())
			m.traceFile = nil
		}
		m.end = m.take()
		m.mu.Lock()
		m.timing = false
		m.mu.Unlock()
	}
}

// meteredComm is the rank's Comm with its all-reduces timed and the ends
// of its metrics windows noticed: the trainer gathers every window's
// per-rank values (5 per rank) with one AllGather, right after the
// window's last step, on every rank.
type meteredComm struct {
	train.Comm
	m       *meter
	windows int
}

func (c *meteredComm) AllReduceSum(ctx context.Context, buf []float32) error {
	start := time.Now()
	err := c.Comm.AllReduceSum(ctx, buf)
	end := time.Now()
	c.m.mu.Lock()
	c.m.reduces++
	c.m.reduceDur += end.Sub(start)
	if c.m.timing {
		c.m.calls = append(c.m.calls, [2]int64{start.UnixNano(), end.UnixNano()})
	}
	c.m.mu.Unlock()
	return err
}

func (c *meteredComm) AllGather(ctx context.Context, send, recv []float32) error {
	if len(send) == 5 {
		c.windows++
		c.m.stepDone(c.windows * c.m.spec.LogEvery)
	}
	return c.Comm.AllGather(ctx, send, recv)
}

// rank runs one rank of the benchmark's training, as `hpcml train`'s
// task (hpcml __run) does: join the others from the HPCML_* variables
// (world size > 1), then train.Run with the group as its Comm, on
// GOMAXPROCS threads set by the driver.
func rank(specJSON string) error {
	var spec rankSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return fmt.Errorf("rank spec: %w", err)
	}
	ctx := context.Background()
	m := &meter{spec: spec}
	opts := train.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	b, err := blob.Open(ctx, "file://"+spec.Out+"?create_dir=true")
	if err != nil {
		return err
	}
	defer b.Close()
	opts.Out = b
	rk := 0
	if spec.Config.Ranks() > 1 {
		cc, err := collective.ConfigFromEnv(os.Getenv)
		if err != nil {
			return err
		}
		body, _ := json.Marshal(spec.Config)
		sum := sha256.Sum256(body)
		cc.Fingerprint = "config:" + hex.EncodeToString(sum[:8])
		g, err := collective.Join(ctx, cc)
		if err != nil {
			return err
		}
		defer g.Close()
		rk = g.Rank()
		opts.Comm = &meteredComm{Comm: train.GroupComm(g), m: m}
	} else {
		// One worker has no Comm: the windows are its metric points.
		opts.Progress = func(p train.Point, _, _ int) {
			if p.Kind == "step" {
				m.stepDone(p.Step)
			}
		}
	}
	if _, err := train.Run(ctx, spec.Config, opts); err != nil {
		return err
	}
	if m.err != nil {
		return m.err
	}
	if m.start == nil || m.end == nil {
		return fmt.Errorf("the run ended before step %d", spec.Warmup+spec.Steps)
	}
	s, e := m.start, m.end
	st := rankStats{Rank: rk, GOMAXPROCS: runtime.GOMAXPROCS(0), Seconds: e.at.Sub(s.at).Seconds(), CPUSeconds: e.cpu - s.cpu,
		SysSeconds: e.sys - s.sys, MinorFaults: e.minflt - s.minflt,
		MachineBusy: e.busy - s.busy, MachineSteal: e.steal - s.steal, GCCycles: e.gcCycles - s.gcCycles, GCCPU: e.gcCPU - s.gcCPU, AllocBytes: e.alloc - s.alloc,
		AllReduces: e.reduces - s.reduces, AllReduceSeconds: (e.reduceDur - s.reduceDur).Seconds(),
		InvoluntaryCtx: e.nivcsw - s.nivcsw, VoluntaryCtx: e.nvcsw - s.nvcsw, Calls: m.calls}
	return json.NewEncoder(os.Stdout).Encode(st)
}
