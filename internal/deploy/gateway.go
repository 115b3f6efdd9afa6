package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hpcml/hpcml/internal/httpauth"
	"github.com/prometheus/client_golang/prometheus"
)

// Headers of the gateway. The SageMaker names are accepted and set too,
// so clients written for SageMaker endpoints work unchanged.
const (
	HeaderTargetVariant          = "X-Hpcml-Target-Variant"
	HeaderSageMakerTargetVariant = "X-Amzn-SageMaker-Target-Variant"
	HeaderInvokedVariant         = "X-Hpcml-Invoked-Variant"
	HeaderSageMakerInvoked       = "X-Amzn-Invoked-Production-Variant"

	// Asynchronous inference (async.go): the request's input location,
	// processing limit (seconds) and webhook; the answer's id and the
	// locations of its result and error objects.
	HeaderInputLocation              = "X-Hpcml-Input-Location"
	HeaderSageMakerInputLocation     = "X-Amzn-SageMaker-InputLocation"
	HeaderInvocationTimeout          = "X-Hpcml-Invocation-Timeout"
	HeaderSageMakerInvocationTimeout = "X-Amzn-SageMaker-InvocationTimeoutSeconds"
	HeaderWebhook                    = "X-Hpcml-Webhook"
	HeaderInferenceID                = "X-Hpcml-Inference-Id"
	HeaderOutputLocation             = "X-Hpcml-Output-Location"
	HeaderFailureLocation            = "X-Hpcml-Failure-Location"
	HeaderSageMakerOutputLocation    = "X-Amzn-SageMaker-OutputLocation"
	HeaderSageMakerFailureLocation   = "X-Amzn-SageMaker-FailureLocation"

	// Multi-model endpoints (multimodel.go): the request's target model,
	// NAME, NAME:VERSION or NAME:ALIAS.
	HeaderTargetModel          = "X-Hpcml-Target-Model"
	HeaderSageMakerTargetModel = "X-Amzn-SageMaker-Target-Model"
)

// DefaultMaxBody bounds a request body the gateway buffers (SageMaker's
// real-time payload limit). A replica applies its own limit as well.
const DefaultMaxBody = 6 << 20

// Replica is one replica the gateway can route to: a replica job's
// server, found through its announcement.
type Replica struct {
	JobID    int64
	Addr     string // host:port
	Variant  string
	Revision int64

	// outstanding counts requests sent to it and not yet answered; the
	// gateway picks the replica with the fewest, the drain waits for 0.
	outstanding atomic.Int64
	// draining is set before the replica leaves the routing table: a
	// request that picked it from an older table sees the flag after
	// counting itself and goes elsewhere (see acquire), so a drain that
	// saw outstanding == 0 after setting the flag has no request to lose.
	draining atomic.Bool
}

// Outstanding is the number of requests the replica holds.
func (r *Replica) Outstanding() int64 { return r.outstanding.Load() }

// acquire counts a request on r unless r is draining.
func (r *Replica) acquire() bool {
	r.outstanding.Add(1)
	if r.draining.Load() {
		r.outstanding.Add(-1)
		return false
	}
	return true
}

func (r *Replica) release() { r.outstanding.Add(-1) }

// Fleet is one variant's ready replicas of one revision, with the share
// of the variant's traffic it takes (a variant being updated has a blue
// and a green fleet).
type Fleet struct {
	Revision int64
	// Model is the model's name in the replicas' OIP paths: the gateway
	// rewrites /v2/models/NAME/... to it, NAME being the endpoint's name
	// or a fleet's model (others are 404, see servesModel).
	Model    string
	Percent  int
	Replicas []*Replica
	Stats    *Stats
	// metrics are the variant's Prometheus series (nil: none).
	metrics *fleetMetrics
}

// record counts an answer (status 0: none) in the fleet's stats and
// metrics.
func (f *Fleet) record(start time.Time, status int) {
	now := time.Now()
	d := now.Sub(start)
	if f.Stats != nil {
		f.Stats.Record(now, d, status == 0 || status >= 500)
	}
	f.metrics.observe(status, d.Seconds())
}

// RouteVariant is a variant in a routing table.
type RouteVariant struct {
	Name   string
	Weight int
	Fleets []Fleet
}

func (v *RouteVariant) ready() bool {
	for i := range v.Fleets {
		if len(v.Fleets[i].Replicas) > 0 {
			return true
		}
	}
	return false
}

// Route is an endpoint's routing table; the controller replaces it as a
// whole (tables are never changed once published).
type Route struct {
	Endpoint string
	// Token is the endpoint's replica token, sent as the bearer token.
	Token    string
	Variants []RouteVariant
	// Models is a multi-model endpoint's target-model routing (nil for
	// others; multimodel.go).
	Models *ModelRouting
}

// Gateway routes /endpoints/{name}/invocations and /endpoints/{name}/v2/...
// to the endpoints' replicas.
type Gateway struct {
	routes     atomic.Pointer[map[string]*Route]
	mu         sync.Mutex // serialises writers of routes
	up         *upstream
	authorized func(token string) bool
	maxBody    int64
	log        *slog.Logger

	statsMu sync.Mutex
	stats   map[statsKey]*Stats
	metrics *gatewayMetrics             // nil without a registry
	fleetM  map[[2]string]*fleetMetrics // by endpoint, variant

	bufs sync.Pool

	// asyncH serves /endpoints/{name}/async-invocations (async_http.go).
	asyncH atomic.Pointer[Dispatcher]
}

type statsKey struct {
	endpoint, variant string
	revision          int64
}

// GatewayConfig configures a Gateway.
type GatewayConfig struct {
	// Authorized checks a caller's bearer token (the server's).
	Authorized func(token string) bool
	MaxBody    int64 // default DefaultMaxBody
	Log        *slog.Logger
	// Registry, if set, gets the gateway's Prometheus metrics.
	Registry prometheus.Registerer
}

// NewGateway returns a gateway with no endpoints.
func NewGateway(cfg GatewayConfig) *Gateway {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{authorized: cfg.Authorized, maxBody: cfg.MaxBody, log: cfg.Log, stats: map[statsKey]*Stats{},
		fleetM: map[[2]string]*fleetMetrics{}}
	if cfg.Registry != nil {
		g.metrics = newGatewayMetrics(cfg.Registry)
	}
	// Replicas are on loopback or the cluster's network: many keep-alive
	// connections per replica (a TCP handshake per request would double
	// the added latency), read and written by the request's goroutine.
	g.up = newUpstream()
	g.bufs.New = func() any { b := make([]byte, 32<<10); return &b }
	empty := map[string]*Route{}
	g.routes.Store(&empty)
	return g
}

// Close closes idle connections to replicas.
func (g *Gateway) Close() { g.up.closeIdle() }

// SetRoute publishes an endpoint's routing table (PruneStats forgets
// the stats of fleets it no longer has).
func (g *Gateway) SetRoute(rt *Route) {
	g.mu.Lock()
	old := *g.routes.Load()
	next := make(map[string]*Route, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[rt.Endpoint] = rt
	g.routes.Store(&next)
	g.mu.Unlock()
}

// RemoveRoute stops routing to an endpoint and drops its stats.
func (g *Gateway) RemoveRoute(endpoint string) {
	g.mu.Lock()
	old := *g.routes.Load()
	next := make(map[string]*Route, len(old))
	for k, v := range old {
		if k != endpoint {
			next[k] = v
		}
	}
	g.routes.Store(&next)
	g.mu.Unlock()
	g.statsMu.Lock()
	for k := range g.stats {
		if k.endpoint == endpoint {
			delete(g.stats, k)
		}
	}
	for k := range g.fleetM {
		if k[0] == endpoint {
			delete(g.fleetM, k)
		}
	}
	if g.metrics != nil {
		g.metrics.forget(endpoint)
	}
	g.statsMu.Unlock()
}

// variantMetrics returns (resolving once) a variant's Prometheus series;
// nil without a registry.
func (g *Gateway) variantMetrics(endpoint, variant string) *fleetMetrics {
	if g.metrics == nil {
		return nil
	}
	g.statsMu.Lock()
	defer g.statsMu.Unlock()
	k := [2]string{endpoint, variant}
	m := g.fleetM[k]
	if m == nil {
		m = g.metrics.fleet(endpoint, variant)
		g.fleetM[k] = m
	}
	return m
}

// Route returns an endpoint's current routing table (nil if none).
func (g *Gateway) Route(endpoint string) *Route { return (*g.routes.Load())[endpoint] }

// Stats returns (creating) the stats of one fleet.
func (g *Gateway) Stats(endpoint, variant string, revision int64) *Stats {
	k := statsKey{endpoint, variant, revision}
	g.statsMu.Lock()
	defer g.statsMu.Unlock()
	s := g.stats[k]
	if s == nil {
		s = &Stats{}
		g.stats[k] = s
	}
	return s
}

// PruneStats forgets the stats of an endpoint's fleets not in keep.
func (g *Gateway) PruneStats(endpoint string, keep func(variant string, revision int64) bool) {
	g.statsMu.Lock()
	defer g.statsMu.Unlock()
	for k := range g.stats {
		if k.endpoint == endpoint && !keep(k.variant, k.revision) {
			delete(g.stats, k)
		}
	}
}

// gatewayError is the body of the gateway's own errors: the Open
// Inference Protocol's shape, which SageMaker clients read as well.
func gatewayError(w http.ResponseWriter, status int, format string, args ...any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": fmt.Sprintf(format, args...)})
}

// ServeHTTP implements http.Handler for /endpoints/.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name, sub, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/endpoints/"), "/")
	tok, ok := httpauth.BearerToken(r)
	if !ok || g.authorized == nil || !g.authorized(tok) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hpcml"`)
		gatewayError(w, http.StatusUnauthorized, "missing or invalid bearer token (the server's token, see <data-dir>/token)")
		return
	}
	if sub == "async-invocations" || strings.HasPrefix(sub, "async-invocations/") {
		g.serveAsync(w, r, name, sub) // from the store: no route needed
		return
	}
	rt := g.Route(name)
	if rt == nil {
		gatewayError(w, http.StatusNotFound, "endpoint %q does not exist", name)
		return
	}
	var path string
	switch {
	case sub == "invocations":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			gatewayError(w, http.StatusMethodNotAllowed, "invocations take POST")
			return
		}
		path = "/invocations"
	case sub == "ping":
		for i := range rt.Variants {
			if rt.Variants[i].ready() {
				w.WriteHeader(http.StatusOK)
				return
			}
		}
		gatewayError(w, http.StatusServiceUnavailable, "endpoint %q has no ready replica", name)
		return
	case sub == "v2" || strings.HasPrefix(sub, "v2/"):
		path = "/" + sub
		for seg := range strings.SplitSeq(sub, "/") {
			if seg == "." || seg == ".." || strings.ContainsFunc(seg, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
				gatewayError(w, http.StatusBadRequest, "path segment %q is not allowed", seg)
				return
			}
		}
	default:
		gatewayError(w, http.StatusNotFound, "no route %s under endpoint %q (invocations, ping, v2/...)", r.URL.Path, name)
		return
	}
	var modelKey string // routes a multi-model endpoint's request
	if rt.Models != nil {
		if path, modelKey, ok = g.multiModel(w, r, rt, path); !ok {
			return
		}
	} else if rest, ok := strings.CutPrefix(path, "/v2/models/"); ok {
		// The replicas' model is named by the endpoint's name or by a
		// model its variants serve (which one answers is the gateway's
		// choice); another name is not served here.
		if model, _, _ := strings.Cut(rest, "/"); !rt.servesModel(model) {
			gatewayError(w, http.StatusNotFound, "endpoint %q serves no model %q (name it %q, or by its model's name)", name, model, name)
			return
		}
	}
	if r.ContentLength > g.maxBody {
		gatewayError(w, http.StatusRequestEntityTooLarge, "request body of %d bytes is over the limit of %d", r.ContentLength, g.maxBody)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, g.maxBody+1))
	if err != nil {
		gatewayError(w, http.StatusBadRequest, "read request body: %v", err)
		return
	}
	if int64(len(body)) > g.maxBody {
		gatewayError(w, http.StatusRequestEntityTooLarge, "request body is over the limit of %d bytes", g.maxBody)
		return
	}

	v, err := chooseVariant(rt, r.Header)
	if err != nil {
		gatewayError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if v == nil {
		gatewayError(w, http.StatusServiceUnavailable, "endpoint %q has no ready replica", name)
		return
	}
	// A replica that refuses the connection got nothing of the request:
	// it is safe to send it to another, even a POST. Any later failure
	// is the caller's to see (the replica may have acted on it).
	var tried []*Replica
	for range 3 {
		f, rep := pickReplica(v, tried, modelKey)
		if rep == nil {
			break
		}
		sent, err := g.forward(w, r, rt, v, f, rep, path, body, start)
		rep.release()
		if err == nil || sent {
			return
		}
		g.log.Debug("replica refused the connection; trying another", "endpoint", name, "job", rep.JobID, "err", err)
		tried = append(tried, rep)
	}
	if r.Context().Err() != nil {
		return
	}
	if len(v.Fleets) > 0 {
		v.Fleets[0].record(start, http.StatusServiceUnavailable)
	}
	gatewayError(w, http.StatusServiceUnavailable, "variant %q of endpoint %q has no ready replica that answers", v.Name, name)
}

// servesModel reports whether an OIP path's model name addresses rt's
// (single-model) replicas: the endpoint's name, or a model of one of its
// fleets (a fleet of no model name the replica checks itself).
func (rt *Route) servesModel(name string) bool {
	if name == rt.Endpoint {
		return true
	}
	for i := range rt.Variants {
		for _, f := range rt.Variants[i].Fleets {
			if f.Model == name || f.Model == "" {
				return true
			}
		}
	}
	return false
}

// forward sends the request to rep and copies the answer back. It
// returns sent=false with an error only when nothing reached the replica
// (the connection was refused), so the caller may try another.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, rt *Route, v *RouteVariant, f *Fleet, rep *Replica,
	path string, body []byte, start time.Time) (sent bool, err error) {
	if rest, ok := strings.CutPrefix(path, "/v2/models/"); ok && f.Model != "" {
		_, tail, found := strings.Cut(rest, "/")
		path = "/v2/models/" + f.Model
		if found {
			path += "/" + tail
		}
	}
	// The path was decoded by the server: escape it again, so that a
	// client's %0d%0a or %20 cannot end the request line early and
	// smuggle a second request (carrying the replica token) onto the
	// connection.
	target := (&url.URL{Path: path, RawQuery: r.URL.RawQuery}).RequestURI()
	resp, err := g.up.do(r.Context(), rep.Addr, r.Method, target, r.Header, rt.Token, body)
	if err != nil {
		if refused(err) {
			return false, err
		}
		if r.Context().Err() != nil {
			// The caller went away: not the replica's failure, and not
			// counted against it (a canary's alarm reads these stats).
			return true, err
		}
		f.record(start, 0)
		gatewayError(w, http.StatusBadGateway, "replica of variant %q failed: %v", v.Name, err)
		return true, err
	}
	h := w.Header()
	for k, vs := range resp.Header {
		if !hopHeader(k) {
			h[k] = vs
		}
	}
	h.Set(HeaderInvokedVariant, v.Name)
	h.Set(HeaderSageMakerInvoked, v.Name)
	w.WriteHeader(resp.StatusCode)
	bp := g.bufs.Get().(*[]byte)
	_, cerr := io.CopyBuffer(w, resp.Body, *bp)
	g.bufs.Put(bp)
	resp.finish(cerr == nil)
	status := resp.StatusCode
	if cerr != nil {
		if r.Context().Err() != nil {
			return true, nil // the caller went away mid-answer
		}
		status = 0 // the answer was cut short
	}
	f.record(start, status)
	return true, nil
}

// refused reports whether err means the request never reached the
// replica: the dial failed.
func refused(err error) bool {
	var ns errNotSent
	return errors.As(err, &ns)
}

// hopHeader reports headers that are the connection's, not the
// request's (RFC 9110 §7.6.1), and the caller's credentials, which stay
// at the gateway.
func hopHeader(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Authorization":
		return true
	}
	return false
}

// chooseVariant picks the variant a request goes to: the one a header
// names, else one by weight among those with a ready replica. nil with
// no error: no variant has a ready replica.
func chooseVariant(rt *Route, h http.Header) (*RouteVariant, error) {
	want := h.Get(HeaderTargetVariant)
	if want == "" {
		want = h.Get(HeaderSageMakerTargetVariant)
	}
	if want != "" {
		names := make([]string, len(rt.Variants))
		for i := range rt.Variants {
			if rt.Variants[i].Name == want {
				return &rt.Variants[i], nil
			}
			names[i] = rt.Variants[i].Name
		}
		return nil, fmt.Errorf("endpoint %q has no variant %q (variants: %s)", rt.Endpoint, want, strings.Join(names, ", "))
	}
	total := 0
	for i := range rt.Variants {
		if rt.Variants[i].Weight > 0 && rt.Variants[i].ready() {
			total += rt.Variants[i].Weight
		}
	}
	if total == 0 {
		return nil, nil
	}
	n := rand.IntN(total)
	for i := range rt.Variants {
		v := &rt.Variants[i]
		if v.Weight > 0 && v.ready() {
			if n < v.Weight {
				return v, nil
			}
			n -= v.Weight
		}
	}
	return nil, nil
}

// pickReplica chooses a fleet of v by its percentage and, in it, the
// replica with the fewest outstanding requests (or, with a model key, the
// one the model goes to: pickFor), skipping tried ones; the
// replica is acquired. A fleet with no ready replica passes its share to
// the others; a fleet at 0 % is a last resort (green before its first
// step, blue when green has taken everything), so a request is answered
// whenever some replica of the variant is ready.
func pickReplica(v *RouteVariant, tried []*Replica, modelKey string) (*Fleet, *Replica) {
	if len(v.Fleets) == 0 {
		return nil, nil
	}
	chosen := 0
	if len(v.Fleets) > 1 {
		n := rand.IntN(100)
		for i := range v.Fleets {
			if n < v.Fleets[i].Percent {
				chosen = i
				break
			}
			n -= v.Fleets[i].Percent
		}
	}
	try := func(f *Fleet) *Replica {
		for range 4 {
			rep := pickFor(f.Replicas, tried, modelKey)
			if rep == nil {
				return nil
			}
			if rep.acquire() {
				return rep
			}
			tried = append(tried, rep) // began draining after the table was made
		}
		return nil
	}
	if rep := try(&v.Fleets[chosen]); rep != nil {
		return &v.Fleets[chosen], rep
	}
	for _, zero := range []bool{false, true} {
		for i := range v.Fleets {
			if f := &v.Fleets[i]; i != chosen && (f.Percent == 0) == zero {
				if rep := try(f); rep != nil {
					return f, rep
				}
			}
		}
	}
	return nil, nil
}

func leastOutstanding(reps []*Replica, skip []*Replica) *Replica {
	n := len(reps)
	if n == 0 {
		return nil
	}
	// Start at a random replica so that ties do not all go to the first.
	off := 0
	if n > 1 {
		off = rand.IntN(n)
	}
	var best *Replica
	var bestN int64
	for i := range n {
		r := reps[(off+i)%n]
		if r.draining.Load() || slices.Contains(skip, r) {
			continue
		}
		if o := r.outstanding.Load(); best == nil || o < bestN {
			best, bestN = r, o
		}
	}
	return best
}
