package dashboard

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/train"
)

// The training pages: the runs that training jobs write under
// training/<job id>/ in the server's storage (internal/train.Runs),
// listed with their jobs' states, and one run drawn by
// web/static/training.js: its metrics as line charts that grow while the
// job runs, its evaluation, its hyperparameters and network. A run's id
// is its job's id; the job says whether the run is still going.

// maxConfusionClasses bounds the confusion matrix drawn as a heatmap (a
// million cells would be unreadable and slow); the per-class table lists
// every class.
const maxConfusionClasses = 100

// trainingRunID reads the run id of a URL: a job id such as 42.
func trainingRunID(r *http.Request) (int64, string, error) {
	s := r.PathValue("id")
	id, err := strconv.ParseInt(s, 10, 64)
	// The canonical form only ("42", not "042" or "+42"): one URL per run.
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != s {
		return 0, "", badRequest(fmt.Sprintf("%q is not a training run id: runs are named by their job's id, such as 42.", s))
	}
	return id, s, nil
}

func trainingHref(id string) string { return "/training/" + id }

// runJob is the job of run id, or nil when the store has no such job (its
// record was removed); other errors are the Source's.
func (h *handler) runJob(ctx context.Context, id string) (*job.Job, error) {
	j, err := h.src.GetJob(ctx, id)
	if isNotFound(err) {
		return nil, nil
	}
	return j, err
}

// trainingErr turns an error of train.Runs into a 404 or a 500.
func trainingErr(err error) error {
	if errors.Is(err, train.ErrNoRun) {
		return &httpError{Status: http.StatusNotFound, Msg: "No such training run.", Err: err}
	}
	return &httpError{Status: http.StatusInternalServerError, Msg: "Could not read the training run.", Err: err}
}

// ---- /training ----

type trainingListView struct {
	Rows []runRow
	// Live: some run's job has not ended, so the list refreshes.
	Live bool
}

type runRow struct {
	ID           string
	Href         string
	Algorithm    string
	Task         string
	Data         string
	State        job.State // "" when the job is gone
	Class        string
	Reason       string
	Epochs       int
	Metric       string // accuracy or RMSE, once evaluated
	Value        string
	Set          string
	Started      string
	StartedTitle string
}

func (h *handler) trainingData(ctx context.Context) (*trainingListView, error) {
	list, err := h.src.TrainingRuns().List(ctx)
	if err != nil {
		return nil, &httpError{Status: http.StatusInternalServerError, Msg: "Could not read the training runs.", Err: err}
	}
	now := h.now()
	v := &trainingListView{}
	for _, s := range list { // newest (highest job id) first
		id := strconv.FormatInt(s.ID, 10)
		row := runRow{ID: id, Href: trainingHref(id), Algorithm: s.Algorithm, Task: s.Task, Data: s.Data,
			Epochs: s.Epochs, Started: dash, StartedTitle: s.StartedAt}
		if t, err := time.Parse(time.RFC3339, s.StartedAt); err == nil {
			row.Started, row.StartedTitle = relTime(now, t), absTime(t)
		}
		if s.Value != nil {
			row.Set = s.Set
			if s.Metric == "rmse" {
				row.Metric, row.Value = "RMSE", formatFloat(*s.Value)
			} else {
				row.Metric, row.Value = s.Metric, formatAccuracy(*s.Value)
			}
		}
		// One lookup per run, as the API does: the list reads two files
		// of each run already.
		j, err := h.runJob(ctx, id)
		if err != nil {
			// A state is not worth failing the list for.
			h.log.Warn("dashboard: reading a training run's job", "job", id, "err", err)
		}
		if j != nil {
			row.State, row.Class, row.Reason = j.State, stateClass(j.State), j.Reason
			v.Live = v.Live || !j.State.Terminal()
		}
		v.Rows = append(v.Rows, row)
	}
	return v, nil
}

func (h *handler) trainingPage(r *http.Request) (*pageResult, error) {
	v, err := h.trainingData(r.Context())
	if err != nil {
		return nil, err
	}
	return &pageResult{Template: "training", Title: "training", Nav: "training", Content: v}, nil
}

func (h *handler) trainingFragment(r *http.Request) (string, any, error) {
	v, err := h.trainingData(r.Context())
	if err != nil {
		return "", nil, err
	}
	return "training_runs", v, nil
}

// ---- /training/{id} ----

type runView struct {
	ID        string
	Algorithm string
	Task      string // "classification, 3 classes"
	State     job.State
	Class     string
	Terminal  bool // the job has ended (or is gone): nothing will change
	Fields    []field
	// Progress is where a running run is, from its latest metric point;
	// training.js keeps it current.
	Progress       string
	ModelHref      string // "" until the model is complete
	Stopped        string // why the run stopped before its last epoch
	Classification bool
	// Workers is the number of data-parallel ranks (0 for a run of one),
	// whose metric points carry each rank's throughput and time: the page
	// draws them. PipelineStages is the number of pipeline stages (0 for
	// none), said in the header only.
	Workers        int
	PipelineStages int

	HParams    []hparamRow
	Input      string
	Outputs    string
	Parameters string
	Layers     []layerRow
	LogEvery   string

	Eval        *evalView
	EvalPending string // what stands in for the evaluation until there is one

	Data runChartData
}

type hparamRow struct {
	Name  string
	Value string
	Doc   string
	Set   bool // given by the user, not the algorithm's default
}

type layerRow struct {
	Index  string // "3", "3.1" inside a residual block
	Type   string
	Detail string
	Depth  int
}

type evalView struct {
	Set         string
	Rows        string
	Summary     []field
	PerClass    []classRow
	Heatmap     bool
	HeatmapNote string
	Chart       confusionData
}

type classRow struct {
	Class     string
	Precision string
	Recall    string
	F1        string
	Support   string
}

// confusionData is what training.js draws as the confusion heatmap.
type confusionData struct {
	Classes []string `json:"classes"`
	Matrix  [][]int  `json:"matrix"` // [true][predicted]
}

// runChartData is what training.js needs: the metric points so far and
// where to poll for more while the job runs.
type runChartData struct {
	Task        string        `json:"task"`
	Epochs      int           `json:"epochs"`
	State       job.State     `json:"state"`
	Live        bool          `json:"live"`
	MetricsURL  string        `json:"metrics_url"`
	FragmentURL string        `json:"fragment_url"`
	Total       int           `json:"total"`
	Points      []train.Point `json:"points"`
	// Workers, for a data-parallel run, is its number of ranks: the
	// points' rank{r}_… values are drawn per rank (0..Workers-1).
	Workers int `json:"workers,omitempty"`
}

func (h *handler) trainingRunPage(r *http.Request) (*pageResult, error) {
	id, ids, err := trainingRunID(r)
	if err != nil {
		return nil, err
	}
	v, err := h.runData(r.Context(), id, ids, true)
	if err != nil {
		return nil, err
	}
	return &pageResult{Template: "training_run", Title: "training run " + ids, Nav: "training", Content: v}, nil
}

// trainingRunFragment is the run's header and evaluation, which the page
// swaps in when the job's state changes.
func (h *handler) trainingRunFragment(r *http.Request) (string, any, error) {
	id, ids, err := trainingRunID(r)
	if err != nil {
		return "", nil, err
	}
	v, err := h.runData(r.Context(), id, ids, false)
	if err != nil {
		return "", nil, err
	}
	return "training_fragment", v, nil
}

// runData reads run id: its job first, then its files, so that when the
// job has ended the files read are its last.
func (h *handler) runData(ctx context.Context, id int64, ids string, withMetrics bool) (*runView, error) {
	j, err := h.runJob(ctx, ids)
	if err != nil {
		return nil, sourceErr("job", err)
	}
	runs := h.src.TrainingRuns()
	var ri train.RunInfo
	if err := readRunJSON(ctx, runs, id, train.RunFile, &ri); err != nil {
		return nil, trainingErr(err)
	}
	var meta *train.ModelMetadata
	var m train.ModelMetadata
	switch err := readRunJSON(ctx, runs, id, train.MetadataFile, &m); {
	case err == nil:
		meta = &m
	case !errors.Is(err, train.ErrNoRun):
		return nil, trainingErr(err)
	}
	var ev *train.Evaluation
	var e train.Evaluation
	switch err := readRunJSON(ctx, runs, id, train.EvaluationFile, &e); {
	case err == nil:
		ev = &e
	case !errors.Is(err, train.ErrNoRun):
		return nil, trainingErr(err)
	}
	var points []train.Point
	if withMetrics {
		if points, err = runs.Metrics(ctx, id); err != nil {
			return nil, trainingErr(err)
		}
	}

	now := h.now()
	v := &runView{
		ID: ids, Algorithm: ri.Config.Algorithm, Task: taskText(ri.Data),
		Terminal:       j == nil || j.State.Terminal(),
		Classification: ri.Data.Task == train.Classification,
		Input:          shapeText(ri.Spec.Input),
		Parameters:     groupDigits(int64(ri.Params)),
		LogEvery:       ri.HP["log_every"],
	}
	if j != nil {
		v.State, v.Class = j.State, stateClass(j.State)
	}
	if ri.Data.Task == train.Classification {
		v.Outputs = fmt.Sprintf("%d classes", len(ri.Data.Classes))
	} else {
		v.Outputs = "1 value"
	}
	v.Data = runChartData{Task: ri.Data.Task, Epochs: ri.Config.Epochs, State: v.State, Live: !v.Terminal,
		MetricsURL: "/ui/training/" + ids + "/metrics", FragmentURL: "/ui/training/" + ids,
		Total: len(points), Points: points}
	if v.Data.Points == nil {
		v.Data.Points = []train.Point{}
	}
	// A run of several ranks says so in run.json; its config asked for
	// them too.
	if workers := cmp.Or(ri.Workers, ri.Config.Workers); workers > 1 {
		v.Workers, v.Data.Workers = workers, workers
	}
	if stages := cmp.Or(ri.PipelineStages, ri.Config.PipelineStages); stages > 1 {
		v.PipelineStages = stages
	}
	if n := len(points); n > 0 && !v.Terminal {
		v.Progress = progressText(points[n-1], ri.Config.Epochs)
	}

	add := func(f field) { v.Fields = append(v.Fields, f) }
	if j != nil && j.Reason != "" {
		add(field{Label: "Reason", Value: j.Reason})
	}
	add(field{Label: "Data", Value: ri.Data.Source, Mono: true})
	if ri.Config.Test != "" {
		add(field{Label: "Test data", Value: ri.Config.Test, Mono: true})
	}
	if ri.Data.Label != "" {
		add(field{Label: "Label", Value: ri.Data.Label, Mono: true})
	}
	rows := groupDigits(int64(ri.Data.Train)) + " training"
	if ri.Data.Test > 0 {
		rows += " · " + groupDigits(int64(ri.Data.Test)) + " test"
	}
	rowsTitle := ""
	if share := ri.HP["validation"]; share != "" && share != "0" {
		rowsTitle = "a share of " + share + " of the training rows is held out for validation"
	}
	add(field{Label: "Rows", Value: rows, Title: rowsTitle})
	epochs := strconv.Itoa(ri.Config.Epochs)
	if meta != nil {
		epochs = fmt.Sprintf("%d of %d", meta.Epochs, ri.Config.Epochs)
	}
	add(field{Label: "Epochs", Value: epochs})
	if meta != nil {
		add(field{Label: "Steps", Value: groupDigits(int64(meta.Steps))})
		if meta.BestEpoch > 0 {
			add(field{Label: "Best epoch", Value: strconv.Itoa(meta.BestEpoch),
				Title: "the epoch of the lowest validation loss, whose weights the model has"})
		}
	}
	add(field{Label: "Parameters", Value: v.Parameters})
	if v.Workers > 1 {
		add(field{Label: "Workers", Value: fmt.Sprintf("%d (data parallel)", v.Workers),
			Title: fmt.Sprintf("%d ranks each train on their share of every global batch of %d × batch_size rows; "+
				"their gradients are averaged by all-reduce before each step", v.Workers, v.Workers)})
	}
	if v.PipelineStages > 1 {
		title := fmt.Sprintf("the network is cut into %d stages, one per rank, and each batch flows through them", v.PipelineStages)
		if mb := ri.HP["micro_batches"]; mb != "" {
			title += " in " + mb + " micro-batches"
		}
		add(field{Label: "Pipeline stages", Value: strconv.Itoa(v.PipelineStages), Title: title})
	}
	add(field{Label: "BLAS", Value: ri.BLAS, Mono: true})
	add(field{Label: "Seed", Value: strconv.FormatUint(ri.Config.Seed, 10)})
	add(field{Label: "Started", Value: relTime(now, ri.StartedAt), Title: absTime(ri.StartedAt)})
	if meta != nil {
		add(field{Label: "Finished", Value: relTime(now, meta.FinishedAt), Title: absTime(meta.FinishedAt)})
		add(field{Label: "Took", Value: humanDuration(time.Duration(meta.Seconds * float64(time.Second)))})
		v.Stopped = meta.Stopped
	}
	jobField := field{Label: "Job", Value: ids, Href: "/jobs/" + ids, Mono: true}
	if j == nil {
		jobField = field{Label: "Job", Value: ids + " (no longer in the store)", Mono: true}
	}
	add(jobField)
	if meta != nil {
		// model.json is written after model.onnx: the model is complete.
		v.ModelHref = trainingHref(ids) + "/" + train.ModelFile
		mf := field{Label: "Model", Value: train.ModelFile, Href: v.ModelHref, Mono: true}
		if a, err := runs.Bucket.Attributes(ctx, train.RunDir(id)+train.ModelFile); err == nil {
			mf.Value += " (" + humanBytes(a.Size) + ")"
		}
		add(mf)
	}

	given := ri.Config.HP
	for _, name := range slices.Sorted(maps.Keys(ri.HP)) {
		_, set := given[name]
		v.HParams = append(v.HParams, hparamRow{Name: name, Value: ri.HP[name], Doc: train.HParamDoc(name), Set: set})
	}
	v.Layers = layerRows(ri.Spec.Layers, "", 0)

	switch {
	case ev != nil:
		v.Eval = evalOf(ev, ri.Data.Task)
	case v.Terminal:
		v.EvalPending = "The run ended without an evaluation."
		if j != nil && j.State == job.Succeeded {
			v.EvalPending = "No evaluation was written."
		}
	default:
		v.EvalPending = "The evaluation appears here when the run ends."
	}
	return v, nil
}

func readRunJSON(ctx context.Context, runs train.Runs, id int64, file string, v any) error {
	data, err := runs.Raw(ctx, id, file)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("run %d: %s: %w", id, file, err)
	}
	return nil
}

func taskText(d train.DataInfo) string {
	if d.Task != train.Classification {
		return d.Task
	}
	return fmt.Sprintf("%s, %d classes", d.Task, len(d.Classes))
}

// shapeText writes a per-sample input shape: "1×28×28", or "13 features"
// for a table's rows.
func shapeText(shape []int) string {
	if len(shape) == 1 {
		return fmt.Sprintf("%d features", shape[0])
	}
	s := make([]string, len(shape))
	for i, d := range shape {
		s[i] = strconv.Itoa(d)
	}
	return strings.Join(s, "×")
}

func progressText(p train.Point, epochs int) string {
	return fmt.Sprintf("epoch %d of %d · step %s", p.Epoch, epochs, groupDigits(int64(p.Step)))
}

// formatAccuracy writes a share such as an accuracy to four decimals:
// small differences between runs matter.
func formatAccuracy(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }

// layerRows lists the network's layers, a residual block's body indented
// under it.
func layerRows(specs []nn.LayerSpec, prefix string, depth int) []layerRow {
	var out []layerRow
	for i, l := range specs {
		idx := prefix + strconv.Itoa(i+1)
		out = append(out, layerRow{Index: idx, Type: l.Type, Detail: layerDetail(l), Depth: depth})
		if len(l.Layers) > 0 {
			out = append(out, layerRows(l.Layers, idx+".", depth+1)...)
		}
	}
	return out
}

func layerDetail(l nn.LayerSpec) string {
	var parts []string
	add := func(format string, a ...any) { parts = append(parts, fmt.Sprintf(format, a...)) }
	switch l.Type {
	case "dense":
		add("%d units", l.Units)
	case "conv2d":
		add("%d filters", l.Filters)
		add("%d×%d kernel", l.Kernel, l.Kernel)
		if l.Stride > 1 {
			add("stride %d", l.Stride)
		}
		if l.Padding > 0 {
			add("padding %d", l.Padding)
		}
	case "maxpool2d", "avgpool2d":
		add("%d×%d", l.Kernel, l.Kernel)
		if l.Stride > 0 && l.Stride != l.Kernel {
			add("stride %d", l.Stride)
		}
		if l.Padding > 0 {
			add("padding %d", l.Padding)
		}
	case "dropout":
		add("rate %s", strconv.FormatFloat(l.Rate, 'g', -1, 64))
	case "residual":
		add("%d layers, y = relu(x + body(x))", len(l.Layers))
	}
	if l.Init != "" {
		add("init %s", l.Init)
	}
	return strings.Join(parts, ", ")
}

func evalOf(ev *train.Evaluation, task string) *evalView {
	v := &evalView{Set: ev.Set, Rows: groupDigits(int64(ev.Rows))}
	add := func(label, value, title string) {
		v.Summary = append(v.Summary, field{Label: label, Value: value, Title: title})
	}
	if task != train.Classification {
		add("RMSE", formatFloat(ev.RMSE), "root mean squared error, in the target's units")
		add("MAE", formatFloat(ev.MAE), "mean absolute error, in the target's units")
		add("R²", formatFloat(ev.R2), "coefficient of determination")
		add("Loss", formatFloat(ev.Loss), "mean squared error of the standardised target")
		return v
	}
	add("Accuracy", formatAccuracy(ev.Accuracy), "")
	add("Macro precision", formatAccuracy(ev.MacroPrecision), "the mean over classes")
	add("Macro recall", formatAccuracy(ev.MacroRecall), "the mean over classes")
	add("Macro F1", formatAccuracy(ev.MacroF1), "the mean over classes")
	add("Loss", formatFloat(ev.Loss), "cross-entropy")
	for _, c := range ev.PerClass {
		v.PerClass = append(v.PerClass, classRow{Class: c.Class, Precision: formatAccuracy(c.Precision),
			Recall: formatAccuracy(c.Recall), F1: formatAccuracy(c.F1), Support: groupDigits(int64(c.Support))})
	}
	k := len(ev.Classes)
	switch {
	case k == 0 || len(ev.ConfusionMatrix) != k:
		v.HeatmapNote = "No confusion matrix."
	case k > maxConfusionClasses:
		v.HeatmapNote = fmt.Sprintf("The confusion matrix of %d classes is too large to draw (at most %d); "+
			"GET /api/v1/training/{id}/evaluation has it.", k, maxConfusionClasses)
	default:
		v.Heatmap = true
		v.Chart = confusionData{Classes: ev.Classes, Matrix: ev.ConfusionMatrix}
	}
	return v
}

// ---- /ui/training/{id}/metrics ----

// metricsView is the metric points from index From on, as
// GET /api/v1/training/{id}/metrics serves them, with the job's state so
// that the page knows when to stop asking. Total below the From asked
// for means the run resumed from a checkpoint and rewrote the points
// after it: ask again from 0.
type metricsView struct {
	Total    int           `json:"total"`
	From     int           `json:"from"`
	Points   []train.Point `json:"points"`
	State    job.State     `json:"state"`
	Terminal bool          `json:"terminal"`
}

func (h *handler) trainingMetrics(w http.ResponseWriter, r *http.Request) {
	fail := func(err error) {
		he := asHTTPError(err)
		h.logFailure(r, he)
		http.Error(w, he.Msg, he.Status)
	}
	id, ids, err := trainingRunID(r)
	if err != nil {
		fail(err)
		return
	}
	from := 0
	if s := r.URL.Query().Get("from"); s != "" {
		if from, err = strconv.Atoi(s); err != nil || from < 0 {
			fail(badRequest("from must be a number ≥ 0"))
			return
		}
	}
	ctx := r.Context()
	// The job first: points read after it ended are all there will be.
	j, err := h.runJob(ctx, ids)
	if err != nil {
		fail(sourceErr("job", err))
		return
	}
	points, err := h.src.TrainingRuns().Metrics(ctx, id)
	if err != nil {
		fail(trainingErr(err))
		return
	}
	v := metricsView{Total: len(points), From: min(from, len(points)), Terminal: j == nil || j.State.Terminal()}
	v.Points = points[v.From:]
	if j != nil {
		v.State = j.State
	}
	body, err := json.Marshal(v)
	if err != nil {
		fail(err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}

// ---- /training/{id}/model.onnx ----

// trainingModel streams a run's ONNX model, behind the dashboard's login
// like its pages, so that a browser downloads it without the API token.
func (h *handler) trainingModel(w http.ResponseWriter, r *http.Request) {
	fail := func(err error) {
		he := asHTTPError(err)
		h.logFailure(r, he)
		h.errorPage(w, r, he.Status, he.Msg, true)
	}
	id, ids, err := trainingRunID(r)
	if err != nil {
		fail(err)
		return
	}
	ctx := r.Context()
	runs := h.src.TrainingRuns()
	// model.json is written after model.onnx: without it the model may be
	// half written (a retried job exports again).
	if _, err := runs.Raw(ctx, id, train.MetadataFile); err != nil {
		if errors.Is(err, train.ErrNoRun) {
			fail(notFound("Training run " + ids + " has no model (yet)."))
			return
		}
		fail(trainingErr(err))
		return
	}
	rd, err := runs.Bucket.NewReader(ctx, train.RunDir(id)+train.ModelFile, nil)
	if err != nil {
		if blob.IsNotFound(err) {
			fail(notFound("Training run " + ids + " has no model."))
			return
		}
		fail(trainingErr(err))
		return
	}
	defer rd.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="hpcml-training-`+ids+`.onnx"`)
	w.Header().Set("Cache-Control", "no-store")
	// ServeContent answers range requests (a resumed download) and sets
	// the length from the reader's size.
	http.ServeContent(w, r, "", rd.ModTime(), rd)
}
