package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/hpcml/hpcml/internal/nn"
)

// Preprocessing is what is learned from the training data and applied to
// every input before the network, saved with the model (and built into
// its ONNX graph) so that it takes raw inputs.
type Preprocessing struct {
	// Mean and Scale standardise each input value: (x − mean) · scale,
	// either one pair for all values or one per value of a sample.
	Mean  []float32 `json:"mean"`
	Scale []float32 `json:"scale"`
	// Shape is the network's per-sample input shape (a table's features
	// may be viewed as C×H×W images).
	Shape []int `json:"shape"`
	// TargetMean and TargetScale standardise regression targets; the
	// exported model maps its output back.
	TargetMean  float32 `json:"target_mean,omitempty"`
	TargetScale float32 `json:"target_scale,omitempty"`
}

// apply standardises d in place and reshapes it to p.Shape.
func (p *Preprocessing) apply(d *Dataset) {
	n := d.X.SampleLen()
	if len(p.Mean) == 1 {
		m, s := p.Mean[0], p.Scale[0]
		for i, v := range d.X.Data {
			d.X.Data[i] = (v - m) * s
		}
	} else {
		for i, v := range d.X.Data {
			j := i % n
			d.X.Data[i] = (v - p.Mean[j]) * p.Scale[j]
		}
	}
	d.X = d.X.Reshape(append([]int{d.Len()}, p.Shape...)...)
	if d.Targets != nil && p.TargetScale != 0 {
		for i, v := range d.Targets {
			d.Targets[i] = (v - p.TargetMean) * p.TargetScale
		}
	}
}

// fitPreprocessing learns the preprocessing from the training part.
func fitPreprocessing(h HParams, info DataInfo, train *Dataset) (*Preprocessing, error) {
	p := &Preprocessing{Shape: info.Shape, Mean: []float32{0}, Scale: []float32{1}}
	switch {
	case info.Format == "idx":
		// Pixels 0–255 to [0, 1]; the model takes raw pixels.
		p.Scale = []float32{1.0 / 255}
	case h.Standardize:
		p.Mean, p.Scale = columnStats(train.X)
	}
	if len(h.Shape) > 0 {
		if info.Format == "idx" {
			return nil, fmt.Errorf("hyperparameter shape applies to tables; IDX images are %v already", info.Shape)
		}
		if len(h.Shape) != 3 || nn.Volume(h.Shape) != nn.Volume(info.Shape) || slicesHasNonPositive(h.Shape) {
			return nil, fmt.Errorf("hyperparameter shape=%s: want C,H,W with C·H·W = %d features", joinInts(h.Shape), nn.Volume(info.Shape))
		}
		p.Shape = h.Shape
	}
	if info.Task == Regression {
		var sum, sq float64
		for _, v := range train.Targets {
			sum += float64(v)
		}
		mean := sum / float64(len(train.Targets))
		for _, v := range train.Targets {
			d := float64(v) - mean
			sq += d * d
		}
		std := math.Sqrt(sq / float64(len(train.Targets)))
		if std == 0 {
			std = 1
		}
		p.TargetMean, p.TargetScale = float32(mean), float32(1/std)
	}
	return p, nil
}

func slicesHasNonPositive(v []int) bool {
	for _, n := range v {
		if n <= 0 {
			return true
		}
	}
	return false
}

// columnStats are each column's mean and 1/std (1 for a constant column,
// which then stays at 0).
func columnStats(x *nn.Tensor) (mean, scale []float32) {
	n, f := x.Batch(), x.SampleLen()
	sum := make([]float64, f)
	for i := 0; i < n; i++ {
		for j, v := range x.Data[i*f : (i+1)*f] {
			sum[j] += float64(v)
		}
	}
	mu := make([]float64, f)
	for j := range mu {
		mu[j] = sum[j] / float64(n)
	}
	sq := make([]float64, f)
	for i := 0; i < n; i++ {
		for j, v := range x.Data[i*f : (i+1)*f] {
			d := float64(v) - mu[j]
			sq[j] += d * d
		}
	}
	mean, scale = make([]float32, f), make([]float32, f)
	for j := range mu {
		mean[j] = float32(mu[j])
		std := math.Sqrt(sq[j] / float64(n))
		scale[j] = 1
		if std > 1e-12 {
			scale[j] = float32(1 / std)
		}
	}
	return mean, scale
}

// splitValidation holds out a seeded random share of d, stratified by
// class for classification so that rare classes appear on both sides.
func splitValidation(d *Dataset, share float64, seed uint64) (train, val *Dataset) {
	if share == 0 || d.Len() < 10 {
		return d, nil
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	var trainIdx, valIdx []int
	if d.Labels != nil {
		byClass := map[int][]int{}
		var order []int
		for i, l := range d.Labels {
			if _, ok := byClass[l]; !ok {
				order = append(order, l)
			}
			byClass[l] = append(byClass[l], i)
		}
		for _, l := range order {
			idx := byClass[l]
			rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
			k := int(math.Round(share * float64(len(idx))))
			valIdx = append(valIdx, idx[:k]...)
			trainIdx = append(trainIdx, idx[k:]...)
		}
	} else {
		idx := rng.Perm(d.Len())
		k := int(math.Round(share * float64(len(idx))))
		valIdx, trainIdx = idx[:k], idx[k:]
	}
	if len(valIdx) == 0 {
		return d, nil
	}
	return d.subset(trainIdx), d.subset(valIdx)
}

// classWeights turns the class_weights hyperparameter into one weight per
// class: nil (none), balanced (n / (k · count)), or the listed weights.
func classWeights(spec string, labels []int, classes int) ([]float32, error) {
	switch spec {
	case "", "none":
		return nil, nil
	case "balanced":
		counts := make([]int, classes)
		for _, l := range labels {
			counts[l]++
		}
		w := make([]float32, classes)
		for k, c := range counts {
			if c > 0 {
				w[k] = float32(float64(len(labels)) / float64(classes*c))
			}
		}
		return w, nil
	}
	parts := strings.Split(spec, ",")
	if len(parts) != classes {
		return nil, fmt.Errorf("hyperparameter class_weights=%q: %d weights for %d classes", spec, len(parts), classes)
	}
	w := make([]float32, classes)
	for i, s := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			return nil, fmt.Errorf("hyperparameter class_weights=%q: weight %q is not a number ≥ 0", spec, s)
		}
		w[i] = float32(v)
	}
	return w, nil
}
