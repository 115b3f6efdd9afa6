package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/registry"
	"github.com/hpcml/hpcml/internal/store"
)

// testScheduler runs each replica job as a real HTTP server on loopback
// in this process: it stores the job, starts a server that checks the
// replica token and answers like hpcml serve, and writes the
// announcement to storage, as the real replica does. Ending a job closes
// its server and records the job's end in the store, where the
// controller reads job states.
type testScheduler struct {
	t      *testing.T
	st     store.Store
	bucket *blob.Bucket
	mu     sync.Mutex
	jobs   map[int64]*job.Job
	srvs   map[int64]*httptest.Server
	// crash makes replicas of this model URL exit at once.
	crash     string
	submitted int
	// refuse, if set, is the error Submit returns.
	refuse string
	// hold keeps replicas of this model URL waiting for resources.
	hold string
}

func (s *testScheduler) Submit(ctx context.Context, spec *job.Spec) (*job.Job, error) {
	s.mu.Lock()
	refuse := s.refuse
	s.mu.Unlock()
	if refuse != "" {
		return nil, &job.FieldError{Field: "resources", Message: refuse}
	}
	now := time.Now().UTC()
	j := &job.Job{Name: spec.Name, Queue: job.DefaultQueue, State: job.Running, Attempt: 1, SubmittedAt: now, StartedAt: &now, Spec: *spec}
	if err := s.st.InsertJob(ctx, j, nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.submitted++
	s.jobs[j.ID] = j
	model := spec.Command[slices.Index(spec.Command, "--model")+1]
	if model == s.hold {
		j.State, j.StartedAt = job.Runnable, nil
		if err := s.st.Apply(ctx, []store.Change{{Job: j}}); err != nil {
			return nil, err
		}
		return j, nil
	}
	if model == s.crash {
		s.endLocked(ctx, j.ID, job.Failed, "exit 1: model failed to load")
		return j, nil
	}
	token := spec.Env[job.ServeTokenEnv]
	version := spec.Command[slices.Index(spec.Command, "--model-version")+1]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/health/ready" {
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, `{"model_version":%q,"job":%d}`, version, j.ID)
	}))
	s.srvs[j.ID] = srv
	prefix := spec.Command[slices.Index(spec.Command, "--announce")+1]
	a, _ := json.Marshal(Announcement{Addr: strings.TrimPrefix(srv.URL, "http://"), Job: strconv.FormatInt(j.ID, 10), PID: 1})
	if err := s.bucket.WriteAll(ctx, prefix+strconv.FormatInt(j.ID, 10)+".json", a, nil); err != nil {
		return nil, err
	}
	return j, nil
}

func (s *testScheduler) Cancel(ctx context.Context, id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.jobs[id]; !ok {
		return fmt.Errorf("job %d: %w", id, store.ErrNotFound)
	}
	s.endLocked(ctx, id, job.Cancelled, "cancelled by user")
	return nil
}

// kill ends a replica as kill -9 would: its server goes, its job fails.
func (s *testScheduler) kill(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endLocked(context.Background(), id, job.Failed, "killed by signal 9")
}

func (s *testScheduler) endLocked(ctx context.Context, id int64, state job.State, reason string) {
	if srv := s.srvs[id]; srv != nil {
		srv.CloseClientConnections()
		srv.Close()
		delete(s.srvs, id)
	}
	j := s.jobs[id]
	if j.State.Terminal() {
		return
	}
	now := time.Now().UTC()
	j.State, j.Reason, j.EndedAt = state, reason, &now
	if err := s.st.Apply(ctx, []store.Change{{Job: j}}); err != nil {
		s.t.Error(err)
	}
}

func (s *testScheduler) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.srvs {
		s.srvs[id].Close()
	}
}

// testRegistry knows versions 1..3 of "m", and "fixed:1", whose input
// has a fixed first dimension (it cannot be batched).
type testRegistry struct{}

func (testRegistry) Resolve(ctx context.Context, ref registry.Ref) (*registry.Version, error) {
	if ref.Name == "fixed" && ref.Version == 1 {
		return &registry.Version{Name: "fixed", Version: 1, Signature: registry.Signature{
			Inputs: []registry.Tensor{{Name: "x", DataType: "FP32", Shape: []int64{1, 4}}}}}, nil
	}
	v := ref.Version
	if ref.Alias == "" && v == 0 {
		v = 3
	}
	if ref.Name != "m" || v > 3 || ref.Alias != "" {
		return nil, fmt.Errorf("model %s has no version %d: %w", ref.Name, v, registry.ErrNotFound)
	}
	return &registry.Version{Name: "m", Version: v}, nil
}

type harness struct {
	t     *testing.T
	st    *store.SQLite
	sch   *testScheduler
	gw    *Gateway
	c     *Controller
	front *httptest.Server
	stop  func()
	cfg   Config
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(t.Context(), filepath.Join(dir, "hpcml.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.CreateQueue(t.Context(), &job.Queue{Name: job.DefaultQueue, Backend: "local", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	bucket, err := blob.Open(t.Context(), blob.WithCreateDir("file://"+filepath.Join(dir, "objects")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bucket.Close() })
	sch := &testScheduler{t: t, st: st, bucket: bucket, jobs: map[int64]*job.Job{}, srvs: map[int64]*httptest.Server{}}
	t.Cleanup(sch.closeAll)
	h := &harness{t: t, st: st, sch: sch}
	h.cfg = Config{Store: st, Scheduler: sch, Storage: bucket, Registry: testRegistry{}, Tick: 20 * time.Millisecond,
		CheckTimeout: 500 * time.Millisecond, ReplaceAfter: 200 * time.Millisecond, DrainTimeout: 2 * time.Second}
	h.start()
	return h
}

// start runs a controller (and its gateway) on the harness's store, as
// a (re)started server does.
func (h *harness) start() {
	h.gw = NewGateway(GatewayConfig{Authorized: func(tok string) bool { return tok == "server-token" }})
	cfg := h.cfg
	cfg.Gateway = h.gw
	h.c = New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.c.Run(ctx); close(done) }()
	mux := http.NewServeMux()
	mux.Handle("/endpoints/", h.gw)
	h.front = httptest.NewServer(mux)
	h.stop = func() { cancel(); <-done; h.front.Close(); h.gw.Close() }
	h.t.Cleanup(func() {
		select {
		case <-done:
		default:
			h.stop()
		}
	})
}

func (h *harness) wait(what string, cond func(*Status) bool) *Status {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := h.c.Status(h.t.Context(), "ep")
		if err == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; status %+v, err %v", what, st, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ready(st *Status) []ReplicaStatus {
	var out []ReplicaStatus
	for _, r := range st.Replicas {
		if r.State == ReplicaReady {
			out = append(out, r)
		}
	}
	return out
}

func (h *harness) invoke() (int, string) {
	req, _ := http.NewRequest("POST", h.front.URL+"/endpoints/ep/invocations", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer server-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The controller starts an endpoint's replicas, routes to them once
// ready, replaces one that dies, resizes (draining the surplus), finds
// its replicas again after a restart without starting new ones, and
// deletes an endpoint with everything it ran.
func TestControllerReplicas(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	if _, err := h.c.Create(ctx, CreateRequest{Name: "ep", Variants: []VariantRequest{{Model: "m:1", Replicas: 2, CPUs: 0.5}}}); err != nil {
		t.Fatal(err)
	}
	st := h.wait("2 ready replicas", func(s *Status) bool { return len(ready(s)) == 2 && s.State == endpoint.InService })
	if code, body := h.invoke(); code != 200 || !strings.Contains(body, `"model_version":"1"`) {
		t.Fatalf("invoke: %d %s", code, body)
	}
	j, _ := h.st.GetJob(ctx, st.Replicas[0].Job)
	if j.Spec.Command[0] != "hpcml" || j.Spec.Command[1] != "serve" || j.Spec.Resources.CPUs != 0.5 ||
		j.Spec.Tags[TagEndpoint] != "ep" || j.Spec.Env[job.ServeTokenEnv] == "" || j.Spec.Retry.Attempts != 1 {
		t.Fatalf("replica job spec %+v", j.Spec)
	}

	// A replica dies: replaced, and its announcement is removed.
	victim := st.Replicas[0].Job
	h.sch.kill(victim)
	st = h.wait("the dead replica replaced", func(s *Status) bool {
		return len(ready(s)) == 2 && s.Replicas[0].Job != victim && s.Replicas[1].Job != victim
	})
	key := AnnouncePrefix("ep") + strconv.FormatInt(victim, 10) + ".json"
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if ok, _ := h.cfg.Storage.Exists(ctx, key); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the dead replica's announcement was not removed")
		}
	}

	// Resize: the surplus is drained and its job cancelled.
	if _, err := h.c.Update(ctx, "ep", UpdateRequest{Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	st = h.wait("1 replica", func(s *Status) bool { return len(s.Replicas) == 1 && len(ready(s)) == 1 })
	survivor := st.Replicas[0].Job

	// Restart: the replica is found again, nothing new is started.
	before := h.sch.submitted
	h.stop()
	h.start()
	st = h.wait("the replica found again", func(s *Status) bool { return len(ready(s)) == 1 })
	if st.Replicas[0].Job != survivor || h.sch.submitted != before {
		t.Fatalf("after a restart: replicas %+v, %d jobs submitted (was %d)", st.Replicas, h.sch.submitted, before)
	}
	if code, _ := h.invoke(); code != 200 {
		t.Fatalf("invoke after a restart: %d", code)
	}

	// Delete: out of the gateway at once, replicas stopped, row gone.
	if _, err := h.c.Delete(ctx, "ep"); err != nil {
		t.Fatal(err)
	}
	if code, _ := h.invoke(); code != 404 {
		t.Fatalf("invoke a deleted endpoint: %d", code)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := h.st.GetEndpoint(ctx, "ep"); errors.Is(err, store.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the endpoint was not deleted")
		}
	}
	if j, _ := h.st.GetJob(ctx, survivor); j.State != job.Cancelled {
		t.Fatalf("replica job after delete: %s", j.State)
	}
}

// Deployments: one that succeeds swaps the variant's fleet; one whose
// green replicas crash fails without touching blue; a second update
// while one runs is refused and changes nothing; bad input is refused.
func TestControllerDeployments(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	if _, err := h.c.Create(ctx, CreateRequest{Name: "ep", Variants: []VariantRequest{{Model: "m:1", Replicas: 2}}}); err != nil {
		t.Fatal(err)
	}
	h.wait("ready", func(s *Status) bool { return len(ready(s)) == 2 })
	if _, err := h.c.Create(ctx, CreateRequest{Name: "fx", Variants: []VariantRequest{{Model: "fixed:1",
		Batching: endpoint.Batching{MaxBatch: 4}}}}); err == nil || !strings.Contains(err.Error(), "cannot be batched") {
		t.Errorf("create with batching of a model that cannot batch: %v", err)
	}

	for _, c := range []struct {
		req  UpdateRequest
		want string
	}{
		{UpdateRequest{Model: "m:9"}, "no version 9"},
		{UpdateRequest{Model: "m:2", Strategy: "canary:0%:1m"}, "strategy"},
		{UpdateRequest{Model: "m:1"}, "nothing to deploy"},
		{UpdateRequest{Model: "m:2", Variant: "nope"}, "no variant"},
		{UpdateRequest{Model: "m:2", Replicas: 3}, "cannot change replicas"},
		{UpdateRequest{}, "nothing to change"},
		{UpdateRequest{Model: "fixed:1", Batching: &endpoint.Batching{MaxBatch: 8}}, "cannot be batched"},
		{UpdateRequest{Model: "m:2", Batching: &endpoint.Batching{MaxBatch: 2, PreferredBatch: []int{4}}}, "preferred batch size 4"},
	} {
		if _, err := h.c.Update(ctx, "ep", c.req); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("update %+v: %v, want %q", c.req, err, c.want)
		}
	}
	if _, err := h.c.Update(ctx, "nope", UpdateRequest{Model: "m:2"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update of an unknown endpoint: %v", err)
	}
	if hist, _ := h.c.History(ctx, "ep", 0); len(hist) != 0 {
		t.Fatalf("refused updates left deployments: %+v", hist)
	}
	res, err := h.c.Update(ctx, "ep", UpdateRequest{Model: "m:2", DryRun: true})
	if err != nil || !res.DryRun || res.Plan == "" {
		t.Fatalf("dry run: %+v %v", res, err)
	}

	// A canary of a good version, with requests flowing: none fails.
	res, err = h.c.Update(ctx, "ep", UpdateRequest{Model: "m:2", Strategy: "canary:50%:300ms"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.Update(ctx, "ep", UpdateRequest{Model: "m:3"}); !errors.Is(err, ErrConflict) ||
		!strings.Contains(err.Error(), "one update at a time") {
		t.Fatalf("a second update while one runs: %v", err)
	}
	if _, err := h.c.Update(ctx, "ep", UpdateRequest{Replicas: 5}); !errors.Is(err, ErrConflict) {
		t.Fatalf("a resize while a deployment runs: %v", err)
	}
	stop := make(chan struct{})
	var failed []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if code, body := h.invoke(); code != 200 {
				failed = append(failed, fmt.Sprintf("%d %s", code, body))
			}
		}
	}()
	var d *endpoint.Deployment
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		hist, _ := h.c.History(ctx, "ep", 0)
		if len(hist) == 1 && hist[0].Outcome != endpoint.Running {
			d = hist[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deployment did not end: %+v", hist)
		}
	}
	st := h.wait("green alone", func(s *Status) bool { return len(s.Replicas) == 2 && len(ready(s)) == 2 })
	close(stop)
	wg.Wait()
	if d.Outcome != endpoint.Succeeded || len(failed) > 0 {
		t.Fatalf("deployment %s (%s), failed requests %v", d.Outcome, d.Reason, failed)
	}
	if v := st.Spec.Variants[0]; v.Version != 2 || v.Revision != res.Deployment.ID || st.Replicas[0].Revision != res.Deployment.ID {
		t.Fatalf("after the deployment: %+v, replicas %+v", v, st.Replicas)
	}
	if len(d.Events) < 4 {
		t.Fatalf("events %+v", d.Events)
	}

	// Green crashes at start: the deployment fails, blue stays.
	h.sch.crash = "model://m/3"
	if _, err := h.c.Update(ctx, "ep", UpdateRequest{Model: "m:3", Strategy: "all-at-once"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		hist, _ := h.c.History(ctx, "ep", 0)
		if len(hist) == 2 && hist[0].Outcome != endpoint.Running {
			d = hist[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deployment did not end: %+v", hist)
		}
	}
	if d.Outcome != endpoint.Failed || !strings.Contains(d.Reason, "model failed to load") {
		t.Fatalf("deployment of a crashing version: %s: %s", d.Outcome, d.Reason)
	}
	st = h.wait("blue alone", func(s *Status) bool { return len(s.Replicas) == 2 && len(ready(s)) == 2 })
	if st.Spec.Variants[0].Version != 2 || st.State != endpoint.InService {
		t.Fatalf("after the failed deployment: %+v %s", st.Spec.Variants[0], st.State)
	}
}

// A replica the scheduler refuses (it cannot fit the queue) leaves the
// endpoint creating with the scheduler's reason, and is tried again.
func TestControllerSubmitRefused(t *testing.T) {
	h := newHarness(t)
	h.sch.mu.Lock()
	h.sch.refuse = "cpus: 4 do not fit the largest node (2)"
	h.sch.mu.Unlock()
	if _, err := h.c.Create(t.Context(), CreateRequest{Name: "ep", Variants: []VariantRequest{{Model: "m:1", CPUs: 4}}}); err != nil {
		t.Fatal(err)
	}
	h.wait("the reason", func(s *Status) bool {
		return s.State == endpoint.Creating && strings.Contains(s.Reason, "do not fit the largest node")
	})
	h.sch.mu.Lock()
	h.sch.refuse = ""
	h.sch.mu.Unlock()
	h.wait("in service once it fits", func(s *Status) bool { return s.State == endpoint.InService && s.Reason == "" })
}

// Green that cannot start for want of room: the deployment says so in
// its history and fails at the ready timeout; blue serves throughout.
func TestControllerGreenWaiting(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	if _, err := h.c.Create(ctx, CreateRequest{Name: "ep", Variants: []VariantRequest{{Model: "m:1"}}}); err != nil {
		t.Fatal(err)
	}
	h.wait("ready", func(s *Status) bool { return len(ready(s)) == 1 })
	h.sch.mu.Lock()
	h.sch.hold = "model://m/2"
	h.sch.mu.Unlock()
	if _, err := h.c.Update(ctx, "ep", UpdateRequest{Model: "m:2", ReadyTimeout: job.Duration(7 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	var d *endpoint.Deployment
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, _ := h.invoke(); code != 200 {
			t.Fatalf("blue failed a request: %d", code)
		}
		hist, _ := h.c.History(ctx, "ep", 0)
		if len(hist) == 1 && hist[0].Outcome != endpoint.Running {
			d = hist[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deployment did not end: %+v", hist)
		}
	}
	if d.Outcome != endpoint.Failed || !strings.Contains(d.Reason, "not ready") || !hasEvent(d, "is RUNNABLE: waiting for room") {
		t.Fatalf("deployment %s: %s; events %+v", d.Outcome, d.Reason, d.Events)
	}
}
