package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/onnx"
)

// sklearnTable is how the sklearn CSVs read once holdOut dropped their
// count line: no header, the label last.
var sklearnTable = TableConfig{NoHeader: true}

func TestBreastCancerLogistic(t *testing.T) {
	trainCSV, testCSV := holdOut(t, samples(t, "breast_cancer.csv"), 1, 0.2)
	out, dir := outDir(t)
	meta, err := Run(context.Background(), Config{Algorithm: "linear", Data: trainCSV, Test: testCSV, Label: "column_31",
		Epochs: 50, Seed: 1, Table: sklearnTable}, Options{Out: out})
	if err != nil {
		t.Fatal(err)
	}
	ev := meta.Evaluation
	t.Logf("breast cancer logistic: test accuracy %.4f F1 %.4f after %d epochs (%s)", ev.Accuracy, ev.MacroF1, meta.Epochs, meta.Stopped)
	if ev.Set != "test" || ev.Rows != 113 || ev.Accuracy < 0.95 {
		t.Fatalf("evaluation %+v: want ≥ 95 %% on the 113 held-out rows", ev)
	}
	if meta.Output != "probability" || len(meta.Spec.Layers) != 1 || meta.Spec.Layers[0].Units != 1 {
		t.Fatalf("binary logistic regression is one sigmoid output: %+v", meta.Spec)
	}
	checkONNX(t, dir, testCSV, meta)
}

func TestDigitsMLP(t *testing.T) {
	trainCSV, testCSV := holdOut(t, samples(t, "digits.csv.gz"), 0, 0.2)
	out, dir := outDir(t)
	meta, err := Run(context.Background(), Config{Algorithm: "mlp", Data: trainCSV, Test: testCSV, Label: "column_65",
		Epochs: 60, Seed: 1, Table: sklearnTable}, Options{Out: out})
	if err != nil {
		t.Fatal(err)
	}
	ev := meta.Evaluation
	t.Logf("digits MLP: test accuracy %.4f F1 %.4f after %d epochs (%s)", ev.Accuracy, ev.MacroF1, meta.Epochs, meta.Stopped)
	if ev.Accuracy < 0.96 || len(ev.ConfusionMatrix) != 10 || meta.Output != "probabilities" {
		t.Fatalf("evaluation %+v: want ≥ 96 %%", ev)
	}
	checkONNX(t, dir, testCSV, meta)
}

// checkONNX loads the exported model, feeds it the raw test features and
// expects the evaluation's accuracy back: the preprocessing is inside.
func checkONNX(t *testing.T, dir, testCSV string, meta *ModelMetadata) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	g, err := onnx.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	if md := g.Metadata(); md["hpcml.task"] != meta.Data.Task || md["hpcml.algorithm"] != meta.Config.Algorithm {
		t.Fatalf("metadata %v", md)
	}
	raw, _, info, err := Load(context.Background(), DataConfig{URL: testCSV, Label: meta.Data.Label, Task: meta.Data.Task, Table: sklearnTable.options()})
	if err != nil {
		t.Fatal(err)
	}
	_ = info
	x := raw.X.Reshape(append([]int{raw.Len()}, meta.Preprocessing.Shape...)...)
	outs, err := g.Run(context.Background(), map[string]*nn.Tensor{"input": x})
	if err != nil {
		t.Fatal(err)
	}
	y := outs["output"]
	// Test labels index the test file's own classes; map through names.
	pred := make([]int, raw.Len())
	for i := range pred {
		if y.SampleLen() == 1 {
			if y.Data[i] > 0.5 {
				pred[i] = 1
			}
			continue
		}
		row := y.Data[i*y.SampleLen() : (i+1)*y.SampleLen()]
		var sum float64
		for j, v := range row {
			sum += float64(v)
			if v > row[pred[i]] {
				pred[i] = j
			}
		}
		if math.Abs(sum-1) > 1e-4 {
			t.Fatalf("softmax row %d sums to %g", i, sum)
		}
	}
	correct := 0
	for i, p := range pred {
		if meta.Data.Classes[p] == info.Classes[raw.Labels[i]] {
			correct++
		}
	}
	acc := float64(correct) / float64(len(pred))
	if math.Abs(acc-meta.Evaluation.Accuracy) > 1e-9 {
		t.Fatalf("the ONNX model's accuracy on raw features is %.4f, the evaluation's %.4f", acc, meta.Evaluation.Accuracy)
	}
}

func TestMNISTCNN(t *testing.T) {
	dir := filepath.Dir(samples(t, "mnist/t10k-labels-idx1-ubyte.gz"))
	out, _ := outDir(t)
	meta, err := Run(context.Background(), Config{Algorithm: "cnn", Data: dir, Epochs: 2, Seed: 1,
		HP: map[string]string{"log_every": "100"}}, Options{Out: out})
	if err != nil {
		t.Fatal(err)
	}
	ev := meta.Evaluation
	t.Logf("MNIST CNN: test accuracy %.4f after %d epochs in %.0fs", ev.Accuracy, meta.Epochs, meta.Seconds)
	if ev.Set != "test" || ev.Rows != 10000 || ev.Accuracy < 0.985 {
		t.Fatalf("accuracy %.4f on %s (%d rows): want ≥ 98.5 %% on MNIST's 10,000 test images", ev.Accuracy, ev.Set, ev.Rows)
	}
}

// regressionCSV is y = 3a − 2b + 100 + noise, in units far from 1 so
// that the target scaling matters.
func regressionCSV(t *testing.T, n int, seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, 1))
	var b strings.Builder
	b.WriteString("a,b,y\n")
	for i := 0; i < n; i++ {
		a, c := rng.NormFloat64()*10, rng.NormFloat64()*5
		fmt.Fprintf(&b, "%.4f,%.4f,%.4f\n", a, c, 3*a-2*c+100+rng.NormFloat64())
	}
	return writeCSV(t, b.String())
}

func TestLinearRegression(t *testing.T) {
	out, dir := outDir(t)
	test := regressionCSV(t, 200, 2)
	meta, err := Run(context.Background(), Config{Algorithm: "linear", Data: regressionCSV(t, 1000, 1), Test: test, Label: "y",
		Epochs: 40, Seed: 1, HP: map[string]string{"lr": "0.05"}}, Options{Out: out})
	if err != nil {
		t.Fatal(err)
	}
	ev := meta.Evaluation
	t.Logf("regression: RMSE %.4f MAE %.4f R² %.5f", ev.RMSE, ev.MAE, ev.R2)
	if meta.Data.Task != Regression || ev.R2 < 0.99 || ev.RMSE > 1.5 {
		t.Fatalf("evaluation %+v", ev)
	}
	// The ONNX model answers in the target's units.
	data, _ := os.ReadFile(filepath.Join(dir, ModelFile))
	g, err := onnx.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := nn.FromData([]float32{10, 5, 0, 0}, 2, 2)
	y, err := g.Run(context.Background(), map[string]*nn.Tensor{"input": x})
	if err != nil {
		t.Fatal(err)
	}
	if got := y["output"].Data; math.Abs(float64(got[0])-120) > 1 || math.Abs(float64(got[1])-100) > 1 {
		t.Fatalf("predictions %v, want about 120 and 100", got)
	}
}

// TestResumeIsExact: a run cut short (as by kill -9 after a checkpoint)
// and resumed ends with the same model as one that ran through — also
// when its newest checkpoint is corrupt and it falls back to the one
// before.
func TestResumeIsExact(t *testing.T) {
	csv := writeCSV(t, moonsCSV(400))
	cfg := Config{Algorithm: "mlp", Data: csv, Label: "y", Epochs: 4, Seed: 3,
		HP: map[string]string{"hidden": "16,16", "dropout": "0.2", "batch_size": "32", "checkpoint_every": "7", "validation": "0.2"}}
	ctx := context.Background()
	whole, wholeDir := outDir(t)
	if _, err := Run(ctx, cfg, Options{Out: whole}); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(wholeDir, ModelFile))

	for _, corrupt := range []bool{false, true} {
		t.Run(fmt.Sprintf("corrupt=%v", corrupt), func(t *testing.T) {
			out, dir := outDir(t)
			// 27 steps: mid-epoch (320 training rows, 10 steps an epoch), after
			// checkpoints at steps 7, 10 (an epoch's end), 14, 20 and 21.
			_, err := Run(ctx, cfg, Options{Out: out, maxSteps: 27})
			if !errors.Is(err, errStopForTest) {
				t.Fatalf("err = %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, ModelFile)); !os.IsNotExist(err) {
				t.Fatal("a cut-short run wrote a model")
			}
			var logs bytes.Buffer
			if corrupt {
				keys, _ := listCheckpoints(ctx, out)
				p := filepath.Join(dir, keys[0])
				data, _ := os.ReadFile(p)
				data[len(data)/2] ^= 0xff
				os.WriteFile(p, data, 0o644)
			}
			log := slog.New(slog.NewTextHandler(&logs, nil))
			meta, err := Run(ctx, cfg, Options{Out: out, Log: log})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(filepath.Join(dir, ModelFile))
			if !bytes.Equal(got, want) {
				t.Fatalf("the resumed run's model differs from the uninterrupted run's (steps %d)", meta.Steps)
			}
			wantLog := `msg="resumed from checkpoint" checkpoint=checkpoints/ckpt-0000000021.bin step=21`
			if corrupt {
				wantLog = `msg="resumed from checkpoint" checkpoint=checkpoints/ckpt-0000000020.bin step=20`
				if !strings.Contains(logs.String(), "checksum mismatch") {
					t.Fatalf("no warning of the corrupt checkpoint in:\n%s", logs.String())
				}
			}
			if !strings.Contains(logs.String(), wantLog) {
				t.Fatalf("log lacks %q:\n%s", wantLog, logs.String())
			}
			// The metrics hold each step window once.
			data, _ := os.ReadFile(filepath.Join(dir, MetricsFile))
			seen := map[string]bool{}
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				var p Point
				if err := json.Unmarshal([]byte(line), &p); err != nil {
					t.Fatal(err)
				}
				k := fmt.Sprint(p.Kind, p.Step)
				if seen[k] {
					t.Fatalf("metric point %s twice", k)
				}
				seen[k] = true
			}
			keys, _ := listCheckpoints(ctx, out)
			if len(keys) != keepCheckpoints {
				t.Fatalf("%d checkpoints kept, want %d", len(keys), keepCheckpoints)
			}
		})
	}
}

// moonsCSV is two interleaved half circles with noise.
func moonsCSV(n int) string {
	rng := rand.New(rand.NewPCG(9, 9))
	var b strings.Builder
	b.WriteString("u,v,y\n")
	for i := 0; i < n; i++ {
		a := rng.Float64() * math.Pi
		x, y, c := math.Cos(a), math.Sin(a), 0
		if i%2 == 1 {
			x, y, c = 1-x, 0.5-y, 1
		}
		fmt.Fprintf(&b, "%.4f,%.4f,%d\n", x+rng.NormFloat64()*0.1, y+rng.NormFloat64()*0.1, c)
	}
	return b.String()
}

func TestDivergenceFailsTheRun(t *testing.T) {
	out, dir := outDir(t)
	_, err := Run(context.Background(), Config{Algorithm: "mlp", Data: writeCSV(t, moonsCSV(400)), Label: "y", Epochs: 5, Seed: 1,
		HP: map[string]string{"optimizer": "sgd", "lr": "500", "momentum": "0.9"}}, Options{Out: out})
	if !errors.Is(err, ErrDiverged) || !strings.Contains(err.Error(), "lower --hp lr") {
		t.Fatalf("err = %v, want divergence", err)
	}
	for _, f := range []string{ModelFile, MetadataFile, EvaluationFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Fatalf("a diverged run wrote %s", f)
		}
	}
	// Its checkpoints, if any, hold finite weights only.
	keys, _ := listCheckpoints(context.Background(), out)
	for _, k := range keys {
		data, _ := os.ReadFile(filepath.Join(dir, k))
		c, err := DecodeCheckpoint(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range c.Weights {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("checkpoint %s holds %v", k, v)
			}
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Algorithm: "svm", Data: "x", Epochs: 1}, `unknown algorithm "svm"`},
		{Config{Algorithm: "mlp", Epochs: 1}, "no training data"},
		{Config{Algorithm: "mlp", Data: "x", Epochs: 0}, "epochs 0"},
		{Config{Algorithm: "mlp", Data: "x", Epochs: 1, HP: map[string]string{"depth": "3"}}, `unknown hyperparameter "depth"`},
		{Config{Algorithm: "linear", Data: "x", Epochs: 1, HP: map[string]string{"hidden": "3"}}, `unknown hyperparameter "hidden"`},
		{Config{Algorithm: "mlp", Data: "x", Epochs: 1, HP: map[string]string{"lr": "-1"}}, "lr=-1"},
		{Config{Algorithm: "mlp", Data: "x", Epochs: 1, HP: map[string]string{"lr": "fast"}}, `lr="fast"`},
		{Config{Algorithm: "mlp", Data: "x", Epochs: 1, HP: map[string]string{"batch_size": "0"}}, "batch_size=0"},
		{Config{Algorithm: "mlp", Data: "x", Epochs: 1, HP: map[string]string{"hidden": "64,x"}}, "comma-separated integers"},
	} {
		if err := c.cfg.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.cfg, err, c.want)
		}
	}
	// Errors that need the data: a CNN on a flat table, a bad shape.
	out, _ := outDir(t)
	csv := writeCSV(t, moonsCSV(40))
	for hp, want := range map[string]string{"": "cnn needs images", "1,2,2": "C·H·W = 2 features"} {
		cfg := Config{Algorithm: "cnn", Data: csv, Label: "y", Epochs: 1}
		if hp != "" {
			cfg.HP = map[string]string{"shape": hp}
		}
		if _, err := Run(context.Background(), cfg, Options{Out: out}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("shape %q: err = %v, want %q", hp, err, want)
		}
	}
}

func TestCheckpointCodec(t *testing.T) {
	c := &Checkpoint{State: LoopState{Step: 5, Epoch: 1, Batch: 2}, Weights: []float32{1, -2, 3.5},
		Best: []float32{0, 0, 1}, Optimizer: nn.OptimizerState{Step: 5, Slots: map[string][]float32{"m/0.weight": {0.5}}}}
	data, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeCheckpoint(data)
	if err != nil {
		t.Fatal(err)
	}
	if back.State.Step != 5 || back.Weights[2] != 3.5 || back.Best[2] != 1 || back.Optimizer.Slots["m/0.weight"][0] != 0.5 || back.Optimizer.Step != 5 {
		t.Fatalf("round trip: %+v", back)
	}
	for i := 0; i < len(data); i += 7 {
		bad := bytes.Clone(data)
		bad[i] ^= 0x40
		if _, err := DecodeCheckpoint(bad); err == nil {
			t.Fatalf("a flipped byte at %d went unnoticed", i)
		}
	}
	if _, err := DecodeCheckpoint(data[:len(data)-1]); err == nil {
		t.Fatal("a truncated checkpoint went unnoticed")
	}
}
