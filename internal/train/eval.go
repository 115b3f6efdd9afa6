package train

import (
	"math"

	"github.com/hpcml/hpcml/internal/nn"
)

// Evaluation is the report on a held-out set: classification or
// regression metrics.
type Evaluation struct {
	Set  string  `json:"set"` // test or validation
	Rows int     `json:"rows"`
	Loss float64 `json:"loss"`

	// Classification.
	Accuracy        float64       `json:"accuracy,omitempty"`
	MacroPrecision  float64       `json:"macro_precision,omitempty"`
	MacroRecall     float64       `json:"macro_recall,omitempty"`
	MacroF1         float64       `json:"macro_f1,omitempty"`
	Classes         []string      `json:"classes,omitempty"`
	PerClass        []ClassMetric `json:"per_class,omitempty"`
	ConfusionMatrix [][]int       `json:"confusion_matrix,omitempty"` // [true][predicted]

	// Regression, in the target's own units.
	RMSE float64 `json:"rmse,omitempty"`
	MAE  float64 `json:"mae,omitempty"`
	R2   float64 `json:"r2,omitempty"`
}

// ClassMetric is one class's precision, recall, F1 and support.
type ClassMetric struct {
	Class     string  `json:"class"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	F1        float64 `json:"f1"`
	Support   int     `json:"support"`
}

// classificationMetrics scores predicted against true labels.
func classificationMetrics(pred, truth []int, classes []string) Evaluation {
	k := len(classes)
	cm := make([][]int, k)
	for i := range cm {
		cm[i] = make([]int, k)
	}
	correct := 0
	for i, p := range pred {
		cm[truth[i]][p]++
		if p == truth[i] {
			correct++
		}
	}
	e := Evaluation{Rows: len(pred), Classes: classes, ConfusionMatrix: cm}
	if len(pred) > 0 {
		e.Accuracy = float64(correct) / float64(len(pred))
	}
	present := 0
	for c := 0; c < k; c++ {
		tp, predicted, support := cm[c][c], 0, 0
		for j := 0; j < k; j++ {
			predicted += cm[j][c]
			support += cm[c][j]
		}
		m := ClassMetric{Class: classes[c], Support: support}
		if predicted > 0 {
			m.Precision = float64(tp) / float64(predicted)
		}
		if support > 0 {
			m.Recall = float64(tp) / float64(support)
		}
		if m.Precision+m.Recall > 0 {
			m.F1 = 2 * m.Precision * m.Recall / (m.Precision + m.Recall)
		}
		e.PerClass = append(e.PerClass, m)
		// Macro averages over the classes the set contains, as
		// scikit-learn does for labels present in y_true.
		if support > 0 {
			present++
			e.MacroPrecision += m.Precision
			e.MacroRecall += m.Recall
			e.MacroF1 += m.F1
		}
	}
	if present > 0 {
		e.MacroPrecision /= float64(present)
		e.MacroRecall /= float64(present)
		e.MacroF1 /= float64(present)
	}
	return e
}

// regressionMetrics scores predictions against targets.
func regressionMetrics(pred, truth []float32) Evaluation {
	e := Evaluation{Rows: len(pred)}
	if len(pred) == 0 {
		return e
	}
	var se, ae, mean float64
	for _, t := range truth {
		mean += float64(t)
	}
	mean /= float64(len(truth))
	var tot float64
	for i, p := range pred {
		d := float64(p) - float64(truth[i])
		se += d * d
		ae += math.Abs(d)
		dt := float64(truth[i]) - mean
		tot += dt * dt
	}
	n := float64(len(pred))
	e.RMSE, e.MAE = math.Sqrt(se/n), ae/n
	if tot > 0 {
		e.R2 = 1 - se/tot
	}
	return e
}

// argmax of each row of logits; one logit per row means a binary
// classifier, positive when the logit is.
func argmax(logits *nn.Tensor) []int {
	n, c := logits.Batch(), logits.SampleLen()
	out := make([]int, n)
	for i := 0; i < n; i++ {
		row := logits.Data[i*c : (i+1)*c]
		if c == 1 {
			if row[0] > 0 {
				out[i] = 1
			}
			continue
		}
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		out[i] = best
	}
	return out
}
