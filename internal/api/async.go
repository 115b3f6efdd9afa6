package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/hpcml/hpcml/internal/deploy"
	"github.com/hpcml/hpcml/internal/deploy/asyncq"
	"github.com/hpcml/hpcml/internal/store"
)

// asyncErr maps the dispatcher's errors: an unknown endpoint or request
// is 404, a real-time endpoint 400.
func asyncErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound(err.Error())
	case errors.Is(err, deploy.ErrNotAsync):
		return badRequest("invalid", err.Error())
	}
	return err
}

func (h *Handler) async() (*deploy.Dispatcher, error) {
	if h.cfg.Async == nil {
		return nil, &apiError{http.StatusServiceUnavailable, "unavailable", "asynchronous inference is not enabled on this server", ""}
	}
	return h.cfg.Async, nil
}

// listAsync lists an asynchronous endpoint's requests, newest first
// (submitting is the gateway's: POST /endpoints/{name}/async-invocations).
func (h *Handler) listAsync(w http.ResponseWriter, r *http.Request) error {
	d, err := h.async()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	state := asyncq.State(q.Get("status"))
	if state != "" && !state.Valid() {
		return &apiError{http.StatusBadRequest, "invalid", "status: want queued, running, succeeded or failed", "status"}
	}
	limit := 0
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 1000 {
			return &apiError{http.StatusBadRequest, "invalid", "limit: want 1..1000", "limit"}
		}
	}
	list, err := d.List(r.Context(), r.PathValue("name"), state, limit)
	if err != nil {
		return asyncErr(err)
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (h *Handler) getAsync(w http.ResponseWriter, r *http.Request) error {
	d, err := h.async()
	if err != nil {
		return err
	}
	st, err := d.Get(r.Context(), r.PathValue("name"), r.PathValue("id"))
	if err != nil {
		return asyncErr(err)
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
