package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/onnx"
	"github.com/hpcml/hpcml/internal/table"
)

// Config is one training run, as the CLI writes it into a job.
type Config struct {
	Algorithm string            `json:"algorithm"`
	Data      string            `json:"data"`
	Test      string            `json:"test,omitempty"`
	Label     string            `json:"label,omitempty"`
	HP        map[string]string `json:"hyperparameters,omitempty"`
	Epochs    int               `json:"epochs"`
	Seed      uint64            `json:"seed"`
	Table     TableConfig       `json:"table,omitzero"`
	// Workers is the number of data-parallel ranks (0 or 1: one);
	// PipelineStages the number of pipeline stages the network is cut
	// into (0 or 1: none). The job runs that many tasks.
	Workers        int `json:"workers,omitempty"`
	PipelineStages int `json:"pipeline_stages,omitempty"`
}

// TableConfig are the table-reading options a run carries (table.Options
// without its hooks).
type TableConfig struct {
	Format     string   `json:"format,omitempty"`
	Delimiter  string   `json:"delimiter,omitempty"`
	NoHeader   bool     `json:"no_header,omitempty"`
	SkipRows   int      `json:"skip_rows,omitempty"`
	NullValues []string `json:"null_values,omitempty"`
}

func (t TableConfig) options() table.Options {
	o := table.Options{Format: table.Format(t.Format), NoHeader: t.NoHeader, SkipRows: t.SkipRows, NullValues: t.NullValues}
	if r := []rune(t.Delimiter); len(r) == 1 {
		o.Delimiter = r[0]
	}
	return o
}

// MaxEpochs bounds a run's epochs.
const MaxEpochs = 100000

// MaxRanks bounds the workers or pipeline stages of a run.
const MaxRanks = 256

// Ranks is how many processes the run takes.
func (c *Config) Ranks() int { return max(c.Workers, c.PipelineStages, 1) }

// Check validates what can be checked without the data.
func (c *Config) Check() error {
	a, err := LookupAlgorithm(c.Algorithm)
	if err != nil {
		return err
	}
	if c.Data == "" {
		return errors.New("no training data (--data)")
	}
	if c.Epochs < 1 || c.Epochs > MaxEpochs {
		return fmt.Errorf("epochs %d: want 1..%d", c.Epochs, MaxEpochs)
	}
	if _, err := a.Parse(c.HP); err != nil {
		return err
	}
	if c.Workers < 0 || c.Workers > MaxRanks || c.PipelineStages < 0 || c.PipelineStages > MaxRanks {
		return fmt.Errorf("workers %d, pipeline stages %d: want 1..%d", c.Workers, c.PipelineStages, MaxRanks)
	}
	if c.Workers > 1 && c.PipelineStages > 1 {
		return errors.New("workers (data parallel) and pipeline stages (model parallel) cannot be combined yet: choose one")
	}
	if d := []rune(c.Table.Delimiter); len(d) > 1 {
		return fmt.Errorf("delimiter %q: want one character", c.Table.Delimiter)
	}
	return nil
}

// Files a run writes under its prefix.
const (
	RunFile        = "run.json"        // the config and data description, at start
	MetricsFile    = "metrics.jsonl"   // one Point per line, growing
	ModelFile      = "model.onnx"      // the trained network with its preprocessing
	MetadataFile   = "model.json"      // what the model is: ModelMetadata
	EvaluationFile = "evaluation.json" // the held-out report
)

// RunInfo is run.json: what is being trained on what.
type RunInfo struct {
	Config         Config            `json:"config"`
	Data           DataInfo          `json:"data"`
	HP             map[string]string `json:"hyperparameters"`
	Spec           nn.Spec           `json:"network"`
	Params         int               `json:"parameters"`
	BLAS           string            `json:"blas"`
	Workers        int               `json:"workers,omitempty"` // data-parallel ranks
	PipelineStages int               `json:"pipeline_stages,omitempty"`
	StartedAt      time.Time         `json:"started_at"`
}

// ModelMetadata is model.json: the model and how to feed it.
type ModelMetadata struct {
	RunInfo
	Preprocessing *Preprocessing `json:"preprocessing"`
	Output        string         `json:"output"` // probabilities, probability (binary) or value
	Epochs        int            `json:"epochs_run"`
	Steps         int            `json:"steps"`
	Stopped       string         `json:"stopped,omitempty"`
	BestEpoch     int            `json:"best_epoch,omitempty"`
	Seconds       float64        `json:"seconds"`
	Evaluation    *Evaluation    `json:"evaluation"`
	FinishedAt    time.Time      `json:"finished_at"`
}

// Progress hears of each metric point with the run's length: epochs and
// optimiser steps per epoch (for a progress bar or the job's progress file).
type Progress func(p Point, epochs, stepsPerEpoch int)

// Options are a run's surroundings.
type Options struct {
	// Out holds the run's files (a bucket prefixed to the run's dir).
	Out *blob.Bucket
	Log *slog.Logger
	// Progress, if set, hears of each metrics window.
	Progress Progress
	// ResolveDataset resolves dataset:// names (nil: they are refused).
	ResolveDataset func(ctx context.Context, name, version string) (string, error)
	// Comm makes the run one rank of data-parallel training (nil: alone).
	// Every rank runs the same Config; rank 0 writes the files.
	Comm Comm
	// maxSteps stops the loop early, as a crash would (tests).
	maxSteps int
}

// Run trains cfg, resuming from the newest good checkpoint under Out,
// and writes the model, its metadata and its evaluation there.
func Run(ctx context.Context, cfg Config, o Options) (*ModelMetadata, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	start := time.Now()
	alg, _ := LookupAlgorithm(cfg.Algorithm)
	h, _ := alg.Parse(cfg.HP)
	topts := cfg.Table.options()
	topts.ResolveDataset = o.ResolveDataset
	trainAll, test, info, err := Load(ctx, DataConfig{URL: cfg.Data, TestURL: cfg.Test, Label: cfg.Label, Task: h.Task, Table: topts})
	if err != nil {
		return nil, err
	}
	log.Info("data loaded", "rows", info.Train, "test_rows", info.Test, "task", info.Task, "shape", info.Shape, "classes", len(info.Classes))
	trainSet, val := splitValidation(trainAll, h.Validation, cfg.Seed)
	prep, err := fitPreprocessing(h, info, trainSet)
	if err != nil {
		return nil, err
	}
	for _, d := range []*Dataset{trainSet, val, test} {
		if d != nil {
			prep.apply(d)
		}
	}
	obj := objective{task: info.Task}
	outputs := 1
	if info.Task == Classification {
		outputs = len(info.Classes)
		if outputs == 2 {
			obj.binary, outputs = true, 1
		}
		if obj.weights, err = classWeights(h.ClassWeights, trainSet.Labels, len(info.Classes)); err != nil {
			return nil, err
		}
	}
	layers, err := alg.network(h, prep.Shape, outputs)
	if err != nil {
		return nil, err
	}
	spec := nn.Spec{Input: prep.Shape, Layers: layers}
	model, err := nn.Build(spec, cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	opt, err := nn.NewOptimizer(nn.OptimizerConfig{Name: h.Optimizer, Momentum: h.Momentum, WeightDecay: h.WeightDecay})
	if err != nil {
		return nil, err
	}
	bs := min(h.BatchSize, trainSet.Len())
	perEpoch := (trainSet.Len() + bs - 1) / bs
	sched, err := nn.NewSchedule(nn.ScheduleConfig{Name: h.Schedule, LR: h.LR, Gamma: h.Gamma, Every: h.StepEvery * perEpoch,
		Total: cfg.Epochs * perEpoch, MinLR: h.MinLR, Warmup: h.Warmup})
	if err != nil {
		return nil, err
	}
	ri := RunInfo{Config: cfg, Data: info, HP: h.Map(alg.hp), Spec: spec, Params: len(weights(model)), BLAS: nn.BLAS, StartedAt: start.UTC()}
	l := &loop{model: model, opt: opt, sched: sched, obj: obj, h: h, epochs: cfg.Epochs, seed: cfg.Seed,
		train: trainSet, val: val, classes: info.Classes, maxSteps: o.maxSteps}
	hooks := &runHooks{out: o.Out, log: log, progress: o.Progress, epochs: cfg.Epochs, perEpoch: perEpoch}
	l.hooks = hooks
	lead := true // writes the run's files
	if o.Comm != nil {
		if size := o.Comm.Size(); size != cfg.Ranks() {
			return nil, fmt.Errorf("the run wants %d ranks, the process group has %d", cfg.Ranks(), size)
		}
	} else if cfg.Ranks() > 1 {
		return nil, fmt.Errorf("the run wants %d ranks: run it as a job (hpcml train), which starts them", cfg.Ranks())
	}
	if o.Comm != nil && cfg.PipelineStages > 1 {
		pc, ok := o.Comm.(PipeComm)
		if !ok {
			return nil, errors.New("pipeline stages need a process group with point-to-point transfers")
		}
		if err := agree(ctx, o.Comm, "network parameters", len(weights(model))); err != nil {
			return nil, err
		}
		if l.pipe, err = newPipeline(model, pc, h.MicroBatches); err != nil {
			return nil, err
		}
		log.Info("pipeline", "stages", l.pipe.describe(model))
		ri.PipelineStages = pc.Size()
		if pc.Rank() != 0 {
			lead = false
			l.hooks = silentHooks{}
		}
	} else if o.Comm != nil && o.Comm.Size() > 1 {
		// Every rank must have built the same network from the same data.
		if err := agree(ctx, o.Comm, "network parameters", len(weights(model))); err != nil {
			return nil, err
		}
		l.comm, l.sync = o.Comm, &gradSync{comm: o.Comm}
		ri.Workers = o.Comm.Size()
		// The global batch is batch_size per rank: the schedule counts
		// its steps.
		bs := min(h.BatchSize*o.Comm.Size(), trainSet.Len())
		perEpoch = (trainSet.Len() + bs - 1) / bs
		hooks.perEpoch = perEpoch
		if sched, err = nn.NewSchedule(nn.ScheduleConfig{Name: h.Schedule, LR: h.LR, Gamma: h.Gamma, Every: h.StepEvery * perEpoch,
			Total: cfg.Epochs * perEpoch, MinLR: h.MinLR, Warmup: h.Warmup}); err != nil {
			return nil, err
		}
		l.sched = sched
		if o.Comm.Rank() != 0 {
			lead = false
			l.hooks = silentHooks{}
		}
	}

	if err := sameRun(ctx, o.Out, cfg); err != nil {
		return nil, err
	}
	fits := func(c *Checkpoint) error {
		n := len(weights(model))
		if len(c.Weights) != n || (c.Best != nil && len(c.Best) != n) {
			return fmt.Errorf("it holds %d weights (best %d), the model has %d", len(c.Weights), len(c.Best), n)
		}
		return c.Optimizer.Check(model.Params())
	}
	c, key, err := latestCheckpoint(ctx, o.Out, fits, func(msg string) { log.Warn(msg) })
	if err != nil {
		return nil, err
	}
	if o.Comm != nil && o.Comm.Size() > 1 {
		step := -1
		if c != nil {
			step = c.State.Step
		}
		if err := agree(ctx, o.Comm, "checkpoint step to resume from", step); err != nil {
			return nil, err
		}
	}
	if c != nil {
		setWeights(model, c.Weights)
		if err := opt.SetState(c.Optimizer); err != nil {
			return nil, err
		}
		l.st, l.best = c.State, c.Best
		log.Info("resumed from checkpoint", "checkpoint", key, "step", c.State.Step, "epoch", c.State.Epoch+1)
		if err := hooks.resume(ctx, c.State.Step); err != nil {
			return nil, err
		}
	} else if lead {
		if err := writeJSON(ctx, o.Out, RunFile, ri); err != nil {
			return nil, err
		}
	}

	if err := l.run(ctx); err != nil {
		if lead {
			hooks.flush(ctx)
		}
		return nil, err
	}
	if !lead {
		return &ModelMetadata{RunInfo: ri, Preprocessing: prep, Epochs: l.st.Epoch, Steps: l.st.Step, Stopped: l.st.Stopped,
			BestEpoch: l.st.BestEpoch, Seconds: time.Since(start).Seconds(), FinishedAt: time.Now().UTC()}, nil
	}
	if err := hooks.flush(ctx); err != nil {
		return nil, err
	}
	// The held-out report: the test set, else the validation set.
	evalSet, setName := test, "test"
	if evalSet == nil {
		evalSet, setName = val, "validation"
	}
	if evalSet == nil {
		evalSet, setName = trainSet, "train"
	}
	ev, err := evaluate(model, obj, evalSet, prep, info.Classes)
	if err != nil {
		return nil, err
	}
	ev.Set = setName
	meta := &ModelMetadata{RunInfo: ri, Preprocessing: prep, Epochs: l.st.Epoch, Steps: l.st.Step, Stopped: l.st.Stopped,
		BestEpoch: l.st.BestEpoch, Seconds: time.Since(start).Seconds(), Evaluation: &ev, FinishedAt: time.Now().UTC()}
	head := ""
	switch {
	case info.Task == Regression:
		meta.Output = "value"
	case obj.binary:
		meta.Output, head = "probability", "sigmoid"
	default:
		meta.Output, head = "probabilities", "softmax"
	}
	model2, err := exportable(model, prep)
	if err != nil {
		return nil, err
	}
	md := map[string]string{"hpcml.algorithm": cfg.Algorithm, "hpcml.task": info.Task, "hpcml.output": meta.Output}
	if len(info.Classes) > 0 {
		cl, _ := json.Marshal(info.Classes)
		md["hpcml.classes"] = string(cl)
	}
	if len(info.Features) > 0 {
		f, _ := json.Marshal(info.Features)
		md["hpcml.features"] = string(f)
	}
	data, err := onnx.Export(model2, onnx.ExportOptions{ProducerName: "hpcml", Head: head, DocString: alg.Doc,
		Normalize: &onnx.Normalization{Mean: prep.Mean, Scale: prep.Scale}, Metadata: md})
	if err != nil {
		return nil, fmt.Errorf("export ONNX: %w", err)
	}
	// The model before its description: a listed model.json means a
	// complete model.
	if err := o.Out.WriteAll(ctx, ModelFile, data, nil); err != nil {
		return nil, fmt.Errorf("write model: %w", err)
	}
	if err := writeJSON(ctx, o.Out, EvaluationFile, ev); err != nil {
		return nil, err
	}
	if err := writeJSON(ctx, o.Out, MetadataFile, meta); err != nil {
		return nil, err
	}
	return meta, nil
}

// agree checks that every rank holds the same value of what, naming the
// ranks that differ.
func agree(ctx context.Context, c Comm, what string, v int) error {
	all := make([]float32, c.Size())
	if err := c.AllGather(ctx, []float32{float32(v)}, all); err != nil {
		return fmt.Errorf("compare %s across ranks: %w", what, err)
	}
	for r, x := range all {
		if int(x) != int(all[0]) {
			return fmt.Errorf("ranks disagree on the %s: rank 0 has %d, rank %d has %d", what, int(all[0]), r, int(x))
		}
	}
	return nil
}

// silentHooks are the hooks of ranks other than 0: rank 0 alone writes
// metrics and checkpoints.
type silentHooks struct{}

func (silentHooks) Metric(context.Context, Point)                 {}
func (silentHooks) Checkpoint(context.Context, *Checkpoint) error { return nil }

// exportable is the model as users see it: a regression's output mapped
// back to target units by folding the target scaling into the last
// dense layer (exact: y = (W·x + b)/s + m).
func exportable(m *nn.Model, p *Preprocessing) (*nn.Model, error) {
	if p.TargetScale == 0 {
		return m, nil
	}
	out, err := nn.Build(m.Spec, 0)
	if err != nil {
		return nil, err
	}
	setWeights(out, weights(m))
	last, ok := out.Layers[len(out.Layers)-1].(*nn.Dense)
	if !ok {
		return nil, errors.New("export: a regression network must end with a dense layer")
	}
	inv := 1 / p.TargetScale
	for i := range last.W.Value.Data {
		last.W.Value.Data[i] *= inv
	}
	for i := range last.B.Value.Data {
		last.B.Value.Data[i] = last.B.Value.Data[i]*inv + p.TargetMean
	}
	return out, nil
}

// sameRun refuses to resume in a place that holds another run: a run
// continues only its own checkpoints (same config), never a different
// network's or data's.
func sameRun(ctx context.Context, b *blob.Bucket, cfg Config) error {
	data, err := b.ReadAll(ctx, RunFile)
	if blob.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", RunFile, err)
	}
	var prev RunInfo
	if err := json.Unmarshal(data, &prev); err != nil {
		return fmt.Errorf("%s: %w", RunFile, err)
	}
	a, _ := json.Marshal(prev.Config)
	c, _ := json.Marshal(cfg)
	if !bytes.Equal(a, c) {
		return fmt.Errorf("the output already holds another run (%s on %s): train into another place, or remove it", prev.Config.Algorithm, prev.Data.Source)
	}
	return nil
}

func writeJSON(ctx context.Context, b *blob.Bucket, key string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := b.WriteAll(ctx, key, data, nil); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// runHooks keeps the metrics (flushed to MetricsFile at most every
// flushEvery, and at checkpoints and the end) and writes checkpoints.
type runHooks struct {
	out       *blob.Bucket
	log       *slog.Logger
	progress  Progress
	epochs    int
	perEpoch  int
	mu        sync.Mutex
	points    []byte // JSON lines
	lastFlush time.Time
	dirty     bool
}

const flushEvery = 2 * time.Second

func (h *runHooks) Metric(ctx context.Context, p Point) {
	line, err := json.Marshal(p)
	if err != nil {
		return
	}
	h.mu.Lock()
	h.points = append(append(h.points, line...), '\n')
	h.dirty = true
	h.mu.Unlock()
	if p.Kind == "epoch" {
		args := []any{"epoch", p.Epoch, "step", p.Step}
		for _, k := range []string{"train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_rmse", "samples_per_sec"} {
			if v, ok := p.Values[k]; ok {
				args = append(args, k, v)
			}
		}
		h.log.Info("epoch done", args...)
	}
	if h.progress != nil {
		h.progress(p, h.epochs, h.perEpoch)
	}
	if time.Since(h.lastFlush) >= flushEvery {
		if err := h.flush(ctx); err != nil {
			h.log.Warn("metrics not saved", "err", err)
		}
	}
}

func (h *runHooks) flush(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastFlush = time.Now()
	if !h.dirty {
		return nil
	}
	if err := h.out.WriteAll(ctx, MetricsFile, h.points, nil); err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	h.dirty = false
	return nil
}

func (h *runHooks) Checkpoint(ctx context.Context, c *Checkpoint) error {
	if err := h.flush(ctx); err != nil {
		return err
	}
	return saveCheckpoint(ctx, h.out, c)
}

// resume keeps the metrics up to the checkpoint's step; later points
// will be made again.
func (h *runHooks) resume(ctx context.Context, step int) error {
	data, err := h.out.ReadAll(ctx, MetricsFile)
	if blob.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read metrics: %w", err)
	}
	var kept []byte
	for _, line := range bytes.Split(data, []byte("\n")) {
		var p Point
		if len(line) == 0 || json.Unmarshal(line, &p) != nil || p.Step > step {
			continue
		}
		kept = append(append(kept, line...), '\n')
	}
	h.mu.Lock()
	h.points, h.dirty = kept, true
	h.mu.Unlock()
	return nil
}
