package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
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
	if q.Has("ids") {
		return h.listJobsByID(w, r)
	}
	if q.Has("wait") {
		return badRequest("invalid", "wait goes with ids (the jobs to wait for)")
	}
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

// maxListIDs bounds ?ids= (as ?limit= bounds a list).
const maxListIDs = 1000

// listJobsByID answers ?ids=1,2,41_3 with those jobs, in that order; with
// ?wait=, once every one of them has ended or the wait is over (a client
// waits for many jobs with one long poll rather than one each). An id
// that names no job is a 404 naming it.
func (h *Handler) listJobsByID(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	for _, name := range []string{"state", "queue", "parent", "before", "limit"} {
		if q.Has(name) {
			return badRequest("invalid", fmt.Sprintf("ids does not combine with %s", name))
		}
	}
	ids := strings.Split(q.Get("ids"), ",")
	if len(ids) > maxListIDs {
		return badRequest("invalid", fmt.Sprintf("%d ids, at most %d", len(ids), maxListIDs))
	}
	for _, raw := range ids {
		if _, _, _, err := job.ParseID(raw); err != nil {
			return badRequest("invalid", fmt.Sprintf("ids: %v", err))
		}
	}
	deadline, cancel, err := waitParam(r)
	if err != nil {
		return err
	}
	defer cancel()
	// One after the other: the total wait is the longest job's either way.
	// Once the deadline is done, the rest are only read.
	jobs := make([]*job.Job, len(ids))
	for i, raw := range ids {
		if r.Context().Err() != nil {
			return nil // the client went away
		}
		if jobs[i], err = h.awaitJob(r.Context(), deadline, raw); err != nil {
			return err
		}
	}
	if r.Context().Err() != nil {
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs})
	return nil
}

// lookup resolves the request's {id}, "42" or "41_3".
func (h *Handler) lookup(r *http.Request) (*job.Job, error) {
	return h.lookupID(r.Context(), r.PathValue("id"))
}

// lookupID resolves "42" or "41_3".
func (h *Handler) lookupID(ctx context.Context, raw string) (*job.Job, error) {
	id, index, isTask, err := job.ParseID(raw)
	if err != nil {
		return nil, badRequest("invalid", err.Error())
	}
	if isTask {
		return h.cfg.Store.GetArrayTask(ctx, id, index)
	}
	// A job that ended lately is in the scheduler's memory as committed.
	if j := h.cfg.Scheduler.EndedJob(id); j != nil {
		return j, nil
	}
	return h.cfg.Store.GetJob(ctx, id)
}

// maxWait bounds a long poll, below common proxy timeouts.
const maxWait = 60 * time.Second

func (h *Handler) getJob(w http.ResponseWriter, r *http.Request) error {
	deadline, cancel, err := waitParam(r)
	if err != nil {
		return err
	}
	defer cancel()
	j, err := h.awaitJob(r.Context(), deadline, r.PathValue("id"))
	if err != nil || r.Context().Err() != nil {
		return err
	}
	h.writeJob(w, r, j)
	return nil
}

// waitParam reads a long poll's ?wait= (capped at maxWait) as the
// context to wait under: nil without a wait.
func waitParam(r *http.Request) (context.Context, context.CancelFunc, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return nil, func() {}, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return nil, nil, badRequest("invalid", fmt.Sprintf("wait %q is not a duration like 30s", v))
	}
	if d == 0 {
		return nil, func() {}, nil
	}
	deadline, cancel := context.WithTimeout(r.Context(), min(d, maxWait))
	return deadline, cancel, nil
}

// awaitJob returns job raw ("42" or "41_3"), read under ctx — with a
// deadline, once it has ended or the deadline is done, as it is then. (A
// deadline already done only reads: the job as it is.)
func (h *Handler) awaitJob(ctx, deadline context.Context, raw string) (*job.Job, error) {
	id, _, isTask, err := job.ParseID(raw)
	if err != nil {
		return nil, badRequest("invalid", err.Error())
	}
	wait := deadline != nil && deadline.Err() == nil
	var ended *sched.EndWait
	if wait && !isTask {
		// A plain job id can be registered before the one read: an end
		// in between then closes the signal. An array task's own id is
		// known only after reading it, so it is read twice.
		ended = h.cfg.Scheduler.EndSignal(id)
		defer ended.Release()
	}
	// A job the scheduler knows to be active is not read until it ends
	// (or the wait is over): the read would only say it still runs.
	if ended == nil || !ended.Active {
		j, err := h.lookupID(ctx, raw)
		if err != nil || !wait || j.State.Terminal() {
			return j, err
		}
		if ended == nil {
			ended = h.cfg.Scheduler.EndSignal(j.ID)
			defer ended.Release()
			// Read again now that the signal is registered: the task may
			// have ended in between.
			if j, err = h.lookupID(ctx, raw); err != nil || j.State.Terminal() {
				return j, err
			}
		}
	}
	select {
	case <-ended.Ended:
		// The loop's record of the end, as committed: no read.
		if j := ended.Final(); j != nil {
			return j, nil
		}
	case <-deadline.Done():
	}
	return h.lookupID(ctx, raw)
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
