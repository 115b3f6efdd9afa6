package nn

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// refOptimizer is an optimiser written out in float64 from PyTorch's
// documented algorithms (torch.optim.SGD, Adam, AdamW), independent of
// optim.go's code: the tests run both on the same gradients.
type refOptimizer struct {
	cfg  OptimizerConfig
	t    int
	m, v map[int][]float64
}

func (r *refOptimizer) step(params [][]float64, grads [][]float64, noDecay []bool, lr float64) {
	r.t++
	if r.m == nil {
		r.m, r.v = map[int][]float64{}, map[int][]float64{}
	}
	for pi, w := range params {
		if r.m[pi] == nil {
			r.m[pi], r.v[pi] = make([]float64, len(w)), make([]float64, len(w))
		}
		m, v := r.m[pi], r.v[pi]
		wd := r.cfg.WeightDecay
		if noDecay[pi] {
			wd = 0
		}
		for i := range w {
			g := grads[pi][i]
			switch r.cfg.Name {
			case "sgd":
				g += wd * w[i]
				if mu := r.cfg.Momentum; mu != 0 {
					if r.t > 1 {
						m[i] = mu*m[i] + g // dampening 0
					} else {
						m[i] = g
					}
					if r.cfg.Nesterov {
						g += mu * m[i]
					} else {
						g = m[i]
					}
				}
				w[i] -= lr * g
			case "adam", "adamw":
				b1, b2, eps := r.cfg.Beta1, r.cfg.Beta2, r.cfg.Epsilon
				if r.cfg.Name == "adamw" {
					w[i] -= lr * wd * w[i]
				} else {
					g += wd * w[i]
				}
				m[i] = b1*m[i] + (1-b1)*g
				v[i] = b2*v[i] + (1-b2)*g*g
				mh := m[i] / (1 - math.Pow(b1, float64(r.t)))
				vh := v[i] / (1 - math.Pow(b2, float64(r.t)))
				w[i] -= lr * mh / (math.Sqrt(vh) + eps)
			}
		}
	}
}

// gradAt is a deterministic gradient that depends on the weights and the
// step, so any difference in an update shows in the following steps.
func gradAt(w []float32, step, param int) []float32 {
	g := make([]float32, len(w))
	for i, v := range w {
		g[i] = float32(2*(float64(v)-0.3*float64(i)) + 0.5*math.Sin(float64(step*7+i+param)))
	}
	return g
}

func optimizerParams() []*Param {
	w := newParam("0.weight", false, 5)
	b := newParam("0.bias", true, 3)
	copy(w.Value.Data, []float32{0.5, -1, 2, 0.25, -0.75})
	copy(b.Value.Data, []float32{1, -0.5, 0.1})
	return []*Param{w, b}
}

func TestOptimizersMatchReference(t *testing.T) {
	cfgs := []OptimizerConfig{
		{Name: "sgd"},
		{Name: "sgd", WeightDecay: 0.1},
		{Name: "sgd", Momentum: 0.9},
		{Name: "sgd", Momentum: 0.8, WeightDecay: 0.05},
		{Name: "sgd", Momentum: 0.9, Nesterov: true, WeightDecay: 0.1},
		{Name: "adam"},
		{Name: "adam", WeightDecay: 0.1, Beta1: 0.8, Beta2: 0.99, Epsilon: 1e-6},
		{Name: "adamw"},
		{Name: "adamw", WeightDecay: 0.3},
	}
	for _, cfg := range cfgs {
		t.Run(fmt.Sprintf("%+v", cfg), func(t *testing.T) {
			opt, err := NewOptimizer(cfg)
			if err != nil {
				t.Fatal(err)
			}
			// The reference gets the defaults written out, as PyTorch's are.
			ref := &refOptimizer{cfg: cfg}
			ref.cfg.Beta1 = orDefaultF(cfg.Beta1, 0.9)
			ref.cfg.Beta2 = orDefaultF(cfg.Beta2, 0.999)
			ref.cfg.Epsilon = orDefaultF(cfg.Epsilon, 1e-8)
			if cfg.Name == "adamw" {
				ref.cfg.WeightDecay = orDefaultF(cfg.WeightDecay, 0.01)
			}
			params := optimizerParams()
			refW := make([][]float64, len(params))
			noDecay := make([]bool, len(params))
			for i, p := range params {
				for _, v := range p.Value.Data {
					refW[i] = append(refW[i], float64(v))
				}
				noDecay[i] = p.NoDecay
			}
			for step := range 6 {
				lr := 0.05 * (1 + 0.5*float64(step%3)) // a changing rate, as under a schedule
				grads := make([][]float64, len(params))
				for i, p := range params {
					// Both take the gradient at the optimiser's weights, so
					// float32 rounding does not compound into a drift.
					g := gradAt(p.Value.Data, step, i)
					copy(p.Grad.Data, g)
					for j, v := range g {
						grads[i] = append(grads[i], float64(v))
						refW[i][j] = float64(p.Value.Data[j])
					}
				}
				opt.Step(params, lr)
				ref.step(refW, grads, noDecay, lr)
				for i, p := range params {
					for j, v := range p.Value.Data {
						if !closeTo(float64(v), refW[i][j], 2e-6) {
							t.Fatalf("step %d: %s[%d] = %.8g, the reference gives %.8g", step, p.Name, j, v, refW[i][j])
						}
					}
				}
			}
			if opt.State().Step != 6 {
				t.Errorf("state step %d, want 6", opt.State().Step)
			}
		})
	}
}

// TestOptimizerNoDecay checks weight decay leaves NoDecay parameters
// alone: with a zero gradient only the decay moves a weight.
func TestOptimizerNoDecay(t *testing.T) {
	for _, cfg := range []OptimizerConfig{{Name: "sgd", WeightDecay: 0.5}, {Name: "adam", WeightDecay: 0.5}, {Name: "adamw", WeightDecay: 0.5}} {
		opt, err := NewOptimizer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		params := optimizerParams()
		before := [][]float32{slices.Clone(params[0].Value.Data), slices.Clone(params[1].Value.Data)}
		opt.Step(params, 0.1)
		if slices.Equal(params[0].Value.Data, before[0]) {
			t.Errorf("%s: the decayed weight did not move", cfg.Name)
		}
		if !slices.Equal(params[1].Value.Data, before[1]) {
			t.Errorf("%s: the NoDecay bias moved from %v to %v", cfg.Name, before[1], params[1].Value.Data)
		}
	}
}

// TestOptimizerStateRoundTrip checks that an optimiser restored from
// another's State continues exactly as the original does.
func TestOptimizerStateRoundTrip(t *testing.T) {
	for _, cfg := range []OptimizerConfig{{Name: "sgd", Momentum: 0.9, Nesterov: true}, {Name: "adam"}, {Name: "adamw"}} {
		t.Run(cfg.Name, func(t *testing.T) {
			a, _ := NewOptimizer(cfg)
			pa := optimizerParams()
			run := func(o Optimizer, ps []*Param, from, to int) {
				for step := from; step < to; step++ {
					for i, p := range ps {
						copy(p.Grad.Data, gradAt(p.Value.Data, step, i))
					}
					o.Step(ps, 0.01)
				}
			}
			run(a, pa, 0, 3)
			st := a.State()
			if st.Step != 3 || len(st.Slots) == 0 {
				t.Fatalf("state %+v", st)
			}
			b, _ := NewOptimizer(cfg)
			if err := b.SetState(st); err != nil {
				t.Fatal(err)
			}
			pb := optimizerParams()
			for i := range pb {
				copy(pb[i].Value.Data, pa[i].Value.Data)
			}
			run(a, pa, 3, 6)
			run(b, pb, 3, 6)
			for i := range pa {
				if !slices.Equal(pa[i].Value.Data, pb[i].Value.Data) {
					t.Errorf("%s: restored optimiser gives %v, original %v", pa[i].Name, pb[i].Value.Data, pa[i].Value.Data)
				}
			}
			// Without the state, the same weights take another path: the
			// round trip above did carry something.
			d, _ := NewOptimizer(cfg)
			pd := optimizerParams()
			for i := range pd {
				copy(pd[i].Value.Data, pb[i].Value.Data)
			}
			run(b, pb, 6, 7)
			run(d, pd, 6, 7)
			if slices.Equal(pb[0].Value.Data, pd[0].Value.Data) {
				t.Error("a fresh optimiser steps as the restored one does")
			}
		})
	}
}

func TestNewOptimizerErrors(t *testing.T) {
	for _, cfg := range []OptimizerConfig{
		{Name: "rmsprop"},
		{Name: "sgd", Momentum: 1},
		{Name: "sgd", Momentum: -0.1},
		{Name: "adam", Beta1: 1},
		{Name: "adamw", Beta2: 1.5},
	} {
		if _, err := NewOptimizer(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
