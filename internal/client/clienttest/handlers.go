package clienttest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("POST /api/v1/jobs", s.submit)
	mux.HandleFunc("GET /api/v1/jobs", s.list)
	mux.HandleFunc("GET /api/v1/jobs/{id}", s.get)
	mux.HandleFunc("POST /api/v1/jobs/{id}/cancel", s.cancel)
	mux.HandleFunc("GET /api/v1/jobs/{id}/logs", s.logsHandler)
	mux.HandleFunc("GET /api/v1/queues", s.listQueues)
	mux.HandleFunc("POST /api/v1/queues", s.createQueue)
	mux.HandleFunc("GET /api/v1/queues/{name}", s.getQueue)
	mux.HandleFunc("GET /api/v1/capacity", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		c := s.capacity
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, c)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, Request{
			Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
			Authorization: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type"),
		})
		s.mu.Unlock()
		if r.URL.Path != "/healthz" && r.Header.Get("Authorization") != "Bearer "+Token {
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token", "")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg, field string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg, "field": field}})
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, job.MaxBodyBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error(), "")
		return
	}
	if len(body) > job.MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", "spec too large", "")
		return
	}
	spec, err := job.ParseSpec(body)
	if err == nil {
		err = spec.Normalize(job.Limits{MaxNode: job.Resources{CPUs: 64, MemoryMB: 1 << 20, GPUs: 8}})
	}
	if err != nil {
		var fe *job.FieldError
		if errors.As(err, &fe) {
			writeError(w, http.StatusBadRequest, "invalid_spec", fe.Message, fe.Field)
		} else {
			writeError(w, http.StatusBadRequest, "invalid_spec", err.Error(), "")
		}
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queues[spec.Queue] == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("queue %q does not exist", spec.Queue), "queue")
		return
	}
	j := &job.Job{
		ID: s.nextID, Name: spec.Name, Queue: spec.Queue, State: job.Runnable,
		SubmittedAt: time.Now().UTC(), Spec: *spec,
	}
	if len(spec.DependsOn) > 0 {
		j.State = job.Pending
	}
	s.nextID++
	s.jobs[j.ID] = j
	if spec.Array != "" {
		indices, _, _ := job.ParseArray(spec.Array)
		j.ArraySize = len(indices)
		j.ArrayCounts = map[job.State]int{j.State: len(indices)}
		for _, i := range indices {
			t := *j
			t.ID, t.ParentID, t.ArraySize, t.ArrayCounts = s.nextID, j.ID, 0, nil
			t.ArrayIndex = &i
			s.nextID++
			s.jobs[t.ID] = &t
		}
	}
	writeJSON(w, http.StatusCreated, j)
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Has("ids") {
		s.listByID(w, r)
		return
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "bad_request", "must be 1 to 1000", "limit")
			return
		}
		limit = n
	}
	if st := q.Get("state"); st != "" && !job.State(st).Valid() {
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("%q is not a state", st), "state")
		return
	}
	parent, _ := strconv.ParseInt(q.Get("parent"), 10, 64)
	before, _ := strconv.ParseInt(q.Get("before"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []*job.Job{}
	for _, j := range s.jobs {
		switch {
		case q.Get("state") != "" && string(j.State) != q.Get("state"),
			q.Get("queue") != "" && j.Queue != q.Get("queue"),
			j.ParentID != parent,
			before > 0 && j.ID >= before:
			continue
		}
		out = append(out, j)
	}
	slices.SortFunc(out, func(a, b *job.Job) int { return int(b.ID - a.ID) })
	if len(out) > limit {
		out = out[:limit]
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": out})
}

// listByID answers ?ids=1,2,41_3 with those jobs in that order; with
// ?wait=, once all have ended or the wait is over.
func (s *Server) listByID(w http.ResponseWriter, r *http.Request) {
	ids := strings.Split(r.URL.Query().Get("ids"), ",")
	if len(ids) > 1000 {
		writeError(w, http.StatusBadRequest, "invalid", "at most 1000 ids", "")
		return
	}
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			writeError(w, http.StatusBadRequest, "invalid", "wait must be a duration", "")
			return
		}
		wait = min(d, time.Minute)
	}
	s.longPoll(w, r, wait, func() (any, bool) {
		out := make([]*job.Job, len(ids))
		ended := true
		for i, id := range ids {
			if out[i] = s.lookupLocked(w, id); out[i] == nil {
				return nil, false
			}
			ended = ended && out[i].State.Terminal()
		}
		return map[string]any{"jobs": out}, ended
	})
}

// longPoll answers with what look finds (under s.mu) once it says the
// jobs have ended, or at once without a wait, or when wait is over; look
// returns a nil document when it has written an error itself.
func (s *Server) longPoll(w http.ResponseWriter, r *http.Request, wait time.Duration, look func() (doc any, ended bool)) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		doc, ended := look()
		if doc == nil {
			s.mu.Unlock()
			return
		}
		if wait == 0 || ended {
			writeJSON(w, http.StatusOK, doc)
			s.mu.Unlock()
			return
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		case <-deadline.C:
			wait = 0
		}
	}
}

// lookupLocked finds a job by "42" or "41_3".
func (s *Server) lookupLocked(w http.ResponseWriter, id string) *job.Job {
	n, idx, isTask, err := job.ParseID(id)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error(), "id")
		return nil
	}
	if !isTask {
		if j, ok := s.jobs[n]; ok {
			return j
		}
	}
	for _, j := range s.jobs {
		if isTask && j.ParentID == n && j.ArrayIndex != nil && *j.ArrayIndex == idx {
			return j
		}
	}
	writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("job %s does not exist", id), "")
	return nil
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > time.Minute {
			writeError(w, http.StatusBadRequest, "bad_request", "wait must be a duration up to 60s", "wait")
			return
		}
		wait = d
	}
	s.longPoll(w, r, wait, func() (any, bool) {
		j := s.lookupLocked(w, r.PathValue("id"))
		if j == nil {
			return nil, false
		}
		return j, j.State.Terminal()
	})
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.lookupLocked(w, r.PathValue("id"))
	if j == nil {
		return
	}
	if j.State.Terminal() {
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("job %s already ended (%s)", j.DisplayID(), j.State), "")
		return
	}
	j.CancelRequested = true
	if !j.State.Active() {
		now := time.Now().UTC()
		j.State, j.Reason, j.EndedAt = job.Cancelled, "cancelled by user", &now
	}
	s.notifyLocked()
	writeJSON(w, http.StatusAccepted, j)
}

func (s *Server) logsHandler(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	stream := q.Get("stream")
	if stream == "" {
		stream = "stdout"
	}
	if stream != "stdout" && stream != "stderr" {
		writeError(w, http.StatusBadRequest, "bad_request", "must be stdout or stderr", "stream")
		return
	}
	follow := q.Get("follow") == "true"
	s.mu.Lock()
	j := s.lookupLocked(w, r.PathValue("id"))
	if j == nil {
		s.mu.Unlock()
		return
	}
	id := j.DisplayID()
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	sent := 0
	for {
		s.mu.Lock()
		buf := s.logs[id][stream]
		chunk := append([]byte(nil), buf[sent:]...)
		done := s.jobs[j.ID].State.Terminal()
		changed := s.changed
		s.mu.Unlock()
		if len(chunk) > 0 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			sent += len(chunk)
			if flusher != nil {
				flusher.Flush()
			}
		}
		if !follow || done {
			return
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		}
	}
}

func (s *Server) listQueues(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []*job.Queue{}
	for _, q := range s.queues {
		out = append(out, q)
	}
	slices.SortFunc(out, func(a, b *job.Queue) int { return strings.Compare(a.Name, b.Name) })
	writeJSON(w, http.StatusOK, map[string]any{"queues": out})
}

func (s *Server) createQueue(w http.ResponseWriter, r *http.Request) {
	var q job.Queue
	dec := json.NewDecoder(io.LimitReader(r.Body, job.MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "malformed queue: "+err.Error(), "")
		return
	}
	if err := q.Validate(); err != nil {
		var fe *job.FieldError
		errors.As(err, &fe)
		writeError(w, http.StatusBadRequest, "invalid_queue", fe.Message, fe.Field)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queues[q.Name] != nil {
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("queue %q already exists", q.Name), "name")
		return
	}
	q.CreatedAt = time.Now().UTC()
	s.queues[q.Name] = &q
	writeJSON(w, http.StatusCreated, &q)
}

func (s *Server) getQueue(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[r.PathValue("name")]
	if q == nil {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("queue %q does not exist", r.PathValue("name")), "")
		return
	}
	c := *q
	c.Counts = map[job.State]int{}
	for _, j := range s.jobs {
		if j.Queue == q.Name && !j.IsArrayParent() {
			c.Counts[j.State]++
		}
	}
	writeJSON(w, http.StatusOK, &c)
}
