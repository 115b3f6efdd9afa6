package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/hpcml/hpcml/internal/deploy"
	"github.com/hpcml/hpcml/internal/store"
)

// endpointErr maps the controller's errors: a conflict (a deployment
// runs, the endpoint is being deleted, the name is taken) is 409, an
// unknown endpoint 404 with its name.
func endpointErr(name string, err error) error {
	switch {
	case errors.Is(err, deploy.ErrConflict):
		return &apiError{http.StatusConflict, "conflict", err.Error(), ""}
	case errors.Is(err, store.ErrNotFound):
		return notFound(fmt.Sprintf("endpoint %s does not exist", name))
	}
	return err
}

func (h *Handler) endpoints() (*deploy.Controller, error) {
	if h.cfg.Endpoints == nil {
		return nil, &apiError{http.StatusServiceUnavailable, "unavailable", "endpoints are not enabled on this server", ""}
	}
	return h.cfg.Endpoints, nil
}

func (h *Handler) listEndpoints(w http.ResponseWriter, r *http.Request) error {
	c, err := h.endpoints()
	if err != nil {
		return err
	}
	list, err := c.List(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (h *Handler) createEndpoint(w http.ResponseWriter, r *http.Request) error {
	c, err := h.endpoints()
	if err != nil {
		return err
	}
	var req deploy.CreateRequest
	if err := decodeJSON(r, &req, "endpoint"); err != nil {
		return err
	}
	if _, err := c.Create(r.Context(), req); err != nil {
		return endpointErr(req.Name, err)
	}
	st, err := c.Status(r.Context(), req.Name)
	if err != nil {
		return endpointErr(req.Name, err)
	}
	writeJSON(w, http.StatusCreated, st)
	return nil
}

func (h *Handler) getEndpoint(w http.ResponseWriter, r *http.Request) error {
	c, err := h.endpoints()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	st, err := c.Status(r.Context(), name)
	if err != nil {
		return endpointErr(name, err)
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// updateEndpoint: 202 when a deployment was started (the controller
// carries it out), 200 for an in-place change or a dry run.
func (h *Handler) updateEndpoint(w http.ResponseWriter, r *http.Request) error {
	c, err := h.endpoints()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	var req deploy.UpdateRequest
	if err := decodeJSON(r, &req, "endpoint update"); err != nil {
		return err
	}
	res, err := c.Update(r.Context(), name, req)
	if err != nil {
		return endpointErr(name, err)
	}
	status := http.StatusOK
	if res.Deployment != nil && !res.DryRun {
		status = http.StatusAccepted
	}
	writeJSON(w, status, res)
	return nil
}

func (h *Handler) deleteEndpoint(w http.ResponseWriter, r *http.Request) error {
	c, err := h.endpoints()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	e, err := c.Delete(r.Context(), name)
	if err != nil {
		return endpointErr(name, err)
	}
	writeJSON(w, http.StatusAccepted, e)
	return nil
}

func (h *Handler) endpointDeployments(w http.ResponseWriter, r *http.Request) error {
	c, err := h.endpoints()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	limit := 0
	if s := r.URL.Query().Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 1000 {
			return badRequest("invalid", "limit: want 1..1000")
		}
	}
	list, err := c.History(r.Context(), name, limit)
	if err != nil {
		return endpointErr(name, err)
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}
