package nn

import (
	"fmt"
	"math"
)

// SoftmaxCrossEntropy is the mean cross-entropy of softmax(logits) against
// integer class labels, with optional per-class weights (nil: all 1; the
// mean is then over the weights, as PyTorch's weighted CrossEntropyLoss).
// It returns the loss and dL/dlogits.
func SoftmaxCrossEntropy(logits *Tensor, labels []int, classWeights []float32) (float64, *Tensor, error) {
	n, c := logits.Batch(), logits.SampleLen()
	if len(labels) != n {
		return 0, nil, fmt.Errorf("nn: %d labels for a batch of %d", len(labels), n)
	}
	if classWeights != nil && len(classWeights) != c {
		return 0, nil, fmt.Errorf("nn: %d class weights for %d classes", len(classWeights), c)
	}
	grad := NewTensor(logits.Shape...)
	var loss, wsum float64
	for i := 0; i < n; i++ {
		k := labels[i]
		if k < 0 || k >= c {
			return 0, nil, fmt.Errorf("nn: label %d is outside the %d classes", k, c)
		}
		w := float64(1)
		if classWeights != nil {
			w = float64(classWeights[k])
		}
		row, g := logits.Data[i*c:(i+1)*c], grad.Data[i*c:(i+1)*c]
		mx := row[0]
		for _, v := range row[1:] {
			mx = max(mx, v)
		}
		var sum float64
		for j, v := range row {
			e := math.Exp(float64(v - mx))
			g[j] = float32(e)
			sum += e
		}
		loss += w * (math.Log(sum) - float64(row[k]-mx))
		for j := range g {
			g[j] = float32(w * float64(g[j]) / sum)
		}
		g[k] -= float32(w)
		wsum += w
	}
	if wsum == 0 {
		return 0, grad, nil
	}
	inv := float32(1 / wsum)
	for j := range grad.Data {
		grad.Data[j] *= inv
	}
	return loss / wsum, grad, nil
}

// SigmoidCrossEntropy is the mean binary cross-entropy of sigmoid(logits)
// (one logit per sample) against 0/1 labels, with optional weights for
// class 0 and class 1. It returns the loss and dL/dlogits.
func SigmoidCrossEntropy(logits *Tensor, labels []int, classWeights []float32) (float64, *Tensor, error) {
	n := logits.Batch()
	if logits.SampleLen() != 1 {
		return 0, nil, fmt.Errorf("nn: binary cross-entropy needs one logit per sample, got %d", logits.SampleLen())
	}
	if len(labels) != n {
		return 0, nil, fmt.Errorf("nn: %d labels for a batch of %d", len(labels), n)
	}
	grad := NewTensor(logits.Shape...)
	var loss, wsum float64
	for i, z := range logits.Data {
		y := labels[i]
		if y != 0 && y != 1 {
			return 0, nil, fmt.Errorf("nn: binary label %d is not 0 or 1", y)
		}
		w := float64(1)
		if classWeights != nil {
			w = float64(classWeights[y])
		}
		zf := float64(z)
		// log(1+e^-|z|) + max(z,0) - y·z, stable for large |z|.
		loss += w * (math.Log1p(math.Exp(-math.Abs(zf))) + math.Max(zf, 0) - float64(y)*zf)
		grad.Data[i] = float32(w * (float64(sigmoid(z)) - float64(y)))
		wsum += w
	}
	if wsum == 0 {
		return 0, grad, nil
	}
	inv := float32(1 / wsum)
	for j := range grad.Data {
		grad.Data[j] *= inv
	}
	return loss / wsum, grad, nil
}

// MSE is the mean squared error over every element and its gradient.
func MSE(pred, target *Tensor) (float64, *Tensor, error) {
	if len(pred.Data) != len(target.Data) {
		return 0, nil, fmt.Errorf("nn: prediction has %d values, target %d", len(pred.Data), len(target.Data))
	}
	grad := NewTensor(pred.Shape...)
	var loss float64
	scale := 2 / float64(len(pred.Data))
	for i, p := range pred.Data {
		d := float64(p - target.Data[i])
		loss += d * d
		grad.Data[i] = float32(scale * d)
	}
	return loss / float64(len(pred.Data)), grad, nil
}
