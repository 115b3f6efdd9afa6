package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/store"
)

func (h *Handler) submitJob(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	spec, err := job.ParseSpec(body)
	if err != nil {
		return err
	}
	j, err := h.cfg.Scheduler.Submit(r.Context(), spec)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, j)
	return nil
}

func (h *Handler) listJobs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.JobFilter{State: job.State(q.Get("state")), Queue: q.Get("queue")}
	if f.State != "" && !f.State.Valid() {
		return badRequest("invalid", fmt.Sprintf("unknown state %q", f.State))
	}
	for name, dst := range map[string]*int64{"parent": &f.Parent, "before": &f.Before} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return badRequest("invalid", fmt.Sprintf("%s must be a job id", name))
			}
			*dst = n
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("invalid", "limit must be between 1 and 1000")
		}
		f.Limit = n
	}
	jobs, err := h.cfg.Store.ListJobs(r.Context(), f)
	if err != nil {
		return err
	}
	if jobs == nil {
		jobs = []*job.Job{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs})
	return nil
}

// lookup resolves "42" or "41_3".
func (h *Handler) lookup(r *http.Request) (*job.Job, error) {
	id, index, isTask, err := job.ParseID(r.PathValue("id"))
	if err != nil {
		return nil, badRequest("invalid", err.Error())
	}
	if isTask {
		return h.cfg.Store.GetArrayTask(r.Context(), id, index)
	}
	return h.cfg.Store.GetJob(r.Context(), id)
}

// maxWait bounds a long poll, below common proxy timeouts.
const maxWait = 60 * time.Second

func (h *Handler) getJob(w http.ResponseWriter, r *http.Request) error {
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return badRequest("invalid", fmt.Sprintf("wait %q is not a duration like 30s", v))
		}
		wait = min(d, maxWait)
	}
	j, err := h.lookup(r)
	if err != nil || wait == 0 || j.State.Terminal() {
		if err == nil {
			writeJSON(w, http.StatusOK, j)
		}
		return err
	}
	ended, release := h.cfg.Scheduler.EndSignal(j.ID)
	defer release()
	// Read again now that the signal is registered: the job may have
	// ended in between.
	if j, err = h.lookup(r); err != nil || j.State.Terminal() {
		if err == nil {
			writeJSON(w, http.StatusOK, j)
		}
		return err
	}
	select {
	case <-ended:
	case <-time.After(wait):
	case <-r.Context().Done():
		return nil
	}
	if j, err = h.lookup(r); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}

func (h *Handler) cancelJob(w http.ResponseWriter, r *http.Request) error {
	j, err := h.lookup(r)
	if err != nil {
		return err
	}
	if err := h.cfg.Scheduler.Cancel(r.Context(), j.ID); err != nil {
		return err
	}
	if j, err = h.cfg.Store.GetJob(r.Context(), j.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, j)
	return nil
}

// followPoll is how often a followed log is checked for new bytes.
const followPoll = 100 * time.Millisecond

func (h *Handler) jobLogs(w http.ResponseWriter, r *http.Request) error {
	j, err := h.lookup(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	stream := q.Get("stream")
	if stream == "" {
		stream = "stdout"
	}
	if stream != "stdout" && stream != "stderr" {
		return badRequest("invalid", "stream must be stdout or stderr")
	}
	if j.IsArrayParent() {
		return badRequest("invalid", fmt.Sprintf("job %d is an array: ask for a task's logs, e.g. %d_0", j.ID, j.ID))
	}
	follow := q.Get("follow") == "true" || q.Get("follow") == "1"
	if follow && q.Get("attempt") == "" {
		// `job submit` then `job logs -f` must not race the job's start.
		if j, err = h.awaitLog(r, stream); err != nil || j == nil {
			return err
		}
	}
	attempt := j.Attempt
	if v := q.Get("attempt"); v != "" {
		if attempt, err = strconv.Atoi(v); err != nil || attempt < 1 || attempt > j.Attempt {
			return badRequest("invalid", fmt.Sprintf("job %s has no attempt %s", j.DisplayID(), v))
		}
	}
	if attempt == 0 {
		if j.State.Terminal() {
			return notFound(fmt.Sprintf("job %s never started: %s (%s)", j.DisplayID(), j.State, j.Reason))
		}
		return notFound(fmt.Sprintf("job %s has not started yet (%s)", j.DisplayID(), j.State))
	}
	if path := h.cfg.Logs.LocalPath(j.ID, attempt, stream); path != "" {
		f, err := os.Open(path)
		if err == nil {
			defer f.Close()
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			return h.copyLog(w, r, f, j, attempt, follow)
		}
	}
	var key string
	for _, a := range j.Attempts {
		if a.Number == attempt {
			key = a.StdoutURL
			if stream == "stderr" {
				key = a.StderrURL
			}
		}
	}
	if key == "" {
		if !j.State.Terminal() && follow {
			return notFound(fmt.Sprintf("job %s has no %s yet", j.DisplayID(), stream))
		}
		return notFound(fmt.Sprintf("no %s log for job %s attempt %d", stream, j.DisplayID(), attempt))
	}
	rc, err := h.cfg.Logs.OpenStored(r.Context(), key)
	if err != nil {
		return fmt.Errorf("open stored log: %w", err)
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err = io.Copy(w, rc)
	return ignoreClientGone(err)
}

// awaitLog waits until the job's latest attempt has a log file on this
// machine or the job has ended, and returns the job as it then is (nil if
// the client went away first).
func (h *Handler) awaitLog(r *http.Request, stream string) (*job.Job, error) {
	for {
		changed := h.cfg.Scheduler.Changed() // before reading, so no change is missed
		j, err := h.lookup(r)
		if err != nil {
			return nil, err
		}
		if j.State.Terminal() {
			return j, nil
		}
		if j.Attempt > 0 {
			if path := h.cfg.Logs.LocalPath(j.ID, j.Attempt, stream); path != "" {
				if _, err := os.Stat(path); err == nil {
					return j, nil
				}
			}
		}
		// The log file appears while the job is STARTING, which is not a
		// state change; hence the poll beside the change notification.
		select {
		case <-changed:
		case <-time.After(followPoll):
		case <-r.Context().Done():
			return nil, nil
		}
	}
}

// copyLog writes the file and, when following, keeps writing what the job
// appends until the attempt is over. Memory stays bounded: bytes are
// copied through a fixed buffer, never collected.
func (h *Handler) copyLog(w http.ResponseWriter, r *http.Request, f *os.File, j *job.Job, attempt int, follow bool) error {
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 64<<10)
	for {
		if _, err := io.CopyBuffer(w, f, buf); err != nil {
			return ignoreClientGone(err)
		}
		if !follow {
			return nil
		}
		if flusher != nil {
			flusher.Flush()
		}
		cur, err := h.cfg.Store.GetJob(r.Context(), j.ID)
		if err != nil {
			return ignoreClientGone(err)
		}
		if !cur.State.Active() || cur.Attempt != attempt {
			// Over: one last read for bytes written before the end.
			_, err := io.CopyBuffer(w, f, buf)
			return ignoreClientGone(err)
		}
		select {
		case <-r.Context().Done():
			return nil
		case <-time.After(followPoll):
		}
	}
}

// ignoreClientGone ends a stream: once bytes are sent there is no way to
// report an error (usually the client went away), so it is dropped.
func ignoreClientGone(error) error { return nil }

func (h *Handler) capacity(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, h.cfg.Scheduler.Snapshot().Capacity)
	return nil
}

func (h *Handler) listQueues(w http.ResponseWriter, r *http.Request) error {
	qs, err := h.cfg.Store.ListQueues(r.Context())
	if err != nil {
		return err
	}
	counts := h.cfg.Scheduler.Snapshot().Counts
	for _, q := range qs {
		q.Counts = counts[q.Name]
	}
	if qs == nil {
		qs = []*job.Queue{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"queues": qs})
	return nil
}

func (h *Handler) getQueue(w http.ResponseWriter, r *http.Request) error {
	q, err := h.cfg.Store.GetQueue(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	q.Counts = h.cfg.Scheduler.Snapshot().Counts[q.Name]
	writeJSON(w, http.StatusOK, q)
	return nil
}

func (h *Handler) createQueue(w http.ResponseWriter, r *http.Request) error {
	var q job.Queue
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("invalid", "malformed queue: "+err.Error())
	}
	if dec.More() {
		return badRequest("invalid", "malformed queue: trailing data after the JSON object")
	}
	q.CreatedAt, q.Counts = time.Time{}, nil
	if err := q.Validate(); err != nil {
		return err
	}
	if err := h.cfg.Store.CreateQueue(r.Context(), &q); err != nil {
		return err
	}
	h.cfg.Scheduler.QueuesChanged()
	writeJSON(w, http.StatusCreated, &q)
	return nil
}
