package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/hpcml/hpcml/internal/nn"
)

// ErrDiverged: the loss became non-finite or exploded; the run fails with
// this reason rather than writing NaN weights.
var ErrDiverged = errors.New("training diverged")

// Point is one metrics record: a step window or a finished epoch.
type Point struct {
	Kind   string             `json:"kind"` // step or epoch
	Step   int                `json:"step"`
	Epoch  int                `json:"epoch"` // 1-based
	Time   time.Time          `json:"time"`
	Values map[string]float64 `json:"values"`
}

// Hooks are what a run reports to: metric points as they happen and
// checkpoints every CheckpointEvery steps (and at each epoch's end).
type Hooks interface {
	Metric(ctx context.Context, p Point)
	Checkpoint(ctx context.Context, c *Checkpoint) error
}

// LoopState is where the loop is: everything beyond the weights and the
// optimiser that a resumed run needs to continue exactly.
type LoopState struct {
	Step      int     `json:"step"`  // optimiser steps done
	Epoch     int     `json:"epoch"` // the epoch under way, 0-based
	Batch     int     `json:"batch"` // the next batch of that epoch
	BestLoss  float64 `json:"best_loss"`
	BestEpoch int     `json:"best_epoch"`
	Stale     int     `json:"stale"` // epochs since the best
	FirstLoss float64 `json:"first_loss"`
	Stopped   string  `json:"stopped,omitempty"` // why the loop ended early
}

// objective is the loss of a task.
type objective struct {
	task    string
	binary  bool // one sigmoid logit instead of a softmax
	weights []float32
}

func (o objective) loss(out *nn.Tensor, d *Dataset) (float64, *nn.Tensor, error) {
	switch {
	case o.task == Regression:
		t, err := nn.FromData(d.Targets, out.Shape...)
		if err != nil {
			return 0, nil, err
		}
		return nn.MSE(out, t)
	case o.binary:
		return nn.SigmoidCrossEntropy(out, d.Labels, o.weights)
	}
	return nn.SoftmaxCrossEntropy(out, d.Labels, o.weights)
}

// loop trains a model on prepared data.
type loop struct {
	model    *nn.Model
	opt      nn.Optimizer
	sched    nn.Schedule
	obj      objective
	h        HParams
	epochs   int
	seed     uint64
	train    *Dataset
	val      *Dataset
	classes  []string
	st       LoopState
	best     []float32 // weights and buffers of the best epoch
	hooks    Hooks
	maxSteps int // 0: no limit (tests stop early to simulate a crash)
	// comm, when set, makes this one rank of data-parallel training;
	// sync averages its gradients.
	comm Comm
	sync *gradSync
	// pipe, when set, makes this one stage of pipeline-parallel training.
	pipe *pipeline
}

// run trains until the epochs are done or early stopping ends it. With a
// Comm, this is one rank of data-parallel training: every rank walks the
// same seeded permutation in global batches of batch_size × ranks, takes
// its slice of each, and the gradients are averaged before every step,
// so the ranks hold identical weights throughout.
func (l *loop) run(ctx context.Context) error {
	n := l.train.Len()
	world, rank, stage := 1, 0, 0
	if l.comm != nil {
		world, rank = l.comm.Size(), l.comm.Rank()
	}
	if l.pipe != nil {
		stage = l.pipe.stage // every stage sees the whole batch
	}
	bs := min(l.h.BatchSize*world, n)
	perEpoch := (n + bs - 1) / bs
	dctx := &nn.Context{Training: true}
	var window stepStats
	window.start = time.Now()
	for l.st.Epoch < l.epochs && l.st.Stopped == "" {
		perm := rand.New(rand.NewPCG(l.seed, uint64(l.st.Epoch)+1)).Perm(n)
		var epoch stepStats
		epoch.start = time.Now()
		for l.st.Batch < perEpoch {
			if err := ctx.Err(); err != nil {
				return err
			}
			if l.maxSteps > 0 && l.st.Step >= l.maxSteps {
				return errStopForTest
			}
			lo := l.st.Batch * bs
			global := perm[lo:min(lo+bs, n)]
			mine := global[rank*len(global)/world : (rank+1)*len(global)/world]
			// Dropout's masks come from the seed, the step and the rank
			// alone: a resumed run draws the same ones, and the ranks
			// draw different ones.
			dctx.RNG = rand.New(rand.NewPCG(l.seed^0xd20f00d, uint64(l.st.Step)<<16|uint64(rank+stage)))
			var r stepResult
			var err error
			if l.pipe != nil {
				r, err = l.pipeStep(ctx, dctx, l.train.subset(global))
			} else {
				r, err = l.step(ctx, dctx, l.train.subset(mine), float64(len(mine))/float64(len(global)))
			}
			if err != nil {
				return err
			}
			r.seen = len(global)
			l.st.Batch++
			l.st.Step++
			epoch.add(r)
			window.add(r)
			if l.st.Step%l.h.LogEvery == 0 || l.st.Batch == perEpoch {
				v, err := l.windowValues(ctx, &window)
				if err != nil {
					return err
				}
				l.hooks.Metric(ctx, Point{Kind: "step", Step: l.st.Step, Epoch: l.st.Epoch + 1, Time: time.Now(), Values: v})
				window = stepStats{start: time.Now()}
			}
			if l.st.Step%l.h.CheckpointEvery == 0 && l.st.Batch < perEpoch {
				if err := l.checkpoint(ctx); err != nil {
					return err
				}
			}
		}
		// The epoch is over: validate, decide on early stopping, checkpoint.
		// Every rank validates (the same weights, the same answer), so
		// they agree on stopping without a word.
		v := map[string]float64{"samples_per_sec": float64(epoch.seen) / math.Max(time.Since(epoch.start).Seconds(), 1e-9)}
		if epoch.seen > 0 {
			v["train_loss"] = epoch.loss / float64(epoch.seen)
			if l.obj.task == Classification {
				v["train_accuracy"] = epoch.correct / float64(epoch.seen)
			}
		}
		if l.val != nil {
			loss, metric, err := l.validate(ctx)
			if err != nil {
				return err
			}
			v["val_loss"] = loss
			if l.obj.task == Classification {
				v["val_accuracy"] = metric
			} else {
				v["val_rmse"] = metric
			}
			l.observe(loss)
		}
		l.hooks.Metric(ctx, Point{Kind: "epoch", Step: l.st.Step, Epoch: l.st.Epoch + 1, Time: time.Now(), Values: v})
		l.st.Epoch++
		l.st.Batch = 0
		if err := l.checkpoint(ctx); err != nil {
			return err
		}
	}
	if l.best != nil {
		setWeights(l.model, l.best)
	}
	if l.pipe != nil {
		// Rank 0 evaluates and exports the whole model.
		if _, err := l.pipe.gather(ctx, l.model, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// validate scores the validation set: the loss and the accuracy (or RMSE).
// A pipeline gathers the stages to rank 0, which validates and tells the
// others.
func (l *loop) validate(ctx context.Context) (loss, metric float64, err error) {
	score := func() error {
		ev, err := evaluate(l.model, l.obj, l.val, nil, l.classes)
		loss, metric = ev.Loss, ev.Accuracy
		if l.obj.task != Classification {
			metric = ev.RMSE
		}
		return err
	}
	if l.pipe == nil {
		return loss, metric, score()
	}
	if _, err := l.pipe.gather(ctx, l.model, nil, nil); err != nil {
		return 0, 0, err
	}
	if l.pipe.stage == 0 {
		if err := score(); err != nil {
			return 0, 0, err
		}
	}
	res := []float32{float32(loss), float32(metric)}
	if err := l.pipe.comm.Broadcast(ctx, res, 0); err != nil {
		return 0, 0, fmt.Errorf("share the validation: %w", err)
	}
	return float64(res[0]), float64(res[1]), nil
}

// stepStats accumulates steps' results over a metrics window or an epoch.
type stepStats struct {
	loss      float64 // sum of loss × examples
	correct   float64
	seen      int
	compute   time.Duration // forward, backward and optimiser, this rank
	wait      time.Duration // waiting for the gradients' all-reduce, this rank
	commBusy  time.Duration
	commBytes int64
	start     time.Time
}

func (s *stepStats) add(r stepResult) {
	s.loss += r.loss * float64(r.seen)
	s.correct += r.correct
	s.seen += r.seen
	s.compute += r.compute
	s.wait += r.wait
	s.commBusy += r.commBusy
	s.commBytes += r.commBytes
}

// stepResult is one step's global loss and correct count (summed over the
// ranks) and this rank's timings.
type stepResult struct {
	loss      float64
	correct   float64
	seen      int
	compute   time.Duration
	wait      time.Duration
	commBusy  time.Duration
	commBytes int64
}

// windowValues are a metrics window's values; with several ranks also each
// rank's throughput and the time it computed, waited for gradients and
// spent all-reducing, and the all-reduce bandwidth (gathered from every
// rank).
func (l *loop) windowValues(ctx context.Context, w *stepStats) (map[string]float64, error) {
	secs := math.Max(time.Since(w.start).Seconds(), 1e-9)
	v := map[string]float64{"loss": w.loss / float64(w.seen), "lr": l.sched(l.st.Step - 1),
		"samples_per_sec": float64(w.seen) / secs}
	if l.obj.task == Classification {
		v["accuracy"] = w.correct / float64(w.seen)
	}
	if l.comm == nil {
		return v, nil
	}
	world := l.comm.Size()
	mine := []float32{float32(float64(w.seen) / float64(world) / secs), float32(w.compute.Seconds()), float32(w.wait.Seconds()),
		float32(w.commBusy.Seconds()), float32(w.commBytes)}
	all := make([]float32, len(mine)*world)
	if err := l.comm.AllGather(ctx, mine, all); err != nil {
		return nil, fmt.Errorf("gather metrics: %w", err)
	}
	var busy, bytes float64
	for r := 0; r < world; r++ {
		m := all[r*len(mine) : (r+1)*len(mine)]
		v[fmt.Sprintf("rank%d_samples_per_sec", r)] = float64(m[0])
		v[fmt.Sprintf("rank%d_compute_seconds", r)] = float64(m[1])
		v[fmt.Sprintf("rank%d_comm_wait_seconds", r)] = float64(m[2])
		busy += float64(m[3])
		bytes += float64(m[4])
	}
	v["comm_seconds"] = busy / float64(world)
	if busy > 0 {
		// algbw of the gradient all-reduces: bytes per rank over the time
		// one all-reduce of them took.
		v["allreduce_gbps"] = bytes / busy / 1e9
	}
	return v, nil
}

// errStopForTest ends a loop at maxSteps, as a crash would.
var errStopForTest = errors.New("stopped at the step limit")

// step trains on one batch (this rank's slice of the global batch, share
// of its examples); it returns the global loss and correct count.
func (l *loop) step(ctx context.Context, dctx *nn.Context, b *Dataset, share float64) (stepResult, error) {
	start := time.Now()
	var r stepResult
	lr := l.sched(l.st.Step)
	l.model.ZeroGrad()
	var out *nn.Tensor
	var loss float64
	var correct int
	var sync *gradSync
	if l.comm != nil {
		sync = l.sync
		sync.begin(ctx, share)
	}
	if b.Len() > 0 {
		var pass *nn.Pass
		var grad *nn.Tensor
		var err error
		if out, pass, err = l.model.Forward(dctx, b.X); err != nil {
			return r, err
		}
		if loss, grad, err = l.obj.loss(out, b); err != nil {
			return r, err
		}
		var done func(int)
		if sync != nil {
			done = func(i int) { sync.layerDone(l.model.Layers[i].Params()) }
		}
		l.model.BackwardNotify(pass, grad, done)
		if l.obj.task == Classification {
			for i, p := range argmax(out) {
				if p == b.Labels[i] {
					correct++
				}
			}
		}
	} else if sync != nil {
		// No examples here this step (a last global batch smaller than
		// the ranks): zero gradients, but a part in every all-reduce.
		for _, layer := range l.model.Layers {
			sync.layerDone(layer.Params())
		}
	}
	r.loss, r.correct = loss, float64(correct)
	if sync != nil {
		computed := time.Now()
		extras := []float32{float32(loss * share), float32(correct)}
		if err := sync.finish(extras); err != nil {
			return r, err
		}
		r.wait = time.Since(computed)
		r.loss, r.correct = float64(extras[0]), float64(extras[1])
		r.commBusy, r.commBytes = sync.busy, sync.bytes
		sync.busy, sync.bytes = 0, 0
	}
	if err := l.checkLoss(r.loss, lr); err != nil {
		return r, err
	}
	params := l.model.Params()
	l.opt.Step(params, lr)
	if !finite(params) {
		return r, fmt.Errorf("%w: weights became non-finite at step %d (epoch %d) with learning rate %g; lower --hp lr", ErrDiverged, l.st.Step+1, l.st.Epoch+1, lr)
	}
	r.compute = time.Since(start) - r.wait
	return r, nil
}

// pipeStep is step for a pipeline stage: the batch goes through the
// stages, and this stage updates its own layers.
func (l *loop) pipeStep(ctx context.Context, dctx *nn.Context, b *Dataset) (stepResult, error) {
	start := time.Now()
	lr := l.sched(l.st.Step)
	l.model.ZeroGrad()
	r, err := l.pipe.step(ctx, l, dctx, b)
	if err != nil {
		return r, err
	}
	if err := l.checkLoss(r.loss, lr); err != nil {
		return r, err
	}
	// Non-finite weights show as a non-finite loss at the next step, on
	// every stage at once; checking here would let the stages disagree.
	l.opt.Step(l.pipe.params(l.model), lr)
	r.compute = time.Since(start)
	return r, nil
}

// checkLoss fails a step whose loss says training has diverged.
func (l *loop) checkLoss(loss, lr float64) error {
	if l.st.Step == 0 {
		l.st.FirstLoss = loss
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return fmt.Errorf("%w: the loss is %v at step %d (epoch %d) with learning rate %g; lower --hp lr", ErrDiverged, loss, l.st.Step+1, l.st.Epoch+1, lr)
	}
	// A loss a thousand times the first one is runaway growth: stop
	// before the weights overflow.
	if l.st.Step > 0 && l.st.FirstLoss > 0 && loss > 1000*l.st.FirstLoss && loss > 1 {
		return fmt.Errorf("%w: the loss grew from %.4g to %.4g by step %d (epoch %d) with learning rate %g; lower --hp lr", ErrDiverged, l.st.FirstLoss, loss, l.st.Step+1, l.st.Epoch+1, lr)
	}
	return nil
}

// observe records an epoch's validation loss for early stopping.
func (l *loop) observe(valLoss float64) {
	if l.st.BestEpoch == 0 || valLoss < l.st.BestLoss-1e-6*math.Abs(l.st.BestLoss) {
		l.st.BestLoss, l.st.BestEpoch, l.st.Stale = valLoss, l.st.Epoch+1, 0
		l.best = weights(l.model)
		return
	}
	l.st.Stale++
	if l.h.Patience > 0 && l.st.Stale >= l.h.Patience {
		l.st.Stopped = fmt.Sprintf("early stopping: no better validation loss for %d epochs (best %.6g at epoch %d)", l.st.Stale, l.st.BestLoss, l.st.BestEpoch)
	}
}

func (l *loop) checkpoint(ctx context.Context) error {
	st := l.opt.State()
	if l.pipe != nil {
		// Rank 0 writes the whole model's checkpoint: every stage's
		// layers and optimiser state come to it first.
		s, err := l.pipe.gather(ctx, l.model, l.opt, slotKinds(l.h))
		if err != nil {
			return err
		}
		st = *s
	}
	return l.hooks.Checkpoint(ctx, &Checkpoint{State: l.st, Weights: weights(l.model), Best: l.best, Optimizer: st})
}

func finite(params []*nn.Param) bool {
	for _, p := range params {
		for _, v := range p.Value.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return false
			}
		}
	}
	return true
}

// weights copies the model's parameters and buffers, in order, into one slice.
func weights(m *nn.Model) []float32 {
	var out []float32
	for _, p := range append(m.Params(), m.Buffers()...) {
		out = append(out, p.Value.Data...)
	}
	return out
}

// setWeights restores what weights copied.
func setWeights(m *nn.Model, w []float32) {
	off := 0
	for _, p := range append(m.Params(), m.Buffers()...) {
		off += copy(p.Value.Data, w[off:])
	}
}

// evalChunk is how many examples one inference batch holds.
const evalChunk = 512

// evaluate runs d through the model in inference mode and scores it;
// p (optional) maps regression outputs back to target units; classes
// names the labels of a classification.
func evaluate(m *nn.Model, obj objective, d *Dataset, p *Preprocessing, classes []string) (Evaluation, error) {
	n := d.Len()
	var lossSum float64
	var preds []int
	var outs []float32
	for lo := 0; lo < n; lo += evalChunk {
		idx := make([]int, 0, evalChunk)
		for i := lo; i < min(lo+evalChunk, n); i++ {
			idx = append(idx, i)
		}
		b := d.subset(idx)
		out, err := m.Predict(b.X)
		if err != nil {
			return Evaluation{}, err
		}
		loss, _, err := obj.loss(out, b)
		if err != nil {
			return Evaluation{}, err
		}
		lossSum += loss * float64(b.Len())
		if obj.task == Classification {
			preds = append(preds, argmax(out)...)
		} else {
			outs = append(outs, out.Data...)
		}
	}
	var ev Evaluation
	if obj.task == Classification {
		ev = classificationMetrics(preds, d.Labels, classes)
	} else {
		truth := d.Targets
		if p != nil && p.TargetScale != 0 {
			truth = unscale(d.Targets, p)
			outs = unscale(outs, p)
		}
		ev = regressionMetrics(outs, truth)
	}
	ev.Loss = lossSum / float64(max(n, 1))
	return ev, nil
}

// unscale maps standardised regression values back to target units.
func unscale(v []float32, p *Preprocessing) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = x/p.TargetScale + p.TargetMean
	}
	return out
}
