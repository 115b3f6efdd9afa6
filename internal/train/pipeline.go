package train

import (
	"context"
	"fmt"
	"strings"

	"github.com/hpcml/hpcml/internal/nn"
)

// PipeComm is what pipeline-parallel training needs of its process
// group: Comm's collectives and ordered point-to-point transfers.
type PipeComm interface {
	Comm
	// Send hands buf to rank to; Recv fills buf from rank from. Transfers
	// between two ranks arrive in the order they were sent.
	Send(ctx context.Context, to int, buf []float32) error
	Recv(ctx context.Context, from int, buf []float32) error
}

// pipeline is one rank's part of pipeline-parallel training (GPipe): the
// network's layers are cut into as many contiguous stages as there are
// ranks; each batch is cut into micro-batches that flow forward through
// the stages, then their gradients flow back, and each stage updates its
// own layers. Every rank holds the whole model object; only its stage's
// layers are current until gather brings them all to rank 0 (for
// checkpoints, validation and the export).
type pipeline struct {
	comm   PipeComm
	stage  int
	stages int
	bounds []int   // stage s has layers [bounds[s], bounds[s+1])
	shapes [][]int // per-sample input shape of layer i; shapes[len] is the output's
	micro  int
}

// newPipeline cuts m's layers into comm.Size() stages of about equal
// parameter counts (each stage gets at least one layer).
func newPipeline(m *nn.Model, comm PipeComm, micro int) (*pipeline, error) {
	k := comm.Size()
	n := len(m.Layers)
	if k > n {
		return nil, fmt.Errorf("%d pipeline stages for a network of %d layers: at most one stage per layer", k, n)
	}
	p := &pipeline{comm: comm, stage: comm.Rank(), stages: k, micro: micro}
	shape := m.Spec.Input
	for _, l := range m.Layers {
		p.shapes = append(p.shapes, shape)
		out, err := l.OutShape(shape)
		if err != nil {
			return nil, err
		}
		shape = out
	}
	p.shapes = append(p.shapes, shape)
	// Cut where the running parameter count passes s/k of the total, a
	// layer's work being roughly its parameters plus its output's size.
	cost := make([]float64, n)
	var total float64
	for i, l := range m.Layers {
		for _, q := range l.Params() {
			cost[i] += float64(q.Value.Len())
		}
		cost[i] += float64(nn.Volume(p.shapes[i+1]))
		total += cost[i]
	}
	p.bounds = []int{0}
	var acc float64
	for i := 0; i < n && len(p.bounds) < k; i++ {
		acc += cost[i]
		left := n - (i + 1)       // layers after this one
		need := k - len(p.bounds) // stages still to start
		if acc >= total*float64(len(p.bounds))/float64(k) || left == need {
			p.bounds = append(p.bounds, i+1)
		}
	}
	p.bounds = append(p.bounds, n)
	return p, nil
}

// describe says which layers each stage holds, for the log.
func (p *pipeline) describe(m *nn.Model) string {
	var parts []string
	for s := 0; s < p.stages; s++ {
		var kinds []string
		for i := p.bounds[s]; i < p.bounds[s+1]; i++ {
			kinds = append(kinds, m.Layers[i].Kind())
		}
		parts = append(parts, fmt.Sprintf("stage %d: layers %d-%d (%s)", s, p.bounds[s], p.bounds[s+1]-1, strings.Join(kinds, " ")))
	}
	return strings.Join(parts, "; ")
}

func (p *pipeline) lo() int    { return p.bounds[p.stage] }
func (p *pipeline) hi() int    { return p.bounds[p.stage+1] }
func (p *pipeline) last() bool { return p.stage == p.stages-1 }

// params are this stage's trainable parameters.
func (p *pipeline) params(m *nn.Model) []*nn.Param {
	var ps []*nn.Param
	for _, l := range m.Layers[p.lo():p.hi()] {
		ps = append(ps, l.Params()...)
	}
	return ps
}

// step runs one batch through the pipeline (GPipe: every micro-batch
// forward, then every one backward, gradients adding up) and returns the
// batch's loss and correct count, known to every stage.
func (p *pipeline) step(ctx context.Context, l *loop, dctx *nn.Context, b *Dataset) (stepResult, error) {
	var r stepResult
	m := l.model
	n := b.Len()
	micro := min(p.micro, n)
	caches := make([][]any, micro)
	grads := make([]*nn.Tensor, micro)
	rows := func(j int) (int, int) { return j * n / micro, (j + 1) * n / micro }
	var lossSum float64
	var correct int
	for j := 0; j < micro; j++ {
		lo, hi := rows(j)
		var x *nn.Tensor
		if p.stage == 0 {
			x = b.X.Rows(lo, hi)
		} else {
			x = nn.NewTensor(append([]int{hi - lo}, p.shapes[p.lo()]...)...)
			if err := p.comm.Recv(ctx, p.stage-1, x.Data); err != nil {
				return r, fmt.Errorf("receive activations: %w", err)
			}
		}
		caches[j] = make([]any, p.hi()-p.lo())
		for i := p.lo(); i < p.hi(); i++ {
			x, caches[j][i-p.lo()] = m.Layers[i].Forward(dctx, x)
		}
		if !p.last() {
			if err := p.comm.Send(ctx, p.stage+1, x.Data); err != nil {
				return r, fmt.Errorf("send activations: %w", err)
			}
			continue
		}
		sub := b.subset(seq(lo, hi))
		loss, g, err := l.obj.loss(x, sub)
		if err != nil {
			return r, err
		}
		// The batch's loss is the mean over its examples: each
		// micro-batch's mean weighs by its share.
		share := float32(hi-lo) / float32(n)
		for i := range g.Data {
			g.Data[i] *= share
		}
		grads[j] = g
		lossSum += loss * float64(hi-lo)
		if l.obj.task == Classification {
			for i, q := range argmax(x) {
				if q == sub.Labels[i] {
					correct++
				}
			}
		}
	}
	for j := micro - 1; j >= 0; j-- {
		lo, hi := rows(j)
		dy := grads[j]
		if !p.last() {
			dy = nn.NewTensor(append([]int{hi - lo}, p.shapes[p.hi()]...)...)
			if err := p.comm.Recv(ctx, p.stage+1, dy.Data); err != nil {
				return r, fmt.Errorf("receive gradients: %w", err)
			}
		}
		for i := p.hi() - 1; i >= p.lo(); i-- {
			dy = m.Layers[i].Backward(caches[j][i-p.lo()], dy, i > p.lo() || p.stage > 0)
		}
		if p.stage > 0 {
			if err := p.comm.Send(ctx, p.stage-1, dy.Data); err != nil {
				return r, fmt.Errorf("send gradients: %w", err)
			}
		}
	}
	// The last stage knows the loss: every stage needs it (divergence,
	// metrics).
	res := []float32{float32(lossSum / float64(n)), float32(correct)}
	if err := p.comm.Broadcast(ctx, res, p.stages-1); err != nil {
		return r, fmt.Errorf("share the loss: %w", err)
	}
	r.loss, r.correct = float64(res[0]), float64(res[1])
	return r, nil
}

func seq(lo, hi int) []int {
	s := make([]int, hi-lo)
	for i := range s {
		s[i] = lo + i
	}
	return s
}

// gather brings every stage's layers (parameters and buffers) to rank 0's
// model object, and, with opt, their optimiser state; rank 0 gets the
// merged state back.
func (p *pipeline) gather(ctx context.Context, m *nn.Model, opt nn.Optimizer, kinds []string) (*nn.OptimizerState, error) {
	var state *nn.OptimizerState
	if opt != nil {
		s := opt.State()
		state = &s
	}
	for s := 1; s < p.stages; s++ {
		if p.stage != 0 && p.stage != s {
			continue
		}
		params, buffers := stageTensors(m, p.bounds[s], p.bounds[s+1])
		for _, t := range append(params, buffers...) {
			if err := p.transfer(ctx, s, t.Value.Data); err != nil {
				return nil, err
			}
		}
		if state == nil {
			continue
		}
		for _, q := range params {
			for _, kind := range kinds {
				key := kind + "/" + q.Name
				buf, ok := state.Slots[key]
				if !ok {
					buf = make([]float32, q.Value.Len())
				}
				if err := p.transfer(ctx, s, buf); err != nil {
					return nil, err
				}
				if p.stage == 0 {
					state.Slots[key] = buf
				}
			}
		}
	}
	return state, nil
}

// transfer sends buf from stage s to rank 0 (on s) or receives it (on 0).
func (p *pipeline) transfer(ctx context.Context, s int, buf []float32) error {
	if p.stage == 0 {
		if err := p.comm.Recv(ctx, s, buf); err != nil {
			return fmt.Errorf("gather stage %d: %w", s, err)
		}
		return nil
	}
	if err := p.comm.Send(ctx, 0, buf); err != nil {
		return fmt.Errorf("send stage %d to rank 0: %w", s, err)
	}
	return nil
}

// stageTensors are layers [lo, hi)'s parameters and their buffers.
func stageTensors(m *nn.Model, lo, hi int) (params, buffers []*nn.Param) {
	for _, l := range m.Layers[lo:hi] {
		params = append(params, l.Params()...)
		if s, ok := l.(nn.Stateful); ok {
			buffers = append(buffers, s.Buffers()...)
		}
	}
	return params, buffers
}

// slotKinds are the per-parameter slots the optimiser keeps (see
// nn.Optimizer.State), the same on every stage.
func slotKinds(h HParams) []string {
	switch {
	case h.Optimizer == "sgd" && h.Momentum == 0:
		return nil
	case h.Optimizer == "sgd":
		return []string{"momentum"}
	}
	return []string{"m", "v"}
}
