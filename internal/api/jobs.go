package api

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/sched"
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
	// A job that ended lately is in the scheduler's memory as committed.
	if j := h.cfg.Scheduler.EndedJob(id); j != nil {
		return j, nil
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
	var ended *sched.EndWait
	if wait > 0 {
		// A plain job id can be registered before the one read: an end
		// in between then closes the signal. An array task's own id is
		// known only after reading it, so it is read twice.
		if id, _, isTask, err := job.ParseID(r.PathValue("id")); err == nil && !isTask {
			ended = h.cfg.Scheduler.EndSignal(id)
			defer ended.Release()
		}
	}
	// A job the scheduler knows to be active is not read until it ends
	// (or the wait is over): the read would only say it still runs.
	if ended == nil || !ended.Active {
		j, err := h.lookup(r)
		if err != nil || wait == 0 || j.State.Terminal() {
			if err == nil {
				h.writeJob(w, r, j)
			}
			return err
		}
		if ended == nil {
			ended = h.cfg.Scheduler.EndSignal(j.ID)
			defer ended.Release()
			// Read again now that the signal is registered: the task may
			// have ended in between.
			if j, err = h.lookup(r); err != nil || j.State.Terminal() {
				if err == nil {
					h.writeJob(w, r, j)
				}
				return err
			}
		}
	}
	select {
	case <-ended.Ended:
		// The loop's record of the end, as committed: no read.
		if j := ended.Final(); j != nil {
			h.writeJob(w, r, j)
			return nil
		}
	case <-time.After(wait):
	case <-r.Context().Done():
		return nil
	}
	j, err := h.lookup(r)
	if err != nil {
		return err
	}
	h.writeJob(w, r, j)
	return nil
}

// writeJob answers a job get: the job with, while it runs, the progress
// it reports. A report that cannot be read is left out, never an error.
func (h *Handler) writeJob(w http.ResponseWriter, r *http.Request, j *job.Job) {
	if p, err := h.cfg.Scheduler.Progress(r.Context(), j); err != nil {
		h.cfg.Log.Debug("job progress unreadable; left out", "job", j.DisplayID(), "err", err)
	} else {
		j.Progress = p
	}
	writeJSON(w, http.StatusOK, j)
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

func (h *Handler) updateQueue(w http.ResponseWriter, r *http.Request) error {
	var p job.QueuePatch
	if err := decodeJSON(r, &p, "queue update (priority, max_running, price_cpu_hour, price_gb_hour, partition, account, qos)"); err != nil {
		return err
	}
	q, err := h.cfg.Store.GetQueue(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	p.Apply(q)
	if err := q.Validate(); err != nil {
		return err
	}
	// Only a change of where jobs go needs the backend's word: a price
	// change must not fail because a Slurm controller is down.
	if p.Partition != nil || p.Account != nil || p.QOS != nil {
		if err := h.cfg.Scheduler.CheckQueue(r.Context(), q); err != nil {
			return err
		}
	}
	if err := h.cfg.Store.UpdateQueue(r.Context(), q); err != nil {
		return err
	}
	h.cfg.Scheduler.QueuesChanged()
	q.Counts = h.cfg.Scheduler.Snapshot().Counts[q.Name]
	writeJSON(w, http.StatusOK, q)
	return nil
}

func (h *Handler) createQueue(w http.ResponseWriter, r *http.Request) error {
	var q job.Queue
	if err := decodeJSON(r, &q, "queue"); err != nil {
		return err
	}
	q.CreatedAt, q.Counts = time.Time{}, nil
	if err := q.Validate(); err != nil {
		return err
	}
	if err := h.cfg.Scheduler.CheckQueue(r.Context(), &q); err != nil {
		return err
	}
	if err := h.cfg.Store.CreateQueue(r.Context(), &q); err != nil {
		return err
	}
	h.cfg.Scheduler.QueuesChanged()
	writeJSON(w, http.StatusCreated, &q)
	return nil
}
