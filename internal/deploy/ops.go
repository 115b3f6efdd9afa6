package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/deploy/endpoint"
	"github.com/hpcml/hpcml/internal/deploy/rollout"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/registry"
	"github.com/hpcml/hpcml/internal/store"
)

// ErrConflict: the change is refused because of the endpoint's state (a
// deployment runs, it is being deleted). The API answers 409.
var ErrConflict = errors.New("conflict")

type conflictError string

func (e conflictError) Error() string        { return string(e) }
func (e conflictError) Is(target error) bool { return target == ErrConflict }

// VariantRequest is a variant as the API takes it: Model is a reference
// (NAME, NAME:VERSION, NAME:ALIAS), resolved when the request is made.
type VariantRequest struct {
	Name     string            `json:"name,omitempty"`
	Model    string            `json:"model"`
	Replicas int               `json:"replicas,omitempty"`
	Weight   int               `json:"weight,omitempty"`
	CPUs     float64           `json:"cpus,omitempty"`
	Batching endpoint.Batching `json:"batching"`
}

// CreateRequest creates an endpoint.
type CreateRequest struct {
	Name      string              `json:"name"`
	Variants  []VariantRequest    `json:"variants"`
	Autoscale *endpoint.Autoscale `json:"autoscale,omitempty"`
	Queue     string              `json:"queue,omitempty"`
	// Async makes the endpoint asynchronous (docs/async-inference.md).
	Async *endpoint.Async `json:"async,omitempty"`
	// MultiModel makes it serve many models; its variant names none
	// (docs/endpoints.md, multi-model endpoints).
	MultiModel *endpoint.MultiModel `json:"multi_model,omitempty"`
}

// UpdateRequest changes an endpoint. With Model it is a deployment of a
// new model version (or new cpus/batching) to one variant, by Strategy;
// without, it changes Replicas, Weight or Autoscale in place.
type UpdateRequest struct {
	Variant      string             `json:"variant,omitempty"`
	Model        string             `json:"model,omitempty"`
	CPUs         float64            `json:"cpus,omitempty"`
	Batching     *endpoint.Batching `json:"batching,omitempty"`
	Strategy     string             `json:"strategy,omitempty"`
	MaxErrorRate *float64           `json:"max_error_rate,omitempty"`
	MaxP99       *job.Duration      `json:"max_p99,omitempty"`
	MinRequests  *int               `json:"min_requests,omitempty"`
	ReadyTimeout job.Duration       `json:"ready_timeout,omitempty"`
	DryRun       bool               `json:"dry_run,omitempty"`

	Replicas    int                 `json:"replicas,omitempty"`
	Weight      *int                `json:"weight,omitempty"`
	Autoscale   *endpoint.Autoscale `json:"autoscale,omitempty"`
	NoAutoscale bool                `json:"no_autoscale,omitempty"`
	// Models replaces a multi-model endpoint's filter (no replica restarts).
	Models string `json:"models,omitempty"`
	// Async replaces an asynchronous endpoint's settings (no replica
	// restarts; requests already queued keep their locations and limits).
	Async *endpoint.Async `json:"async,omitempty"`
}

// UpdateResult is what an update did (or, dry, would do).
type UpdateResult struct {
	Endpoint   *endpoint.Endpoint   `json:"endpoint"`
	Deployment *endpoint.Deployment `json:"deployment,omitempty"`
	Plan       string               `json:"plan,omitempty"`
	DryRun     bool                 `json:"dry_run,omitempty"`
}

func fieldErr(field, format string, args ...any) error {
	return &job.FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// checkBatchable refuses dynamic batching for a model whose tensors have
// no variable first dimension, as hpcml serve would (its replicas would
// fail to start, over and over).
func checkBatchable(field string, mv *registry.Version, b endpoint.Batching) error {
	if b.MaxBatch <= 1 {
		return nil
	}
	for _, t := range append(slices.Clone(mv.Signature.Inputs), mv.Signature.Outputs...) {
		if len(t.Shape) == 0 || t.Shape[0] != -1 {
			return fieldErr(field, "model %s:%d cannot be batched: %q has shape %v, not a variable first (batch) dimension", mv.Name, mv.Version, t.Name, t.Shape)
		}
	}
	return nil
}

// resolve turns a model reference into the variant's model and version.
func (c *Controller) resolve(ctx context.Context, field, ref string) (*registry.Version, error) {
	r, err := registry.ParseRef(ref)
	if err != nil {
		return nil, fieldErr(field, "%v", err)
	}
	if c.cfg.Registry == nil {
		return nil, fmt.Errorf("no model registry")
	}
	v, err := c.cfg.Registry.Resolve(ctx, r)
	if err != nil {
		var ie *registry.InputError
		if errors.Is(err, registry.ErrNotFound) || errors.As(err, &ie) {
			return nil, fieldErr(field, "%v", err)
		}
		return nil, fmt.Errorf("resolve %s: %w", ref, err)
	}
	return v, nil
}

func (c *Controller) checkQueue(ctx context.Context, q string) error {
	if q == "" {
		return nil
	}
	if _, err := c.cfg.Store.GetQueue(ctx, q); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fieldErr("queue", "queue %s does not exist", q)
		}
		return err
	}
	return nil
}

// Create validates and stores a new endpoint; the controller starts its
// replicas at once.
func (c *Controller) Create(ctx context.Context, req CreateRequest) (*endpoint.Endpoint, error) {
	if !endpoint.ValidName(req.Name) {
		return nil, fieldErr("name", "%q is not a valid endpoint name (lower-case letters, digits, '-'; at most 63)", req.Name)
	}
	if req.MultiModel != nil && len(req.Variants) == 0 {
		req.Variants = []VariantRequest{{}} // the requests name the model
	}
	if len(req.Variants) == 0 {
		return nil, fieldErr("variants", "at least one variant (a model) is required")
	}
	spec := endpoint.Spec{Autoscale: req.Autoscale, Queue: req.Queue, Async: req.Async, MultiModel: req.MultiModel}
	for i, vr := range req.Variants {
		field := fmt.Sprintf("variants[%d]", i)
		if vr.Name == "" && len(req.Variants) == 1 {
			vr.Name = endpoint.DefaultVariantName
		}
		if req.MultiModel != nil {
			v, err := multiModelVariant(field, vr)
			if err != nil {
				return nil, err
			}
			spec.Variants = append(spec.Variants, v)
			continue
		}
		if vr.Model == "" {
			return nil, fieldErr(field+".model", "a model reference is required (NAME[:VERSION|:ALIAS])")
		}
		mv, err := c.resolve(ctx, field+".model", vr.Model)
		if err != nil {
			return nil, err
		}
		if err := checkBatchable(field+".batching.max_batch", mv, vr.Batching); err != nil {
			return nil, err
		}
		spec.Variants = append(spec.Variants, endpoint.Variant{Name: vr.Name, Ref: vr.Model, Model: mv.Name, Version: mv.Version,
			Replicas: vr.Replicas, Weight: vr.Weight, CPUs: vr.CPUs, Batching: vr.Batching})
	}
	if err := spec.Check(); err != nil {
		return nil, err
	}
	if err := c.checkQueue(ctx, spec.Queue); err != nil {
		return nil, err
	}
	tok := make([]byte, 24)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}
	e := &endpoint.Endpoint{Name: req.Name, Spec: spec, State: endpoint.Creating, Token: hex.EncodeToString(tok)}
	c.mu.Lock()
	err := c.cfg.Store.CreateEndpoint(ctx, e)
	c.mu.Unlock()
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, conflictError(fmt.Sprintf("endpoint %s already exists", req.Name))
		}
		return nil, err
	}
	c.poke()
	return e, nil
}

func (c *Controller) getForChange(ctx context.Context, name string) (*endpoint.Endpoint, error) {
	e, err := c.cfg.Store.GetEndpoint(ctx, name)
	if err != nil {
		return nil, err
	}
	if e.State == endpoint.Deleting {
		return nil, conflictError(fmt.Sprintf("endpoint %s is being deleted", name))
	}
	deps, err := c.cfg.Store.ListDeployments(ctx, name, 1)
	if err != nil {
		return nil, err
	}
	if len(deps) > 0 && deps[0].Outcome == endpoint.Running {
		d := deps[0]
		return nil, conflictError(fmt.Sprintf("deployment %d (%s, %s:%d → %s:%d) is still running on endpoint %s (phase %s): "+
			"one update at a time; see hpcml endpoint history %s", d.ID, d.Strategy, d.From.Model, d.From.Version,
			d.To.Model, d.To.Version, name, d.Phase, name))
	}
	return e, nil
}

// Update applies an UpdateRequest; see there.
func (c *Controller) Update(ctx context.Context, name string, req UpdateRequest) (*UpdateResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.getForChange(ctx, name)
	if err != nil {
		return nil, err
	}
	if res, handled, err := c.updateMultiModel(ctx, e, req); handled {
		return res, err
	}
	if res, handled, err := c.updateAsync(ctx, e, req); handled {
		return res, err
	}
	vname := req.Variant
	if vname == "" {
		if len(e.Spec.Variants) > 1 && (req.Model != "" || req.Replicas > 0 || req.Weight != nil) {
			names := make([]string, len(e.Spec.Variants))
			for i, v := range e.Spec.Variants {
				names[i] = v.Name
			}
			return nil, fieldErr("variant", "endpoint %s has several variants (%s): say which", name, strings.Join(names, ", "))
		}
		vname = e.Spec.Variants[0].Name
	}
	v, ok := e.Spec.Variant(vname)
	if !ok {
		return nil, fieldErr("variant", "endpoint %s has no variant %q", name, vname)
	}
	if req.Model == "" {
		if req.Strategy != "" || req.CPUs != 0 || req.Batching != nil || req.MaxErrorRate != nil || req.MaxP99 != nil {
			return nil, fieldErr("model", "--strategy, --cpus, batching and alarms apply to a deployment: give --model")
		}
		return c.updateInPlace(ctx, e, v, req)
	}
	if req.Replicas > 0 || req.Weight != nil || req.Autoscale != nil || req.NoAutoscale {
		return nil, fieldErr("model", "a deployment (--model) cannot change replicas, weight or autoscaling in the same update")
	}
	mv, err := c.resolve(ctx, "model", req.Model)
	if err != nil {
		return nil, err
	}
	to := *v
	to.Ref, to.Model, to.Version = req.Model, mv.Name, mv.Version
	if req.CPUs != 0 {
		to.CPUs = req.CPUs
	}
	if req.Batching != nil {
		to.Batching = *req.Batching
	}
	if err := to.Check("variant"); err != nil {
		return nil, err
	}
	if err := checkBatchable("batching.max_batch", mv, to.Batching); err != nil {
		return nil, err
	}
	if to.Model == v.Model && to.Version == v.Version && to.CPUs == v.CPUs && sameBatching(to.Batching, v.Batching) {
		return nil, fieldErr("model", "variant %s already runs %s:%d with these settings: nothing to deploy", v.Name, v.Model, v.Version)
	}
	if req.Strategy == "" {
		req.Strategy = rollout.KindAllAtOnce
	}
	strat, err := rollout.ParseStrategy(req.Strategy)
	if err != nil {
		return nil, fieldErr("strategy", "%v", err)
	}
	alarms := rollout.DefaultAlarms()
	if req.MaxErrorRate != nil {
		alarms.MaxErrorRate = *req.MaxErrorRate
	}
	if req.MaxP99 != nil {
		alarms.MaxP99 = time.Duration(*req.MaxP99)
	}
	if req.MinRequests != nil {
		alarms.MinRequests = *req.MinRequests
	}
	if req.ReadyTimeout > 0 {
		alarms.ReadyTimeout = time.Duration(req.ReadyTimeout)
	}
	if err := alarms.Validate(); err != nil {
		return nil, fieldErr("alarms", "%v", err)
	}
	plan := rollout.Describe(strat, alarms, v.Replicas)
	if req.DryRun {
		return &UpdateResult{Endpoint: e, Plan: plan, DryRun: true,
			Deployment: &endpoint.Deployment{Endpoint: name, Variant: v.Name, From: *v, To: to, Strategy: strat.String(),
				Alarms: endpoint.Alarms{MaxErrorRate: alarms.MaxErrorRate, MaxP99: job.Duration(alarms.MaxP99),
					MinRequests: alarms.MinRequests, ReadyTimeout: job.Duration(alarms.ReadyTimeout)}}}, nil
	}
	d := &endpoint.Deployment{Endpoint: name, Variant: v.Name, From: *v, To: to, Strategy: strat.String(),
		Alarms: endpoint.Alarms{MaxErrorRate: alarms.MaxErrorRate, MaxP99: job.Duration(alarms.MaxP99),
			MinRequests: alarms.MinRequests, ReadyTimeout: job.Duration(alarms.ReadyTimeout)},
		Phase: "pending"}
	ev := endpoint.Event{At: time.Now().UTC(), Message: fmt.Sprintf("update of variant %s requested: %s:%d → %s:%d, %s",
		v.Name, v.Model, v.Version, to.Model, to.Version, strat)}
	if err := c.cfg.Store.StartDeployment(ctx, d, []endpoint.Event{ev}); err != nil {
		if errors.Is(err, store.ErrDeploymentRunning) {
			return nil, conflictError(fmt.Sprintf("a deployment is already running on endpoint %s: one update at a time", name))
		}
		return nil, err
	}
	e.State = endpoint.Updating
	c.poke()
	return &UpdateResult{Endpoint: e, Deployment: d, Plan: plan}, nil
}

func sameBatching(a, b endpoint.Batching) bool {
	return a.MaxBatch == b.MaxBatch && a.MaxQueueDelay == b.MaxQueueDelay && a.Concurrency == b.Concurrency &&
		slices.Equal(a.PreferredBatch, b.PreferredBatch)
}

func (c *Controller) updateInPlace(ctx context.Context, e *endpoint.Endpoint, v *endpoint.Variant, req UpdateRequest) (*UpdateResult, error) {
	changed := false
	if req.Replicas > 0 {
		if e.Spec.Autoscale != nil && !req.NoAutoscale {
			return nil, fieldErr("replicas", "endpoint %s is autoscaled (%s): change --autoscale, or turn it off", e.Name, e.Spec.Autoscale)
		}
		v.Replicas, changed = req.Replicas, true
	}
	if req.Weight != nil {
		v.Weight, changed = *req.Weight, true
	}
	if req.NoAutoscale && e.Spec.Autoscale != nil {
		e.Spec.Autoscale, changed = nil, true
	}
	if req.Autoscale != nil {
		e.Spec.Autoscale, changed = req.Autoscale, true
	}
	if !changed {
		return nil, fieldErr("model", "nothing to change: give --model (a deployment), --replicas, --weight or --autoscale")
	}
	if err := e.Spec.Check(); err != nil {
		return nil, err
	}
	if req.DryRun {
		return &UpdateResult{Endpoint: e, DryRun: true}, nil
	}
	if err := c.cfg.Store.UpdateEndpoint(ctx, e); err != nil {
		return nil, err
	}
	c.poke()
	return &UpdateResult{Endpoint: e}, nil
}

// Delete marks an endpoint for deletion: it leaves the gateway at once,
// its replicas drain, and the row goes when they are gone. A running
// deployment ends as superseded.
func (c *Controller) Delete(ctx context.Context, name string) (*endpoint.Endpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.cfg.Store.GetEndpoint(ctx, name)
	if err != nil {
		return nil, err
	}
	if e.State == endpoint.Deleting {
		return e, nil
	}
	e.State, e.Reason = endpoint.Deleting, "deleted by request"
	deps, err := c.cfg.Store.ListDeployments(ctx, name, 1)
	if err != nil {
		return nil, err
	}
	if len(deps) > 0 && deps[0].Outcome == endpoint.Running {
		d := deps[0]
		d.Outcome, d.Reason, d.EndedAt = endpoint.Superseded, "the endpoint was deleted", time.Now().UTC()
		err = c.cfg.Store.UpdateDeployment(ctx, d, []endpoint.Event{{At: d.EndedAt, Message: "superseded: the endpoint was deleted"}}, e)
	} else {
		err = c.cfg.Store.UpdateEndpoint(ctx, e)
	}
	if err != nil {
		return nil, err
	}
	c.cfg.Gateway.RemoveRoute(name)
	c.poke()
	return e, nil
}

// ReplicaStatus is one replica as `endpoint get` shows it.
type ReplicaStatus struct {
	Job         int64        `json:"job"`
	Variant     string       `json:"variant"`
	Revision    int64        `json:"revision"`
	Fleet       string       `json:"fleet"` // "blue", or "green" during a deployment
	Addr        string       `json:"addr,omitempty"`
	State       ReplicaState `json:"state"`
	JobState    job.State    `json:"job_state"`
	Since       time.Time    `json:"since"`
	Outstanding int64        `json:"outstanding"`
	Reason      string       `json:"reason,omitempty"`
}

// Traffic is a variant's (or fleet's) recent traffic.
type Traffic struct {
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	RPS       float64 `json:"rps"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	Seconds   int     `json:"window_seconds"`
	InFlight  int64   `json:"in_flight"`
}

func trafficOf(w Window, inflight int64) Traffic {
	return Traffic{Requests: w.Requests, Errors: w.Errors, ErrorRate: w.ErrorRate(), RPS: w.RPS(),
		P50Ms: float64(w.P50) / 1e6, P99Ms: float64(w.P99) / 1e6, Seconds: w.Seconds, InFlight: inflight}
}

// VariantStatus is a variant with its live fleet and traffic.
type VariantStatus struct {
	endpoint.Variant
	TrafficShare float64 `json:"traffic_share"` // of the endpoint's, by weight
	Ready        int     `json:"ready"`
	// Traffic over the last minute (both fleets during a deployment);
	// Green alone while a deployment runs.
	Traffic Traffic  `json:"traffic"`
	Green   *Traffic `json:"green,omitempty"`
}

// Status is an endpoint as `endpoint get` shows it.
type Status struct {
	endpoint.Endpoint
	URL         string                `json:"url"`
	Variants    []VariantStatus       `json:"variants"`
	Replicas    []ReplicaStatus       `json:"replicas"`
	Deployment  *endpoint.Deployment  `json:"deployment,omitempty"`
	ScaleEvents []endpoint.ScaleEvent `json:"scale_events"`
	// AsyncQueue is an asynchronous endpoint's backlog.
	AsyncQueue *store.AsyncCounts `json:"async_queue,omitempty"`
}

// TrafficWindow is the span of the traffic figures.
const TrafficWindow = time.Minute

// Status reads an endpoint with what the controller knows of it now.
func (c *Controller) Status(ctx context.Context, name string) (*Status, error) {
	e, err := c.cfg.Store.GetEndpoint(ctx, name)
	if err != nil {
		return nil, err
	}
	st := &Status{Endpoint: *e, URL: "/endpoints/" + name + "/"}
	deps, err := c.cfg.Store.ListDeployments(ctx, name, 1)
	if err != nil {
		return nil, err
	}
	if len(deps) > 0 && deps[0].Outcome == endpoint.Running {
		st.Deployment = deps[0]
	}
	if st.ScaleEvents, err = c.cfg.Store.ListScaleEvents(ctx, name, 20); err != nil {
		return nil, err
	}
	if err := c.fillAsyncQueue(ctx, []*Status{st}); err != nil {
		return nil, err
	}
	c.fill(st, time.Now())
	return st, nil
}

// List reads every endpoint with its variants' status (no replica list).
func (c *Controller) List(ctx context.Context) ([]*Status, error) {
	eps, err := c.cfg.Store.ListEndpoints(ctx)
	if err != nil {
		return nil, err
	}
	deps, err := c.cfg.Store.RunningDeployments(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]*Status, 0, len(eps))
	for _, e := range eps {
		st := &Status{Endpoint: *e, URL: "/endpoints/" + e.Name + "/", ScaleEvents: []endpoint.ScaleEvent{}}
		for _, d := range deps {
			if d.Endpoint == e.Name {
				st.Deployment = d
			}
		}
		c.fill(st, now)
		st.Replicas = nil
		out = append(out, st)
	}
	if err := c.fillAsyncQueue(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Controller) fill(st *Status, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	total := 0
	for _, v := range st.Spec.Variants {
		total += v.Weight
	}
	var greenRev int64
	if st.Deployment != nil {
		greenRev = st.Deployment.To.Revision
	}
	st.Replicas = []ReplicaStatus{}
	for _, r := range c.replicas {
		if r.endpoint != st.Name {
			continue
		}
		fleet := "blue"
		if greenRev != 0 && r.Revision == greenRev {
			fleet = "green"
		}
		st.Replicas = append(st.Replicas, ReplicaStatus{Job: r.JobID, Variant: r.Variant, Revision: r.Revision, Fleet: fleet,
			Addr: r.Addr, State: r.state, JobState: r.jobState, Since: r.since.UTC(), Outstanding: r.Outstanding(), Reason: r.reason})
	}
	sort.Slice(st.Replicas, func(i, j int) bool { return st.Replicas[i].Job < st.Replicas[j].Job })
	gw := c.cfg.Gateway
	for _, v := range st.Spec.Variants {
		vs := VariantStatus{Variant: v}
		if total > 0 {
			vs.TrafficShare = float64(v.Weight) / float64(total)
		}
		var inflight, greenInflight int64
		for _, r := range st.Replicas {
			if r.Variant == v.Name {
				inflight += r.Outstanding
				if r.State == ReplicaReady {
					vs.Ready++
				}
				if r.Fleet == "green" {
					greenInflight += r.Outstanding
				}
			}
		}
		fleets := []*Stats{gw.Stats(st.Name, v.Name, v.Revision)}
		if st.Deployment != nil && st.Deployment.Variant == v.Name {
			g := gw.Stats(st.Name, v.Name, greenRev)
			fleets = append(fleets, g)
			t := trafficOf(g.Window(now, TrafficWindow, time.Time{}), greenInflight)
			vs.Green = &t
		}
		vs.Traffic = trafficOf(WindowOf(fleets, now, TrafficWindow, time.Time{}), inflight)
		st.Variants = append(st.Variants, vs)
	}
}

// History lists an endpoint's deployments, newest first.
func (c *Controller) History(ctx context.Context, name string, limit int) ([]*endpoint.Deployment, error) {
	if _, err := c.cfg.Store.GetEndpoint(ctx, name); err != nil {
		return nil, err
	}
	return c.cfg.Store.ListDeployments(ctx, name, limit)
}
