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

// trainingFile is the file of a run the API serves by a route name, and
// its content type.
func trainingFile(name string) (file, contentType string, ok bool) {
	switch name {
	case "run":
		return train.RunFile, "application/json", true
	case "model":
		return train.MetadataFile, "application/json", true
	case "evaluation":
		return train.EvaluationFile, "application/json", true
	case "onnx":
		return train.ModelFile, "application/octet-stream", true
	}
	return "", "", false
}

func (h *Handler) getTrainingFile(w http.ResponseWriter, r *http.Request) error {
	id, err := runID(r)
	if err != nil {
		return err
	}
	file, contentType, ok := trainingFile(r.PathValue("file"))
	if !ok {
		return notFound(fmt.Sprintf("no training file %q (run, model, evaluation, onnx, metrics)", r.PathValue("file")))
	}
	data, err := h.runs().Raw(r.Context(), id, file)
	if errors.Is(err, train.ErrNoRun) {
		return notFound(err.Error())
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentType)
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
