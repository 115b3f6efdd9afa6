package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/onnx"
	"github.com/hpcml/hpcml/internal/train"
)

// moonsTable writes n rows of two noisy interleaved half circles (u, v)
// with their class y.
func moonsTable(t *testing.T, n int) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 6))
	var b strings.Builder
	b.WriteString("u,v,y\n")
	for i := 0; i < n; i++ {
		a := rng.Float64() * math.Pi
		x, y, c := math.Cos(a), math.Sin(a), "upper"
		if i%2 == 1 {
			x, y, c = 1-x, 0.5-y, "lower"
		}
		fmt.Fprintf(&b, "%.4f,%.4f,%s\n", x+rng.NormFloat64()*0.1, y+rng.NormFloat64()*0.1, c)
	}
	p := filepath.Join(t.TempDir(), "moons.csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// trainCLI runs hpcml train against s and returns stdout, stderr and
// the exit error.
func trainCLI(s *server, args ...string) (string, string, error) {
	cmd := exec.Command(binary, append([]string{"train"}, append(args, "--server", s.URL)...)...)
	cmd.Env = append(os.Environ(), "HPCML_TOKEN="+s.Token)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// TestTrainAsJob trains through the server: a job that ends with a
// model, metrics and an evaluation the CLI and API show; bad input fails
// before or in the job with the reason.
func TestTrainAsJob(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "2")
	data := moonsTable(t, 2000)
	out, stderr, err := trainCLI(s, "-a", "mlp", "--data", data, "--label", "y", "--epochs", "8", "--hp", "hidden=32,32", "--hp", "lr=0.01", "--wait", "-o", "json")
	if err != nil {
		t.Fatalf("train: %v\n%s", err, stderr)
	}
	var res struct {
		ID    int64               `json:"id"`
		Model train.ModelMetadata `json:"model"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("train -o json: %v\n%s", err, out)
	}
	ev := res.Model.Evaluation
	if res.ID == 0 || ev == nil || ev.Accuracy < 0.95 || ev.Set != "validation" || strings.Join(res.Model.Data.Classes, ",") != "lower,upper" {
		t.Fatalf("run %d: evaluation %+v, classes %v", res.ID, ev, res.Model.Data.Classes)
	}
	j, err := s.Client.GetJob(ctxFor(t, 10*time.Second), strconv.FormatInt(res.ID, 10))
	if err != nil || j.State != job.Succeeded || j.Spec.Tags["hpcml.train"] != "mlp" {
		t.Fatalf("job %+v %v", j, err)
	}

	// Listed, with its metrics and model.
	var runs []train.RunSummary
	if err := json.Unmarshal([]byte(s.cli("train", "list", "-o", "json")), &runs); err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].ID != res.ID || !runs[0].Finished || runs[0].State != string(job.Succeeded) || math.Abs(*runs[0].Value-ev.Accuracy) > 1e-12 {
		t.Fatalf("runs %+v", runs)
	}
	epochs := 0
	for _, line := range strings.Split(strings.TrimSpace(s.cli("train", "metrics", strconv.FormatInt(res.ID, 10), "-o", "json")), "\n") {
		var p train.Point
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		if p.Kind == "epoch" {
			epochs++
			if _, ok := p.Values["val_accuracy"]; !ok {
				t.Fatalf("epoch point without val_accuracy: %+v", p)
			}
		}
	}
	if epochs != res.Model.Epochs || epochs < 1 {
		t.Fatalf("%d epoch points for %d epochs", epochs, res.Model.Epochs)
	}
	model := filepath.Join(t.TempDir(), "m.onnx")
	if got := s.cli("train", "get", strconv.FormatInt(res.ID, 10), "--onnx", model); !strings.Contains(got, "accuracy") {
		t.Fatalf("train get: %s", got)
	}
	mb, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := onnx.Load(mb); err != nil {
		t.Fatalf("the downloaded model: %v", err)
	}
	if code, _, _ := s.raw("GET", fmt.Sprintf("/api/v1/training/%d/onnx", res.ID), "", nil); code != 401 {
		t.Fatalf("the model without a token: %d", code)
	}
	if code, _, _ := s.raw("GET", "/api/v1/training/999/model", s.Token, nil); code != 404 {
		t.Fatalf("an unknown run: %d", code)
	}

	// A dataset version as the data: resolved at submission to its source.
	s.cli("dataset", "create", "moons", filepath.Dir(data)+"/")
	out, stderr, err = trainCLI(s, "-a", "linear", "--data", "dataset://moons@1", "--label", "y", "--epochs", "2", "--wait", "-o", "json")
	if err != nil {
		t.Fatalf("train on dataset://moons@1: %v\n%s", err, stderr)
	}
	var dres struct {
		Model train.ModelMetadata `json:"model"`
	}
	if err := json.Unmarshal([]byte(out), &dres); err != nil || dres.Model.Data.Train != 2000 || !strings.HasPrefix(dres.Model.Config.Data, "file://") && !strings.HasPrefix(dres.Model.Config.Data, "/") {
		t.Fatalf("run on a dataset: %v %+v", err, dres.Model.Config)
	}

	// Pipeline stages: a job of two tasks, the network cut in two.
	out, stderr, err = trainCLI(s, "-a", "mlp", "--data", data, "--label", "y", "--epochs", "4", "--hp", "hidden=32,32", "--hp", "lr=0.01",
		"--pipeline-stages", "2", "--wait", "-o", "json")
	if err != nil {
		t.Fatalf("train --pipeline-stages 2: %v\n%s", err, stderr)
	}
	var pres struct {
		ID    int64               `json:"id"`
		Model train.ModelMetadata `json:"model"`
	}
	if err := json.Unmarshal([]byte(out), &pres); err != nil || pres.Model.PipelineStages != 2 || pres.Model.Evaluation.Accuracy < 0.9 {
		t.Fatalf("pipeline run: %v %+v", err, pres.Model.Evaluation)
	}
	if logs := s.logs(strconv.FormatInt(pres.ID, 10), client.LogOptions{Stream: "stderr"}); !strings.Contains(logs, "stage 1: layers") {
		t.Fatalf("the pipeline's stages are not in the log:\n%s", logs)
	}

	// Bad input found before submitting changes nothing.
	before := s.jobCount()
	for args, want := range map[string]string{
		"-a svm --data " + data:                                      `unknown algorithm "svm"`,
		"-a mlp --data " + data + " --hp depth=3":                    `unknown hyperparameter "depth"`,
		"-a mlp --data " + data + " --hp lr=-1":                      "lr=-1",
		"-a mlp --data " + data + " --epochs 0":                      "epochs 0",
		"-a mlp --data " + data + " --out /tmp/somewhere":            "--out applies with --here",
		"-a mlp --data " + data + " --workers 2 --pipeline-stages 2": "cannot be combined",
		"-a mlp --data " + data + " --workers 3 --nodes 2":           "spread evenly",
		"-a mlp --data " + data + " --workers 2 --here --out /tmp/x": "not --here",
	} {
		_, stderr, err := trainCLI(s, strings.Fields(args)...)
		if err == nil || !strings.Contains(stderr, want) {
			t.Errorf("train %s: err %v, stderr %q, want %q", args, err, stderr, want)
		}
	}
	if n := s.jobCount(); n != before {
		t.Fatalf("refused submissions made %d jobs", n-before)
	}
	// Bad data fails the job with the reason, not retried.
	_, stderr, err = trainCLI(s, "-a", "mlp", "--data", data, "--label", "nope", "--wait")
	if err == nil || !strings.Contains(stderr, `no label column "nope" (columns: u, v, y)`) {
		t.Fatalf("train with a missing label: %v\nstderr: %s", err, stderr)
	}
}

// TestTrainJobKill9Resumes kills the training process with SIGKILL once
// it has checkpointed: the job is retried, resumes from the checkpoint,
// and ends with the very model an uninterrupted run makes.
func TestTrainJobKill9Resumes(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "2")
	data := moonsTable(t, 20000)
	args := []string{"-a", "mlp", "--data", data, "--label", "y", "--epochs", "3", "--seed", "7",
		"--hp", "hidden=256,256", "--hp", "batch_size=32", "--hp", "checkpoint_every=40", "--hp", "dropout=0.1"}
	out, stderr, err := trainCLI(s, append(args, "-o", "json")...)
	if err != nil {
		t.Fatalf("train: %v\n%s", err, stderr)
	}
	var sub struct {
		ID int64 `json:"id"`
	}
	json.Unmarshal([]byte(out), &sub)
	ckpts := filepath.Join(s.DataDir, "objects", train.RunDir(sub.ID), "checkpoints")
	waitUntil(t, 2*time.Minute, "a checkpoint", func() bool {
		entries, _ := os.ReadDir(ckpts)
		return len(entries) > 0
	})
	var killed []int
	for _, pid := range s.jobPIDs() {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(cmdline), "__run") {
			syscall.Kill(pid, syscall.SIGKILL)
			killed = append(killed, pid)
		}
	}
	if len(killed) == 0 {
		t.Fatal("no training process to kill (did it finish already?)")
	}
	j := s.waitID(strconv.FormatInt(sub.ID, 10), 5*time.Minute)
	if j.State != job.Succeeded || j.Attempt != 2 {
		t.Fatalf("job %s after the kill: state %s, attempt %d (%s)", j.DisplayID(), j.State, j.Attempt, j.Reason)
	}
	if logs := s.logs(j.DisplayID(), client.LogOptions{Stream: "stderr", Attempt: 2}); !strings.Contains(logs, "resumed from checkpoint") {
		t.Fatalf("attempt 2 did not resume:\n%s", logs)
	}
	got, err := os.ReadFile(filepath.Join(s.DataDir, "objects", train.RunDir(sub.ID), train.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	here := t.TempDir()
	if _, stderr, err := trainCLI(s, append(args, "--here", "--out", here)...); err != nil {
		t.Fatalf("train --here: %v\n%s", err, stderr)
	}
	want, _ := os.ReadFile(filepath.Join(here, train.ModelFile))
	if !bytes.Equal(got, want) {
		t.Fatal("the killed and resumed job's model differs from an uninterrupted run's")
	}
}

// TestTrainDataParallelKill9Resumes trains with two data-parallel workers
// (a job of two tasks), kills one worker with SIGKILL once the run has
// checkpointed: the other fails its step naming the lost rank, the job
// is retried and resumes, and ends with the very model of an
// uninterrupted two-worker run.
func TestTrainDataParallelKill9Resumes(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "2")
	data := moonsTable(t, 20000)
	args := []string{"-a", "mlp", "--data", data, "--label", "y", "--epochs", "3", "--seed", "3", "--workers", "2",
		"--hp", "hidden=256,256", "--hp", "batch_size=16", "--hp", "checkpoint_every=40", "--hp", "dropout=0.1"}
	out, stderr, err := trainCLI(s, append(args, "-o", "json")...)
	if err != nil {
		t.Fatalf("train: %v\n%s", err, stderr)
	}
	var sub struct {
		ID int64 `json:"id"`
	}
	json.Unmarshal([]byte(out), &sub)
	ckpts := filepath.Join(s.DataDir, "objects", train.RunDir(sub.ID), "checkpoints")
	waitUntil(t, 2*time.Minute, "a checkpoint", func() bool {
		entries, _ := os.ReadDir(ckpts)
		return len(entries) > 0
	})
	killed := 0
	for _, pid := range s.jobPIDs() {
		environ, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(cmdline), "__run") && bytes.Contains(environ, []byte("\x00HPCML_RANK=1\x00")) {
			syscall.Kill(pid, syscall.SIGKILL)
			killed++
		}
	}
	if killed != 1 {
		t.Fatalf("killed %d rank-1 processes, want 1", killed)
	}
	j := s.waitID(strconv.FormatInt(sub.ID, 10), 5*time.Minute)
	if j.State != job.Succeeded || j.Attempt != 2 {
		t.Fatalf("job %s after the kill: state %s, attempt %d (%s)", j.DisplayID(), j.State, j.Attempt, j.Reason)
	}
	first := s.logs(j.DisplayID(), client.LogOptions{Stream: "stderr", Attempt: 1})
	if !strings.Contains(first, "rank 1") || !strings.Contains(first, "lost") {
		t.Fatalf("attempt 1's surviving rank did not name the lost one:\n%s\nstdout:\n%s", first, s.logs(j.DisplayID(), client.LogOptions{Attempt: 1}))
	}
	if logs := s.logs(j.DisplayID(), client.LogOptions{Stream: "stderr", Attempt: 2}); !strings.Contains(logs, "resumed from checkpoint") {
		t.Fatalf("attempt 2 did not resume:\n%s", logs)
	}
	got, err := os.ReadFile(filepath.Join(s.DataDir, "objects", train.RunDir(sub.ID), train.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, err = trainCLI(s, append(args, "--wait", "-o", "json")...)
	if err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, stderr)
	}
	var again struct {
		ID int64 `json:"id"`
	}
	json.Unmarshal([]byte(out), &again)
	want, err := os.ReadFile(filepath.Join(s.DataDir, "objects", train.RunDir(again.ID), train.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the killed and resumed two-worker run's model differs from an uninterrupted one's")
	}
}
