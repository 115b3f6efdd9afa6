package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/dataset"
	"github.com/hpcml/hpcml/internal/job"
)

func (h *Handler) listDatasets(w http.ResponseWriter, r *http.Request) error {
	ds, err := h.cfg.Store.ListDatasets(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ds)
	return nil
}

func (h *Handler) getDataset(w http.ResponseWriter, r *http.Request) error {
	d, err := h.cfg.Store.GetDataset(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// versionWithManifest is a version and what it holds.
type versionWithManifest struct {
	dataset.Version
	Manifest dataset.Manifest `json:"manifest"`
}

func (h *Handler) getDatasetVersion(w http.ResponseWriter, r *http.Request) error {
	ref, err := dataset.ParseRef(r.PathValue("name") + "@" + r.PathValue("version"))
	if err != nil {
		return badRequest("invalid", err.Error())
	}
	d, err := h.cfg.Store.GetDataset(r.Context(), ref.Name)
	if err != nil {
		return err
	}
	var v *dataset.Version
	for i := range d.Versions {
		if d.Versions[i].Version == ref.Version || ref.Version == 0 && i == 0 {
			v = &d.Versions[i]
			break
		}
	}
	if v == nil {
		return notFound(fmt.Sprintf("dataset %s has no version %d", ref.Name, ref.Version))
	}
	data, err := h.cfg.Storage.ReadAll(r.Context(), v.ManifestKey)
	if err != nil {
		return fmt.Errorf("read manifest of %s@%d: %w", v.Dataset, v.Version, err)
	}
	out := versionWithManifest{Version: *v}
	if err := json.Unmarshal(data, &out.Manifest); err != nil {
		return fmt.Errorf("manifest of %s@%d: %w", v.Dataset, v.Version, err)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// addDatasetVersion stores a manifest as the next version of a dataset:
// 201 with the new version, or 200 with the latest one when it already
// holds exactly these objects. The manifest is written to storage, under
// its digest, before any version points at it.
func (h *Handler) addDatasetVersion(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if !dataset.ValidName(name) {
		return &job.FieldError{Field: "name", Message: fmt.Sprintf("%q is not a valid dataset name (letters, digits, . _ -; at most 128)", name)}
	}
	var m dataset.Manifest
	if err := decodeJSON(r, &m, "manifest"); err != nil {
		return err
	}
	if err := m.Validate(); err != nil {
		return &job.FieldError{Field: "objects", Message: err.Error()}
	}
	m.Source = blob.Redact(m.Source)
	digest := m.Digest()
	key := dataset.ManifestKey(name, digest)
	data, err := json.Marshal(&m)
	if err != nil {
		return err
	}
	if err := h.cfg.Storage.WriteAll(r.Context(), key, data, nil); err != nil {
		return fmt.Errorf("store manifest: %w", err)
	}
	files, bytes := m.Totals()
	v, created, err := h.cfg.Store.AddDatasetVersion(r.Context(), &dataset.Version{
		Dataset: name, Source: m.Source, Files: files, Bytes: bytes, Digest: digest, ManifestKey: key,
	})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	w.Header().Set("Location", "/api/v1/datasets/"+name+"/versions/"+strconv.Itoa(v.Version))
	writeJSON(w, status, v)
	return nil
}
