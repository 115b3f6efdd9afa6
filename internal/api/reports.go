package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"sort"

	gcblob "gocloud.dev/blob"

	"github.com/hpcml/hpcml/internal/analysis"
	"github.com/hpcml/hpcml/internal/blob"
)

// maxListedReports bounds a report list: the newest ones.
const maxListedReports = 200

// Reports live in the server's storage (reports/<kind>/<id>/), put
// there by the merge job of a distributed analysis or by a client that
// ran one itself; storage is their only record.

func (h *Handler) listReports(w http.ResponseWriter, r *http.Request) error {
	kind := r.URL.Query().Get("kind")
	if kind == "" {
		kind = analysis.KindProfile
	}
	if kind != analysis.KindProfile {
		return badRequest("invalid", fmt.Sprintf("kind %q: reports are of kind %s", kind, analysis.KindProfile))
	}
	reports, err := loadReports(r, h.cfg.Storage, kind)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, reports)
	return nil
}

// loadReports reads the summaries of the newest reports of kind, newest
// first; one that cannot be read is left out.
func loadReports(r *http.Request, storage *blob.Bucket, kind string) ([]analysis.Summary, error) {
	type entry struct {
		key string
		mod int64
	}
	var entries []entry
	it := storage.List(&gcblob.ListOptions{Prefix: analysis.ReportsPrefix + kind + "/"})
	for {
		o, err := it.Next(r.Context())
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list reports: %w", err)
		}
		if !o.IsDir && path.Base(o.Key) == analysis.SummaryFile {
			entries = append(entries, entry{o.Key, o.ModTime.UnixNano()})
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].mod > entries[j].mod })
	if len(entries) > maxListedReports {
		entries = entries[:maxListedReports]
	}
	out := []analysis.Summary{}
	for _, e := range entries {
		data, err := storage.ReadAll(r.Context(), e.key)
		if err != nil {
			continue
		}
		if s, err := analysis.DecodeSummary(data); err == nil {
			out = append(out, *s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
}

func (h *Handler) getReport(w http.ResponseWriter, r *http.Request) error {
	kind, id := r.PathValue("kind"), r.PathValue("id")
	if kind != analysis.KindProfile {
		return notFound(fmt.Sprintf("no report kind %q", kind))
	}
	if err := analysis.CheckID(id); err != nil {
		return badRequest("invalid", err.Error())
	}
	data, err := h.cfg.Storage.ReadAll(r.Context(), analysis.ReportDir(kind, id)+analysis.ReportFile)
	if blob.IsNotFound(err) {
		return notFound(fmt.Sprintf("no %s report %q", kind, id))
	}
	if err != nil {
		return fmt.Errorf("read report: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(data)
	return nil
}

// putReport stores a report a client computed (`hpcml data profile
// --save`): checked as a report first, so that what is stored reads back.
func (h *Handler) putReport(w http.ResponseWriter, r *http.Request) error {
	kind, id := r.PathValue("kind"), r.PathValue("id")
	if kind != analysis.KindProfile {
		return notFound(fmt.Sprintf("no report kind %q", kind))
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("invalid", "read body: "+err.Error())
	}
	rep, err := analysis.DecodeProfileReport(data)
	if err != nil {
		return badRequest("invalid", err.Error())
	}
	if rep.ID != id {
		return badRequest("invalid", fmt.Sprintf("report id %q in the body, %q in the path", rep.ID, id))
	}
	sum := rep.Summary()
	sumData, err := json.Marshal(sum)
	if err != nil {
		return err
	}
	dir := analysis.ReportDir(kind, id)
	if err := h.cfg.Storage.WriteAll(r.Context(), dir+analysis.ReportFile, data, nil); err != nil {
		return fmt.Errorf("store report: %w", err)
	}
	if err := h.cfg.Storage.WriteAll(r.Context(), dir+analysis.SummaryFile, sumData, nil); err != nil {
		return fmt.Errorf("store report summary: %w", err)
	}
	writeJSON(w, http.StatusCreated, sum)
	return nil
}
