package dashboard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"

	"github.com/hpcml/hpcml/internal/registry"
)

// The Models pages: the model registry's models (/models) and one model
// (/models/{name}) with its aliases, its versions and one version's
// signature, metrics, lineage and preprocessing (?version=N, default the
// latest). Registered versions never change, so the pages do not poll.

// Models is what the Models pages read. The server's Source implements it
// beside Source; a Source without it gets pages that say so.
type Models interface {
	ListModels(ctx context.Context) ([]*registry.Model, error)
	// GetModel reads a model with every version, newest first; an
	// unknown model wraps ErrNotFound.
	GetModel(ctx context.Context, name string) (*registry.Model, error)
	// OpenModelArtifact reads the ONNX file of a version.
	OpenModelArtifact(ctx context.Context, v *registry.Version) (io.ReadCloser, error)
}

// models is the Source's registry, or nil.
func (h *handler) models() Models {
	m, _ := h.src.(Models)
	return m
}

func modelHref(name string) string { return "/models/" + name }

func modelVersionHref(name string, v int) string {
	return modelHref(name) + "?version=" + strconv.Itoa(v)
}

func modelArtifactHref(name string, v int) string {
	return fmt.Sprintf("/models/%s/versions/%d/model.onnx", name, v)
}

// headline is the metric a table shows for a version.
func headline(ms map[string]float64) (string, string) {
	for _, k := range []string{"accuracy", "rmse", "macro_f1", "r2", "loss"} {
		if v, ok := ms[k]; ok {
			if k == "accuracy" {
				return k, formatAccuracy(v)
			}
			return k, formatFloat(v)
		}
	}
	return "", ""
}

// aliasChip is an alias and where it points.
type aliasChip struct {
	Alias   string
	Version int
	Href    string
}

func aliasChips(name string, m map[string]int) []aliasChip {
	var out []aliasChip
	for a, v := range m {
		out = append(out, aliasChip{Alias: a, Version: v, Href: modelVersionHref(name, v)})
	}
	slices.SortFunc(out, func(a, b aliasChip) int { return cmp.Compare(a.Alias, b.Alias) })
	return out
}

// ---- /models ----

type modelsView struct {
	// NoRegistry: the server has no model registry.
	NoRegistry bool
	Rows       []modelRow
}

type modelRow struct {
	Name         string
	Href         string
	Latest       int
	Versions     int
	Aliases      []aliasChip
	Metric       string
	Value        string
	Size         string
	Created      string
	CreatedTitle string
	Description  string
}

func (h *handler) modelsPage(r *http.Request) (*pageResult, error) {
	v := &modelsView{}
	ms := h.models()
	if ms == nil {
		v.NoRegistry = true
		return &pageResult{Template: "models", Title: "models", Nav: "models", Content: v}, nil
	}
	list, err := ms.ListModels(r.Context())
	if err != nil {
		return nil, &httpError{Status: http.StatusInternalServerError, Msg: "Could not read the models.", Err: err}
	}
	now := h.now()
	for _, m := range list {
		row := modelRow{Name: m.Name, Href: modelHref(m.Name), Latest: m.LatestVersion, Versions: m.VersionCount,
			Aliases: aliasChips(m.Name, m.Aliases), Size: dash, Created: dash}
		if l := m.Latest; l != nil {
			row.Metric, row.Value = headline(l.Metrics)
			row.Size = humanBytes(l.Size)
			row.Created, row.CreatedTitle = relTime(now, l.CreatedAt), absTime(l.CreatedAt)
			row.Description = l.Description
		}
		v.Rows = append(v.Rows, row)
	}
	return &pageResult{Template: "models", Title: "models", Nav: "models", Content: v}, nil
}

// ---- /models/{name} ----

type modelView struct {
	Name     string
	Aliases  []aliasChip
	Versions []versionRow
	// Selected is the version shown in full.
	Selected *versionDetail
}

type versionRow struct {
	Version      int
	Href         string
	Selected     bool
	Aliases      []string
	Metric       string
	Value        string
	Size         string
	SHA256       string
	TrainingJob  string
	TrainingHref string
	Dataset      string
	Created      string
	CreatedTitle string
	Description  string
}

type versionDetail struct {
	Version      int
	URI          string
	Description  string
	Aliases      []string
	DownloadHref string
	Fields       []field
	Inputs       []tensorRow
	Outputs      []tensorRow
	Metrics      []kvRow
	Metadata     []kvRow
	Preprocess   []kvRow
}

type tensorRow struct {
	Name, DataType, Shape string
}

type kvRow struct {
	Key, Value string
}

func tensorRows(ts []registry.Tensor) []tensorRow {
	out := make([]tensorRow, len(ts))
	for i, t := range ts {
		shape := "["
		for j, d := range t.Shape {
			if j > 0 {
				shape += ", "
			}
			if d < 0 {
				shape += "N"
			} else {
				shape += strconv.FormatInt(d, 10)
			}
		}
		out[i] = tensorRow{Name: t.Name, DataType: t.DataType, Shape: shape + "]"}
	}
	return out
}

func kvRows[V any](m map[string]V, format func(V) string) []kvRow {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]kvRow, len(keys))
	for i, k := range keys {
		out[i] = kvRow{Key: k, Value: format(m[k])}
	}
	return out
}

func (h *handler) modelPage(r *http.Request) (*pageResult, error) {
	name := r.PathValue("name")
	if !registry.ValidName(name) {
		return nil, badRequest(fmt.Sprintf("%q is not a model name.", name))
	}
	ms := h.models()
	if ms == nil {
		return nil, notFound("This server has no model registry.")
	}
	m, err := ms.GetModel(r.Context(), name)
	if err != nil {
		return nil, sourceErr("model", err)
	}
	want := m.LatestVersion
	if s := r.URL.Query().Get("version"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, badRequest(fmt.Sprintf("%q is not a version number.", s))
		}
		want = n
	}
	now := h.now()
	v := &modelView{Name: name, Aliases: aliasChips(name, m.Aliases)}
	for i := range m.Versions {
		mv := &m.Versions[i]
		row := versionRow{Version: mv.Version, Href: modelVersionHref(name, mv.Version), Selected: mv.Version == want,
			Aliases: registry.AliasesOf(m.Aliases, mv.Version), Size: humanBytes(mv.Size), SHA256: mv.SHA256,
			Dataset: mv.Lineage.Dataset, Created: relTime(now, mv.CreatedAt), CreatedTitle: absTime(mv.CreatedAt),
			Description: mv.Description}
		row.Metric, row.Value = headline(mv.Metrics)
		if j := mv.Lineage.TrainingJob; j > 0 {
			row.TrainingJob = strconv.FormatInt(j, 10)
			row.TrainingHref = trainingHref(row.TrainingJob)
		}
		v.Versions = append(v.Versions, row)
		if row.Selected {
			v.Selected = versionDetailOf(mv, row)
		}
	}
	if v.Selected == nil {
		return nil, notFound(fmt.Sprintf("Model %s has no version %d.", name, want))
	}
	return &pageResult{Template: "model", Title: "model " + name, Nav: "models", Content: v}, nil
}

func versionDetailOf(mv *registry.Version, row versionRow) *versionDetail {
	d := &versionDetail{Version: mv.Version, URI: mv.URI, Description: mv.Description, Aliases: row.Aliases,
		DownloadHref: modelArtifactHref(mv.Name, mv.Version),
		Inputs:       tensorRows(mv.Signature.Inputs), Outputs: tensorRows(mv.Signature.Outputs),
		Metrics:    kvRows(mv.Metrics, formatFloat),
		Metadata:   kvRows(mv.Metadata, func(s string) string { return s }),
		Preprocess: kvRows(mv.Preprocessing, func(s string) string { return s }),
	}
	add := func(f field) { d.Fields = append(d.Fields, f) }
	add(field{Label: "SHA-256", Value: mv.SHA256, Mono: true})
	add(field{Label: "Size", Value: humanBytes(mv.Size), Title: strconv.FormatInt(mv.Size, 10) + " bytes"})
	add(field{Label: "Registered", Value: absTime(mv.CreatedAt)})
	add(field{Label: "Source", Value: mv.Lineage.Source, Mono: true})
	if row.TrainingJob != "" {
		add(field{Label: "Training run", Value: row.TrainingJob, Href: row.TrainingHref, Mono: true})
	}
	if mv.Lineage.Algorithm != "" {
		add(field{Label: "Algorithm", Value: mv.Lineage.Algorithm, Mono: true})
	}
	if mv.Lineage.Data != "" {
		add(field{Label: "Data", Value: mv.Lineage.Data, Mono: true})
	}
	if mv.Lineage.Dataset != "" {
		add(field{Label: "Dataset", Value: mv.Lineage.Dataset, Mono: true})
	}
	return d
}

// modelArtifact downloads a version's ONNX file (behind the session, as
// the training run's model is).
func (h *handler) modelArtifact(w http.ResponseWriter, r *http.Request) {
	fail := func(err error) {
		he := asHTTPError(err)
		h.logFailure(r, he)
		h.errorPage(w, r, he.Status, he.Msg, true)
	}
	name := r.PathValue("name")
	n, err := strconv.Atoi(r.PathValue("version"))
	if !registry.ValidName(name) || err != nil || n < 1 {
		fail(badRequest("No such model version."))
		return
	}
	ms := h.models()
	if ms == nil {
		fail(notFound("This server has no model registry."))
		return
	}
	m, err := ms.GetModel(r.Context(), name)
	if err != nil {
		fail(sourceErr("model", err))
		return
	}
	i := slices.IndexFunc(m.Versions, func(v registry.Version) bool { return v.Version == n })
	if i < 0 {
		fail(notFound(fmt.Sprintf("Model %s has no version %d.", name, n)))
		return
	}
	v := &m.Versions[i]
	rd, err := ms.OpenModelArtifact(r.Context(), v)
	if err != nil {
		fail(&httpError{Status: http.StatusInternalServerError, Msg: "Could not read the model.", Err: err})
		return
	}
	defer rd.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(v.Size, 10))
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%d.onnx"`, name, n))
	if _, err := io.Copy(w, rd); err != nil && !errors.Is(err, context.Canceled) {
		h.log.Warn("dashboard: model download cut short", "model", name, "version", n, "err", err)
	}
}
