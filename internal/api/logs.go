package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/joblog"
)

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
		stream = joblog.Stdout
	}
	if !joblog.ValidStream(stream) {
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
	rc, live, err := h.cfg.Logs.Open(r.Context(), j, attempt, stream)
	if errors.Is(err, joblog.ErrNoLog) {
		return notFound(err.Error())
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	return h.copyLog(w, r, rc, j, attempt, follow && live)
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
		if j.Attempt > 0 && h.cfg.Logs.HasLocal(j.ID, j.Attempt, stream) {
			return j, nil
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
func (h *Handler) copyLog(w http.ResponseWriter, r *http.Request, f io.Reader, j *job.Job, attempt int, follow bool) error {
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
