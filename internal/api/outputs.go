package api

import (
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"gocloud.dev/gcerrors"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/job"
)

// clockSlack is how much earlier than the job's last start an output may
// say it was written and still be taken as this job's: the object's time
// comes from the storage, the start from the server.
const clockSlack = time.Minute

// jobOutput serves a file an ended job stored as an output in the
// server's storage: GET /api/v1/jobs/{id}/outputs/{path}, where path is an
// output's path as the job's spec gives it, or a file under an output
// directory. What is served is the object at that output's location, if
// it was written since the job's last attempt started (an older one is
// another job's); an output sent to another bucket is read there. This
// is a convenience for the job's owner, not a boundary: any token holder
// can read the server's storage through a job of their own.
func (h *Handler) jobOutput(w http.ResponseWriter, r *http.Request) error {
	j, err := h.lookupID(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if j.IsArrayParent() {
		return badRequest("invalid", fmt.Sprintf("job %d is an array: ask for a task's outputs, e.g. %d_0", j.ID, j.ID))
	}
	want := r.PathValue("path")
	if err := job.CheckOutputPath(want); err != nil {
		return badRequest("invalid", err.Error())
	}
	if !j.State.Terminal() || j.StartedAt == nil {
		return &apiError{http.StatusConflict, "conflict", fmt.Sprintf("job %s is %s: its outputs are stored when it ends", j.DisplayID(), j.State), ""}
	}
	key, err := outputKey(j, want)
	if err != nil {
		return err
	}
	rd, err := h.cfg.Storage.NewReader(r.Context(), key, nil)
	switch {
	case blob.IsNotFound(err):
		return notFound(fmt.Sprintf("job %s stored no output %s (it ended %s)", j.DisplayID(), want, j.State))
	case gcerrors.Code(err) == gcerrors.InvalidArgument:
		return badRequest("invalid", fmt.Sprintf("output path %q: not a key the storage takes", want))
	case err != nil:
		return err
	}
	defer rd.Close()
	if rd.ModTime().Before(j.StartedAt.Add(-clockSlack)) {
		return notFound(fmt.Sprintf("job %s stored no output %s: what is at its location is older than the job's last attempt (another job's)", j.DisplayID(), want))
	}
	ctype := "application/octet-stream"
	if path.Ext(want) == ".json" {
		ctype = "application/json"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.FormatInt(rd.Size(), 10))
	if _, err := io.Copy(w, rd); err != nil {
		// The status is sent: the body is cut short, which the client
		// sees against Content-Length.
		h.cfg.Log.Warn("serving a job output", "job", j.DisplayID(), "path", want, "err", err)
	}
	return nil
}

// outputKey is the storage key of file p of job j's outputs, where the
// job wrapper stores it (blob.Stager.Upload): an output whose path is p
// (at its URL, or at URL/name for a URL ending in "/"), else a file under
// the output directory with the longest path that holds p.
func outputKey(j *job.Job, p string) (string, error) {
	var dirOut *job.Output
	var rest string
	for i, out := range j.Spec.Outputs {
		dir := path.Clean(out.Path)
		if p == dir {
			loc, err := storageLocation(j, out)
			if err != nil {
				return "", err
			}
			if loc.IsPrefix() {
				return loc.Key + path.Base(dir), nil
			}
			return loc.Key, nil
		}
		r, under := strings.CutPrefix(p, dir+"/")
		if dir == "." {
			r, under = p, true
		}
		if under && (dirOut == nil || len(r) < len(rest)) {
			dirOut, rest = &j.Spec.Outputs[i], r
		}
	}
	if dirOut == nil {
		return "", notFound(fmt.Sprintf("job %s has no output %s", j.DisplayID(), p))
	}
	loc, err := storageLocation(j, *dirOut)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(loc.Key, "/") + "/" + rest, nil
}

// storageLocation is where output out of job j is in the server's
// storage; an output sent elsewhere (an s3:// or file:// URL) is a 409.
func storageLocation(j *job.Job, out job.Output) (blob.Location, error) {
	loc, err := blob.Resolve(out.URL, "")
	if err != nil || loc.Bucket != "" {
		return loc, &apiError{http.StatusConflict, "conflict", fmt.Sprintf("output %s of job %s goes to %s, not the server's storage: read it there", out.Path, j.DisplayID(), blob.Redact(out.URL)), ""}
	}
	return loc, nil
}
