package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/hpcml/hpcml/internal/analysis"
)

// Reports live in the server's storage (internal/analysis.Reports), put
// there by the merge job of a distributed analysis or by a client that
// ran one itself.

func (h *Handler) listReports(w http.ResponseWriter, r *http.Request) error {
	if kind := r.URL.Query().Get("kind"); kind != "" && kind != analysis.KindProfile {
		return badRequest("invalid", fmt.Sprintf("kind %q: reports are of kind %s", kind, analysis.KindProfile))
	}
	list, err := analysis.Reports{Bucket: h.cfg.Storage}.List(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (h *Handler) getReport(w http.ResponseWriter, r *http.Request) error {
	if kind := r.PathValue("kind"); kind != analysis.KindProfile {
		return notFound(fmt.Sprintf("no report kind %q", kind))
	}
	id := r.PathValue("id")
	if err := analysis.CheckID(id); err != nil {
		return badRequest("invalid", err.Error())
	}
	data, err := analysis.Reports{Bucket: h.cfg.Storage}.Raw(r.Context(), id)
	if errors.Is(err, analysis.ErrNoReport) {
		return notFound(err.Error())
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(data)
	return nil
}

// putReport stores a report a client computed (`hpcml data profile
// --save`), checked as a report first so that what is stored reads back.
func (h *Handler) putReport(w http.ResponseWriter, r *http.Request) error {
	if kind := r.PathValue("kind"); kind != analysis.KindProfile {
		return notFound(fmt.Sprintf("no report kind %q", kind))
	}
	var rep analysis.ProfileReport
	if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("invalid", "malformed report: "+err.Error())
	}
	if id := r.PathValue("id"); rep.ID != id {
		return badRequest("invalid", fmt.Sprintf("report id %q in the body, %q in the path", rep.ID, id))
	}
	sum, err := analysis.Reports{Bucket: h.cfg.Storage}.Put(r.Context(), &rep)
	if err != nil {
		if errors.Is(err, analysis.ErrInvalidReport) {
			return badRequest("invalid", err.Error())
		}
		return err
	}
	writeJSON(w, http.StatusCreated, sum)
	return nil
}
