package api

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/job"
)

// jobOutput serves a file a job stored as an output in the server's
// storage: GET /api/v1/jobs/{id}/outputs/{path}, where path is an output's
// path as the job's spec gives it, or a file under an output directory.
// Only what the job declared is served, and only from the server's own
// storage: an output sent to another bucket is read there.
func (h *Handler) jobOutput(w http.ResponseWriter, r *http.Request) error {
	j, err := h.lookupID(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	want := r.PathValue("path")
	if want == "" || !filepath.IsLocal(want) || path.Clean(want) != want {
		return badRequest("invalid", fmt.Sprintf("output path %q: a relative path without . or .. elements", want))
	}
	key, err := outputKey(j, want)
	if err != nil {
		return err
	}
	rd, err := h.cfg.Storage.NewReader(r.Context(), key, nil)
	if blob.IsNotFound(err) {
		return notFound(fmt.Sprintf("job %s has not stored output %s (it is %s; outputs are stored when the job ends)", j.DisplayID(), want, j.State))
	}
	if err != nil {
		return err
	}
	defer rd.Close()
	ctype := mime.TypeByExtension(path.Ext(want))
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.FormatInt(rd.Size(), 10))
	io.Copy(w, rd) // the status is sent: a failure now can only cut the body short
	return nil
}

// outputKey is the storage key of file p of job j's outputs: an output
// whose path is p, or a file under an output directory.
func outputKey(j *job.Job, p string) (string, error) {
	for _, out := range j.Spec.Outputs {
		dir := strings.TrimSuffix(path.Clean(out.Path), "/")
		rest, under := strings.CutPrefix(p, dir+"/")
		if p != dir && !under {
			continue
		}
		loc, err := blob.Resolve(out.URL, "")
		if err != nil || loc.Bucket != "" {
			return "", &apiError{http.StatusConflict, "elsewhere", fmt.Sprintf("output %s of job %s goes to %s, not the server's storage: read it there", out.Path, j.DisplayID(), blob.Redact(out.URL)), ""}
		}
		if p == dir {
			if loc.IsPrefix() {
				return "", badRequest("invalid", fmt.Sprintf("output %s of job %s is a directory: name a file under it (%s/...)", out.Path, j.DisplayID(), dir))
			}
			return loc.Key, nil
		}
		return strings.TrimSuffix(loc.Key, "/") + "/" + rest, nil
	}
	return "", notFound(fmt.Sprintf("job %s has no output %s", j.DisplayID(), p))
}
