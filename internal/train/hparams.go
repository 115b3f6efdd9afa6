package train

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// HParams are the hyperparameters of a training run, parsed from the
// k=v pairs a user gives (--hp) over the algorithm's defaults.
type HParams struct {
	Task string // classification, regression or "" (inferred)

	BatchSize   int
	LR          float64
	Optimizer   string // sgd, adam, adamw
	Momentum    float64
	WeightDecay float64
	Schedule    string // constant, step, cosine
	Warmup      int    // steps
	StepEvery   int    // epochs between step decays
	Gamma       float64
	MinLR       float64

	Patience     int     // epochs without validation improvement before stopping; 0: never stop early
	Validation   float64 // share of the training data held out
	ClassWeights string  // none, balanced, or one weight per class "1,3.5"
	Standardize  bool

	Hidden     []int   // mlp
	Activation string  // mlp
	Dropout    float64 // mlp, cnn
	BatchNorm  bool    // mlp
	Arch       string  // cnn: lenet or resnet
	Filters    int     // cnn: filters of the first convolution
	Shape      []int   // cnn on a table: C,H,W of each row's features

	CheckpointEvery int // steps
	LogEvery        int // steps
	MicroBatches    int // per batch, in pipeline-parallel training
}

// hpDoc says what a hyperparameter means; the algorithms say which apply
// to them.
func hpDoc(name string) string {
	return map[string]string{
		"task":             "classification or regression (default: inferred from the label)",
		"batch_size":       "examples per step",
		"lr":               "learning rate",
		"optimizer":        "sgd, adam or adamw",
		"momentum":         "sgd momentum",
		"weight_decay":     "L2 penalty (decoupled for adamw)",
		"schedule":         "learning-rate schedule: constant, step or cosine",
		"warmup":           "steps of linear learning-rate warm-up",
		"step_every":       "epochs between step decays (schedule=step)",
		"gamma":            "factor of each step decay (schedule=step)",
		"min_lr":           "final learning rate (schedule=cosine)",
		"patience":         "epochs without a better validation loss before stopping (0: never stop early)",
		"validation":       "share of the training data held out for validation, in [0, 0.5]",
		"class_weights":    "none, balanced, or one weight per class: 1,2.5,...",
		"standardize":      "scale features to mean 0, variance 1 on the training data (true/false)",
		"hidden":           "mlp hidden layer sizes, comma-separated: 256,128",
		"activation":       "mlp activation: relu, gelu, tanh or sigmoid",
		"dropout":          "dropout rate after hidden layers",
		"batchnorm":        "batch normalisation after hidden layers (true/false)",
		"arch":             "cnn architecture: lenet or resnet",
		"filters":          "cnn filters of the first convolution",
		"shape":            "cnn on a table: each row's features as C,H,W (e.g. 1,8,8)",
		"checkpoint_every": "steps between checkpoints",
		"log_every":        "steps between metric points",
		"micro_batches":    "micro-batches each batch is cut into in pipeline-parallel training",
	}[name]
}

// commonHP are the hyperparameters every algorithm takes.
func commonHP() []string {
	return []string{"task", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "schedule", "warmup",
		"step_every", "gamma", "min_lr", "patience", "validation", "class_weights", "standardize", "checkpoint_every", "log_every", "micro_batches"}
}

// parseHParams applies kv over defaults, accepting only the names in allowed.
func parseHParams(defaults HParams, allowed []string, kv map[string]string) (HParams, error) {
	h := defaults
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := strings.TrimSpace(kv[k])
		if !slices.Contains(allowed, k) {
			known := slices.Clone(allowed)
			sort.Strings(known)
			return h, fmt.Errorf("unknown hyperparameter %q (known: %s)", k, strings.Join(known, ", "))
		}
		if err := h.set(k, v); err != nil {
			return h, fmt.Errorf("hyperparameter %s=%q: %w", k, v, err)
		}
	}
	return h, h.check()
}

func (h *HParams) set(k, v string) error {
	var err error
	switch k {
	case "task":
		h.Task = v
	case "batch_size":
		h.BatchSize, err = strconv.Atoi(v)
	case "lr":
		h.LR, err = strconv.ParseFloat(v, 64)
	case "optimizer":
		h.Optimizer = v
	case "momentum":
		h.Momentum, err = strconv.ParseFloat(v, 64)
	case "weight_decay":
		h.WeightDecay, err = strconv.ParseFloat(v, 64)
	case "schedule":
		h.Schedule = v
	case "warmup":
		h.Warmup, err = strconv.Atoi(v)
	case "step_every":
		h.StepEvery, err = strconv.Atoi(v)
	case "gamma":
		h.Gamma, err = strconv.ParseFloat(v, 64)
	case "min_lr":
		h.MinLR, err = strconv.ParseFloat(v, 64)
	case "patience":
		h.Patience, err = strconv.Atoi(v)
	case "validation":
		h.Validation, err = strconv.ParseFloat(v, 64)
	case "class_weights":
		h.ClassWeights = v
	case "standardize":
		h.Standardize, err = strconv.ParseBool(v)
	case "hidden":
		h.Hidden, err = intList(v)
	case "activation":
		h.Activation = v
	case "dropout":
		h.Dropout, err = strconv.ParseFloat(v, 64)
	case "batchnorm":
		h.BatchNorm, err = strconv.ParseBool(v)
	case "arch":
		h.Arch = v
	case "filters":
		h.Filters, err = strconv.Atoi(v)
	case "shape":
		h.Shape, err = intList(v)
	case "checkpoint_every":
		h.CheckpointEvery, err = strconv.Atoi(v)
	case "log_every":
		h.LogEvery, err = strconv.Atoi(v)
	case "micro_batches":
		h.MicroBatches, err = strconv.Atoi(v)
	}
	return err
}

func intList(v string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("want comma-separated integers")
		}
		out = append(out, n)
	}
	return out, nil
}

// check validates ranges; the network and optimiser check the rest.
func (h *HParams) check() error {
	switch {
	case h.Task != "" && h.Task != Classification && h.Task != Regression:
		return fmt.Errorf("hyperparameter task=%q: want classification or regression", h.Task)
	case h.BatchSize < 1 || h.BatchSize > 1<<16:
		return fmt.Errorf("hyperparameter batch_size=%d: want 1..65536", h.BatchSize)
	case !(h.LR > 0) || h.LR > 1e3:
		return fmt.Errorf("hyperparameter lr=%g: want a positive learning rate", h.LR)
	case h.Momentum < 0 || h.Momentum >= 1:
		return fmt.Errorf("hyperparameter momentum=%g: want [0, 1)", h.Momentum)
	case h.WeightDecay < 0:
		return fmt.Errorf("hyperparameter weight_decay=%g: want ≥ 0", h.WeightDecay)
	case h.Warmup < 0 || h.StepEvery < 0 || h.Patience < 0:
		return fmt.Errorf("hyperparameters warmup, step_every and patience cannot be negative")
	case h.Validation < 0 || h.Validation > 0.5:
		return fmt.Errorf("hyperparameter validation=%g: want [0, 0.5]", h.Validation)
	case h.Dropout < 0 || h.Dropout >= 1:
		return fmt.Errorf("hyperparameter dropout=%g: want [0, 1)", h.Dropout)
	case h.CheckpointEvery < 1 || h.LogEvery < 1 || h.MicroBatches < 1:
		return fmt.Errorf("hyperparameters checkpoint_every, log_every and micro_batches must be ≥ 1")
	}
	for _, n := range h.Hidden {
		if n < 1 || n > 1<<16 {
			return fmt.Errorf("hyperparameter hidden: layer size %d: want 1..65536", n)
		}
	}
	if h.Filters < 0 || h.Filters > 4096 {
		return fmt.Errorf("hyperparameter filters=%d: want 1..4096", h.Filters)
	}
	return nil
}

// Map renders the hyperparameters as the k=v strings they parse from,
// for the model's metadata.
func (h HParams) Map(allowed []string) map[string]string {
	all := map[string]string{
		"task": h.Task, "batch_size": strconv.Itoa(h.BatchSize), "lr": fmtF(h.LR), "optimizer": h.Optimizer,
		"momentum": fmtF(h.Momentum), "weight_decay": fmtF(h.WeightDecay), "schedule": h.Schedule,
		"warmup": strconv.Itoa(h.Warmup), "step_every": strconv.Itoa(h.StepEvery), "gamma": fmtF(h.Gamma),
		"min_lr": fmtF(h.MinLR), "patience": strconv.Itoa(h.Patience), "validation": fmtF(h.Validation),
		"class_weights": h.ClassWeights, "standardize": strconv.FormatBool(h.Standardize),
		"hidden": joinInts(h.Hidden), "activation": h.Activation, "dropout": fmtF(h.Dropout),
		"batchnorm": strconv.FormatBool(h.BatchNorm), "arch": h.Arch, "filters": strconv.Itoa(h.Filters),
		"shape": joinInts(h.Shape), "checkpoint_every": strconv.Itoa(h.CheckpointEvery), "log_every": strconv.Itoa(h.LogEvery),
		"micro_batches": strconv.Itoa(h.MicroBatches),
	}
	out := map[string]string{}
	for _, k := range allowed {
		if v := all[k]; v != "" {
			out[k] = v
		}
	}
	return out
}

func fmtF(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
