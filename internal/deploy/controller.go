package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"gocloud.dev/gcerrors"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/deploy/autoscale"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
	"github.com/hpcml/hpcml/internal/deploy/rollout"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/registry"
	"github.com/hpcml/hpcml/internal/store"
)

// Scheduler is what the controller needs of the job scheduler.
type Scheduler interface {
	Submit(ctx context.Context, spec *job.Spec) (*job.Job, error)
	Cancel(ctx context.Context, id int64) error
}

// Resolver resolves model references (the registry).
type Resolver interface {
	Resolve(ctx context.Context, ref registry.Ref) (*registry.Version, error)
}

// Config wires a Controller.
type Config struct {
	Store     store.Store
	Scheduler Scheduler
	// Storage is the server's bucket, where replicas announce themselves.
	Storage  *blob.Bucket
	Registry Resolver
	Gateway  *Gateway
	Log      *slog.Logger

	// Tick is how often desired and actual are reconciled (1 s).
	Tick time.Duration
	// CheckTimeout bounds one readiness check (1 s).
	CheckTimeout time.Duration
	// StartTimeout: a replica whose job runs but that is not ready after
	// this long is replaced (5 min: a large model takes a while to load).
	StartTimeout time.Duration
	// UnhealthyAfter consecutive failed checks take a ready replica out
	// of routing (3); ReplaceAfter in that state replaces it (10 s).
	UnhealthyAfter int
	ReplaceAfter   time.Duration
	// DrainTimeout bounds how long a replica leaving the fleet may take
	// to finish its requests before its job is cancelled (30 s).
	DrainTimeout time.Duration
}

// Controller reconciles endpoints: see the package documentation.
type Controller struct {
	cfg    Config
	log    *slog.Logger
	checks *http.Client
	wake   chan struct{}

	// mu guards everything below and serialises the tick's decisions
	// with the API's changes, so that neither writes over the other.
	mu       sync.Mutex
	replicas map[int64]*replica
	runtime  map[string]*epRuntime
	started  bool
}

// epRuntime is an endpoint's in-memory state: measurements, not facts.
type epRuntime struct {
	samples      map[string][]autoscale.Sample // by variant
	lastOut      map[string]time.Time
	lastIn       map[string]time.Time
	scaleLoaded  bool
	greenFailed  map[int64]string // by deployment
	backoffUntil map[fleetID]time.Time
	failures     map[fleetID]int
	everServed   bool
	// submitErr is why the last replica could not be submitted (a
	// queue that cannot fit it, say): the endpoint's reason until one is.
	submitErr string
	// drainFor, if longer than the configured drain timeout, is how long
	// a draining replica may take (an async request runs up to an hour).
	drainFor time.Duration
}

type fleetID struct {
	variant  string
	revision int64
}

// fleetWant is one fleet the endpoint should have now.
type fleetWant struct {
	variant  endpoint.Variant // its configuration (model, batching, cpus)
	revision int64
	want     int
	percent  int
	green    int64 // the deployment whose green fleet this is, else 0
}

// New returns a controller; Run starts it.
func New(cfg Config) *Controller {
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = time.Second
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 5 * time.Minute
	}
	if cfg.UnhealthyAfter <= 0 {
		cfg.UnhealthyAfter = 3
	}
	if cfg.ReplaceAfter <= 0 {
		cfg.ReplaceAfter = 10 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Controller{cfg: cfg, log: cfg.Log.With("component", "deploy"), wake: make(chan struct{}, 1),
		replicas: map[int64]*replica{}, runtime: map[string]*epRuntime{},
		checks: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, DisableCompression: true}}}
}

// Gateway is the controller's gateway.
func (c *Controller) Gateway() *Gateway { return c.cfg.Gateway }

func (c *Controller) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run reconciles until ctx ends. It first finds the replicas that
// outlived the previous server: every active job tagged with an endpoint.
func (c *Controller) Run(ctx context.Context) error {
	if err := c.recover(ctx); err != nil {
		return err
	}
	t := time.NewTicker(c.cfg.Tick)
	defer t.Stop()
	for {
		c.tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-c.wake:
		}
	}
}

func (c *Controller) recover(ctx context.Context) error {
	jobs, err := c.cfg.Store.ActiveJobs(ctx)
	if err != nil {
		return fmt.Errorf("find replica jobs: %w", err)
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, j := range jobs {
		ep := j.Spec.Tags[TagEndpoint]
		if ep == "" {
			continue
		}
		rev, _ := strconv.ParseInt(j.Spec.Tags[TagRevision], 10, 64)
		r := &replica{Replica: &Replica{JobID: j.ID, Variant: j.Spec.Tags[TagVariant], Revision: rev}, endpoint: ep,
			state: ReplicaStarting, since: now, submitted: now, jobState: j.State}
		if j.CancelRequested {
			r.stopRequested = true
			r.draining.Store(true)
			r.set(ReplicaStopping, now, "stopping (found after a restart)")
		}
		c.replicas[j.ID] = r
	}
	c.started = true
	c.log.Info("endpoint controller started", "replicas_found", len(c.replicas))
	return nil
}

func isNotFound(err error) bool { return gcerrors.Code(err) == gcerrors.NotFound }

func (c *Controller) rt(ep string) *epRuntime {
	rt := c.runtime[ep]
	if rt == nil {
		rt = &epRuntime{samples: map[string][]autoscale.Sample{}, lastOut: map[string]time.Time{}, lastIn: map[string]time.Time{},
			greenFailed: map[int64]string{}, backoffUntil: map[fleetID]time.Time{}, failures: map[fleetID]int{}}
		c.runtime[ep] = rt
	}
	return rt
}

// tick is one reconciliation: observe (job states, announcements,
// readiness) without the lock, then decide and act with it.
func (c *Controller) tick(ctx context.Context) {
	c.mu.Lock()
	var ids []int64
	var probe []*replica // copies of what the checks need
	for id, r := range c.replicas {
		ids = append(ids, id)
		if r.live() {
			probe = append(probe, &replica{Replica: &Replica{JobID: id, Addr: r.Addr}, endpoint: r.endpoint})
		}
	}
	c.mu.Unlock()

	states, err := c.cfg.Store.JobStates(ctx, ids)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("read replica job states", "err", err)
		}
		return
	}
	addrs := map[int64]string{}
	for _, p := range probe {
		if p.Addr == "" && !states[p.JobID].Terminal() {
			addr, err := c.readAnnouncement(ctx, p.endpoint, p.JobID)
			if err != nil {
				c.log.Warn("read replica announcement", "job", p.JobID, "err", err)
			}
			if addr != "" {
				p.Addr, addrs[p.JobID] = addr, addr
			}
		}
	}
	checks := c.checkAll(ctx, probe)

	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.observe(ctx, states, addrs, checks, now)
	eps, err := c.cfg.Store.ListEndpoints(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("list endpoints", "err", err)
		}
		return
	}
	deps, err := c.cfg.Store.RunningDeployments(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("list deployments", "err", err)
		}
		return
	}
	running := map[string]*endpoint.Deployment{}
	for _, d := range deps {
		running[d.Endpoint] = d
	}
	known := map[string]bool{}
	for _, e := range eps {
		known[e.Name] = true
		c.reconcile(ctx, e, running[e.Name], now)
	}
	// Replicas of endpoints that are gone altogether.
	for _, r := range c.replicas {
		if !known[r.endpoint] && r.live() {
			c.drain(r, now, "its endpoint is gone")
		}
	}
	for name := range c.runtime {
		if !known[name] {
			delete(c.runtime, name)
			c.cfg.Gateway.RemoveRoute(name)
		}
	}
	c.progressDrains(ctx, now)
}

// observe folds the tick's observations into the replicas' records.
func (c *Controller) observe(ctx context.Context, states map[int64]job.State, addrs map[int64]string, checks map[int64]bool, now time.Time) {
	for id, r := range c.replicas {
		st, ok := states[id]
		if !ok {
			continue // submitted since the observation
		}
		if r.jobState != st {
			r.jobState = st
			if st == job.Running && r.state == ReplicaStarting {
				r.submitted = now // the start deadline runs from when the job runs
			}
		}
		if st.Terminal() {
			r.draining.Store(true)
			delete(c.replicas, id)
			go c.forgetAnnouncement(context.WithoutCancel(ctx), r.endpoint, id)
			if !r.stopRequested {
				why := c.endReason(ctx, id)
				c.log.Warn("replica ended", "endpoint", r.endpoint, "variant", r.Variant, "job", id, "why", why)
				c.failed(r, why, now)
			}
			continue
		}
		if a := addrs[id]; a != "" && r.Addr == "" {
			r.Addr = a
		}
		if !r.live() {
			continue
		}
		if ok, checked := checks[id]; checked {
			if ok {
				r.fails, r.everReady = 0, true
				r.set(ReplicaReady, now, "")
			} else {
				r.fails++
				if r.state == ReplicaReady && r.fails >= c.cfg.UnhealthyAfter {
					r.set(ReplicaUnhealthy, now, fmt.Sprintf("failed %d readiness checks in a row", r.fails))
				}
			}
		}
		switch {
		case r.state == ReplicaUnhealthy && now.Sub(r.since) >= c.cfg.ReplaceAfter:
			why := fmt.Sprintf("replica job %d unhealthy for %s", id, c.cfg.ReplaceAfter)
			c.failed(r, why, now)
			c.drain(r, now, why)
		case r.state == ReplicaStarting && r.jobState == job.Running && now.Sub(r.submitted) >= c.cfg.StartTimeout:
			why := fmt.Sprintf("replica job %d not ready %s after it started", id, c.cfg.StartTimeout)
			c.failed(r, why, now)
			c.drain(r, now, why)
		}
	}
}

// failed notes a replica that failed: its fleet backs off before the
// next replacement (a model that cannot load must not be retried in a
// tight loop), and a green replica fails its deployment.
func (c *Controller) failed(r *replica, why string, now time.Time) {
	rt := c.rt(r.endpoint)
	f := fleetID{r.Variant, r.Revision}
	rt.failures[f]++
	delay := min(time.Duration(1<<min(rt.failures[f]-1, 5))*time.Second, 30*time.Second)
	rt.backoffUntil[f] = now.Add(delay)
	if r.Revision > 0 {
		if _, ok := rt.greenFailed[r.Revision]; !ok {
			rt.greenFailed[r.Revision] = why
		}
	}
}

func (c *Controller) endReason(ctx context.Context, id int64) string {
	j, err := c.cfg.Store.GetJob(ctx, id)
	if err != nil {
		return fmt.Sprintf("replica job %d ended", id)
	}
	s := fmt.Sprintf("replica job %d %s", id, j.State)
	switch {
	case j.Signal != "":
		s += " (" + j.Signal + ")"
	case j.ExitCode != nil:
		s += fmt.Sprintf(" (exit %d)", *j.ExitCode)
	}
	if j.Reason != "" {
		s += ": " + j.Reason
	}
	return s
}

func (c *Controller) forgetAnnouncement(ctx context.Context, ep string, id int64) {
	key := AnnouncePrefix(ep) + strconv.FormatInt(id, 10) + ".json"
	if err := c.cfg.Storage.Delete(ctx, key); err != nil && !isNotFound(err) {
		c.log.Debug("delete replica announcement", "key", key, "err", err)
	}
}

// drain takes a replica out of routing; progressDrains cancels its job
// once it holds no request. A replica that never took traffic is
// cancelled at once.
func (c *Controller) drain(r *replica, now time.Time, why string) {
	if !r.live() {
		return
	}
	r.stopRequested = true
	r.draining.Store(true)
	c.log.Info("draining replica", "endpoint", r.endpoint, "variant", r.Variant, "job", r.JobID, "why", why)
	r.set(ReplicaDraining, now, why)
}

func (c *Controller) progressDrains(ctx context.Context, now time.Time) {
	for _, r := range c.replicas {
		if r.state != ReplicaDraining {
			continue
		}
		timeout := c.cfg.DrainTimeout
		if rt := c.runtime[r.endpoint]; rt != nil {
			timeout = max(timeout, rt.drainFor)
		}
		if r.Outstanding() > 0 && now.Sub(r.since) < timeout {
			continue
		}
		if err := c.cfg.Scheduler.Cancel(ctx, r.JobID); err != nil && !errors.Is(err, store.ErrNotFound) {
			c.log.Warn("cancel replica job", "job", r.JobID, "err", err)
			continue
		}
		r.set(ReplicaStopping, now, r.reason)
	}
}

// reconcile makes one endpoint's fleets match what it should be now.
func (c *Controller) reconcile(ctx context.Context, e *endpoint.Endpoint, d *endpoint.Deployment, now time.Time) {
	rt := c.rt(e.Name)
	rt.drainFor = 0
	if e.State != endpoint.Deleting {
		rt.drainFor = asyncDrainTimeout(e)
	}
	var wants []fleetWant
	if e.State != endpoint.Deleting {
		for i := range e.Spec.Variants {
			v := &e.Spec.Variants[i]
			if d != nil && d.Variant == v.Name {
				w, ended := c.stepDeployment(ctx, e, v, d, now)
				wants = append(wants, w...)
				if ended {
					d = nil
				}
				continue
			}
			if e.Spec.Autoscale != nil {
				c.autoscale(ctx, e, v, now)
			}
			wants = append(wants, fleetWant{variant: *v, revision: v.Revision, want: v.Replicas, percent: 100})
		}
	}
	c.applyFleets(ctx, e, wants, now)
	c.publish(e, wants)

	// The endpoint's state follows from its replicas.
	if e.State == endpoint.Deleting {
		left := 0
		for _, r := range c.replicas {
			if r.endpoint == e.Name {
				left++
			}
		}
		if left == 0 {
			if err := c.cfg.Store.DeleteEndpoint(ctx, e.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
				c.log.Warn("delete endpoint", "endpoint", e.Name, "err", err)
				return
			}
			c.cfg.Gateway.RemoveRoute(e.Name)
			delete(c.runtime, e.Name)
			c.log.Info("endpoint deleted", "endpoint", e.Name)
		}
		return
	}
	state, reason := endpoint.InService, ""
	for _, v := range e.Spec.Variants {
		// A fleet scaled to zero (async) is in service with nothing ready.
		if c.readyIn(e.Name, v.Name) == 0 && v.Replicas > 0 {
			state, reason = endpoint.Degraded, fmt.Sprintf("variant %s has no ready replica", v.Name)
			if !rt.everServed {
				state, reason = endpoint.Creating, ""
			}
			if rt.submitErr != "" {
				reason = rt.submitErr
			}
			break
		}
	}
	if state == endpoint.InService {
		rt.everServed = true
	}
	if d != nil {
		state = endpoint.Updating
	}
	if state != e.State || reason != e.Reason {
		e.State, e.Reason = state, reason
		if err := c.cfg.Store.UpdateEndpoint(ctx, e); err != nil {
			c.log.Warn("update endpoint state", "endpoint", e.Name, "err", err)
		}
	}
}

func (c *Controller) readyIn(ep, variant string) int {
	n := 0
	for _, r := range c.replicas {
		if r.endpoint == ep && r.Variant == variant && r.state == ReplicaReady {
			n++
		}
	}
	return n
}

// fleet lists the replicas of one fleet.
func (c *Controller) fleet(ep, variant string, revision int64) []*replica {
	var out []*replica
	for _, r := range c.replicas {
		if r.endpoint == ep && r.Variant == variant && r.Revision == revision {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].JobID < out[j].JobID })
	return out
}

// applyFleets starts missing replicas and drains surplus ones and those
// of fleets no longer wanted.
func (c *Controller) applyFleets(ctx context.Context, e *endpoint.Endpoint, wants []fleetWant, now time.Time) {
	rt := c.rt(e.Name)
	wanted := map[fleetID]bool{}
	for _, w := range wants {
		id := fleetID{w.variant.Name, w.revision}
		wanted[id] = true
		var live []*replica
		for _, r := range c.fleet(e.Name, w.variant.Name, w.revision) {
			if r.live() {
				live = append(live, r)
			}
		}
		switch {
		case len(live) < w.want:
			if w.green != 0 && rt.greenFailed[w.green] != "" {
				continue // a failed green is rolled back, not replaced
			}
			if now.Before(rt.backoffUntil[id]) {
				continue
			}
			for range w.want - len(live) {
				if err := c.submit(ctx, e, w.variant, w.revision, now); err != nil {
					c.log.Warn("start replica", "endpoint", e.Name, "variant", w.variant.Name, "err", err)
					rt.backoffUntil[id] = now.Add(5 * time.Second)
					rt.submitErr = fmt.Sprintf("cannot start a replica of variant %s: %v", w.variant.Name, err)
					break
				}
				rt.submitErr = ""
			}
		case len(live) > w.want:
			// Surplus: those not serving first, then the newest.
			slices.SortStableFunc(live, func(a, b *replica) int {
				ra, rb := a.state == ReplicaReady, b.state == ReplicaReady
				if ra != rb {
					if ra {
						return 1
					}
					return -1
				}
				return int(b.JobID - a.JobID)
			})
			for _, r := range live[:len(live)-w.want] {
				c.drain(r, now, "fleet scaled to "+strconv.Itoa(w.want))
			}
		}
		// A fleet whose replicas all serve again has paid its failures.
		if len(live) >= w.want && w.want > 0 {
			ready := 0
			for _, r := range live {
				if r.state == ReplicaReady {
					ready++
				}
			}
			if ready >= w.want {
				delete(rt.failures, id)
			}
		}
	}
	for _, r := range c.replicas {
		if r.endpoint == e.Name && r.live() && !wanted[fleetID{r.Variant, r.Revision}] {
			c.drain(r, now, "its fleet is no longer wanted")
		}
	}
}

func (c *Controller) submit(ctx context.Context, e *endpoint.Endpoint, v endpoint.Variant, revision int64, now time.Time) error {
	listen, err := c.replicaListen(ctx, e)
	if err != nil {
		return err
	}
	j, err := c.cfg.Scheduler.Submit(ctx, replicaSpec(e, v, revision, listen))
	if err != nil {
		return err
	}
	c.log.Info("replica submitted", "endpoint", e.Name, "variant", v.Name, "revision", revision, "job", j.ID,
		"model", e.Spec.ModelText(v))
	c.replicas[j.ID] = &replica{Replica: &Replica{JobID: j.ID, Variant: v.Name, Revision: revision}, endpoint: e.Name,
		state: ReplicaStarting, since: now, submitted: now, jobState: j.State}
	return nil
}

// replicaListen is where e's replicas listen: loopback when they run on
// this machine, every interface when the queue's backend may place them
// on other nodes (they announce the node's address; every route but the
// health checks needs the replica token).
func (c *Controller) replicaListen(ctx context.Context, e *endpoint.Endpoint) (string, error) {
	name := e.Spec.Queue
	if name == "" {
		name = job.DefaultQueue
	}
	q, err := c.cfg.Store.GetQueue(ctx, name)
	if err != nil {
		// Not a guess: loopback would make replicas on other nodes
		// unreachable. The submission is tried again.
		return "", fmt.Errorf("queue %s of the replicas: %w", name, err)
	}
	if q.Backend != "" && q.Backend != "local" {
		return "0.0.0.0:0", nil
	}
	return "127.0.0.1:0", nil
}

// publish gives the gateway the endpoint's routing table.
func (c *Controller) publish(e *endpoint.Endpoint, wants []fleetWant) {
	gw := c.cfg.Gateway
	if e.State == endpoint.Deleting {
		gw.RemoveRoute(e.Name)
		return
	}
	rt := &Route{Endpoint: e.Name, Token: e.Token, Models: c.modelRouting(e)}
	keep := map[fleetID]bool{}
	for _, v := range e.Spec.Variants {
		rv := RouteVariant{Name: v.Name, Weight: v.Weight}
		for _, w := range wants {
			if w.variant.Name != v.Name {
				continue
			}
			f := Fleet{Revision: w.revision, Model: w.variant.Model, Percent: w.percent,
				Stats: gw.Stats(e.Name, v.Name, w.revision), metrics: gw.variantMetrics(e.Name, v.Name)}
			for _, r := range c.fleet(e.Name, v.Name, w.revision) {
				if r.state == ReplicaReady {
					f.Replicas = append(f.Replicas, r.Replica)
				}
			}
			keep[fleetID{v.Name, w.revision}] = true
			rv.Fleets = append(rv.Fleets, f)
		}
		rt.Variants = append(rt.Variants, rv)
	}
	gw.SetRoute(rt)
	gw.PruneStats(e.Name, func(variant string, revision int64) bool { return keep[fleetID{variant, revision}] })
}

// stepDeployment is one tick of a running deployment: observe green,
// ask rollout.Next, persist its state, and return the fleets its target
// asks for. ended: the deployment is over (its outcome is stored, and
// e's spec has the variant's new configuration if it succeeded).
func (c *Controller) stepDeployment(ctx context.Context, e *endpoint.Endpoint, v *endpoint.Variant, d *endpoint.Deployment, now time.Time) ([]fleetWant, bool) {
	rt := c.rt(e.Name)
	var st rollout.State
	if len(d.State) > 0 {
		if err := json.Unmarshal(d.State, &st); err != nil {
			st = rollout.Abort(rollout.State{}, "unreadable rollout state: "+err.Error())
		}
	}
	strat, err := rollout.ParseStrategy(d.Strategy)
	if err != nil {
		st = rollout.Abort(st, "unreadable strategy: "+err.Error())
	}
	alarms := rollout.Alarms{MaxErrorRate: d.Alarms.MaxErrorRate, MaxP99: time.Duration(d.Alarms.MaxP99),
		MinRequests: d.Alarms.MinRequests, ReadyTimeout: time.Duration(d.Alarms.ReadyTimeout)}
	ready := func(rev int64) int {
		n := 0
		for _, r := range c.fleet(e.Name, v.Name, rev) {
			if r.state == ReplicaReady {
				n++
			}
		}
		return n
	}
	greenStats := c.cfg.Gateway.Stats(e.Name, v.Name, d.To.Revision)
	w := greenStats.Window(now, statsSeconds*time.Second, st.Since)
	obs := rollout.Observation{Now: now, Replicas: v.Replicas, BlueReady: ready(v.Revision), GreenReady: ready(d.To.Revision),
		GreenFailed: rt.greenFailed[d.ID], Green: rollout.Window{Requests: w.Requests, Errors: w.Errors, P99: w.P99}}
	next, tgt := rollout.Next(strat, alarms, st, obs)

	var events []endpoint.Event
	// Green waiting for room beside blue is the usual reason a
	// deployment never gets going on a small machine: say so, once.
	for _, r := range c.fleet(e.Name, v.Name, d.To.Revision) {
		if (r.jobState == job.Runnable || r.jobState == job.Pending) && now.Sub(r.submitted) >= 5*time.Second &&
			!hasEvent(d, "waiting for room") {
			events = append(events, endpoint.Event{At: now, Message: fmt.Sprintf("green replica job %d is %s: waiting for room "+
				"in its queue beside blue (fewer --cpus per replica, or more capacity, would let it start)", r.JobID, r.jobState)})
			break
		}
	}
	if next != st || len(events) > 0 {
		// The state changes every tick (the bake time watched); the
		// history gets a line when the phase, step or reason moves.
		if next.Phase != st.Phase || next.Step != st.Step || next.Reason != st.Reason {
			events = append(events, endpoint.Event{At: now, Message: describeStep(next, tgt)})
		}
		raw, _ := json.Marshal(next)
		d.State, d.Phase, d.Step = raw, string(next.Phase), next.Step
		// What a failed write must put back: the endpoint's variant and
		// state change below only once the store has them.
		oldVariant, oldState, oldReason := *v, e.State, e.Reason
		var ep *endpoint.Endpoint
		if next.Phase.Terminal() {
			d.Reason, d.EndedAt = next.Reason, now
			switch next.Phase {
			case rollout.PhaseSucceeded:
				d.Outcome = endpoint.Succeeded
				to := d.To
				to.Replicas = max(next.Replicas, 1)
				*v = to
			case rollout.PhaseRolledBack:
				d.Outcome = endpoint.RolledBack
			default:
				d.Outcome = endpoint.Failed
			}
			e.State, e.Reason = endpoint.InService, ""
			ep = e
		}
		if err := c.cfg.Store.UpdateDeployment(ctx, d, events, ep); err != nil {
			// Nothing is acted on that is not stored: try again next tick,
			// with blue still the variant (not green's config, which the
			// fleets below would otherwise switch to, draining blue).
			*v, e.State, e.Reason = oldVariant, oldState, oldReason
			c.log.Warn("persist deployment", "deployment", d.ID, "err", err)
			return []fleetWant{{variant: *v, revision: v.Revision, want: v.Replicas, percent: 100}}, false
		}
		if len(events) > 0 {
			c.log.Info("deployment", "endpoint", e.Name, "deployment", d.ID, "phase", next.Phase, "step", next.Step,
				"green_percent", tgt.GreenPercent, "reason", next.Reason)
		}
		if next.Phase.Terminal() {
			delete(rt.greenFailed, d.ID)
			return []fleetWant{{variant: *v, revision: v.Revision, want: v.Replicas, percent: 100}}, true
		}
	}
	return []fleetWant{
		{variant: *v, revision: v.Revision, want: tgt.BlueReplicas, percent: 100 - tgt.GreenPercent},
		{variant: d.To, revision: d.To.Revision, want: tgt.GreenReplicas, percent: tgt.GreenPercent, green: d.ID},
	}, false
}

func describeStep(st rollout.State, t rollout.Target) string {
	switch st.Phase {
	case rollout.PhaseStartingGreen:
		return fmt.Sprintf("step %d: starting %d green replica(s)", st.Step+1, t.GreenReplicas)
	case rollout.PhaseShifting, rollout.PhaseFinishing:
		return fmt.Sprintf("step %d: %d%% of traffic to green", st.Step+1, t.GreenPercent)
	case rollout.PhaseRollingBack:
		return "rolling back: " + st.Reason
	case rollout.PhaseSucceeded:
		return "succeeded: green is the variant's fleet"
	}
	msg := string(st.Phase)
	if st.Reason != "" {
		msg += ": " + st.Reason
	}
	return msg
}

// autoscale samples a variant's metric and applies the policy.
func (c *Controller) autoscale(ctx context.Context, e *endpoint.Endpoint, v *endpoint.Variant, now time.Time) {
	rt := c.rt(e.Name)
	a := e.Spec.Autoscale
	p := autoscale.Policy{Min: a.Min, Max: a.Max, Metric: a.Metric, Target: a.Target,
		ScaleOutCooldown: time.Duration(a.ScaleOutCooldown), ScaleInCooldown: time.Duration(a.ScaleInCooldown),
		Window: time.Duration(a.Window), ScaleInWindow: time.Duration(a.ScaleInWindow)}
	if !rt.scaleLoaded {
		rt.scaleLoaded = true
		evs, err := c.cfg.Store.ListScaleEvents(ctx, e.Name, 200)
		if err == nil {
			for _, ev := range evs { // newest first
				if ev.To > ev.From && rt.lastOut[ev.Variant].IsZero() {
					rt.lastOut[ev.Variant] = ev.At
				}
				if ev.To < ev.From && rt.lastIn[ev.Variant].IsZero() {
					rt.lastIn[ev.Variant] = ev.At
				}
			}
		}
	}
	var value float64
	if p.Metric == autoscale.MetricBacklog {
		var ok bool
		if value, ok = c.asyncBacklog(ctx, e.Name); !ok {
			return
		}
	} else if p.Metric == autoscale.MetricRPS {
		w := c.cfg.Gateway.Stats(e.Name, v.Name, v.Revision).Window(now.Add(-time.Second), time.Second, time.Time{})
		value = float64(w.Requests)
	} else {
		for _, r := range c.fleet(e.Name, v.Name, v.Revision) {
			if r.state == ReplicaReady {
				value += float64(r.Outstanding())
			}
		}
	}
	samples := append(rt.samples[v.Name], autoscale.Sample{At: now, Value: value})
	cut := 0
	for cut < len(samples) && now.Sub(samples[cut].At) > p.History() {
		cut++
	}
	samples = samples[cut:]
	rt.samples[v.Name] = samples
	desired, reason := autoscale.Desired(p, v.Replicas, samples, rt.lastOut[v.Name], rt.lastIn[v.Name], now)
	if desired == v.Replicas {
		return
	}
	ev := &endpoint.ScaleEvent{Endpoint: e.Name, Variant: v.Name, From: v.Replicas, To: desired, Reason: reason, At: now.UTC()}
	old := v.Replicas
	v.Replicas = desired
	if err := c.cfg.Store.AddScaleEvent(ctx, ev, e); err != nil {
		v.Replicas = old
		c.log.Warn("record scale event", "endpoint", e.Name, "err", err)
		return
	}
	if desired > old {
		rt.lastOut[v.Name] = now
	} else {
		rt.lastIn[v.Name] = now
	}
	c.log.Info("autoscale", "endpoint", e.Name, "variant", v.Name, "from", old, "to", desired, "reason", reason)
}

func hasEvent(d *endpoint.Deployment, substr string) bool {
	for _, ev := range d.Events {
		if strings.Contains(ev.Message, substr) {
			return true
		}
	}
	return false
}
