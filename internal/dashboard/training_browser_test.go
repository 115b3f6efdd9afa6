package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hpcml/hpcml/internal/dashboard/browsertest"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/train"
)

// chartProblems is a script that lists the charts of a page not drawn: no
// ECharts instance, no series, or a canvas with (almost) nothing painted.
const chartProblems = `(() => {
	const out = [];
	for (const el of document.querySelectorAll("[data-chart]")) {
		const name = el.id;
		if (el.dataset.error) { out.push(name + ": " + el.dataset.error); continue; }
		const chart = echarts.getInstanceByDom(el);
		if (!chart) { out.push(name + ": no chart"); continue; }
		if ((chart.getOption().series || []).length === 0) out.push(name + ": no series");
		const c = el.querySelector("canvas");
		if (!c || c.width === 0 || c.height === 0 || c.clientWidth === 0 || c.clientHeight === 0) {
			out.push(name + ": no canvas of some size"); continue;
		}
		const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
		let painted = 0;
		for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) painted++;
		if (painted < 200) out.push(name + ": " + painted + " painted pixels");
	}
	return out.join("\n");
})()`

// seriesLengths is a script giving the lengths of a chart's series: "12 3".
func seriesLengths(id string) string {
	return `echarts.getInstanceByDom(document.getElementById("` + id + `")).getOption().series.map(s => s.data.length).join(" ")`
}

// TestBrowserTraining opens the training pages in headless Chromium on
// runs made by real training: the list links to a finished run whose
// loss, accuracy and throughput charts hold the run's points and whose
// confusion matrix is a heatmap; then a running run's charts grow as its
// job appends points, start over when it resumes from a checkpoint with
// fewer, and stop polling once the job has ended, when the evaluation and
// the model's link appear. Nothing may log an error; a screenshot of the
// finished run is kept as a test artefact.
func TestBrowserTraining(t *testing.T) {
	ctx := browsertest.Start(t)
	console := browsertest.Console(ctx)

	f := newTrainingFixture(t, 4)
	lines := metricLines(t, f.bucket, 10)
	var logs syncBuffer
	var metricsRequests atomic.Int64
	dash := New(f.src, testAuth{testToken}, slog.New(slog.NewTextHandler(&logs, nil)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ui/training/1/metrics" {
			metricsRequests.Add(1)
		}
		dash.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	if err := browsertest.SetCookie(ctx, srv.URL, SessionCookie(testAuth{testToken})); err != nil {
		t.Fatal(err)
	}

	// The list, newest first; a click on a row opens the run.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/training"),
		chromedp.WaitVisible(chromedp.CSS(`table.runs tbody tr`))); err != nil {
		t.Fatal(err)
	}
	if got := evalString(t, ctx, `[...document.querySelectorAll("tr[data-run]")].map(r => r.dataset.run).join(" ")`); got != "12 11 10 1" {
		t.Errorf("runs listed as %q", got)
	}
	screenshot(t, ctx, "training-list")
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('tr[data-run="10"] td.when').click()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the run page", `location.pathname === "/training/10"`, 5*time.Second)

	// ---- a finished classification ----
	waitJS(t, ctx, "the charts", `(() => {
		const els = [...document.querySelectorAll("[data-chart]")];
		return els.length === 4 && els.every(el => el.hasAttribute("data-drawn") || el.hasAttribute("data-error"));
	})()`, 15*time.Second)
	if p := evalString(t, ctx, chartProblems); p != "" {
		t.Errorf("charts not drawn:\n%s", p)
	}
	steps, epochs := countKind(lines, "step", "loss"), countKind(lines, "epoch", "val_loss")
	want := strconv.Itoa(steps) + " " + strconv.Itoa(epochs)
	if got := evalString(t, ctx, seriesLengths("chart-loss")); got != want {
		t.Errorf("the loss chart's series have %q points, want %q (step windows, epochs)", got, want)
	}
	if got := evalString(t, ctx, seriesLengths("chart-accuracy")); got != strconv.Itoa(countKind(lines, "step", "accuracy"))+" "+strconv.Itoa(countKind(lines, "epoch", "val_accuracy")) {
		t.Errorf("the accuracy chart's series have %q points", got)
	}
	if got := evalString(t, ctx, seriesLengths("chart-throughput")); got != strconv.Itoa(countKind(lines, "step", "samples_per_sec")) {
		t.Errorf("the throughput chart has %q points", got)
	}
	// The first loss point is the run's first step window.
	first := pointOf(t, lines[0])
	if got := evalString(t, ctx, `JSON.stringify(echarts.getInstanceByDom(document.getElementById("chart-loss")).getOption().series[0].data[0].slice(0, 2))`); got != "["+strconv.Itoa(first.Step)+","+strconv.FormatFloat(first.Values["loss"], 'g', -1, 64)+"]" {
		t.Errorf("the first loss point is %s, want step %d loss %v", got, first.Step, first.Values["loss"])
	}
	// The confusion matrix: a heatmap of every (true, predicted) pair.
	if got := evalString(t, ctx, `(() => {
		const o = echarts.getInstanceByDom(document.getElementById("chart-confusion")).getOption();
		return o.series[0].type + " " + o.series[0].data.length + " " + o.yAxis[0].data.join("|");
	})()`); got != "heatmap 9 "+strings.Join(f.class.Evaluation.Classes, "|") {
		t.Errorf("the confusion matrix is %q", got)
	}
	// Its tooltip is text, within the page's CSP.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`echarts.getInstanceByDom(document.getElementById("chart-confusion")).dispatchAction({type: "showTip", seriesIndex: 0, dataIndex: 0})`)); err != nil {
		t.Fatal(err)
	}
	if f.class.Evaluation.Classes[0] != hostileClass {
		t.Fatalf("classes %q: the hostile one was to sort first", f.class.Evaluation.Classes)
	}
	waitJS(t, ctx, "the confusion tooltip", `[...document.querySelectorAll("#chart-confusion div")].some(d =>
		d.innerText.includes("true </script><b>bird</b>, predicted </script><b>bird</b>") && d.innerText.includes("examples ("))`, 3*time.Second)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`echarts.getInstanceByDom(document.getElementById("chart-confusion")).dispatchAction({type: "hideTip"})`)); err != nil {
		t.Fatal(err)
	}
	if got := evalString(t, ctx, `document.getElementById("model-download").getAttribute("href")`); got != "/training/10/model.onnx" {
		t.Errorf("the model's link is %q", got)
	}
	time.Sleep(600 * time.Millisecond) // the tooltip fades out
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shot := filepath.Join(artifactDir(t), "dashboard-training-run.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the run page: %s", shot)

	// ---- a running run ----
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/training/1")); err != nil {
		t.Fatal(err)
	}
	lossPoints := func(n int) string { // the loss chart's series over the first n lines
		return strconv.Itoa(countKind(lines[:n], "step", "loss")) + " " + strconv.Itoa(countKind(lines[:n], "epoch", "val_loss"))
	}
	waitJS(t, ctx, "the running run's loss chart", seriesLengths("chart-loss")+` === "`+lossPoints(4)+`"`, 10*time.Second)
	if got := evalString(t, ctx, `document.querySelector("#training-head .badge").textContent + " " + document.getElementById("no-eval").textContent`); got != "RUNNING The evaluation appears here when the run ends." {
		t.Errorf("the running run's head and evaluation: %q", got)
	}
	screenshot(t, ctx, "training-running")
	// The job appends points: the charts grow, and the progress follows.
	grown := len(lines) - 3
	writeRunFile(t, f.bucket, 1, train.MetricsFile, bytes.Join(lines[:grown], nil))
	waitJS(t, ctx, "the loss chart to grow", seriesLengths("chart-loss")+` === "`+lossPoints(grown)+`"`, 10*time.Second)
	if p := evalString(t, ctx, chartProblems); p != "" {
		t.Errorf("charts not drawn after growing:\n%s", p)
	}
	last := pointOf(t, lines[grown-1])
	if got := evalString(t, ctx, `document.getElementById("run-progress").textContent`); got != progressText(last, 3) {
		t.Errorf("the progress reads %q, want %q", got, progressText(last, 3))
	}
	// It resumes from a checkpoint: fewer points, then more again.
	writeRunFile(t, f.bucket, 1, train.MetricsFile, bytes.Join(lines[:5], nil))
	waitJS(t, ctx, "the loss chart to start over", seriesLengths("chart-loss")+` === "`+lossPoints(5)+`"`, 10*time.Second)
	if got := evalString(t, ctx, `document.getElementById("chart-throughput").dataset.points`); got != strconv.Itoa(countKind(lines[:5], "step", "samples_per_sec")) {
		t.Errorf("after resuming the throughput chart has %s points", got)
	}

	// The run ends: the job writes its last points, the model and the
	// evaluation, and is SUCCEEDED.
	for _, file := range []string{train.MetricsFile, train.ModelFile, train.EvaluationFile, train.MetadataFile} {
		copyRunFile(t, f.bucket, 10, 1, file)
	}
	f.src.setState("1", job.Succeeded)
	waitJS(t, ctx, "the finished run's head and evaluation", `(() => {
		const head = document.getElementById("training-head");
		const cm = document.getElementById("chart-confusion");
		return head.hasAttribute("data-terminal") && head.querySelector(".badge").textContent === "SUCCEEDED" &&
			document.getElementById("model-download") !== null && cm !== null && cm.hasAttribute("data-drawn");
	})()`, 10*time.Second)
	if got := evalString(t, ctx, seriesLengths("chart-loss")); got != want {
		t.Errorf("the finished run's loss chart has %q points, want all of them (%q)", got, want)
	}
	if p := evalString(t, ctx, chartProblems); p != "" {
		t.Errorf("charts not drawn once finished:\n%s", p)
	}
	if got := evalString(t, ctx, `String(document.getElementById("no-eval") === null && document.getElementById("run-progress") === null)`); got != "true" {
		t.Errorf("the finished run still shows what a running one does")
	}
	// It has stopped asking.
	asked := metricsRequests.Load()
	time.Sleep(4500 * time.Millisecond)
	if n := metricsRequests.Load() - asked; n != 0 {
		t.Errorf("%d metrics requests after the job ended, want none", n)
	}

	time.Sleep(300 * time.Millisecond) // let late console events arrive
	console.Check(t)
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("the dashboard logged errors:\n%s", logs.String())
	}
}

// TestBrowserTrainingDistributed opens in headless Chromium the pages of
// runs trained for real on two ranks in this process: the data-parallel
// run's page says it had two workers and draws, besides the usual
// charts, one throughput line per rank and the ranks' mean compute and
// exposed all-reduce wait stacked per window with the all-reduce
// bandwidth on a second axis, each series holding the run's step points;
// a running data-parallel run's new charts grow with its points and end
// complete when the job ends; the pipeline run's page says its stages and
// has the usual four charts only. Nothing may log an error; a screenshot
// of the data-parallel run is kept as a test artefact.
func TestBrowserTrainingDistributed(t *testing.T) {
	ctx := browsertest.Start(t)
	console := browsertest.Console(ctx)

	f := newDistributedFixture(t, 4)
	steps := rankPoints(t, f.lines, 2)
	var logs syncBuffer
	srv := httptest.NewServer(New(f.src, testAuth{testToken}, slog.New(slog.NewTextHandler(&logs, nil))))
	t.Cleanup(srv.Close)
	if err := browsertest.SetCookie(ctx, srv.URL, SessionCookie(testAuth{testToken})); err != nil {
		t.Fatal(err)
	}
	allDrawn := func(n int) string {
		return `(() => {
			const els = [...document.querySelectorAll("[data-chart]")];
			return els.length === ` + strconv.Itoa(n) + ` && els.every(el => el.hasAttribute("data-drawn") || el.hasAttribute("data-error"));
		})()`
	}
	field := func(label string) string {
		return evalString(t, ctx, `(() => {
			const dt = [...document.querySelectorAll("#training-head dt")].find(d => d.textContent === "`+label+`");
			return dt ? dt.nextElementSibling.textContent : "(none)";
		})()`)
	}
	// rankSeries are the lengths of the two charts' series over the first
	// n lines: one per rank; compute, wait, bandwidth.
	rankSeries := func(n int) (string, string) {
		k := strconv.Itoa(rankPoints(t, f.lines[:n], 2))
		b := strconv.Itoa(countKind(f.lines[:n], "step", "allreduce_gbps"))
		return k + " " + k, k + " " + k + " " + b
	}

	// ---- two data-parallel workers, finished ----
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/training/20")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the charts", allDrawn(6), 15*time.Second) // loss, accuracy, throughput, ranks, comm, confusion
	if p := evalString(t, ctx, chartProblems); p != "" {
		t.Errorf("charts not drawn:\n%s", p)
	}
	if got := field("Workers"); got != "2 (data parallel)" {
		t.Errorf("the Workers field reads %q", got)
	}
	if got := field("Pipeline stages"); got != "(none)" {
		t.Errorf("a data-parallel run has pipeline stages: %q", got)
	}
	wantRanks, wantComm := rankSeries(len(f.lines))
	if got := evalString(t, ctx, seriesLengths("chart-ranks")); got != wantRanks {
		t.Errorf("the per-rank throughput chart's series have %q points, want %q (%d step windows)", got, wantRanks, steps)
	}
	if got := evalString(t, ctx, seriesLengths("chart-comm")); got != wantComm {
		t.Errorf("the compute vs communication chart's series have %q points, want %q", got, wantComm)
	}
	if got := evalString(t, ctx, `String(document.getElementById("chart-comm").dataset.points) + " " + document.getElementById("chart-ranks").dataset.points`); got != strconv.Itoa(3*steps)+" "+strconv.Itoa(2*steps) {
		t.Errorf("the charts count %q points", got)
	}
	// The lines: one per rank, rank r's throughput; compute and wait are
	// the means over the ranks, stacked; the bandwidth on the right axis.
	if got := evalString(t, ctx, `(() => {
		const o = echarts.getInstanceByDom(document.getElementById("chart-ranks")).getOption();
		return o.series.map(s => s.name + "=" + s.data[0][1]).join(" ");
	})()`); got != fmt.Sprintf("rank 0=%v rank 1=%v", firstValue(t, f.lines, "rank0_samples_per_sec"), firstValue(t, f.lines, "rank1_samples_per_sec")) {
		t.Errorf("the per-rank chart's first points are %q", got)
	}
	meanCompute := (firstValue(t, f.lines, "rank0_compute_seconds") + firstValue(t, f.lines, "rank1_compute_seconds")) / 2
	meanWait := (firstValue(t, f.lines, "rank0_comm_wait_seconds") + firstValue(t, f.lines, "rank1_comm_wait_seconds")) / 2
	got := evalString(t, ctx, `(() => {
		const o = echarts.getInstanceByDom(document.getElementById("chart-comm")).getOption();
		return JSON.stringify({names: o.series.map(s => s.name), stack: o.series.map(s => s.stack || ""), axis: o.series.map(s => s.yAxisIndex || 0),
			axes: o.yAxis.length, first: o.series.map(s => s.data[0][1])});
	})()`)
	var comm struct {
		Names []string
		Stack []string
		Axis  []int
		Axes  int
		First []float64
	}
	if err := json.Unmarshal([]byte(got), &comm); err != nil {
		t.Fatalf("the compute vs communication chart: %v: %s", err, got)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-12+1e-9*math.Abs(b) }
	if strings.Join(comm.Names, "|") != "compute|exposed all-reduce wait|all-reduce bandwidth (right)" ||
		strings.Join(comm.Stack, "|") != "time|time|" || fmt.Sprint(comm.Axis) != "[0 0 1]" || comm.Axes != 2 || len(comm.First) != 3 ||
		!near(comm.First[0], meanCompute) || !near(comm.First[1], meanWait) || comm.First[2] != firstValue(t, f.lines, "allreduce_gbps") {
		t.Errorf("the compute vs communication chart is %s; want the first window's mean compute %v, mean wait %v, bandwidth %v",
			got, meanCompute, meanWait, firstValue(t, f.lines, "allreduce_gbps"))
	}
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shot := filepath.Join(artifactDir(t), "dashboard-training-data-parallel.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the data-parallel run page: %s", shot)

	// Its tooltip says what is what, in units that fit.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`echarts.getInstanceByDom(document.getElementById("chart-comm")).dispatchAction({type: "showTip", seriesIndex: 0, dataIndex: 0})`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the compute vs communication tooltip", `[...document.querySelectorAll("#chart-comm div")].some(d =>
		/compute: [0-9.]+ [µm]?s/.test(d.innerText) && /exposed all-reduce wait: [0-9.]+ [µm]?s/.test(d.innerText) &&
		/time in all-reduce \(overlaps compute\): [0-9.]+ [µm]?s/.test(d.innerText) && /all-reduce bandwidth \(right\): [0-9.]+ [kMG]B\/s/.test(d.innerText))`, 3*time.Second)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`echarts.getInstanceByDom(document.getElementById("chart-comm")).dispatchAction({type: "hideTip"})`)); err != nil {
		t.Fatal(err)
	}

	// ---- a running data-parallel run ----
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/training/1")); err != nil {
		t.Fatal(err)
	}
	r4, c4 := rankSeries(4)
	waitJS(t, ctx, "the running run's per-rank chart", seriesLengths("chart-ranks")+` === "`+r4+`" && `+seriesLengths("chart-comm")+` === "`+c4+`"`, 10*time.Second)
	if got := field("Workers"); got != "2 (data parallel)" {
		t.Errorf("the running run's Workers field reads %q", got)
	}
	grown := len(f.lines) - 3
	writeRunFile(t, f.bucket, 1, train.MetricsFile, bytes.Join(f.lines[:grown], nil))
	rg, cg := rankSeries(grown)
	waitJS(t, ctx, "the per-rank and communication charts to grow", seriesLengths("chart-ranks")+` === "`+rg+`" && `+seriesLengths("chart-comm")+` === "`+cg+`"`, 10*time.Second)
	if p := evalString(t, ctx, chartProblems); p != "" {
		t.Errorf("charts not drawn after growing:\n%s", p)
	}
	// It resumes from a checkpoint with fewer points; then it ends.
	writeRunFile(t, f.bucket, 1, train.MetricsFile, bytes.Join(f.lines[:5], nil))
	r5, c5 := rankSeries(5)
	waitJS(t, ctx, "the charts to start over", seriesLengths("chart-ranks")+` === "`+r5+`" && `+seriesLengths("chart-comm")+` === "`+c5+`"`, 10*time.Second)
	for _, file := range []string{train.MetricsFile, train.ModelFile, train.EvaluationFile, train.MetadataFile} {
		copyRunFile(t, f.bucket, 20, 1, file)
	}
	f.src.setState("1", job.Succeeded)
	waitJS(t, ctx, "the finished run", `(() => {
		const head = document.getElementById("training-head");
		return head.hasAttribute("data-terminal") && head.querySelector(".badge").textContent === "SUCCEEDED";
	})()`, 10*time.Second)
	if got := evalString(t, ctx, seriesLengths("chart-ranks")+` + "/" + `+seriesLengths("chart-comm")); got != wantRanks+"/"+wantComm {
		t.Errorf("the finished run's charts have %q points, want all of them (%q)", got, wantRanks+"/"+wantComm)
	}
	if got := field("Workers"); got != "2 (data parallel)" {
		t.Errorf("the swapped-in header's Workers field reads %q", got)
	}

	// ---- two pipeline stages: the usual charts ----
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/training/21")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the pipeline run's charts", allDrawn(4), 15*time.Second) // loss, accuracy, throughput, confusion
	if got := evalString(t, ctx, `[...document.querySelectorAll("[data-chart]")].map(el => el.id).join(" ")`); got != "chart-loss chart-accuracy chart-throughput chart-confusion" {
		t.Errorf("the pipeline run's charts are %q", got)
	}
	if p := evalString(t, ctx, chartProblems); p != "" {
		t.Errorf("the pipeline run's charts not drawn:\n%s", p)
	}
	if got := field("Pipeline stages") + " / " + field("Workers"); got != "2 / (none)" {
		t.Errorf("the pipeline run's fields: %q", got)
	}

	time.Sleep(300 * time.Millisecond) // let late console events arrive
	console.Check(t)
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("the dashboard logged errors:\n%s", logs.String())
	}
}

// firstValue is a value of the first step point of a run's metrics lines.
func firstValue(t *testing.T, lines [][]byte, key string) float64 {
	t.Helper()
	for _, l := range lines {
		if p := pointOf(t, l); p.Kind == "step" {
			v, ok := p.Values[key]
			if !ok {
				t.Fatalf("the first step point has no %s", key)
			}
			return v
		}
	}
	t.Fatal("no step point")
	return 0
}
