package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gcblob "gocloud.dev/blob"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/collective"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/train"
)

// hostileClass is a class name that would end the page's JSON script
// element, or add markup, if it were not escaped.
const hostileClass = `</script><b>bird</b>`

// openStorage opens a storage directory as the server opens its own.
func openStorage(t testing.TB, dir string) *blob.Bucket {
	t.Helper()
	b, err := blob.Open(context.Background(), blob.WithCreateDir("file://"+filepath.ToSlash(dir)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// writeTrainingCSV writes n rows of two features and a label y: three
// classes (one named hostileClass) around three centres, or, with
// regression, y = 3·x1 − 2·x2 + noise.
func writeTrainingCSV(t testing.TB, n int, regression bool) string {
	t.Helper()
	r := rand.New(rand.NewPCG(3, 4))
	classes := []string{"cat", "dog", hostileClass}
	centres := [][2]float64{{-2, 0}, {2, 0}, {0, 2.5}}
	var b strings.Builder
	b.WriteString("x1,x2,y\n")
	for i := range n {
		if regression {
			x1, x2 := r.NormFloat64(), r.NormFloat64()
			fmt.Fprintf(&b, "%.5f,%.5f,%.5f\n", x1, x2, 3*x1-2*x2+0.3*r.NormFloat64())
			continue
		}
		k := i % 3
		label := classes[k]
		if strings.ContainsAny(label, `",<`) {
			label = `"` + strings.ReplaceAll(label, `"`, `""`) + `"`
		}
		fmt.Fprintf(&b, "%.5f,%.5f,%s\n", centres[k][0]+r.NormFloat64(), centres[k][1]+r.NormFloat64(), label)
	}
	path := filepath.Join(t.TempDir(), "train.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// trainRun trains cfg for real, as the training job of job id does, into
// the storage directory dir.
func trainRun(t testing.TB, dir string, id int64, cfg train.Config) *train.ModelMetadata {
	t.Helper()
	// PrefixedBucket takes the bucket over: a bucket of its own.
	b, err := blob.Open(context.Background(), blob.WithCreateDir("file://"+filepath.ToSlash(dir)))
	if err != nil {
		t.Fatal(err)
	}
	out := gcblob.PrefixedBucket(b, train.RunDir(id))
	defer out.Close()
	meta, err := train.Run(context.Background(), cfg, train.Options{Out: out})
	if err != nil {
		t.Fatalf("training run %d: %v", id, err)
	}
	return meta
}

// classificationConfig is a short real run: three epochs of logistic
// regression on three classes, a metric point every other step.
func classificationConfig(t testing.TB) train.Config {
	return train.Config{Algorithm: "linear", Data: writeTrainingCSV(t, 300, false), Label: "y", Epochs: 3, Seed: 1,
		HP: map[string]string{"batch_size": "16", "log_every": "2"}}
}

func regressionConfig(t testing.TB) train.Config {
	return train.Config{Algorithm: "linear", Data: writeTrainingCSV(t, 300, true), Label: "y", Epochs: 3, Seed: 1}
}

// addJob stores a job, as submitting it would.
func (s *fakeSource) addJob(j *job.Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs = append(s.jobs, j)
}

// setStorage points the source's training runs at a storage directory.
func (s *fakeSource) setStorage(b *blob.Bucket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs = train.Runs{Bucket: b}
}

func trainingJob(id int64, st job.State) *job.Job {
	now := time.Now()
	j := &job.Job{ID: id, Name: "train-linear", Queue: "default", State: st, Attempt: 1,
		SubmittedAt: now.Add(-2 * time.Minute), StartedAt: ptr(now.Add(-time.Minute)),
		Spec: job.Spec{Name: "train-linear", Command: []string{"hpcml", "train", "__run"}, Resources: job.Resources{CPUs: 1, MemoryMB: 1024}}}
	if st.Terminal() {
		j.EndedAt, j.ExitCode = ptr(now), ptr(0)
	}
	return j
}

// metricLines are the lines of a run's metrics.jsonl.
func metricLines(t testing.TB, b *blob.Bucket, id int64) [][]byte {
	t.Helper()
	data, err := b.ReadAll(context.Background(), train.RunDir(id)+train.MetricsFile)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
}

// writeRunFile writes one file of run id, as the training job does.
func writeRunFile(t testing.TB, b *blob.Bucket, id int64, file string, data []byte) {
	t.Helper()
	if err := b.WriteAll(context.Background(), train.RunDir(id)+file, data, nil); err != nil {
		t.Fatal(err)
	}
}

// copyRunFile copies one file of run from to run to.
func copyRunFile(t testing.TB, b *blob.Bucket, from, to int64, file string) {
	t.Helper()
	data, err := b.ReadAll(context.Background(), train.RunDir(from)+file)
	if err != nil {
		t.Fatal(err)
	}
	writeRunFile(t, b, to, file, data)
}

// countKind counts the points of a kind that have a value.
func countKind(lines [][]byte, kind, key string) int {
	n := 0
	for _, l := range lines {
		var p train.Point
		if json.Unmarshal(l, &p) == nil && p.Kind == kind {
			if _, ok := p.Values[key]; ok {
				n++
			}
		}
	}
	return n
}

// trainingFixture is a source with real training runs in a storage
// directory: 10, a finished classification (job SUCCEEDED); 11, a
// finished regression (job SUCCEEDED); 12, a classification that stopped
// early and whose job is no longer in the store; and 1, the fake's RUNNING job, whose run has the
// first points of run 10 so far.
type trainingFixture struct {
	src     *fakeSource
	bucket  *blob.Bucket
	class   *train.ModelMetadata
	regr    *train.ModelMetadata
	stopped *train.ModelMetadata
	classes train.Config
}

func newTrainingFixture(t *testing.T, runningPoints int) *trainingFixture {
	t.Helper()
	dir := t.TempDir()
	f := &trainingFixture{src: newFakeSource(), bucket: openStorage(t, dir), classes: classificationConfig(t)}
	f.src.setStorage(f.bucket)
	f.class = trainRun(t, dir, 10, f.classes)
	f.regr = trainRun(t, dir, 11, regressionConfig(t))
	// Stops early: no better validation loss for 2 epochs.
	stopping := train.Config{Algorithm: "linear", Data: f.classes.Data, Label: "y", Epochs: 30, Seed: 1,
		HP: map[string]string{"lr": "0.3", "patience": "2"}}
	f.stopped = trainRun(t, dir, 12, stopping)
	if f.stopped.Stopped == "" || f.stopped.Epochs >= 30 {
		t.Fatalf("the fixture's run 12 was to stop early; it ran %d epochs", f.stopped.Epochs)
	}
	f.src.addJob(trainingJob(10, job.Succeeded))
	f.src.addJob(trainingJob(11, job.Succeeded))
	copyRunFile(t, f.bucket, 10, 1, train.RunFile)
	lines := metricLines(t, f.bucket, 10)
	writeRunFile(t, f.bucket, 1, train.MetricsFile, bytes.Join(lines[:runningPoints], nil))
	return f
}

func trainingDataJSON(t *testing.T, body string) runChartData {
	t.Helper()
	m := regexp.MustCompile(`(?s)<script type="application/json" id="training-data">(.*?)</script>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no training data in the page")
	}
	var d runChartData
	if err := json.Unmarshal([]byte(m[1]), &d); err != nil {
		t.Fatalf("the embedded training data is not JSON: %v\n%.300s", err, m[1])
	}
	return d
}

func TestTrainingListEmpty(t *testing.T) {
	h, _ := newTestHandler(t, newFakeSource())
	res := do(t, h, "GET", "/training", true, nil)
	if res.Code != http.StatusOK {
		t.Fatalf("GET /training: %d\n%s", res.Code, res.Body)
	}
	mustContain(t, "the empty training page", res.Body,
		"<title>hpcml · training</title>", `<a href="/training" aria-current="page">Training</a>`,
		"No training runs yet", "<code>hpcml train --algorithm cnn --data ./mnist/ --epochs 3</code>")
	mustNotContain(t, "the empty training page", res.Body, "data-refresh=\"/ui/training\"")
	// Every page links to it.
	mustContain(t, "the jobs page", do(t, h, "GET", "/", true, nil).Body, `<a href="/training">Training</a>`)
}

func TestTrainingPages(t *testing.T) {
	f := newTrainingFixture(t, 6)
	h, logs := newTestHandler(t, f.src)

	// ---- the list ----
	res := do(t, h, "GET", "/training", true, nil)
	if res.Code != http.StatusOK {
		t.Fatalf("GET /training: %d\n%s", res.Code, res.Body)
	}
	var ids []string
	for _, m := range regexp.MustCompile(`data-run="([^"]+)"`).FindAllStringSubmatch(res.Body, -1) {
		ids = append(ids, m[1])
	}
	if strings.Join(ids, " ") != "12 11 10 1" {
		t.Errorf("runs listed as %v, want the newest (highest job id) first", ids)
	}
	mustContain(t, "the training page", res.Body,
		`<a href="/training" aria-current="page">Training</a>`,
		`href="/training/10"`, f.classes.Data, ">linear<", "classification", "regression",
		`<span class="badge st-succeeded">SUCCEEDED</span>`, `<span class="badge st-running">RUNNING</span>`,
		`<span class="metric-name">accuracy</span> <strong>`+formatAccuracy(f.class.Evaluation.Accuracy)+`</strong> <span class="muted">on validation</span>`,
		`<span class="metric-name">RMSE</span> <strong>`+formatFloat(f.regr.Evaluation.RMSE)+`</strong>`,
		`<span class="metric-name">accuracy</span> <strong>`+formatAccuracy(f.stopped.Evaluation.Accuracy)+`</strong>`,
		`title="job 12 is no longer in the store"`,
		// run 1 is still going: the list refreshes
		`data-refresh="/ui/training" data-stop-when-terminal`)
	mustNotContain(t, "the training page", res.Body, "No training runs yet", "data-terminal")

	frag := do(t, h, "GET", "/ui/training", true, nil)
	if frag.Code != http.StatusOK || strings.Contains(frag.Body, "<html") || !strings.Contains(frag.Body, `data-run="10"`) {
		t.Errorf("GET /ui/training: %d\n%.300s", frag.Code, frag.Body)
	}
	f.src.setState("1", job.Succeeded)
	mustContain(t, "the list once every run has ended", do(t, h, "GET", "/ui/training", true, nil).Body, "<span hidden data-terminal></span>")
	f.src.setState("1", job.Running)

	// ---- a finished classification ----
	res = do(t, h, "GET", "/training/10", true, nil)
	if res.Code != http.StatusOK {
		t.Fatalf("GET /training/10: %d\n%s", res.Code, res.Body)
	}
	ev := f.class.Evaluation
	mustContain(t, "the classification run", res.Body,
		"<title>hpcml · training run 10</title>", `<a href="/training" aria-current="page">Training</a>`,
		`<span class="job-name">linear</span>`, "classification, 3 classes", `<span class="badge st-succeeded">SUCCEEDED</span>`,
		f.classes.Data, `title="a share of 0.1 of the training rows is held out for validation">300 training<`, "3 of 3",
		groupDigits(int64(f.class.Params)), nn.BLAS, `<a href="/jobs/10">10</a>`,
		`<a class="button" id="model-download" href="/training/10/model.onnx" download>`,
		`<td class="mono">batch_size</td>`, `16 <span class="chip"`, `<td class="mono">optimizer</td>`, "adam",
		`<td class="mono layer-type">dense</td>`, "3 units", "2 features", "3 classes",
		`id="chart-loss"`, `id="chart-accuracy"`, `id="chart-throughput"`, "windows of 2 steps",
		"on the validation set", "Macro F1", formatAccuracy(ev.Accuracy), formatAccuracy(ev.MacroF1),
		`<td class="mono class-name">cat</td>`, `<td class="mono class-name">&lt;/script&gt;&lt;b&gt;bird&lt;/b&gt;</td>`,
		`id="chart-confusion"`, `src="/static/vendor/echarts/echarts-6.1.0.min.js?v=`, `src="/static/training.js?v=`)
	mustNotContain(t, "the classification run", res.Body, "<b>bird</b>", `id="chart-rmse"`, `id="run-progress"`, "data-live",
		// one worker: as before distributed training
		"<dt>Workers</dt>", "<dt>Pipeline stages</dt>", `id="data-parallel"`, `id="chart-ranks"`, `id="chart-comm"`)
	if f.class.BestEpoch > 0 {
		mustContain(t, "the classification run", res.Body, "Best epoch")
	}
	if n := strings.Count(res.Body, "</script>"); n != 5 {
		t.Errorf("%d </script> in the page, want 5 (app.js, the evaluation, the data, ECharts, training.js): a class name is not escaped", n)
	}
	d := trainingDataJSON(t, res.Body)
	lines := metricLines(t, f.bucket, 10)
	if d.Total != len(lines) || len(d.Points) != len(lines) || d.Live || d.State != job.Succeeded || d.Task != train.Classification ||
		d.Epochs != 3 || d.MetricsURL != "/ui/training/10/metrics" || d.FragmentURL != "/ui/training/10" {
		t.Errorf("embedded data: total %d of %d lines, %d points, live %v, state %q, task %q, epochs %d, urls %q %q",
			d.Total, len(lines), len(d.Points), d.Live, d.State, d.Task, d.Epochs, d.MetricsURL, d.FragmentURL)
	}
	if d.Workers != 0 {
		t.Errorf("the single run's embedded data has %d workers", d.Workers)
	}
	if countKind(lines, "step", "loss") < 10 || countKind(lines, "epoch", "val_loss") != 3 {
		t.Errorf("the real run made %d step and %d epoch points", countKind(lines, "step", "loss"), countKind(lines, "epoch", "val_loss"))
	}
	m := regexp.MustCompile(`(?s)<script type="application/json" id="training-eval-data">(.*?)</script>`).FindStringSubmatch(res.Body)
	if m == nil {
		t.Fatal("no confusion matrix data in the page")
	}
	var cm confusionData
	if err := json.Unmarshal([]byte(m[1]), &cm); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(cm.Classes) != fmt.Sprint(ev.Classes) || fmt.Sprint(cm.Matrix) != fmt.Sprint(ev.ConfusionMatrix) || len(cm.Classes) != 3 {
		t.Errorf("embedded confusion matrix %v %v, want %v %v", cm.Classes, cm.Matrix, ev.Classes, ev.ConfusionMatrix)
	}

	// ---- a finished regression ----
	res = do(t, h, "GET", "/training/11", true, nil)
	if res.Code != http.StatusOK {
		t.Fatalf("GET /training/11: %d", res.Code)
	}
	mustContain(t, "the regression run", res.Body, "<span class=\"muted run-task\">regression</span>",
		`id="chart-rmse"`, "RMSE", "MAE", "R²", formatFloat(f.regr.Evaluation.RMSE), formatFloat(f.regr.Evaluation.R2), "1 value")
	mustNotContain(t, "the regression run", res.Body, `id="chart-accuracy"`, `id="chart-confusion"`, "Macro F1", "Per class")

	// ---- a run whose job is gone ----
	res = do(t, h, "GET", "/training/12", true, nil)
	mustContain(t, "the run without a job", res.Body, "12 (no longer in the store)",
		`<p class="callout" id="stopped"><strong>Stopped early.</strong> `+f.stopped.Stopped,
		fmt.Sprintf("%d of 30", f.stopped.Epochs), fmt.Sprintf("Best epoch</dt><dd title=\"the epoch of the lowest validation loss, whose weights the model has\">%d<", f.stopped.BestEpoch))
	mustNotContain(t, "the run without a job", res.Body, `href="/jobs/12"`, `class="badge`)
	if d := trainingDataJSON(t, res.Body); d.Live {
		t.Error("a run without a job polls")
	}

	// ---- a running run ----
	res = do(t, h, "GET", "/training/1", true, nil)
	if res.Code != http.StatusOK {
		t.Fatalf("GET /training/1: %d", res.Code)
	}
	var last train.Point
	if err := json.Unmarshal(lines[5], &last); err != nil {
		t.Fatal(err)
	}
	mustContain(t, "the running run", res.Body, `<span class="badge st-running">RUNNING</span>`,
		`<dd id="run-progress">`+progressText(last, 3)+`</dd>`, "The evaluation appears here when the run ends.")
	mustNotContain(t, "the running run", res.Body, "model.onnx", "data-terminal", `id="chart-confusion"`)
	if d := trainingDataJSON(t, res.Body); !d.Live || d.Total != 6 || d.State != job.Running {
		t.Errorf("the running run's data: live %v, total %d, state %q", d.Live, d.Total, d.State)
	}
	frag = do(t, h, "GET", "/ui/training/1", true, nil)
	mustContain(t, "the running run's fragment", frag.Body, `<div id="training-head" data-state="RUNNING">`, `<section class="card" id="training-eval">`)
	mustNotContain(t, "the running run's fragment", frag.Body, "<html", "training-data")

	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("logged errors:\n%s", logs)
	}
}

func TestTrainingMetricsJSON(t *testing.T) {
	f := newTrainingFixture(t, 4)
	h, _ := newTestHandler(t, f.src)
	lines := metricLines(t, f.bucket, 10)
	get := func(target string) metricsView {
		t.Helper()
		res := do(t, h, "GET", target, true, nil)
		if res.Code != http.StatusOK || res.Header.Get("Content-Type") != "application/json" || res.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("GET %s: %d %q %q\n%s", target, res.Code, res.Header.Get("Content-Type"), res.Header.Get("Cache-Control"), res.Body)
		}
		var v metricsView
		if err := json.Unmarshal([]byte(res.Body), &v); err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
		return v
	}
	n := len(lines)
	for _, tt := range []struct {
		target            string
		total, from, npts int
		state             job.State
		terminal          bool
	}{
		{"/ui/training/10/metrics", n, 0, n, job.Succeeded, true},
		{"/ui/training/10/metrics?from=3", n, 3, n - 3, job.Succeeded, true},
		{fmt.Sprintf("/ui/training/10/metrics?from=%d", n), n, n, 0, job.Succeeded, true},
		// more than there are: the run was resumed and rewrote its points
		{fmt.Sprintf("/ui/training/10/metrics?from=%d", n+5), n, n, 0, job.Succeeded, true},
		{"/ui/training/1/metrics", 4, 0, 4, job.Running, false},
		// job 12 is gone: nothing will change
		{"/ui/training/12/metrics?from=1", len(metricLines(t, f.bucket, 12)), 1, len(metricLines(t, f.bucket, 12)) - 1, "", true},
	} {
		v := get(tt.target)
		if v.Total != tt.total || v.From != tt.from || len(v.Points) != tt.npts || v.State != tt.state || v.Terminal != tt.terminal {
			t.Errorf("GET %s: total %d from %d, %d points, state %q, terminal %v; want %d %d %d %q %v",
				tt.target, v.Total, v.From, len(v.Points), v.State, v.Terminal, tt.total, tt.from, tt.npts, tt.state, tt.terminal)
		}
	}
	// The points are the file's, in order.
	v := get("/ui/training/10/metrics?from=2")
	var want train.Point
	if err := json.Unmarshal(lines[2], &want); err != nil {
		t.Fatal(err)
	}
	if got := v.Points[0]; got.Kind != want.Kind || got.Step != want.Step || got.Values["loss"] != want.Values["loss"] {
		t.Errorf("the first point from 2 is %+v, want %+v", got, want)
	}

	// The running run grows; then resumes from a checkpoint with fewer.
	writeRunFile(t, f.bucket, 1, train.MetricsFile, bytes.Join(lines[:9], nil))
	if v := get("/ui/training/1/metrics?from=4"); v.Total != 9 || len(v.Points) != 5 || v.Points[0].Step != pointOf(t, lines[4]).Step {
		t.Errorf("after growing: total %d, %d points", v.Total, len(v.Points))
	}
	writeRunFile(t, f.bucket, 1, train.MetricsFile, bytes.Join(lines[:7], nil))
	if v := get("/ui/training/1/metrics?from=9"); v.Total != 7 || v.From != 7 || len(v.Points) != 0 {
		t.Errorf("after resuming: total %d, from %d, %d points", v.Total, v.From, len(v.Points))
	}

	for target, code := range map[string]int{
		"/ui/training/10/metrics?from=-1":  http.StatusBadRequest,
		"/ui/training/10/metrics?from=two": http.StatusBadRequest,
		"/ui/training/abc/metrics":         http.StatusBadRequest,
		"/ui/training/999/metrics":         http.StatusNotFound,
		"/ui/training/999":                 http.StatusNotFound,
		"/ui/training/0":                   http.StatusBadRequest,
	} {
		if res := do(t, h, "GET", target, true, nil); res.Code != code {
			t.Errorf("GET %s: %d, want %d", target, res.Code, code)
		}
	}
}

func pointOf(t *testing.T, line []byte) train.Point {
	t.Helper()
	var p train.Point
	if err := json.Unmarshal(line, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTrainingBadInput(t *testing.T) {
	f := newTrainingFixture(t, 2)
	h, logs := newTestHandler(t, f.src)
	for target, code := range map[string]int{
		"/training/abc":            http.StatusBadRequest,
		"/training/0":              http.StatusBadRequest,
		"/training/-3":             http.StatusBadRequest,
		"/training/007":            http.StatusBadRequest,
		"/training/1e3":            http.StatusBadRequest,
		"/training/999":            http.StatusNotFound,
		"/training/999/model.onnx": http.StatusNotFound,
		"/training/1/model.onnx":   http.StatusNotFound, // still training: no model yet
		"/training/abc/model.onnx": http.StatusBadRequest,
		"/training/10/other":       http.StatusNotFound,
		// job 2 exists, but never wrote a run
		"/training/2": http.StatusNotFound,
	} {
		res := do(t, h, "GET", target, true, nil)
		if res.Code != code {
			t.Errorf("GET %s: %d, want %d", target, res.Code, code)
		}
		mustContain(t, "the error page of "+target, res.Body, `href="/training"`, `<h1>`+fmt.Sprint(code))
	}
	mustContain(t, "the 400 page", do(t, h, "GET", "/training/abc", true, nil).Body,
		"&#34;abc&#34; is not a training run id: runs are named by their job&#39;s id, such as 42.")
	mustContain(t, "the 404 page", do(t, h, "GET", "/training/999", true, nil).Body, "No such training run.")
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("logged errors:\n%s", logs)
	}

	// A run file that is not JSON is the server's problem, said without
	// its detail.
	writeRunFile(t, f.bucket, 12, train.RunFile, []byte("{not json"))
	if res := do(t, h, "GET", "/training/12", true, nil); res.Code != http.StatusInternalServerError {
		t.Errorf("GET a corrupt run: %d, want 500", res.Code)
	}
	if !strings.Contains(logs.String(), "level=ERROR") {
		t.Error("the corrupt run was not logged")
	}
}

func TestTrainingAuthRequired(t *testing.T) {
	f := newTrainingFixture(t, 2)
	h, _ := newTestHandler(t, f.src)
	for _, tt := range []struct {
		target   string
		code     int
		location string
	}{
		{"/training", http.StatusSeeOther, "/login?next=%2Ftraining"},
		{"/training/10", http.StatusSeeOther, "/login?next=%2Ftraining%2F10"},
		{"/training/10/model.onnx", http.StatusSeeOther, "/login?next=%2Ftraining%2F10%2Fmodel.onnx"},
		{"/training/abc", http.StatusSeeOther, "/login?next=%2Ftraining%2Fabc"},
		{"/ui/training", http.StatusUnauthorized, ""},
		{"/ui/training/10", http.StatusUnauthorized, ""},
		{"/ui/training/10/metrics?from=0", http.StatusUnauthorized, ""},
	} {
		res := do(t, h, "GET", tt.target, false, nil)
		if res.Code != tt.code || res.Header.Get("Location") != tt.location {
			t.Errorf("GET %s: %d %q, want %d %q", tt.target, res.Code, res.Header.Get("Location"), tt.code, tt.location)
		}
		if strings.Contains(res.Body, "linear") || strings.Contains(res.Body, "loss") || strings.Contains(res.Body, "ONNX") {
			t.Errorf("GET %s without a session shows the run:\n%.300s", tt.target, res.Body)
		}
	}
	// A bearer token will do, as for the other pages.
	r := httptest.NewRequest("GET", "/ui/training/10/metrics", nil)
	r.Header.Set("Authorization", "Bearer "+testToken)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Errorf("metrics with the bearer token: %d", w.Code)
	}
}

// TestTrainingModelDownload fetches the model over real HTTP, whole and
// in part, as a browser's download (and its resumption) does.
func TestTrainingModelDownload(t *testing.T) {
	f := newTrainingFixture(t, 2)
	srv := httptest.NewServer(New(f.src, testAuth{testToken}, nil))
	t.Cleanup(srv.Close)
	want, err := f.bucket.ReadAll(context.Background(), train.RunDir(10)+train.ModelFile)
	if err != nil {
		t.Fatal(err)
	}
	get := func(rangeHeader string, login bool) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+"/training/10/model.onnx", nil)
		if login {
			req.AddCookie(SessionCookie(testAuth{testToken}))
		}
		if rangeHeader != "" {
			req.Header.Set("Range", rangeHeader)
		}
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	resp, body := get("", true)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) || len(want) < 100 {
		t.Fatalf("download: %d, %d bytes, want %d", resp.StatusCode, len(body), len(want))
	}
	for k, v := range map[string]string{
		"Content-Type":        "application/octet-stream",
		"Content-Disposition": `attachment; filename="hpcml-training-10.onnx"`,
		"Content-Length":      fmt.Sprint(len(want)),
		"Cache-Control":       "no-store",
	} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("download: %s %q, want %q", k, got, v)
		}
	}
	resp, body = get("bytes=10-19", true)
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want[10:20]) {
		t.Errorf("range download: %d, %q", resp.StatusCode, body)
	}
	resp, _ = get("", false)
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("download without a session: %d, want a redirect to the login", resp.StatusCode)
	}
}

func TestTrainingSourceError(t *testing.T) {
	f := newTrainingFixture(t, 2)
	f.src.err = errors.New("store unreachable (secret detail)")
	h, _ := newTestHandler(t, f.src)
	for _, target := range []string{"/training/10", "/ui/training/10/metrics"} {
		res := do(t, h, "GET", target, true, nil)
		if res.Code != http.StatusInternalServerError {
			t.Errorf("GET %s: %d, want 500", target, res.Code)
		}
		mustNotContain(t, "the 500 of "+target, res.Body, "secret detail")
	}
	// The list shows the runs without their jobs' states.
	res := do(t, h, "GET", "/training", true, nil)
	if res.Code != http.StatusOK || !strings.Contains(res.Body, `data-run="10"`) || strings.Contains(res.Body, `class="badge`) {
		t.Errorf("GET /training with the store down: %d\n%.500s", res.Code, res.Body)
	}

}

func TestTrainingFormat(t *testing.T) {
	// A ResNet-style network: its blocks' bodies are listed under them.
	layers := []nn.LayerSpec{
		{Type: "conv2d", Filters: 16, Kernel: 3, Padding: 1, Init: "he"},
		{Type: "batchnorm"},
		{Type: "residual", Layers: []nn.LayerSpec{
			{Type: "conv2d", Filters: 32, Kernel: 3, Stride: 2, Padding: 1},
			{Type: "relu"},
		}},
		{Type: "maxpool2d", Kernel: 2},
		{Type: "avgpool2d", Kernel: 3, Stride: 2},
		{Type: "dropout", Rate: 0.25},
		{Type: "flatten"},
		{Type: "dense", Units: 10},
	}
	var got []string
	for _, r := range layerRows(layers, "", 0) {
		got = append(got, fmt.Sprintf("%s%s %s: %s", strings.Repeat("  ", r.Depth), r.Index, r.Type, r.Detail))
	}
	want := []string{
		"1 conv2d: 16 filters, 3×3 kernel, padding 1, init he",
		"2 batchnorm: ",
		"3 residual: 2 layers, y = relu(x + body(x))",
		"  3.1 conv2d: 32 filters, 3×3 kernel, stride 2, padding 1",
		"  3.2 relu: ",
		"4 maxpool2d: 2×2",
		"5 avgpool2d: 3×3, stride 2",
		"6 dropout: rate 0.25",
		"7 flatten: ",
		"8 dense: 10 units",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("layers:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, tt := range []struct {
		shape []int
		want  string
	}{{[]int{13}, "13 features"}, {[]int{1, 28, 28}, "1×28×28"}} {
		if got := shapeText(tt.shape); got != tt.want {
			t.Errorf("shapeText(%v) = %q, want %q", tt.shape, got, tt.want)
		}
	}
	if got := formatAccuracy(0.98765); got != "0.9877" {
		t.Errorf("formatAccuracy = %q", got)
	}
	if got := taskText(train.DataInfo{Task: train.Classification, Classes: []string{"a", "b"}}); got != "classification, 2 classes" {
		t.Errorf("taskText = %q", got)
	}
	// A confusion matrix of too many classes is left to the table.
	k := maxConfusionClasses + 1
	ev := &train.Evaluation{Classes: make([]string, k), ConfusionMatrix: make([][]int, k)}
	if v := evalOf(ev, train.Classification); v.Heatmap || !strings.Contains(v.HeatmapNote, "too large to draw") {
		t.Errorf("a matrix of %d classes: heatmap %v, note %q", k, v.Heatmap, v.HeatmapNote)
	}
}

// trainRanks trains cfg for real on n ranks (cfg.Workers or
// cfg.PipelineStages is n), as the n tasks of the training job of job id
// do: each rank a goroutine joined to the others over loopback TCP, all
// writing to the run's directory in dir (rank 0 alone writes files).
func trainRanks(t testing.TB, dir string, id int64, cfg train.Config, n int) *train.ModelMetadata {
	t.Helper()
	b, err := blob.Open(context.Background(), blob.WithCreateDir("file://"+filepath.ToSlash(dir)))
	if err != nil {
		t.Fatal(err)
	}
	out := gcblob.PrefixedBucket(b, train.RunDir(id))
	defer out.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	// A rank that fails ends the others, which would wait for it.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	metas := make([]*train.ModelMetadata, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Go(func() {
			defer func() {
				if errs[r] != nil {
					cancel()
				}
			}()
			g, err := collective.Join(ctx, collective.Config{Rank: r, WorldSize: n,
				MasterAddr: "127.0.0.1", MasterPort: port, Timeout: 30 * time.Second})
			if err != nil {
				errs[r] = err
				return
			}
			defer g.Close()
			metas[r], errs[r] = train.Run(ctx, cfg, train.Options{Out: out, Comm: train.GroupComm(g)})
		})
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("training run %d, rank %d of %d: %v", id, r, n, err)
		}
	}
	return metas[0]
}

// distributedFixture is a source with real distributed training runs in a
// storage directory: 20, the classification of classificationConfig on
// two data-parallel workers; 21, a small MLP cut into two pipeline stages
// (both jobs SUCCEEDED); and 1, the fake's RUNNING job, whose run has the
// first points of run 20 so far.
type distributedFixture struct {
	src    *fakeSource
	bucket *blob.Bucket
	dp     *train.ModelMetadata
	pipe   *train.ModelMetadata
	lines  [][]byte // run 20's metrics.jsonl
}

func newDistributedFixture(t *testing.T, runningPoints int) *distributedFixture {
	t.Helper()
	dir := t.TempDir()
	f := &distributedFixture{src: newFakeSource(), bucket: openStorage(t, dir)}
	f.src.setStorage(f.bucket)
	dp := classificationConfig(t)
	dp.Workers = 2
	f.dp = trainRanks(t, dir, 20, dp, 2)
	pipe := train.Config{Algorithm: "mlp", Data: dp.Data, Label: "y", Epochs: 2, Seed: 1, PipelineStages: 2,
		HP: map[string]string{"hidden": "16,8", "batch_size": "16", "micro_batches": "4", "log_every": "4"}}
	f.pipe = trainRanks(t, dir, 21, pipe, 2)
	f.src.addJob(trainingJob(20, job.Succeeded))
	f.src.addJob(trainingJob(21, job.Succeeded))
	f.lines = metricLines(t, f.bucket, 20)
	copyRunFile(t, f.bucket, 20, 1, train.RunFile)
	writeRunFile(t, f.bucket, 1, train.MetricsFile, bytes.Join(f.lines[:runningPoints], nil))
	return f
}

// rankPoints is how many step points of a data-parallel run's metrics
// carry every value the run page draws per rank, after checking that
// every step point does.
func rankPoints(t *testing.T, lines [][]byte, workers int) int {
	t.Helper()
	steps := countKind(lines, "step", "loss")
	keys := []string{"comm_seconds", "allreduce_gbps"}
	for r := range workers {
		keys = append(keys, fmt.Sprintf("rank%d_samples_per_sec", r), fmt.Sprintf("rank%d_compute_seconds", r),
			fmt.Sprintf("rank%d_comm_wait_seconds", r))
	}
	for _, k := range keys {
		if n := countKind(lines, "step", k); n != steps {
			t.Fatalf("%d of the run's %d step points have %s", n, steps, k)
		}
	}
	if countKind(lines, "step", fmt.Sprintf("rank%d_samples_per_sec", workers)) != 0 {
		t.Fatalf("the run's points have a rank %d of %d", workers, workers)
	}
	return steps
}

// TestTrainingDistributed: the page of a data-parallel run says how many
// workers trained it and has the per-rank throughput and the compute vs
// communication charts, with the run's points; a pipeline run's says how
// many stages, without those charts (its points have no per-rank values).
func TestTrainingDistributed(t *testing.T) {
	f := newDistributedFixture(t, 4)
	h, logs := newTestHandler(t, f.src)
	steps := rankPoints(t, f.lines, 2)
	if steps < 10 || f.dp.Workers != 2 {
		t.Fatalf("the data-parallel run made %d step points, workers %d", steps, f.dp.Workers)
	}

	// ---- two data-parallel workers ----
	res := do(t, h, "GET", "/training/20", true, nil)
	if res.Code != http.StatusOK {
		t.Fatalf("GET /training/20: %d\n%s", res.Code, res.Body)
	}
	workersField := `<dt>Workers</dt><dd title="2 ranks each train on their share of every global batch of 2 × batch_size rows; ` +
		`their gradients are averaged by all-reduce before each step">2 (data parallel)</dd>`
	mustContain(t, "the data-parallel run", res.Body, workersField,
		`id="chart-loss"`, `id="chart-accuracy"`, `id="chart-throughput"`,
		`<div class="chart-pair" id="data-parallel">`,
		`<h2>Throughput per rank <span class="muted">samples per second, 2 ranks</span></h2>`, `<div class="chart" id="chart-ranks" data-chart="ranks"></div>`,
		`<h2>Compute vs communication <span class="muted">per window, mean over the 2 ranks</span></h2>`, `<div class="chart" id="chart-comm" data-chart="comm"></div>`,
		formatAccuracy(f.dp.Evaluation.Accuracy), `id="chart-confusion"`)
	mustNotContain(t, "the data-parallel run", res.Body, "Pipeline stages")
	d := trainingDataJSON(t, res.Body)
	if d.Workers != 2 || d.Total != len(f.lines) || len(d.Points) != len(f.lines) || rankPoints(t, pointLines(t, d.Points), 2) != steps {
		t.Errorf("embedded data: workers %d, total %d, %d points; want 2 workers and the run's %d points", d.Workers, d.Total, len(d.Points), len(f.lines))
	}
	// The header swapped in when the job's state changes keeps the field.
	mustContain(t, "the data-parallel run's fragment", do(t, h, "GET", "/ui/training/20", true, nil).Body, workersField)

	// ---- the running data-parallel run: the charts are there to grow ----
	res = do(t, h, "GET", "/training/1", true, nil)
	mustContain(t, "the running data-parallel run", res.Body, ">2 (data parallel)</dd>", `id="chart-ranks"`, `id="chart-comm"`, `id="run-progress"`)
	if d := trainingDataJSON(t, res.Body); d.Workers != 2 || !d.Live || d.Total != 4 {
		t.Errorf("the running run's data: workers %d, live %v, total %d", d.Workers, d.Live, d.Total)
	}

	// ---- two pipeline stages ----
	res = do(t, h, "GET", "/training/21", true, nil)
	if res.Code != http.StatusOK {
		t.Fatalf("GET /training/21: %d\n%s", res.Code, res.Body)
	}
	mustContain(t, "the pipeline run", res.Body,
		`<dt>Pipeline stages</dt><dd title="the network is cut into 2 stages, one per rank, and each batch flows through them in 4 micro-batches">2</dd>`,
		`id="chart-loss"`, `id="chart-throughput"`, "<td class=\"mono layer-type\">dense</td>")
	mustNotContain(t, "the pipeline run", res.Body, "<dt>Workers</dt>", `id="chart-ranks"`, `id="chart-comm"`, `id="data-parallel"`)
	if d := trainingDataJSON(t, res.Body); d.Workers != 0 || countKind(pointLines(t, d.Points), "step", "rank0_samples_per_sec") != 0 {
		t.Errorf("the pipeline run's data: workers %d", d.Workers)
	}
	if f.pipe.PipelineStages != 2 {
		t.Errorf("the pipeline run's metadata says %d stages", f.pipe.PipelineStages)
	}

	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("logged errors:\n%s", logs)
	}
}

// pointLines are points as metrics.jsonl's lines.
func pointLines(t *testing.T, points []train.Point) [][]byte {
	t.Helper()
	out := make([][]byte, len(points))
	for i, p := range points {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}
