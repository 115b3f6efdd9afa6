package nn

import (
	"fmt"
	"math"
	"strings"

	"github.com/hpcml/hpcml/internal/nn/vec"
)

// Optimizer updates parameters from their gradients.
type Optimizer interface {
	// Step applies one update with learning rate lr.
	Step(params []*Param, lr float64)
	// State is the optimiser's per-parameter slots (momentum, moments) and
	// step count, for checkpoints; SetState restores it.
	State() OptimizerState
	SetState(OptimizerState) error
}

// OptimizerState is an optimiser's state keyed by slot and parameter name
// ("m/0.weight").
type OptimizerState struct {
	Step  int64                `json:"step"`
	Slots map[string][]float32 `json:"-"`
}

// OptimizerConfig names an optimiser and its hyperparameters; zero fields
// take the usual defaults (momentum 0.9; Adam β 0.9/0.999, ε 1e-8; AdamW
// weight decay 0.01).
type OptimizerConfig struct {
	Name        string  `json:"name"`
	Momentum    float64 `json:"momentum,omitempty"`
	Nesterov    bool    `json:"nesterov,omitempty"`
	Beta1       float64 `json:"beta1,omitempty"`
	Beta2       float64 `json:"beta2,omitempty"`
	Epsilon     float64 `json:"epsilon,omitempty"`
	WeightDecay float64 `json:"weight_decay,omitempty"`
}

// NewOptimizer makes the optimiser cfg names: sgd, adam or adamw.
func NewOptimizer(cfg OptimizerConfig) (Optimizer, error) {
	switch cfg.Name {
	case "sgd":
		m := cfg.Momentum
		if m < 0 || m >= 1 {
			return nil, fmt.Errorf("nn: sgd momentum %g is outside [0, 1)", m)
		}
		return &SGD{Momentum: m, Nesterov: cfg.Nesterov, WeightDecay: cfg.WeightDecay, slots: slots{}}, nil
	case "adam", "adamw", "":
		a := &Adam{Beta1: orDefaultF(cfg.Beta1, 0.9), Beta2: orDefaultF(cfg.Beta2, 0.999), Epsilon: orDefaultF(cfg.Epsilon, 1e-8), slots: slots{}}
		if cfg.Name == "adamw" {
			a.Decoupled = true
			a.WeightDecay = orDefaultF(cfg.WeightDecay, 0.01)
		} else {
			a.WeightDecay = cfg.WeightDecay
		}
		if a.Beta1 < 0 || a.Beta1 >= 1 || a.Beta2 < 0 || a.Beta2 >= 1 {
			return nil, fmt.Errorf("nn: adam betas (%g, %g) are outside [0, 1)", a.Beta1, a.Beta2)
		}
		return a, nil
	}
	return nil, fmt.Errorf("nn: unknown optimizer %q (want sgd, adam or adamw)", cfg.Name)
}

// Check reports whether the state fits params: every slot names one of
// them and has its length (a checkpoint of another network does not).
func (s OptimizerState) Check(params []*Param) error {
	sizes := make(map[string]int, len(params))
	for _, p := range params {
		sizes[p.Name] = len(p.Value.Data)
	}
	for key, v := range s.Slots {
		_, name, ok := strings.Cut(key, "/")
		n, known := sizes[name]
		if !ok || !known {
			return fmt.Errorf("nn: optimizer state %q names no parameter of the model", key)
		}
		if len(v) != n {
			return fmt.Errorf("nn: optimizer state %q has %d values, the parameter %d", key, len(v), n)
		}
	}
	return nil
}

// slots holds per-parameter optimiser buffers by "slot/param" name.
type slots map[string][]float32

func (s slots) get(slot string, p *Param) []float32 {
	key := slot + "/" + p.Name
	v, ok := s[key]
	if !ok {
		v = make([]float32, len(p.Value.Data))
		s[key] = v
	}
	return v
}

// cloneSlots copies a restored state, so that two optimisers given the
// same state do not share buffers.
func (s slots) cloneSlots() slots { return slots(s.clone()) }

func (s slots) clone() map[string][]float32 {
	out := make(map[string][]float32, len(s))
	for k, v := range s {
		out[k] = append([]float32(nil), v...)
	}
	return out
}

// SGD is stochastic gradient descent with optional (Nesterov) momentum and
// L2 weight decay, with PyTorch's update rule.
type SGD struct {
	Momentum    float64
	Nesterov    bool
	WeightDecay float64
	step        int64
	slots       slots
}

func (o *SGD) Step(params []*Param, lr float64) {
	o.step++
	mu, wd, rate := float32(o.Momentum), float32(o.WeightDecay), float32(lr)
	for _, p := range params {
		w, g := p.Value.Data, p.Grad.Data
		var v []float32
		if mu != 0 {
			v = o.slots.get("momentum", p)
		}
		decay := wd
		if p.NoDecay {
			decay = 0
		}
		for i := range w {
			d := g[i] + decay*w[i]
			if v != nil {
				v[i] = mu*v[i] + d
				if o.Nesterov {
					d += mu * v[i]
				} else {
					d = v[i]
				}
			}
			w[i] -= rate * d
		}
	}
}

func (o *SGD) State() OptimizerState { return OptimizerState{Step: o.step, Slots: o.slots.clone()} }
func (o *SGD) SetState(s OptimizerState) error {
	o.step, o.slots = s.Step, slots(s.Slots).cloneSlots()
	return nil
}

// Adam is Adam (Kingma & Ba) with L2 weight decay, or AdamW (Loshchilov &
// Hutter) when Decoupled: the decay is applied to the weights directly.
type Adam struct {
	Beta1, Beta2, Epsilon float64
	WeightDecay           float64
	Decoupled             bool
	step                  int64
	slots                 slots
}

func (o *Adam) Step(params []*Param, lr float64) {
	o.step++
	b1, b2 := o.Beta1, o.Beta2
	c1 := 1 - math.Pow(b1, float64(o.step))
	c2 := 1 - math.Pow(b2, float64(o.step))
	stepSize := float32(lr / c1)
	sqrtC2 := float32(math.Sqrt(c2))
	eps := float32(o.Epsilon)
	fb1, fb2 := float32(b1), float32(b2)
	for _, p := range params {
		w, g := p.Value.Data, p.Grad.Data
		m, v := o.slots.get("m", p), o.slots.get("v", p)
		wd := float32(o.WeightDecay)
		if p.NoDecay {
			wd = 0
		}
		decay := float32(1)
		if o.Decoupled && wd != 0 {
			decay = 1 - float32(lr)*wd
		}
		l2 := wd
		if o.Decoupled {
			l2 = 0
		}
		k := &vec.AdamCoef{Decay: decay, L2: l2, B1: fb1, OneMinusB1: 1 - fb1, B2: fb2, OneMinusB2: 1 - fb2,
			StepSize: stepSize, SqrtC2: sqrtC2, Eps: eps}
		// Element-wise and memory-bound: both cores for large tensors.
		parallelFor(len(w), 1<<15, func(lo, hi int) {
			vec.Adam(w[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], k)
		})
	}
}

func (o *Adam) State() OptimizerState { return OptimizerState{Step: o.step, Slots: o.slots.clone()} }
func (o *Adam) SetState(s OptimizerState) error {
	o.step, o.slots = s.Step, slots(s.Slots).cloneSlots()
	return nil
}
