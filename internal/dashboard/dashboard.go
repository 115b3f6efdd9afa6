// Package dashboard serves the web dashboard: HTML pages of jobs, queues,
// data profiles and training runs rendered on the server from the
// templates embedded by package web, kept live by a little vanilla
// JavaScript that swaps in fragments rendered by the same templates. It
// needs no build step and loads nothing from outside the server.
package dashboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/analysis"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/train"
	"github.com/hpcml/hpcml/web"
)

// ErrNotFound is what Source methods wrap when a job, queue or report does
// not exist.
var ErrNotFound = errors.New("not found")

// Source is what the dashboard reads; the server provides it.
type Source interface {
	// ListJobs returns jobs newest first.
	ListJobs(ctx context.Context, f JobFilter) ([]*job.Job, error)
	// GetJob takes an id such as "42" or "41_3"; the job includes Attempts,
	// for an array parent ArrayCounts, and for a running job the Progress
	// it reports, if any.
	GetJob(ctx context.Context, id string) (*job.Job, error)
	// ListQueues returns the queues with Counts filled.
	ListQueues(ctx context.Context) ([]*job.Queue, error)
	Capacity(ctx context.Context) (job.Capacity, error)
	// Log returns up to the last maxBytes of an attempt's stdout or stderr
	// (stream is "stdout" or "stderr").
	Log(ctx context.Context, id string, attempt int, stream string, maxBytes int64) ([]byte, error)
	// ListReports returns the summaries of the stored profile reports
	// (the dashboard shows them newest first).
	ListReports(ctx context.Context) ([]analysis.Summary, error)
	// GetReport reads a stored profile report; the id has passed
	// analysis.CheckID.
	GetReport(ctx context.Context, id string) (*analysis.ProfileReport, error)
	// TrainingRuns reads the training runs that training jobs write into
	// the server's storage; a run's id is its job's.
	TrainingRuns() train.Runs
}

// JobFilter selects jobs for ListJobs. Zero fields do not filter.
type JobFilter struct {
	State job.State
	Queue string
	// Parent > 0 lists the tasks of that array job. With Parent 0 the
	// dashboard expects the jobs that are not array tasks (plain jobs and
	// array parents); it drops any task it gets so that a large array does
	// not flood the job list. ListJobs should fill ArrayCounts of array
	// parents when that is cheap; the dashboard asks GetJob otherwise.
	Parent int64
	// Limit bounds the number of jobs returned (0: the source's default).
	Limit int
}

// Authenticator checks the server's bearer token.
type Authenticator interface {
	// ValidToken reports whether a bearer token is right (constant-time).
	ValidToken(token string) bool
	// SessionKey is a secret that keys the HMAC of the session cookie; the
	// token itself will do. Changing it logs every browser out. An empty
	// key disables browser sessions.
	SessionKey() []byte
}

const (
	// logTail is how much of a log the job page shows.
	logTail = 64 << 10
	// defaultLimit and maxLimit bound the job list.
	defaultLimit = 200
	maxLimit     = 1000 // the store returns at most 1000 per page
	// arrayTaskLimit bounds the tasks listed on an array parent's page.
	arrayTaskLimit = 500
	// maxCountLookups bounds the GetJob calls made to count the tasks of
	// array parents that ListJobs returned without counts.
	maxCountLookups = 20
)

// New returns the dashboard's handler, to be mounted at "/". It panics if
// the embedded templates do not parse, which is a bug caught by any test.
func New(src Source, auth Authenticator, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	h := &handler{src: src, auth: auth, log: logger, now: time.Now}
	static, err := fs.Sub(web.FS, "static")
	if err != nil {
		panic(fmt.Sprintf("dashboard: embedded static files: %v", err))
	}
	h.static = static
	h.versions = assetVersions(static)
	h.tmpl = parseTemplates(template.FuncMap{
		"static": h.staticURL,
		"lower":  func(s job.State) string { return strings.ToLower(string(s)) },
	})
	h.mux = h.routes()
	return h
}

type handler struct {
	src  Source
	auth Authenticator
	log  *slog.Logger
	now  func() time.Time

	static   fs.FS
	versions map[string]string // asset name -> content hash, for cache busting
	tmpl     *templates
	mux      *http.ServeMux
}

func (h *handler) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /static/", h.staticHandler())
	mux.HandleFunc("GET /favicon.ico", h.favicon)
	mux.HandleFunc("GET /login", h.loginPage)
	mux.HandleFunc("POST /login", h.loginSubmit)

	mux.Handle("GET /{$}", h.page(h.jobsPage))
	mux.Handle("GET /jobs/{id}", h.page(h.jobPage))
	mux.Handle("GET /queues", h.page(h.queuesPage))
	mux.Handle("GET /data", h.page(h.dataPage))
	mux.Handle("GET /data/reports/{id}", h.page(h.reportPage))
	mux.Handle("GET /training", h.page(h.trainingPage))
	mux.Handle("GET /training/{id}", h.page(h.trainingRunPage))
	mux.Handle("GET /training/{id}/model.onnx", h.requireAuth(http.HandlerFunc(h.trainingModel), false))
	mux.Handle("GET /models", h.page(h.modelsPage))
	mux.Handle("GET /models/{name}", h.page(h.modelPage))
	mux.Handle("GET /models/{name}/versions/{version}/model.onnx", h.requireAuth(http.HandlerFunc(h.modelArtifact), false))
	mux.Handle("GET /serving", h.page(h.endpointsPage))
	mux.Handle("GET /serving/{name}", h.page(h.endpointPage))

	mux.Handle("GET /ui/jobs", h.fragment(h.jobsFragment))
	mux.Handle("GET /ui/jobs/{id}", h.fragment(h.jobFragment))
	mux.Handle("GET /ui/jobs/{id}/log", h.requireAuth(http.HandlerFunc(h.logText), true))
	mux.Handle("GET /ui/capacity", h.fragment(h.capacityFragment))
	mux.Handle("GET /ui/queues", h.fragment(h.queuesFragment))
	mux.Handle("GET /ui/training", h.fragment(h.trainingFragment))
	mux.Handle("GET /ui/training/{id}", h.fragment(h.trainingRunFragment))
	mux.Handle("GET /ui/training/{id}/metrics", h.requireAuth(http.HandlerFunc(h.trainingMetrics), true))
	mux.Handle("GET /ui/serving", h.fragment(h.endpointsFragment))
	mux.Handle("GET /ui/serving/{name}", h.fragment(h.endpointFragment))

	mux.Handle("/", h.page(func(*http.Request) (*pageResult, error) {
		return nil, &httpError{Status: http.StatusNotFound, Msg: "There is no page here."}
	}))
	return mux
}

// contentSecurityPolicy allows only the server's own scripts, styles and
// images: no inline script or style, nothing from the network.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'"

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	// Links out of the dashboard must not carry a ?token= along.
	hd.Set("Referrer-Policy", "no-referrer")
	h.mux.ServeHTTP(w, r)
}

// httpError is a page handler's failure: what the user sees and, for
// server errors, the cause that is logged.
type httpError struct {
	Status int
	Msg    string
	Err    error
}

func (e *httpError) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

// sourceErr turns an error of the Source into a 404 or a 500.
func sourceErr(what string, err error) error {
	if errors.Is(err, ErrNotFound) {
		return &httpError{Status: http.StatusNotFound, Msg: "No such " + what + ".", Err: err}
	}
	return &httpError{Status: http.StatusInternalServerError, Msg: "Could not read the " + what + ".", Err: err}
}

func notFound(msg string) error { return &httpError{Status: http.StatusNotFound, Msg: msg} }

func badRequest(msg string) error { return &httpError{Status: http.StatusBadRequest, Msg: msg} }

func asHTTPError(err error) *httpError {
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	return &httpError{Status: http.StatusInternalServerError, Msg: "Something went wrong.", Err: err}
}

func (h *handler) logFailure(r *http.Request, he *httpError) {
	if he.Status >= 500 {
		h.log.Error("dashboard request failed", "method", r.Method, "path", r.URL.Path,
			"status", he.Status, "err", he.Error())
	}
}

// pageResult is what a page handler produces: a template rendered inside
// the layout.
type pageResult struct {
	Template string // page template: jobs, job, queues, data, report, training, training_run
	Title    string // "" for the plain "hpcml"
	Nav      string // active nav item: jobs, queues, data or training
	Refresh  bool   // reload the page at once (meta refresh)
	Content  any
}

type pageFunc func(r *http.Request) (*pageResult, error)

// page serves a full HTML page to an authenticated user.
func (h *handler) page(fn pageFunc) http.Handler {
	return h.requireAuth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, err := fn(r)
		if err != nil {
			he := asHTTPError(err)
			h.logFailure(r, he)
			h.errorPage(w, r, he.Status, he.Msg, true)
			return
		}
		h.renderPage(w, r, http.StatusOK, res, true)
	}), false)
}

// layoutData is what templates/layout.html renders.
type layoutData struct {
	Title    string
	Nav      string
	Refresh  bool
	Authed   bool
	Capacity *capacityView
	Content  any
}

func (h *handler) renderPage(w http.ResponseWriter, r *http.Request, status int, res *pageResult, authed bool) {
	data := layoutData{Title: "hpcml", Nav: res.Nav, Refresh: res.Refresh, Authed: authed, Content: res.Content}
	if res.Title != "" {
		data.Title = "hpcml · " + res.Title
	}
	if authed {
		data.Capacity = h.capacity(r.Context())
	}
	var buf bytes.Buffer
	if err := h.tmpl.page(res.Template).ExecuteTemplate(&buf, "layout", data); err != nil {
		h.log.Error("dashboard template failed", "template", res.Template, "err", err)
		http.Error(w, "internal error: the page could not be rendered", http.StatusInternalServerError)
		return
	}
	writeHTML(w, status, buf.Bytes())
}

func (h *handler) errorPage(w http.ResponseWriter, r *http.Request, status int, msg string, authed bool) {
	h.renderPage(w, r, status, &pageResult{
		Template: "error",
		Title:    http.StatusText(status),
		Content:  errorView{Status: status, StatusText: http.StatusText(status), Msg: msg},
	}, authed)
}

type errorView struct {
	Status     int
	StatusText string
	Msg        string
}

type fragmentFunc func(r *http.Request) (name string, data any, err error)

// fragment serves a piece of a page that the page's script swaps in.
func (h *handler) fragment(fn fragmentFunc) http.Handler {
	return h.requireAuth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, data, err := fn(r)
		if err != nil {
			he := asHTTPError(err)
			h.logFailure(r, he)
			http.Error(w, he.Msg, he.Status)
			return
		}
		var buf bytes.Buffer
		if err := h.tmpl.base.ExecuteTemplate(&buf, name, data); err != nil {
			h.log.Error("dashboard template failed", "template", name, "err", err)
			http.Error(w, "internal error: the fragment could not be rendered", http.StatusInternalServerError)
			return
		}
		writeHTML(w, http.StatusOK, buf.Bytes())
	}), true)
}

func writeHTML(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// staticHandler serves the embedded assets. Their URLs carry a content
// hash (see staticURL), so they may be cached for a year.
func (h *handler) staticHandler() http.Handler {
	files := http.StripPrefix("/static/", http.FileServerFS(h.static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/static/")
		if _, ok := h.versions[name]; !ok {
			// No directory listings, no guessing.
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		files.ServeHTTP(w, r)
	})
}

// favicon answers the request browsers make on their own.
func (h *handler) favicon(w http.ResponseWriter, r *http.Request) {
	b, err := fs.ReadFile(h.static, "favicon.svg")
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(b)
}

// staticURL is the template func "static": the URL of an asset with its
// content hash, so a new binary's assets are never hidden by a cache.
func (h *handler) staticURL(name string) (string, error) {
	v, ok := h.versions[name]
	if !ok {
		return "", fmt.Errorf("no static asset %q", name)
	}
	return "/static/" + name + "?v=" + v, nil
}

func assetVersions(static fs.FS) map[string]string {
	versions := map[string]string{}
	_ = fs.WalkDir(static, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		versions[path] = hex.EncodeToString(sum[:6])
		return nil
	})
	return versions
}

// templates holds the layout and partials (base) and, per page, a clone of
// base with that page's "content".
type templates struct {
	base  *template.Template
	pages map[string]*template.Template
}

func (t *templates) page(name string) *template.Template { return t.pages[name] }

var pageNames = []string{"jobs", "job", "queues", "data", "report", "training", "training_run", "models", "model", "endpoints", "endpoint", "login", "error"}

func parseTemplates(funcs template.FuncMap) *templates {
	base := template.Must(template.New("").Funcs(funcs).ParseFS(web.FS,
		"templates/layout.html", "templates/partials.html", "templates/training_parts.html", "templates/endpoints_parts.html"))
	t := &templates{base: base, pages: map[string]*template.Template{}}
	for _, name := range pageNames {
		clone := template.Must(base.Clone())
		t.pages[name] = template.Must(clone.ParseFS(web.FS, "templates/"+name+".html"))
	}
	return t
}
