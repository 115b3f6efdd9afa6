// Package clienttest runs an in-memory stand-in for the hpcml REST API on
// loopback, for tests of the client and of the CLI. It reproduces the
// documented contract (internal/api/openapi.yaml): routes, bearer auth,
// status codes, JSON documents and error bodies, long-polling waits and
// streamed logs. Jobs do not run; tests move them between states.
package clienttest

import (
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
)

// Token is the bearer token every fake server accepts.
const Token = "test-token"

// Request is what the fake recorded of a request it received.
type Request struct {
	Method, Path, RawQuery, Authorization, ContentType string
}

// Server is a fake hpcml server. Its methods are safe for concurrent use.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	jobs     map[int64]*job.Job
	nextID   int64
	queues   map[string]*job.Queue
	logs     map[string]map[string][]byte // display id -> stream -> bytes
	capacity job.Capacity
	requests []Request
	// changed is closed and replaced whenever a job or log changes, to
	// wake long-polls and log followers.
	changed chan struct{}
}

// NewServer starts a fake server with a "default" queue; it stops when the
// test ends.
func NewServer(t testing.TB) *Server {
	s := &Server{
		jobs:    map[int64]*job.Job{},
		nextID:  1,
		queues:  map[string]*job.Queue{},
		logs:    map[string]map[string][]byte{},
		changed: make(chan struct{}),
		capacity: job.Capacity{
			Total: job.Resources{CPUs: 2, MemoryMB: 4096},
		},
	}
	s.queues["default"] = &job.Queue{Name: "default", Backend: "local", CreatedAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.Server = httptest.NewServer(s.routes())
	t.Cleanup(s.Close)
	return s
}

// Client returns a client of this server with the right token.
func (s *Server) Client() *client.Client { return client.New(s.URL, Token) }

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Job returns a copy of a job, or nil.
func (s *Server) Job(id int64) *job.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return nil
	}
	c := *j
	return &c
}

// Update changes a job under the lock and wakes waiters.
func (s *Server) Update(id int64, fn func(*job.Job)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j, ok := s.jobs[id]; ok {
		fn(j)
		s.notifyLocked()
	}
}

// SetState moves a job to state, filling the times a real server would.
func (s *Server) SetState(id int64, state job.State) {
	s.Update(id, func(j *job.Job) {
		now := time.Now().UTC()
		j.State = state
		if state.Active() && j.StartedAt == nil {
			j.StartedAt = &now
			if j.Attempt == 0 {
				j.Attempt = 1
			}
		}
		if state.Terminal() && j.EndedAt == nil {
			j.EndedAt = &now
		}
	})
}

// AppendLog adds bytes to a job's stdout or stderr.
func (s *Server) AppendLog(displayID, stream, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.logs[displayID] == nil {
		s.logs[displayID] = map[string][]byte{}
	}
	s.logs[displayID][stream] = append(s.logs[displayID][stream], text...)
	s.notifyLocked()
}

// SetCapacity sets what /api/v1/capacity reports.
func (s *Server) SetCapacity(c job.Capacity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.capacity = c
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}
