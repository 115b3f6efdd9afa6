// Package api serves the REST API under /api/v1 (described by
// openapi.yaml, which a test keeps in step with the routes), /healthz and
// /metrics. Every route but /healthz needs the bearer token.
package api

import (
	_ "embed"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/analysis"
	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/dataset"
	"github.com/hpcml/hpcml/internal/deploy"
	"github.com/hpcml/hpcml/internal/httpauth"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/joblog"
	"github.com/hpcml/hpcml/internal/registry"
	"github.com/hpcml/hpcml/internal/sched"
	"github.com/hpcml/hpcml/internal/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

//go:embed openapi.yaml
var openapiYAML []byte

// Config wires the API to the rest of the server.
type Config struct {
	Store     store.Store
	Scheduler *sched.Scheduler
	Logs      *joblog.Source
	Token     string
	Registry  *prometheus.Registry
	// Storage is the server's own bucket (dataset manifests, reports).
	Storage *blob.Bucket
	// Models is the model registry (nil: the model routes answer 503).
	Models *registry.Registry
	// Endpoints is the endpoint controller (nil: those routes answer 503).
	Endpoints *deploy.Controller
	Log       *slog.Logger
	// Async is the asynchronous inference dispatcher (nil: 503).
	Async *deploy.Dispatcher
}

// Handler serves the API.
type Handler struct {
	cfg      Config
	mux      *http.ServeMux
	duration *prometheus.HistogramVec
}

// route is one served route; Routes() lists them for the spec test.
type route struct {
	method, path string
	public       bool
	h            func(http.ResponseWriter, *http.Request) error
	// maxBody bounds the request body (default job.MaxBodyBytes).
	maxBody int64
}

// New builds the API handler.
func New(cfg Config) *Handler {
	h := &Handler{cfg: cfg, mux: http.NewServeMux()}
	h.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "hpcml_http_request_duration_seconds",
		Help:    "API request durations by route pattern, method and status code.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14),
	}, []string{"route", "method", "code"})
	cfg.Registry.MustRegister(h.duration)
	for _, r := range h.routes() {
		h.mux.Handle(r.method+" "+r.path, h.wrap(r))
	}
	h.mux.Handle("GET /metrics", h.auth(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}), "/metrics"))
	// Anything else under /api/ gets the JSON error shape, not the mux's
	// text: 405 (with Allow) for a known path, 404 otherwise.
	paths := http.NewServeMux()
	allow := map[string][]string{}
	for _, r := range h.routes() {
		if allow[r.path] == nil {
			paths.Handle(r.path, http.NotFoundHandler())
		}
		allow[r.path] = append(allow[r.path], r.method)
	}
	h.mux.Handle("/api/", h.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := paths.Handler(r); allow[pattern] != nil {
			w.Header().Set("Allow", strings.Join(allow[pattern], ", "))
			writeError(w, cfg.Log, &apiError{http.StatusMethodNotAllowed, "method_not_allowed",
				fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow[pattern], ", ")), ""})
			return
		}
		writeError(w, cfg.Log, notFound(fmt.Sprintf("no route %s %s (see /api/v1/openapi.yaml)", r.Method, r.URL.Path)))
	}), "/api/"))
	return h
}

func (h *Handler) routes() []route {
	return []route{
		{"GET", "/healthz", true, h.health, 0},
		{"GET", "/api/v1/openapi.yaml", false, h.openapi, 0},
		{"POST", "/api/v1/jobs", false, h.submitJob, 0},
		{"GET", "/api/v1/jobs", false, h.listJobs, 0},
		{"GET", "/api/v1/jobs/{id}", false, h.getJob, 0},
		{"POST", "/api/v1/jobs/{id}/cancel", false, h.cancelJob, 0},
		{"GET", "/api/v1/jobs/{id}/logs", false, h.jobLogs, 0},
		{"GET", "/api/v1/jobs/{id}/outputs/{path...}", false, h.jobOutput, 0},
		{"GET", "/api/v1/queues", false, h.listQueues, 0},
		{"POST", "/api/v1/queues", false, h.createQueue, 0},
		{"GET", "/api/v1/queues/{name}", false, h.getQueue, 0},
		{"PATCH", "/api/v1/queues/{name}", false, h.updateQueue, 0},
		{"GET", "/api/v1/capacity", false, h.capacity, 0},
		{"GET", "/api/v1/datasets", false, h.listDatasets, 0},
		{"GET", "/api/v1/datasets/{name}", false, h.getDataset, 0},
		{"POST", "/api/v1/datasets/{name}/versions", false, h.addDatasetVersion, dataset.MaxManifestBytes},
		{"GET", "/api/v1/datasets/{name}/versions/{version}", false, h.getDatasetVersion, 0},
		{"GET", "/api/v1/reports", false, h.listReports, 0},
		{"GET", "/api/v1/reports/{kind}/{id}", false, h.getReport, 0},
		{"PUT", "/api/v1/reports/{kind}/{id}", false, h.putReport, analysis.MaxReportBytes},
		{"GET", "/api/v1/training", false, h.listTraining, 0},
		{"GET", "/api/v1/training/{id}", false, h.getTraining, 0},
		{"GET", "/api/v1/training/{id}/metrics", false, h.trainingMetrics, 0},
		{"GET", "/api/v1/training/{id}/{file}", false, h.getTrainingFile, 0},
		{"POST", "/api/v1/models", false, h.registerModel, 0},
		{"GET", "/api/v1/models", false, h.listModels, 0},
		{"GET", "/api/v1/models/{name}", false, h.getModel, 0},
		{"GET", "/api/v1/models/{name}/versions", false, h.listModelVersions, 0},
		{"GET", "/api/v1/models/{name}/versions/{ref}", false, h.getModelVersion, 0},
		{"GET", "/api/v1/models/{name}/versions/{ref}/artifact", false, h.downloadModelVersion, 0},
		{"PUT", "/api/v1/models/{name}/aliases/{alias}", false, h.setModelAlias, 0},
		{"DELETE", "/api/v1/models/{name}/aliases/{alias}", false, h.deleteModelAlias, 0},
		{"GET", "/api/v1/endpoints", false, h.listEndpoints, 0},
		{"POST", "/api/v1/endpoints", false, h.createEndpoint, 0},
		{"GET", "/api/v1/endpoints/{name}", false, h.getEndpoint, 0},
		{"PATCH", "/api/v1/endpoints/{name}", false, h.updateEndpoint, 0},
		{"DELETE", "/api/v1/endpoints/{name}", false, h.deleteEndpoint, 0},
		{"GET", "/api/v1/endpoints/{name}/deployments", false, h.endpointDeployments, 0},
		{"GET", "/api/v1/endpoints/{name}/async-invocations", false, h.listAsync, 0},
		{"GET", "/api/v1/endpoints/{name}/async-invocations/{id}", false, h.getAsync, 0},
	}
}

// Routes lists "METHOD /path" of every route served, /metrics included,
// as openapi.yaml writes paths: a wildcard matching the rest of the path
// ({path...}) is {path} there.
func (h *Handler) Routes() []string {
	var out []string
	for _, r := range h.routes() {
		out = append(out, r.method+" "+openapiPath(r.path))
	}
	return append(out, "GET /metrics")
}

func openapiPath(pattern string) string { return strings.ReplaceAll(pattern, "...}", "}") }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// ValidToken compares a presented token with the server's in constant time.
func (h *Handler) ValidToken(tok string) bool {
	return httpauth.SameToken(tok, h.cfg.Token)
}

func (h *Handler) authorized(r *http.Request) bool {
	return httpauth.Valid(r, h.cfg.Token)
}

func (h *Handler) auth(next http.Handler, routeName string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: 200}
		if !h.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hpcml"`)
			writeJSON(sw, http.StatusUnauthorized, errorBody{Error: errorDetail{Code: "unauthorized",
				Message: "missing or invalid bearer token (see <data-dir>/token)"}})
		} else {
			next.ServeHTTP(sw, r)
		}
		h.duration.WithLabelValues(routeName, r.Method, strconv.Itoa(sw.status)).Observe(time.Since(start).Seconds())
	})
}

func (h *Handler) wrap(rt route) http.Handler {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := rt.maxBody
		if limit == 0 {
			limit = job.MaxBodyBytes
		}
		if r.ContentLength > limit {
			// Said up front: 413 whatever the body holds (a decoder would
			// stop at its first bad byte and call it malformed).
			writeError(w, h.cfg.Log, &http.MaxBytesError{Limit: limit})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		if err := rt.h(w, r); err != nil {
			writeError(w, h.cfg.Log, err)
		}
	})
	if !rt.public {
		return h.auth(inner, rt.path)
	}
	return inner
}

// statusWriter remembers the status for metrics and passes Flush on, so
// that followed logs stream.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (h *Handler) health(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (h *Handler) openapi(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(openapiYAML)
	return nil
}
