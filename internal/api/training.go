package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/hpcml/hpcml/internal/train"
)

// Training runs live in the server's storage under training/<job id>/,
// written by the training job as it goes (internal/train.Runs); the job
// itself says whether the run is still going.

func (h *Handler) runs() train.Runs { return train.Runs{Bucket: h.cfg.Storage} }

// withJob adds the state of the run's job.
func (h *Handler) withJob(r *http.Request, s train.RunSummary) train.RunSummary {
	if j, err := h.cfg.Store.GetJob(r.Context(), s.ID); err == nil {
		s.State, s.Reason = string(j.State), j.Reason
	}
	return s
}

func (h *Handler) listTraining(w http.ResponseWriter, r *http.Request) error {
	list, err := h.runs().List(r.Context())
	if err != nil {
		return err
	}
	out := make([]train.RunSummary, 0, len(list))
	for _, s := range list {
		out = append(out, h.withJob(r, s))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func runID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, badRequest("invalid", fmt.Sprintf("training run id %q is not a job id", r.PathValue("id")))
	}
	return id, nil
}

func (h *Handler) getTraining(w http.ResponseWriter, r *http.Request) error {
	id, err := runID(r)
	if err != nil {
		return err
	}
	s, err := h.runs().Summary(r.Context(), id)
	if errors.Is(err, train.ErrNoRun) {
		return notFound(fmt.Sprintf("no training run %d", id))
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h.withJob(r, *s))
	return nil
}

// trainingFiles are the files of a run the API serves, by route name.
var trainingFiles = map[string]struct{ file, contentType string }{
	"run":        {train.RunFile, "application/json"},
	"model":      {train.MetadataFile, "application/json"},
	"evaluation": {train.EvaluationFile, "application/json"},
	"onnx":       {train.ModelFile, "application/octet-stream"},
}

func (h *Handler) trainingFile(w http.ResponseWriter, r *http.Request) error {
	id, err := runID(r)
	if err != nil {
		return err
	}
	f, ok := trainingFiles[r.PathValue("file")]
	if !ok {
		return notFound(fmt.Sprintf("no training file %q (run, model, evaluation, onnx, metrics)", r.PathValue("file")))
	}
	data, err := h.runs().Raw(r.Context(), id, f.file)
	if errors.Is(err, train.ErrNoRun) {
		return notFound(err.Error())
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", f.contentType)
	w.Write(data)
	return nil
}

// trainingMetrics serves the metric points from index ?from= on, with the
// total, so a poller asks only for what is new (a resumed run rewrites
// points after its checkpoint: total below from means start again).
func (h *Handler) trainingMetrics(w http.ResponseWriter, r *http.Request) error {
	id, err := runID(r)
	if err != nil {
		return err
	}
	from := 0
	if v := r.URL.Query().Get("from"); v != "" {
		if from, err = strconv.Atoi(v); err != nil || from < 0 {
			return badRequest("invalid", fmt.Sprintf("from %q is not an index ≥ 0", v))
		}
	}
	points, err := h.runs().Metrics(r.Context(), id)
	if errors.Is(err, train.ErrNoRun) {
		return notFound(fmt.Sprintf("no training run %d", id))
	}
	if err != nil {
		return err
	}
	total := len(points)
	points = points[min(from, total):]
	writeJSON(w, http.StatusOK, map[string]any{"total": total, "from": min(from, total), "points": points})
	return nil
}
