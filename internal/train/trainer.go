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
	RNG       []byte  `json:"rng"`   // dropout's generator
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
	rng      *rand.PCG
	best     []float32 // weights and buffers of the best epoch
	hooks    Hooks
	maxSteps int // 0: no limit (tests stop early to simulate a crash)
}

// run trains until the epochs are done or early stopping ends it.
func (l *loop) run(ctx context.Context) error {
	n := l.train.Len()
	bs := min(l.h.BatchSize, n)
	perEpoch := (n + bs - 1) / bs
	dctx := &nn.Context{Training: true, RNG: rand.New(l.rng)}
	window := struct {
		loss    float64
		correct int
		seen    int
		steps   int
		start   time.Time
	}{start: time.Now()}
	for l.st.Epoch < l.epochs && l.st.Stopped == "" {
		perm := rand.New(rand.NewPCG(l.seed, uint64(l.st.Epoch)+1)).Perm(n)
		epochStart := time.Now()
		var epochLoss float64
		var epochCorrect, epochSeen int
		for l.st.Batch < perEpoch {
			if err := ctx.Err(); err != nil {
				return err
			}
			if l.maxSteps > 0 && l.st.Step >= l.maxSteps {
				return errStopForTest
			}
			lo := l.st.Batch * bs
			batch := l.train.subset(perm[lo:min(lo+bs, n)])
			loss, correct, err := l.step(dctx, batch)
			if err != nil {
				return err
			}
			l.st.Batch++
			l.st.Step++
			epochLoss += loss * float64(batch.Len())
			epochCorrect += correct
			epochSeen += batch.Len()
			window.loss += loss * float64(batch.Len())
			window.correct += correct
			window.seen += batch.Len()
			window.steps++
			if l.st.Step%l.h.LogEvery == 0 || l.st.Batch == perEpoch {
				secs := time.Since(window.start).Seconds()
				v := map[string]float64{"loss": window.loss / float64(window.seen), "lr": l.sched(l.st.Step - 1),
					"samples_per_sec": float64(window.seen) / math.Max(secs, 1e-9)}
				if l.obj.task == Classification {
					v["accuracy"] = float64(window.correct) / float64(window.seen)
				}
				l.hooks.Metric(ctx, Point{Kind: "step", Step: l.st.Step, Epoch: l.st.Epoch + 1, Time: time.Now(), Values: v})
				window.loss, window.correct, window.seen, window.steps, window.start = 0, 0, 0, 0, time.Now()
			}
			if l.st.Step%l.h.CheckpointEvery == 0 && l.st.Batch < perEpoch {
				if err := l.checkpoint(ctx); err != nil {
					return err
				}
			}
		}
		// The epoch is over: validate, decide on early stopping, checkpoint.
		v := map[string]float64{"samples_per_sec": float64(epochSeen) / math.Max(time.Since(epochStart).Seconds(), 1e-9)}
		if epochSeen > 0 {
			v["train_loss"] = epochLoss / float64(epochSeen)
			if l.obj.task == Classification {
				v["train_accuracy"] = float64(epochCorrect) / float64(epochSeen)
			}
		}
		if l.val != nil {
			ev, err := evaluate(l.model, l.obj, l.val, nil, l.classes)
			if err != nil {
				return err
			}
			v["val_loss"] = ev.Loss
			if l.obj.task == Classification {
				v["val_accuracy"] = ev.Accuracy
			} else {
				v["val_rmse"] = ev.RMSE
			}
			l.observe(ev.Loss)
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
	return nil
}

// errStopForTest ends a loop at maxSteps, as a crash would.
var errStopForTest = errors.New("stopped at the step limit")

// step trains on one batch; it returns the loss and, for classification,
// how many examples the batch got right.
func (l *loop) step(dctx *nn.Context, b *Dataset) (float64, int, error) {
	out, pass, err := l.model.Forward(dctx, b.X)
	if err != nil {
		return 0, 0, err
	}
	loss, grad, err := l.obj.loss(out, b)
	if err != nil {
		return 0, 0, err
	}
	if l.st.Step == 0 {
		l.st.FirstLoss = loss
	}
	lr := l.sched(l.st.Step)
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return 0, 0, fmt.Errorf("%w: the loss is %v at step %d (epoch %d) with learning rate %g; lower --hp lr", ErrDiverged, loss, l.st.Step+1, l.st.Epoch+1, lr)
	}
	// A loss a thousand times the first one is runaway growth: stop
	// before the weights overflow.
	if l.st.Step > 0 && l.st.FirstLoss > 0 && loss > 1000*l.st.FirstLoss && loss > 1 {
		return 0, 0, fmt.Errorf("%w: the loss grew from %.4g to %.4g by step %d (epoch %d) with learning rate %g; lower --hp lr", ErrDiverged, l.st.FirstLoss, loss, l.st.Step+1, l.st.Epoch+1, lr)
	}
	l.model.ZeroGrad()
	l.model.Backward(pass, grad)
	params := l.model.Params()
	l.opt.Step(params, lr)
	if !finite(params) {
		return 0, 0, fmt.Errorf("%w: weights became non-finite at step %d (epoch %d) with learning rate %g; lower --hp lr", ErrDiverged, l.st.Step+1, l.st.Epoch+1, lr)
	}
	correct := 0
	if l.obj.task == Classification {
		for i, p := range argmax(out) {
			if p == b.Labels[i] {
				correct++
			}
		}
	}
	return loss, correct, nil
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
	rng, err := l.rng.MarshalBinary()
	if err != nil {
		return err
	}
	l.st.RNG = rng
	return l.hooks.Checkpoint(ctx, &Checkpoint{State: l.st, Weights: weights(l.model), Best: l.best, Optimizer: l.opt.State()})
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
