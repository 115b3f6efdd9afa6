package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/hpcml/hpcml/internal/registry"
)

// The model registry (internal/registry): models, their immutable
// versions and aliases. Registering reads and checks the whole artefact,
// so it answers once the version exists (201) or not at all.

// models returns the registry, or an error when the server has none.
func (h *Handler) models() (*registry.Registry, error) {
	if h.cfg.Models == nil {
		return nil, &apiError{http.StatusServiceUnavailable, "unavailable", "this server has no model registry", ""}
	}
	return h.cfg.Models, nil
}

// modelError maps the registry's errors onto the API's: caller mistakes
// are 400 naming the field, a not-yet-finished training job 409; not
// found passes through (store.ErrNotFound, 404).
func modelError(err error) error {
	var ie *registry.InputError
	switch {
	case errors.As(err, &ie):
		return &apiError{http.StatusBadRequest, "invalid", ie.Message, ie.Field}
	case errors.Is(err, registry.ErrConflict):
		return &apiError{http.StatusConflict, "conflict", err.Error(), ""}
	}
	return err
}

func (h *Handler) registerModel(w http.ResponseWriter, r *http.Request) error {
	reg, err := h.models()
	if err != nil {
		return err
	}
	var req registry.RegisterRequest
	if err := decodeJSON(r, &req, "model registration (name, artifact or training_job, description, metadata, metrics)"); err != nil {
		return err
	}
	v, err := reg.Register(r.Context(), req)
	if err != nil {
		return modelError(err)
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/models/%s/versions/%d", v.Name, v.Version))
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func (h *Handler) listModels(w http.ResponseWriter, r *http.Request) error {
	reg, err := h.models()
	if err != nil {
		return err
	}
	list, err := reg.List(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// model reads the {name} path value's model.
func (h *Handler) model(r *http.Request) (*registry.Model, error) {
	reg, err := h.models()
	if err != nil {
		return nil, err
	}
	m, err := reg.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		return nil, modelError(err)
	}
	return m, nil
}

func (h *Handler) getModel(w http.ResponseWriter, r *http.Request) error {
	m, err := h.model(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

func (h *Handler) listModelVersions(w http.ResponseWriter, r *http.Request) error {
	m, err := h.model(r)
	if err != nil {
		return err
	}
	out := make([]versionView, 0, len(m.Versions))
	for _, v := range m.Versions {
		out = append(out, versionView{Version: v, Aliases: registry.AliasesOf(m.Aliases, v.Version)})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// versionView is a version with the aliases that point at it now (they
// move; the version record itself never changes).
type versionView struct {
	registry.Version
	Aliases []string `json:"aliases"`
}

// resolveVersion reads the {name} and {ref} path values: a version number,
// an alias or "latest".
func (h *Handler) resolveVersion(r *http.Request) (*registry.Registry, *registry.Version, error) {
	reg, err := h.models()
	if err != nil {
		return nil, nil, err
	}
	ref, err := registry.ParseRef(r.PathValue("name") + ":" + r.PathValue("ref"))
	if err != nil {
		return nil, nil, badRequest("invalid", err.Error())
	}
	v, err := reg.Resolve(r.Context(), ref)
	if err != nil {
		return nil, nil, modelError(err)
	}
	return reg, v, nil
}

func (h *Handler) getModelVersion(w http.ResponseWriter, r *http.Request) error {
	reg, v, err := h.resolveVersion(r)
	if err != nil {
		return err
	}
	view := versionView{Version: *v, Aliases: []string{}}
	if m, err := reg.Get(r.Context(), v.Name); err == nil {
		view.Aliases = registry.AliasesOf(m.Aliases, v.Version)
	}
	writeJSON(w, http.StatusOK, view)
	return nil
}

func (h *Handler) downloadModelVersion(w http.ResponseWriter, r *http.Request) error {
	reg, v, err := h.resolveVersion(r)
	if err != nil {
		return err
	}
	rd, err := reg.Open(r.Context(), v)
	if err != nil {
		return err
	}
	defer rd.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(v.Size, 10))
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%d.onnx"`, v.Name, v.Version))
	// The version's number, resolved from an alias or "latest", and the
	// checksum a client verifies the body against.
	w.Header().Set("X-Hpcml-Model-Version", strconv.Itoa(v.Version))
	w.Header().Set("X-Hpcml-Sha256", v.SHA256)
	w.Header().Set("ETag", `"sha256:`+v.SHA256+`"`)
	if _, err := io.Copy(w, rd); err != nil {
		h.cfg.Log.Warn("model download cut short", "model", v.Name, "version", v.Version, "err", err)
	}
	return nil
}

// aliasBody is PUT .../aliases/{alias}'s body.
type aliasBody struct {
	Version int `json:"version"`
}

// aliasResult answers an alias change.
type aliasResult struct {
	Model    string `json:"model"`
	Alias    string `json:"alias"`
	Version  int    `json:"version"`
	Previous int    `json:"previous,omitempty"`
}

func (h *Handler) setModelAlias(w http.ResponseWriter, r *http.Request) error {
	reg, err := h.models()
	if err != nil {
		return err
	}
	var body aliasBody
	if err := decodeJSON(r, &body, `alias: want {"version": N}`); err != nil {
		return err
	}
	name, alias := r.PathValue("name"), r.PathValue("alias")
	prev, err := reg.SetAlias(r.Context(), name, alias, body.Version)
	if err != nil {
		return modelError(err)
	}
	writeJSON(w, http.StatusOK, aliasResult{Model: name, Alias: alias, Version: body.Version, Previous: prev})
	return nil
}

func (h *Handler) deleteModelAlias(w http.ResponseWriter, r *http.Request) error {
	reg, err := h.models()
	if err != nil {
		return err
	}
	if err := reg.DeleteAlias(r.Context(), r.PathValue("name"), r.PathValue("alias")); err != nil {
		return modelError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
