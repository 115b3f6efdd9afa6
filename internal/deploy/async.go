package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/deploy/asyncq"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
	"github.com/hpcml/hpcml/internal/store"
)

// AsyncConfig wires a Dispatcher.
type AsyncConfig struct {
	Store store.Store
	// Storage is the server's bucket and StorageURL its URL: bare keys
	// (inline inputs, default output locations) are in it.
	Storage    *blob.Bucket
	StorageURL string
	Gateway    *Gateway
	// Controller is poked when work is queued, so that a fleet scaled to
	// zero starts a replica at once.
	Controller *Controller
	Log        *slog.Logger
	Registry   prometheus.Registerer
	// Tick is how often the queue is looked at without a wake-up (250 ms).
	Tick time.Duration
	// Retention is how long an ended request is kept (its row, inline
	// payload, and the objects the server placed); 0 keeps them.
	// SweepEvery is how often the sweep runs (10 min), OrphanAge how old
	// an inline payload no request names must be to go (1 h).
	Retention, SweepEvery, OrphanAge time.Duration
	// WebhookWorkers deliver notifications in parallel (8): a slow
	// webhook holds one of them, never the queue.
	WebhookWorkers int
	// Webhooks is the client for webhook calls (default: a plain one that
	// follows no redirect); WebhookTimeout bounds one call
	// (asyncq.WebhookTimeout).
	Webhooks       *http.Client
	WebhookTimeout time.Duration
}

// Dispatcher runs asynchronous inference: it takes requests from the
// durable queue (leases), streams each payload from storage to a ready
// replica's /invocations, writes the answer (or an error document) to
// storage and only then ends the row, conditionally on its lease. A
// separate worker delivers webhooks. Owner identifies this server's
// leases: running rows of any other owner were interrupted by a restart
// and are reconciled when Run starts.
type Dispatcher struct {
	cfg     AsyncConfig
	log     *slog.Logger
	owner   string
	buckets *blob.Cache
	hc      *http.Client
	wake    chan struct{}
	hooks   chan struct{}
	metrics *asyncMetrics

	// wg holds Run until the requests in flight have been recorded.
	wg sync.WaitGroup
	// sweeping is set while a sweep runs (off the dispatch loop: listing
	// storage can take a while), so that sweeps never overlap.
	sweeping atomic.Bool

	// unsettled are ends of requests the database refused to record: the
	// row stays running under this owner, so no reconcile would pick it
	// up before a restart; they are written again every settleEvery.
	mu        sync.Mutex
	unsettled []ending
}

// ending is the write that ends (or requeues) a request's attempt, and
// what follows once it is stored.
type ending struct {
	id    string
	what  string // for the log
	write func(ctx context.Context) (held bool, err error)
	after func(held bool)
}

// settleEvery is how often ends the database refused are written again.
const settleEvery = 2 * time.Second

// NewDispatcher returns a dispatcher; Run starts it.
func NewDispatcher(cfg AsyncConfig) *Dispatcher {
	if cfg.Tick <= 0 {
		cfg.Tick = 250 * time.Millisecond
	}
	if cfg.WebhookWorkers <= 0 {
		cfg.WebhookWorkers = 8
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = defaultSweepEvery
	}
	if cfg.OrphanAge <= 0 {
		cfg.OrphanAge = defaultOrphanAge
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.WebhookTimeout <= 0 {
		cfg.WebhookTimeout = asyncq.WebhookTimeout
	}
	if cfg.Webhooks == nil {
		// A redirect is an answer like any other non-2xx: the webhook's
		// owner fixes the URL (nothing is sent where it was not asked).
		cfg.Webhooks = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	b := make([]byte, 8)
	rand.Read(b)
	d := &Dispatcher{cfg: cfg, log: cfg.Log.With("component", "async"), owner: hex.EncodeToString(b), buckets: blob.NewCache(),
		wake: make(chan struct{}, 1), hooks: make(chan struct{}, 1),
		// Payloads stream to replicas on loopback or the cluster network;
		// the request's own context bounds each exchange (up to an hour).
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true,
			ResponseHeaderTimeout: 0, IdleConnTimeout: idleFor}}}
	if cfg.Registry != nil {
		d.metrics = newAsyncMetrics(cfg.Registry)
	}
	if cfg.Gateway != nil {
		cfg.Gateway.asyncH.Store(d)
	}
	return d
}

// Owner is this dispatcher's lease owner id.
func (d *Dispatcher) Owner() string { return d.owner }

// Close closes the buckets the dispatcher opened (not the server's).
func (d *Dispatcher) Close() error { return d.buckets.Close() }

func (d *Dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) pokeHooks() {
	select {
	case d.hooks <- struct{}{}:
	default:
	}
}

// Run reconciles what a previous server left running, then dispatches
// and delivers webhooks until ctx ends. Requests in flight when it ends
// go back to the queue (or, cut off by a kill, are reconciled at the
// next start).
func (d *Dispatcher) Run(ctx context.Context) error {
	// Nothing is dispatched before the last server's requests are
	// settled; storage or the database being away for a moment must not
	// stop asynchronous inference for the server's life, so try again.
	var left int
	for {
		var err error
		if left, err = d.reconcile(ctx); err == nil {
			break
		}
		d.log.Warn("reconcile async requests; trying again in 5s", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Second):
		}
	}
	d.wg.Add(1)
	go func() { defer d.wg.Done(); d.runWebhooks(ctx) }()
	t := time.NewTicker(d.cfg.Tick)
	defer t.Stop()
	// Requests whose objects could not be looked at are settled later,
	// one storage outage not holding up every other endpoint's queue.
	again := time.NewTicker(30 * time.Second)
	defer again.Stop()
	settle := time.NewTicker(settleEvery)
	defer settle.Stop()
	sweep := time.NewTicker(d.cfg.SweepEvery)
	defer sweep.Stop()
	d.startSweep(ctx) // once at start
	for {
		d.dispatch(ctx)
		select {
		case <-ctx.Done():
			d.wg.Wait()
			return nil
		case <-t.C:
		case <-d.wake:
		case <-settle.C:
			d.resettle(ctx)
		case <-sweep.C:
			d.startSweep(ctx)
		case <-again.C:
			if left > 0 {
				n, err := d.reconcile(ctx)
				if err != nil {
					d.log.Warn("reconcile async requests", "err", err)
				} else {
					left = n
				}
			}
		}
	}
}

// end records e; a database error keeps it for resettle (and is false).
func (d *Dispatcher) end(ctx context.Context, e ending) bool {
	held, err := e.write(ctx)
	if err != nil {
		d.log.Warn("record async request; will try again", "id", e.id, "what", e.what, "err", err)
		d.keep(e)
		return false
	}
	if e.after != nil {
		e.after(held)
	}
	return true
}

func (d *Dispatcher) keep(e ...ending) {
	d.mu.Lock()
	d.unsettled = append(d.unsettled, e...)
	d.mu.Unlock()
}

// resettle writes again the ends the database refused before. It stops
// at the first refusal, keeping the rest for the next pass: with the
// database still locked, each write could wait out the busy timeout, and
// dispatching (on the same goroutine) must not wait for all of them.
func (d *Dispatcher) resettle(ctx context.Context) {
	d.mu.Lock()
	pending := d.unsettled
	d.unsettled = nil
	d.mu.Unlock()
	for i, e := range pending {
		if ctx.Err() != nil {
			// Left running: the next start reconciles them.
			d.keep(pending[i:]...)
			return
		}
		if !d.end(ctx, e) { // kept again; the rest wait for the next pass
			d.keep(pending[i+1:]...)
			return
		}
	}
}

// requeue puts a leased request back to the queue; failed counts the
// attempt against its max attempts.
func (d *Dispatcher) requeue(ctx context.Context, r *asyncq.Request, failed bool, why string, next time.Time) {
	d.end(ctx, ending{id: r.ID, what: "requeue", write: func(ctx context.Context) (bool, error) {
		return d.cfg.Store.RetryAsync(ctx, r.ID, d.owner, failed, why, next)
	}})
}

// finish ends a leased request in state.
func (d *Dispatcher) finish(ctx context.Context, r *asyncq.Request, state asyncq.State, msg string, start time.Time) {
	now := time.Now()
	d.end(ctx, ending{id: r.ID, what: string(state), write: func(ctx context.Context) (bool, error) {
		return d.cfg.Store.FinishAsync(ctx, r.ID, d.owner, state, msg, now)
	}, after: func(held bool) { d.finished(r, held, state, start) }})
}

// dispatch leases as many due requests per async endpoint as its ready
// replicas have room for, and starts each.
func (d *Dispatcher) dispatch(ctx context.Context) {
	eps, err := d.cfg.Store.ListEndpoints(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("list endpoints", "err", err)
		}
		return
	}
	var backlog map[string]store.AsyncCounts
	for _, e := range eps {
		if e.Spec.Async == nil || e.State == endpoint.Deleting {
			continue
		}
		if backlog == nil {
			// One read for all endpoints, so that an idle queue costs no
			// write (a lease is an UPDATE on the one writer).
			if backlog, err = d.cfg.Store.AsyncBacklog(ctx); err != nil {
				if ctx.Err() == nil {
					d.log.Warn("count async backlog", "err", err)
				}
				return
			}
		}
		if backlog[e.Name].Queued == 0 {
			continue
		}
		rt := d.cfg.Gateway.Route(e.Name)
		if rt == nil {
			continue
		}
		var reps []*Replica
		free := 0
		for i := range rt.Variants {
			for j := range rt.Variants[i].Fleets {
				for _, rep := range rt.Variants[i].Fleets[j].Replicas {
					if rep.draining.Load() {
						continue
					}
					reps = append(reps, rep)
					free += max(0, e.Spec.Async.MaxConcurrency-int(rep.Outstanding()))
				}
			}
		}
		if free == 0 {
			continue
		}
		reqs, err := d.cfg.Store.LeaseAsync(ctx, e.Name, d.owner, free, time.Now())
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("lease async requests", "endpoint", e.Name, "err", err)
			}
			continue
		}
		for _, r := range reqs {
			rep := pickAsyncReplica(reps)
			if rep == nil {
				// Every replica began draining since: back to the queue,
				// never sent, so not counted as an attempt.
				d.end(context.WithoutCancel(ctx), ending{id: r.ID, what: "give back", write: func(ctx context.Context) (bool, error) {
					return d.cfg.Store.UnleaseAsync(ctx, r.ID, d.owner)
				}})
				continue
			}
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				defer d.poke() // its slot is free: lease the next one now
				defer rep.release()
				d.process(ctx, rt.Token, rep, r)
			}()
		}
	}
}

// pickAsyncReplica acquires the replica with the fewest requests.
func pickAsyncReplica(reps []*Replica) *Replica {
	var tried []*Replica
	for range len(reps) {
		rep := leastOutstanding(reps, tried)
		if rep == nil {
			return nil
		}
		if rep.acquire() {
			return rep
		}
		tried = append(tried, rep)
	}
	return nil
}

// process runs one attempt of r on rep and records what came of it.
func (d *Dispatcher) process(ctx context.Context, token string, rep *Replica, r *asyncq.Request) {
	start := time.Now()
	out, body := d.attempt(ctx, token, rep, r)
	wctx := context.WithoutCancel(ctx)
	action, why := asyncq.Decide(out, r.Failures, r.MaxAttempts)
	if action != asyncq.Succeed && ctx.Err() != nil {
		// The server is stopping: the request goes back to the queue as it
		// was (a kill leaves it running, for reconcile).
		d.cfg.Store.RetryAsync(wctx, r.ID, d.owner, false, "interrupted by a server shutdown", time.Now())
		return
	}
	if action == asyncq.Succeed {
		// The replica's answer is in storage (attempt wrote it): now, and
		// only now, the row.
		d.finish(wctx, r, asyncq.Succeeded, "", start)
		return
	}
	if action == asyncq.Retry {
		next := time.Now().Add(asyncq.RetryDelay(r.Failures + 1))
		d.log.Info("async request will be retried", "endpoint", r.Endpoint, "id", r.ID, "attempt", r.Attempts, "why", why,
			"at", next.Format(time.RFC3339))
		d.requeue(wctx, r, true, why, next)
		d.count("retried")
		return
	}
	if err := d.writeFailure(wctx, r, why, out.Status, body); err != nil {
		// Storage refused the error object: try the request again later
		// (counted, so that a failure location that never works does not
		// loop for ever); the last time, end it with the error on its row.
		d.log.Warn("write async failure object", "id", r.ID, "location", r.Failure, "err", err)
		why = fmt.Sprintf("%s; the error object could not be written: %v", why, err)
		if r.Failures+1 < r.MaxAttempts {
			d.requeue(wctx, r, true, why, time.Now().Add(asyncq.RetryDelay(r.Failures+1)))
			d.count("retried")
			return
		}
	}
	d.finish(wctx, r, asyncq.Failed, why, start)
}

func (d *Dispatcher) finished(r *asyncq.Request, ok bool, state asyncq.State, start time.Time) {
	switch {
	case !ok:
		d.log.Warn("async request was no longer held by this dispatcher", "id", r.ID)
	default:
		d.count(string(state))
		if d.metrics != nil {
			d.metrics.latency.Observe(time.Since(r.SubmittedAt).Seconds())
		}
		d.log.Debug("async request ended", "endpoint", r.Endpoint, "id", r.ID, "state", state, "seconds", time.Since(start).Seconds())
		if r.Webhook != "" {
			d.pokeHooks()
		}
	}
}

func (d *Dispatcher) count(outcome string) {
	if d.metrics != nil {
		d.metrics.ended.WithLabelValues(outcome).Inc()
	}
}

// attempt sends r's payload to rep, streaming it from storage, and on a
// 2xx streams the answer to r's output object. It returns the outcome
// and, for an error answer, the start of its body.
func (d *Dispatcher) attempt(ctx context.Context, token string, rep *Replica, r *asyncq.Request) (asyncq.Outcome, []byte) {
	tctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	timedOut := func() bool { return ctx.Err() == nil && errors.Is(tctx.Err(), context.DeadlineExceeded) }
	b, key, err := d.locate(tctx, r.Input, false)
	if err != nil {
		return asyncq.Outcome{Err: err}, nil
	}
	in, err := b.NewReader(tctx, key, nil)
	if err != nil {
		if blob.IsNotFound(err) {
			return asyncq.Outcome{InputMissing: true}, nil
		}
		return asyncq.Outcome{Err: fmt.Errorf("open the input: %w", err), TimedOut: timedOut()}, nil
	}
	defer in.Close()
	req, err := http.NewRequestWithContext(tctx, http.MethodPost, "http://"+rep.Addr+"/invocations", in)
	if err != nil {
		return asyncq.Outcome{Err: err}, nil
	}
	req.ContentLength = in.Size()
	if r.ContentType != "" {
		req.Header.Set("Content-Type", r.ContentType)
	}
	if r.Accept != "" {
		req.Header.Set("Accept", r.Accept)
	}
	req.Header.Set(HeaderInferenceID, r.ID)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := d.hc.Do(req)
	if err != nil {
		return asyncq.Outcome{Err: err, TimedOut: timedOut()}, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return asyncq.Outcome{Status: resp.StatusCode}, body
	}
	if err := d.write(tctx, r.Output, resp.Body); err != nil {
		// The answer was cut short, or storage refused it: the object
		// does not exist (the write is aborted), so this is a retry.
		return asyncq.Outcome{Err: fmt.Errorf("store the answer: %w", err), TimedOut: timedOut()}, nil
	}
	return asyncq.Outcome{Status: resp.StatusCode}, nil
}

// locate opens the bucket of a stored location: a bare key is in the
// server's storage, a URL in its own bucket (made if missing for
// outputs).
func (d *Dispatcher) locate(ctx context.Context, raw string, output bool) (*blob.Bucket, string, error) {
	loc, err := blob.Resolve(raw, d.cfg.StorageURL)
	if err != nil {
		return nil, "", err
	}
	if loc.IsPrefix() {
		return nil, "", fmt.Errorf("location %q names a prefix, not an object", raw)
	}
	if loc.Bucket == d.cfg.StorageURL {
		return d.cfg.Storage, loc.Key, nil
	}
	u := loc.Bucket
	if output {
		u = blob.WithCreateDir(u)
	}
	b, err := d.buckets.Open(ctx, u)
	return b, loc.Key, err
}

func (d *Dispatcher) write(ctx context.Context, location string, r io.Reader) error {
	b, key, err := d.locate(ctx, location, true)
	if err != nil {
		return err
	}
	_, err = blob.UploadReader(ctx, b, key, r, -1)
	return err
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(bytes.ToValidUTF8(b, nil))
}

type asyncMetrics struct {
	ended   *prometheus.CounterVec
	latency prometheus.Histogram
	swept   *prometheus.CounterVec
}

func newAsyncMetrics(reg prometheus.Registerer) *asyncMetrics {
	m := &asyncMetrics{
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hpcml_async_requests_total",
			Help: "Asynchronous inference attempts by outcome: succeeded, failed (for good) or retried.",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hpcml_async_request_seconds",
			Help:    "Time from an asynchronous request's submission to its result (or error) object.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 16),
		}),
		swept: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hpcml_async_swept_total",
			Help: "What the asynchronous queue's sweep deleted: expired requests, and orphaned inline payloads.",
		}, []string{"what"}),
	}
	reg.MustRegister(m.ended, m.latency, m.swept)
	return m
}
