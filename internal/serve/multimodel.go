package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Headers naming the model of an /invocations request to a MultiServer:
// NAME (its highest version) or NAME:VERSION. SageMaker's spelling is
// accepted too, so clients of its multi-model endpoints work unchanged.
const (
	HeaderTargetModel          = "X-Hpcml-Target-Model"
	HeaderSageMakerTargetModel = "X-Amzn-SageMaker-Target-Model"
)

// Multi-model defaults.
const (
	// DefaultLoadTimeout bounds one model load.
	DefaultLoadTimeout = 5 * time.Minute
	// latestTTL is how long the highest version of a model is remembered
	// for requests that name no version: a version added to the
	// repository is served that much later at most, and such requests do
	// not each list the repository.
	latestTTL = 2 * time.Second
)

// MultiOptions configure a MultiServer.
type MultiOptions struct {
	// Options apply to every model: batching, payload limit, timeout and
	// token as for a Server; Concurrency bounds the executions of all
	// models together.
	Options
	// CacheBytes bounds the bytes of the loaded models (see Loader); 0 is
	// DefaultCacheBytes().
	CacheBytes int64
	// LoadTimeout bounds one model load; 0 is DefaultLoadTimeout.
	LoadTimeout time.Duration
	// Allow, when set, is the set of model versions served: others are
	// unknown (404), listed nowhere.
	Allow func(name, version string) bool
}

// MultiServer serves many models of a repository (a Loader) through the
// Server machinery: each model loads on its first request, once however
// many requests wait for it, into a cache bounded by bytes that evicts
// the least recently used model without tearing down one that has
// requests in flight. Requests name their model in the Open Inference
// Protocol path, or with HeaderTargetModel on /invocations; the OIP
// model repository extension (index, load, unload) is served too.
type MultiServer struct {
	loader Loader
	opts   MultiOptions
	log    *slog.Logger
	m      *metrics
	cache  *modelCache
	slots  chan struct{}
	ready  atomic.Bool

	metrics    http.Handler
	serverMeta []byte

	latestMu sync.Mutex
	latest   map[string]latestVersion
}

type latestVersion struct {
	version string
	at      time.Time
}

// NewMulti checks the options and returns a ready MultiServer with an
// empty cache.
func NewMulti(loader Loader, o MultiOptions) (*MultiServer, error) {
	if loader == nil {
		return nil, errors.New("serve: no model repository")
	}
	opts, err := o.Options.withDefaults()
	if err != nil {
		return nil, err
	}
	o.Options = opts
	if o.CacheBytes < 0 {
		return nil, fmt.Errorf("serve: model cache of %d bytes is negative", o.CacheBytes)
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = DefaultCacheBytes()
	}
	if o.LoadTimeout <= 0 {
		o.LoadTimeout = DefaultLoadTimeout
	}
	s := &MultiServer{loader: loader, opts: o, log: o.Logger, m: newMetrics(),
		slots: make(chan struct{}, o.Concurrency), latest: map[string]latestVersion{}}
	s.metrics = promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{})
	b := appendJSONString([]byte(`{"name":`), o.ServerName)
	b = appendJSONString(append(b, `,"version":`...), o.ServerVersion)
	s.serverMeta = append(b, `,"extensions":["`+extensionBinary+`","model_repository"]}`...)
	s.cache = newModelCache(o.CacheBytes, o.LoadTimeout, newCacheMetrics(s.m.reg), s.log, s.loadServer)
	s.ready.Store(true)
	return s, nil
}

// DefaultCacheBytes is half the memory this process may use: the cgroup's
// limit when there is one, else the machine's.
func DefaultCacheBytes() int64 {
	if n := memoryLimit(); n > 0 {
		return n / 2
	}
	return 1 << 30
}

// loadServer loads a model version and wraps it in a Server that shares
// the MultiServer's metrics and execution slots.
func (s *MultiServer) loadServer(ctx context.Context, name, version string) (*Server, int64, error) {
	model, size, err := s.loader.Load(ctx, name, version)
	if err != nil {
		return nil, 0, err
	}
	info := model.Info()
	if info.Name != name || info.Version != version {
		return nil, 0, fmt.Errorf("the repository loaded %s version %s for %s version %s", info.Name, info.Version, name, version)
	}
	o := s.opts.Options
	if o.MaxBatch > 1 && !batchable(info) {
		// One model of the repository that cannot be batched is served
		// request by request rather than not at all.
		s.log.Info("model cannot be batched (no variable first dimension): serving it unbatched", "model", name, "version", version)
		o.MaxBatch, o.PreferredBatch = 1, nil
	}
	srv, err := newServer(model, o, s.m, s.slots)
	if err != nil {
		return nil, 0, fmt.Errorf("model %s version %s: %w", name, version, err)
	}
	return srv, size, nil
}

func batchable(info ModelInfo) bool {
	for _, ts := range [][]TensorInfo{info.Inputs, info.Outputs} {
		for _, t := range ts {
			if len(t.Shape) == 0 || t.Shape[0] != -1 {
				return false
			}
		}
	}
	return true
}

// Handler is the server's HTTP handler.
func (s *MultiServer) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Drain marks the server unready (as Server.Drain).
func (s *MultiServer) Drain() { s.ready.Store(false) }

// Ready reports whether the server says it is ready.
func (s *MultiServer) Ready() bool { return s.ready.Load() }

// Close unloads every model. Call it after the HTTP server has finished
// its requests.
func (s *MultiServer) Close() { s.cache.close() }

func (s *MultiServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	serveCounted(w, r, s.m, s.route)
}

func (s *MultiServer) route(w http.ResponseWriter, r *http.Request) string {
	if route, done := routeCommon(w, r, &s.ready, s.opts.Token, s.serverMeta, s.metrics); done {
		return route
	}
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/v2/models/"):
		return s.routeModel(w, r, p[len("/v2/models/"):])
	case strings.HasPrefix(p, "/v2/repository/"):
		return s.routeRepository(w, r, p[len("/v2/repository/"):])
	case p == "/invocations":
		if allowMethod(w, r, http.MethodPost) {
			s.invocations(w, r)
		}
		return routeInvocations
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s", r.Method, p))
	return routeOther
}

// routeModel serves /v2/models/{m}[/versions/{v}][/ready|/infer] for
// any model of the repository.
func (s *MultiServer) routeModel(w http.ResponseWriter, r *http.Request, path string) string {
	name, version, rest, route, ok := parseModelPath(w, r, path)
	if !ok {
		return route
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.Timeout)
	defer cancel()
	resolved, err := s.resolve(ctx, name, version)
	if err != nil {
		s.writeLoadFailure(w, err)
		return route
	}
	if rest == "ready" {
		// Triton's meaning: ready is loaded. A model of the repository
		// that is not loaded answers 400 ready:false (it loads on its
		// first request, or on POST /v2/repository/models/NAME/load).
		b := appendJSONString([]byte(`{"name":`), name)
		loaded := s.cache.loaded(name, resolved)
		if !loaded {
			if vs, err := s.versions(ctx, name); err != nil || !slices.Contains(vs, resolved) {
				s.writeLoadFailure(w, fmt.Errorf("model %s version %s is not in the repository: %w", name, resolved, ErrModelNotFound))
				return route
			}
		}
		if !s.ready.Load() || !loaded {
			writeJSON(w, http.StatusBadRequest, append(b, `,"ready":false}`...))
		} else {
			writeJSON(w, http.StatusOK, append(b, `,"ready":true}`...))
		}
		return route
	}
	e, ok := s.acquire(ctx, w, name, resolved)
	if !ok {
		return route
	}
	defer s.cache.release(e)
	// The model's own server answers, as a single-model server would:
	// its name and version are the path's.
	return e.srv.routeModel(w, r, path)
}

// invocations serves /invocations for the model the target header
// names.
func (s *MultiServer) invocations(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get(HeaderTargetModel)
	if target == "" {
		target = r.Header.Get(HeaderSageMakerTargetModel)
	}
	if target == "" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("this server serves many models: name one with the %s header (NAME or NAME:VERSION), or use /v2/models/NAME/infer", HeaderTargetModel))
		return
	}
	name, version, err := parseTarget(target)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.Timeout)
	defer cancel()
	e, ok := s.acquire(ctx, w, name, version)
	if !ok {
		return
	}
	defer s.cache.release(e)
	e.srv.invocations(w, r)
}

// acquire resolves a model version (the highest served when version is
// "") and holds it loaded until the caller's release; when it cannot, it
// answers the request and ok is false.
func (s *MultiServer) acquire(ctx context.Context, w http.ResponseWriter, name, version string) (*cacheEntry, bool) {
	resolved, err := s.resolve(ctx, name, version)
	if err == nil {
		var e *cacheEntry
		if e, err = s.cache.acquire(ctx, name, resolved); err == nil {
			return e, true
		}
	}
	s.writeLoadFailure(w, err)
	return nil, false
}

// parseTarget reads a target model header: NAME, NAME:VERSION or
// NAME:latest. Aliases are the registry's: the endpoint gateway resolves
// them before the request reaches a replica.
func parseTarget(t string) (name, version string, err error) {
	name, version, _ = strings.Cut(strings.TrimSpace(t), ":")
	if version == "latest" {
		version = ""
	}
	if name == "" {
		return "", "", fmt.Errorf("target model %q names no model (want NAME or NAME:VERSION)", t)
	}
	if version != "" && (version[0] < '0' || version[0] > '9') {
		return "", "", fmt.Errorf("target model %q: %q is not a version number; aliases are resolved by an endpoint's gateway, which has the registry: name the version here", t, version)
	}
	return name, version, nil
}

// resolve checks a model version against the filter and the repository
// and, when version is "", finds the highest version served.
func (s *MultiServer) resolve(ctx context.Context, name, version string) (string, error) {
	if err := checkModelName(name); err != nil {
		return "", err
	}
	if version != "" {
		if strings.ContainsAny(version, "/\\?#%\x00") || version == "." || version == ".." {
			return "", fmt.Errorf("version %q of model %s: %w", version, name, ErrModelNotFound)
		}
		if s.opts.Allow != nil && !s.opts.Allow(name, version) {
			return "", fmt.Errorf("model %s version %s is not served here: %w", name, version, ErrModelNotFound)
		}
		return version, nil
	}
	s.latestMu.Lock()
	lv, ok := s.latest[name]
	s.latestMu.Unlock()
	if ok && time.Since(lv.at) < latestTTL {
		return lv.version, nil
	}
	versions, err := s.versions(ctx, name)
	if err != nil {
		return "", err
	}
	if len(versions) == 0 {
		return "", fmt.Errorf("model %q is not in the repository: %w", name, ErrModelNotFound)
	}
	v := versions[len(versions)-1]
	s.latestMu.Lock()
	if len(s.latest) > 10000 {
		clear(s.latest) // a bound, not a policy: it refills as requests come
	}
	s.latest[name] = latestVersion{version: v, at: time.Now()}
	s.latestMu.Unlock()
	return v, nil
}

// versions lists the served versions of a model, lowest first.
func (s *MultiServer) versions(ctx context.Context, name string) ([]string, error) {
	var all []string
	if vl, ok := s.loader.(VersionLister); ok {
		vs, err := vl.Versions(ctx, name)
		if err != nil {
			return nil, err
		}
		all = vs
	} else {
		refs, err := s.loader.List(ctx)
		if err != nil {
			return nil, err
		}
		sortRefs(refs)
		for _, ref := range refs {
			if ref.Name == name {
				all = append(all, ref.Version)
			}
		}
	}
	out := all[:0]
	for _, v := range all {
		if s.opts.Allow == nil || s.opts.Allow(name, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// writeLoadFailure answers a request whose model could not be had.
func (s *MultiServer) writeLoadFailure(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrModelNotFound):
		writeError(w, http.StatusNotFound, "unknown model: "+err.Error())
	case errors.Is(err, errTooLarge):
		writeError(w, http.StatusInsufficientStorage, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("the model did not load within the timeout (%v); it goes on loading for the next request", s.opts.Timeout))
	case errors.Is(err, context.Canceled):
		writeError(w, http.StatusServiceUnavailable, "the request ended while its model loaded")
	case errors.Is(err, errStopped):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, "cannot load the model: "+err.Error())
	}
}

// memoryLimit is the cgroup v2 memory limit, else the machine's memory
// (0 when neither can be read).
func memoryLimit() int64 {
	if runtime.GOOS != "linux" {
		return 0
	}
	if n := cgroupMemoryMax(); n > 0 {
		if t := memTotal(); t > 0 && t < n {
			return t
		}
		return n
	}
	return memTotal()
}
