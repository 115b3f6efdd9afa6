package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hpcml/hpcml/internal/httpauth"
	"github.com/hpcml/hpcml/internal/nn"
)

// Defaults, SageMaker's for real-time endpoints.
const (
	DefaultMaxPayload = 6 << 20 // 6 MB
	DefaultTimeout    = 60 * time.Second
)

// Options configure a Server. The zero value serves without batching, with
// GOMAXPROCS concurrent executions, a 6 MB payload limit, a 60 s timeout
// and no token.
type Options struct {
	// MaxBatch is the most rows one model execution takes when requests
	// are batched; ≤ 1 turns dynamic batching off (each request runs by
	// itself, whatever its own first dimension).
	MaxBatch int
	// MaxQueueDelay is how long the batcher may wait for more requests
	// once it has one; 0 batches only what is already queued.
	MaxQueueDelay time.Duration
	// PreferredBatch are batch sizes the batcher sends at once, without
	// waiting out MaxQueueDelay, when nothing more is queued.
	PreferredBatch []int
	// Concurrency bounds the model executions running at once; 0 is
	// GOMAXPROCS.
	Concurrency int
	// MaxPayload bounds a request body in bytes (413 beyond); 0 is 6 MB.
	MaxPayload int64
	// Timeout bounds an inference request from its arrival (503 if it
	// was still queued then, 504 if it was computing); 0 is 60 s.
	Timeout time.Duration
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// every route but the health checks and /ping.
	Token string
	// ServerName and ServerVersion fill GET /v2; default "hpcml" and "dev".
	ServerName, ServerVersion string
	// Logger gets one line per failed inference and the server's events;
	// nil discards them.
	Logger *slog.Logger
}

// Server serves one Model over HTTP.
type Server struct {
	model   Model
	info    ModelInfo
	opts    Options
	exec    *executor
	m       *metrics
	log     *slog.Logger
	ready   atomic.Bool
	batched bool
	metrics http.Handler

	inputIndex  map[string]int
	outputIndex map[string]int
	inputNames  string // for errors: "a, b"
	outputNames string

	serverMeta []byte
	modelMeta  []byte
	// The model ready route's two answers, built once like the metadata.
	modelReady, modelUnready []byte

	bufs sync.Pool // *[]byte, request bodies and responses
}

// New checks the options against the model and starts the batcher. The
// server is ready at once; Drain makes it unready.
func New(model Model, o Options) (*Server, error) {
	return newServer(model, o, nil, nil)
}

// newServer is New with the metrics and the execution slots of a
// MultiServer, which its per-model servers share (nil: the server's own),
// so that one /metrics covers every model and --concurrency bounds the
// executions of all of them together.
func newServer(model Model, o Options, m *metrics, slots chan struct{}) (*Server, error) {
	if model == nil {
		return nil, errors.New("serve: no model")
	}
	info := model.Info()
	if info.Name == "" {
		return nil, errors.New("serve: the model has no name")
	}
	if info.Version == "" {
		info.Version = "1"
	}
	if len(info.Inputs) == 0 || len(info.Outputs) == 0 {
		return nil, fmt.Errorf("serve: model %q has %d inputs and %d outputs; it needs at least one of each", info.Name, len(info.Inputs), len(info.Outputs))
	}
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{model: model, info: info, opts: o, log: o.Logger, batched: o.MaxBatch > 1,
		inputIndex: map[string]int{}, outputIndex: map[string]int{}}
	if s.batched {
		// Requests are merged along the first dimension, so every input
		// and output must have a variable one.
		for _, t := range append(slices.Clone(info.Inputs), info.Outputs...) {
			if len(t.Shape) == 0 || t.Shape[0] != -1 {
				return nil, fmt.Errorf("serve: cannot batch model %q: %q has shape %v, not a variable first (batch) dimension; serve it with max batch 1", info.Name, t.Name, t.Shape)
			}
		}
	}
	var names []string
	for i, in := range info.Inputs {
		s.inputIndex[in.Name] = i
		names = append(names, in.Name)
	}
	s.inputNames = strings.Join(names, ", ")
	names = nil
	for i, out := range info.Outputs {
		s.outputIndex[out.Name] = i
		names = append(names, out.Name)
	}
	s.outputNames = strings.Join(names, ", ")
	s.serverMeta = s.encodeServerMeta()
	s.modelMeta = s.encodeModelMeta()
	ready := appendJSONString([]byte(`{"name":`), s.info.Name)
	s.modelReady = append(slices.Clone(ready), `,"ready":true}`...)
	s.modelUnready = append(ready, `,"ready":false}`...)
	if m == nil {
		m = newMetrics()
	}
	s.m = m
	s.metrics = promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{})
	s.exec = newExecutor(model, o, s.m, slots)
	s.ready.Store(true)
	return s, nil
}

// withDefaults checks the options that do not depend on the model and
// fills their defaults.
func (o Options) withDefaults() (Options, error) {
	if o.MaxBatch < 1 {
		o.MaxBatch = 1
	}
	if o.MaxQueueDelay < 0 {
		return o, fmt.Errorf("serve: max queue delay %v is negative", o.MaxQueueDelay)
	}
	for _, p := range o.PreferredBatch {
		if p < 1 || p > o.MaxBatch {
			return o, fmt.Errorf("serve: preferred batch size %d is not between 1 and the max batch size %d", p, o.MaxBatch)
		}
	}
	if o.Concurrency < 0 {
		return o, fmt.Errorf("serve: concurrency %d is negative", o.Concurrency)
	}
	if o.Concurrency == 0 {
		o.Concurrency = runtime.GOMAXPROCS(0)
	}
	if o.MaxPayload < 0 {
		return o, fmt.Errorf("serve: max payload %d is negative", o.MaxPayload)
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = DefaultMaxPayload
	}
	if o.Timeout < 0 {
		return o, fmt.Errorf("serve: timeout %v is negative", o.Timeout)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.ServerName == "" {
		o.ServerName = "hpcml"
	}
	if o.ServerVersion == "" {
		o.ServerVersion = "dev"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Handler is the server's HTTP handler: OIP v2, /invocations, /ping and
// /metrics.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// Info is the served model's name, version and signature.
func (s *Server) Info() ModelInfo { return cloneInfo(s.info) }

// Drain marks the server unready: health/ready, model ready and /ping
// answer 503 so that load balancers stop sending, while requests that
// still arrive are served.
func (s *Server) Drain() { s.ready.Store(false) }

// Ready reports whether the server says it is ready.
func (s *Server) Ready() bool { return s.ready.Load() }

// Close stops the batcher after the requests it holds have run. Call it
// after the HTTP server has finished its requests.
func (s *Server) Close() { s.exec.close() }

// statusWriter remembers the status code, for the metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) { serveCounted(w, r, s.m, s.route) }

// serveCounted serves a request by route and counts it in the metrics,
// by the route label it returns and the status it answered.
func serveCounted(w http.ResponseWriter, r *http.Request, m *metrics, route func(http.ResponseWriter, *http.Request) string) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	label := route(sw, r)
	if sw.code == 0 {
		sw.code = http.StatusOK
	}
	m.request(label, sw.code, time.Since(start).Seconds())
}

// route dispatches a request and returns its route label.
func (s *Server) route(w http.ResponseWriter, r *http.Request) string {
	if route, done := routeCommon(w, r, &s.ready, s.opts.Token, s.serverMeta, s.metrics); done {
		return route
	}
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/v2/models/"):
		return s.routeModel(w, r, p[len("/v2/models/"):])
	case p == "/invocations":
		if s.method(w, r, http.MethodPost) {
			s.invocations(w, r)
		}
		return routeInvocations
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s", r.Method, p))
	return routeOther
}

// routeCommon answers the routes every server has (health, /ping, the
// token check, /v2 and /metrics); done is false when the request is the
// caller's to route, its token checked.
func routeCommon(w http.ResponseWriter, r *http.Request, ready *atomic.Bool, token string, serverMeta []byte, metrics http.Handler) (route string, done bool) {
	p := r.URL.Path
	switch p {
	case "/v2/health/live":
		if allowMethod(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, []byte(`{"live":true}`))
		}
		return routeHealth, true
	case "/v2/health/ready":
		if allowMethod(w, r, http.MethodGet) {
			writeReady(w, ready.Load(), http.StatusBadRequest, []byte(`{"ready":true}`), []byte(`{"ready":false}`))
		}
		return routeHealth, true
	case "/ping":
		if allowMethod(w, r, http.MethodGet) {
			writeReady(w, ready.Load(), http.StatusServiceUnavailable, []byte(`{"status":"ok"}`), []byte(`{"error":"the server is draining"}`))
		}
		return routePing, true
	}
	if !authorize(w, r, token) {
		return routeOther, true
	}
	switch p {
	case "/v2", "/v2/":
		if allowMethod(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, serverMeta)
		}
		return routeMetadata, true
	case "/metrics":
		if allowMethod(w, r, http.MethodGet) {
			metrics.ServeHTTP(w, r)
		}
		return routeMetrics, true
	}
	return "", false
}

// routeModel serves /v2/models/{m}[/versions/{v}][/ready|/infer].
func (s *Server) routeModel(w http.ResponseWriter, r *http.Request, rest string) string {
	name, version, rest, route, ok := parseModelPath(w, r, rest)
	if !ok {
		return route
	}
	if name != s.info.Name {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown model %q (this server serves %q)", name, s.info.Name))
		return route
	}
	if version != "" && version != s.info.Version {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown version %q of model %q (this server serves version %q)", version, name, s.info.Version))
		return route
	}
	switch rest {
	case "":
		writeJSON(w, http.StatusOK, s.modelMeta)
	case "ready":
		s.writeReady(w, http.StatusBadRequest, s.modelReady, s.modelUnready)
	case "infer":
		s.infer(w, r)
	}
	return route
}

// parseModelPath reads {m}[/versions/{v}][/ready|/infer] (the path
// after /v2/models/) and checks the method; when it answers the request
// itself (404, 405), ok is false.
func parseModelPath(w http.ResponseWriter, r *http.Request, path string) (name, version, rest, route string, ok bool) {
	name, rest, _ = strings.Cut(path, "/")
	if v, found := strings.CutPrefix(rest, "versions/"); found {
		version, rest, _ = strings.Cut(v, "/")
		if version == "" {
			writeError(w, http.StatusNotFound, "no route "+r.Method+" "+r.URL.Path)
			return "", "", "", routeOther, false
		}
	}
	var method string
	switch rest {
	case "":
		route, method = routeMetadata, http.MethodGet
	case "ready":
		route, method = routeHealth, http.MethodGet
	case "infer":
		route, method = routeInfer, http.MethodPost
	default:
		writeError(w, http.StatusNotFound, "no route "+r.Method+" "+r.URL.Path)
		return "", "", "", routeOther, false
	}
	return name, version, rest, route, allowMethod(w, r, method)
}

// method answers 405 unless the request's method is want (HEAD counts as
// GET).
func (s *Server) method(w http.ResponseWriter, r *http.Request, want string) bool {
	return allowMethod(w, r, want)
}

func allowMethod(w http.ResponseWriter, r *http.Request, want string) bool {
	if r.Method == want || (want == http.MethodGet && r.Method == http.MethodHead) {
		return true
	}
	w.Header().Set("Allow", want)
	writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s; use %s", r.Method, r.URL.Path, want))
	return false
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	return authorize(w, r, s.opts.Token)
}

// authorize checks the bearer token ("" for none) and answers 401 when it is missing or wrong.
func authorize(w http.ResponseWriter, r *http.Request, token string) bool {
	if token == "" || httpauth.Valid(r, token) {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="hpcml serve"`)
	msg := "missing bearer token (Authorization: Bearer <token>)"
	if r.Header.Get("Authorization") != "" {
		msg = "invalid bearer token"
	}
	writeError(w, http.StatusUnauthorized, msg)
	return false
}

// writeReady answers a readiness route: 200, or notReadyCode while
// draining — a 4xx on the OIP routes, as the protocol specifies for an
// unsuccessful health check (Triton answers 400), and 503 on SageMaker's
// /ping, whose callers treat anything but 200 as unhealthy.
func (s *Server) writeReady(w http.ResponseWriter, notReadyCode int, ok, notReady []byte) {
	writeReady(w, s.ready.Load(), notReadyCode, ok, notReady)
}

func writeReady(w http.ResponseWriter, ready bool, notReadyCode int, ok, notReady []byte) {
	if ready {
		writeJSON(w, http.StatusOK, ok)
		return
	}
	writeJSON(w, notReadyCode, notReady)
}

// jsonContentType is shared by every response (net/http only reads it).
var jsonContentType = []string{"application/json"}

func writeJSON(w http.ResponseWriter, code int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(code)
	w.Write(body)
}

// writeError writes the protocol's error body, {"error": "..."}.
func writeError(w http.ResponseWriter, code int, msg string) {
	b := appendJSONString([]byte(`{"error":`), msg)
	writeJSON(w, code, append(b, '}'))
}

func (s *Server) encodeServerMeta() []byte {
	b := appendJSONString([]byte(`{"name":`), s.opts.ServerName)
	b = appendJSONString(append(b, `,"version":`...), s.opts.ServerVersion)
	return append(b, `,"extensions":["`+extensionBinary+`"]}`...)
}

func (s *Server) encodeModelMeta() []byte {
	b := appendJSONString([]byte(`{"name":`), s.info.Name)
	b = appendJSONString(append(b, `,"versions":[`...), s.info.Version)
	platform := s.info.Platform
	if platform == "" {
		platform = "unknown"
	}
	b = appendJSONString(append(b, `],"platform":`...), platform)
	tensors := func(b []byte, ts []TensorInfo) []byte {
		b = append(b, '[')
		for i, t := range ts {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(append(b, `{"name":`...), t.Name)
			b = appendJSONString(append(b, `,"datatype":`...), t.DataType)
			b = append(b, `,"shape":[`...)
			for j, d := range t.Shape {
				if j > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendInt(b, d, 10)
			}
			b = append(b, "]}"...)
		}
		return append(b, ']')
	}
	b = tensors(append(b, `,"inputs":`...), s.info.Inputs)
	b = tensors(append(b, `,"outputs":`...), s.info.Outputs)
	return append(b, '}')
}

// errPayloadTooLarge is a body over the limit.
var errPayloadTooLarge = errors.New("payload too large")

// errBodyTimeout is a body that did not arrive within the timeout.
var errBodyTimeout = errors.New("the request body did not arrive within the timeout")

// requestDeadline starts an inference request's clock: its context ends
// --timeout after arrival, and reading its body must end by then too (a
// client trickling a body in would otherwise hold a handler forever).
func (s *Server) requestDeadline(w http.ResponseWriter, r *http.Request) *deadlineCtx {
	ctx := newDeadlineCtx(r.Context(), s.opts.Timeout)
	// Not every ResponseWriter has a connection (httptest's has not);
	// then there is nothing to bound.
	_ = http.NewResponseController(w).SetReadDeadline(ctx.deadline)
	return ctx
}

// readBody reads the request body into a pooled buffer, refusing more
// than MaxPayload bytes. The caller puts the buffer back.
func (s *Server) readBody(r *http.Request) (*[]byte, error) {
	limit := s.opts.MaxPayload
	if r.ContentLength > limit {
		return nil, errPayloadTooLarge
	}
	bp := s.getBuf()
	buf := (*bp)[:0]
	if r.ContentLength > 0 && int64(cap(buf)) < r.ContentLength+1 {
		// Grown as bytes arrive, not sized by what the client announced:
		// a client that sends a large Content-Length and then nothing
		// must not pin that much memory.
		buf = make([]byte, 0, min(r.ContentLength+1, 64<<10))
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			*bp = buf
			s.putBuf(bp)
			return nil, errPayloadTooLarge
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			*bp = buf
			s.putBuf(bp)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, errBodyTimeout
			}
			return nil, fmt.Errorf("reading the request body: %w", err)
		}
	}
	*bp = buf
	return bp, nil
}

func (s *Server) getBuf() *[]byte {
	if bp, ok := s.bufs.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, 4096)
	return &b
}

// putBuf keeps buffers up to 1 MiB for reuse; larger ones (rare big
// requests) go to the garbage collector rather than pinning memory.
func (s *Server) putBuf(bp *[]byte) {
	if cap(*bp) <= 1<<20 {
		*bp = (*bp)[:0]
		s.bufs.Put(bp)
	}
}

// badRequest is an error that is the caller's: 400 with its message.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badf(format string, args ...any) error { return &badRequest{msg: fmt.Sprintf(format, args...)} }

// infer serves POST /v2/models/{m}[/versions/{v}]/infer.
func (s *Server) infer(w http.ResponseWriter, r *http.Request) {
	s.m.inflight.Inc()
	defer s.m.inflight.Dec()
	ctx := s.requestDeadline(w, r)
	defer ctx.release()
	bp, err := s.readBody(r)
	if err != nil {
		s.writeFailure(w, err)
		return
	}
	defer s.putBuf(bp)
	body, bin := *bp, []byte(nil)
	if h := r.Header.Get(headerJSONLength); h != "" {
		n, err := strconv.Atoi(h)
		if err != nil || n <= 0 || n > len(body) {
			s.writeFailure(w, badf("%s: %q is not a length within the body's %d bytes", headerJSONLength, h, len(body)))
			return
		}
		body, bin = body[:n], body[n:]
	}
	var req inferRequest
	if err := parseInferRequest(body, &req); err != nil {
		if errors.Is(err, errSyntax) {
			s.writeFailure(w, &badRequest{msg: err.Error()})
		} else {
			s.writeFailure(w, &badRequest{msg: "invalid inference request: " + err.Error()})
		}
		return
	}
	inputs, rows, err := s.prepareInputs(req.Inputs, bin)
	if err != nil {
		s.writeFailure(w, err)
		return
	}
	allBinary, _, err := paramBool(req.Params, "binary_data_output")
	if err != nil {
		s.writeFailure(w, badf("request parameters: %v", err))
		return
	}
	type selection struct {
		index  int
		binary bool
	}
	var selected []selection
	anyBinary := false
	for _, o := range req.Outputs {
		i, ok := s.outputIndex[string(o.Name)]
		if !ok {
			s.writeFailure(w, badf("unknown output %q (the model's outputs: %s)", o.Name, s.outputNames))
			return
		}
		if slices.ContainsFunc(selected, func(sel selection) bool { return sel.index == i }) {
			s.writeFailure(w, badf("output %q is requested twice", o.Name))
			return
		}
		b, given, err := paramBool(o.Params, "binary_data")
		if err != nil {
			s.writeFailure(w, badf("output %q: %v", o.Name, err))
			return
		}
		if !given {
			b = allBinary
		}
		anyBinary = anyBinary || b
		selected = append(selected, selection{i, b})
	}
	if len(selected) == 0 {
		for i := range s.info.Outputs {
			selected = append(selected, selection{i, allBinary})
		}
		anyBinary = allBinary
	}
	outs, err := s.exec.infer(ctx, inputs, rows)
	if err != nil {
		s.writeFailure(w, err)
		return
	}
	ob := s.getBuf()
	defer s.putBuf(ob)
	out := appendJSONString(append((*ob)[:0], `{"model_name":`...), s.info.Name)
	out = appendJSONString(append(out, `,"model_version":`...), s.info.Version)
	if req.HasID {
		out = appendJSONString(append(out, `,"id":`...), string(req.ID))
	}
	out = append(out, `,"outputs":[`...)
	for k, sel := range selected {
		name := s.info.Outputs[sel.index].Name
		t := outs[name]
		if t == nil {
			s.writeFailure(w, fmt.Errorf("the model computed no output %q", name))
			return
		}
		if k > 0 {
			out = append(out, ',')
		}
		out = appendJSONString(append(out, `{"name":`...), name)
		out = append(out, `,"datatype":"FP32","shape":`...)
		out = appendInts(out, t.Shape)
		if sel.binary {
			out = append(out, `,"parameters":{"binary_data_size":`...)
			out = strconv.AppendInt(out, int64(4*len(t.Data)), 10)
			out = append(out, "}}"...)
			continue
		}
		out = appendFloats(append(out, `,"data":`...), t.Data)
		out = append(out, '}')
	}
	out = append(out, "]}"...)
	if !anyBinary {
		*ob = out
		writeJSON(w, http.StatusOK, out)
		return
	}
	jsonLen := len(out)
	for _, sel := range selected {
		if sel.binary {
			out = appendFloatBytes(out, outs[s.info.Outputs[sel.index].Name].Data)
		}
	}
	*ob = out
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set(headerJSONLength, strconv.Itoa(jsonLen))
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

// prepareInputs validates the request's inputs against the model's and
// converts them to float32 tensors. It returns the rows (first dimension)
// of the request when batching.
func (s *Server) prepareInputs(reqs []requestInput, bin []byte) (map[string]*nn.Tensor, int, error) {
	inputs := make(map[string]*nn.Tensor, len(s.info.Inputs))
	rows := 0
	binOff := 0
	for k := range reqs {
		in := &reqs[k]
		name := string(in.Name)
		if in.Name == nil {
			return nil, 0, badf("each of \"inputs\" needs a \"name\"")
		}
		i, ok := s.inputIndex[name]
		if !ok {
			return nil, 0, badf("unknown input %q (the model's inputs: %s)", name, s.inputNames)
		}
		if inputs[name] != nil {
			return nil, 0, badf("input %q is given twice", name)
		}
		want := &s.info.Inputs[i]
		dt, ok := dataTypes[string(in.DataType)]
		switch {
		case in.DataType == nil:
			return nil, 0, badf("input %q has no datatype", name)
		case !ok:
			return nil, 0, badf("input %q: unknown datatype %q (BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64 or BYTES)", name, in.DataType)
		case dt.kind == kindBytes:
			return nil, 0, badf("input %q: datatype BYTES cannot be converted to the model's %s", name, want.DataType)
		case !in.HasShape:
			return nil, 0, badf("input %q has no shape", name)
		}
		binSize, err := paramSize(in.Params, "binary_data_size")
		switch {
		case err != nil:
			return nil, 0, badf("input %q: %v", name, err)
		case binSize >= 0 && in.Data != nil:
			return nil, 0, badf("input %q has both \"data\" and binary data", name)
		case binSize < 0 && in.Data == nil:
			return nil, 0, badf("input %q has no data", name)
		case binSize > int64(len(bin)-binOff):
			return nil, 0, badf("input %q: binary_data_size %d, but only %d bytes of binary data are left after the JSON (is %s right?)", name, binSize, len(bin)-binOff, headerJSONLength)
		}
		if err := checkShape(in.Shape, want.Shape); err != nil {
			return nil, 0, badf("input %q: %v", name, err)
		}
		volume := int64(1)
		shape := make([]int, len(in.Shape))
		for j, d := range in.Shape {
			// Every value takes at least two bytes of JSON, which bounds
			// a believable volume by the payload limit.
			if d > 0 && volume > s.opts.MaxPayload/d {
				return nil, 0, badf("input %q: shape %v is larger than any payload allowed here", name, in.Shape)
			}
			volume *= d
			shape[j] = int(d)
		}
		// Room for what the request's bytes can hold, not for what its
		// shape claims: a 73-byte request must not allocate for millions
		// of values (the count is checked against the shape below).
		var data []float32
		if binSize >= 0 {
			data, err = convertBinary(bin[binOff:binOff+int(binSize)], string(in.DataType), make([]float32, 0, min(volume, binSize)))
			binOff += int(binSize)
		} else {
			data, err = convertData(in.Data, dt, in.Shape, make([]float32, 0, min(volume, int64(len(in.Data))/2+1)))
		}
		if err != nil {
			return nil, 0, badf("input %q: %v", name, err)
		}
		if int64(len(data)) != volume {
			return nil, 0, badf("input %q: %d values do not fill shape %v (%d values)", name, len(data), in.Shape, volume)
		}
		if s.batched {
			if k == 0 {
				rows = shape[0]
			} else if shape[0] != rows {
				return nil, 0, badf("input %q: first (batch) dimension %d differs from the other inputs' %d", name, shape[0], rows)
			}
		}
		inputs[name] = &nn.Tensor{Shape: shape, Data: data}
	}
	for _, want := range s.info.Inputs {
		if inputs[want.Name] == nil {
			return nil, 0, badf("input %q is missing (the model's inputs: %s)", want.Name, s.inputNames)
		}
	}
	if binOff != len(bin) {
		return nil, 0, badf("%d bytes of binary data follow the JSON beyond what the inputs' binary_data_size declare", len(bin)-binOff)
	}
	if !s.batched && len(reqs) > 0 {
		if sh := inputs[string(reqs[0].Name)].Shape; len(sh) > 0 {
			rows = sh[0]
		}
	}
	return inputs, rows, nil
}

// checkShape compares a request's shape with the model's declared one
// (-1: any size ≥ 1).
func checkShape(got, want []int64) error {
	bad := len(got) != len(want)
	for j := 0; !bad && j < len(want); j++ {
		if want[j] < 0 {
			bad = got[j] < 1
		} else {
			bad = got[j] != want[j]
		}
	}
	if bad {
		return fmt.Errorf("shape %v does not match the model's %v (-1: any size)", got, want)
	}
	return nil
}

// writeFailure answers an inference that failed with the status its
// error calls for.
func (s *Server) writeFailure(w http.ResponseWriter, err error) {
	var br *badRequest
	switch {
	case errors.As(err, &br):
		writeError(w, http.StatusBadRequest, br.msg)
	case errors.Is(err, errBodyTimeout):
		writeError(w, http.StatusRequestTimeout, fmt.Sprintf("%v (%v)", err, s.opts.Timeout))
	case errors.Is(err, errPayloadTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than the limit of %d bytes", s.opts.MaxPayload))
	case errors.Is(err, errQueueTimeout):
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("%v (timeout %v)", err, s.opts.Timeout))
	case errors.Is(err, errQueueFull), errors.Is(err, errStopped):
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, errComputeTimeout):
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("%v (timeout %v)", err, s.opts.Timeout))
	default:
		s.log.Error("inference failed", "model", s.info.Name, "version", s.info.Version, "err", err)
		writeError(w, http.StatusInternalServerError, "inference failed: "+err.Error())
	}
}

// deadlineCtx is context.WithTimeout without the timer until something
// waits on Done. An unbatched request on a free execution slot never
// does: the engine polls Err between layers, which compares the clock
// with the deadline. Starting and stopping a timer per request was a
// tenth of the handler's CPU for a small model. Once Done has been
// called the context behaves as the context.WithDeadline it then holds.
type deadlineCtx struct {
	context.Context
	deadline time.Time
	mu       sync.Mutex
	inner    context.Context
	cancel   context.CancelFunc
}

func newDeadlineCtx(parent context.Context, timeout time.Duration) *deadlineCtx {
	return &deadlineCtx{Context: parent, deadline: time.Now().Add(timeout)}
}

func (c *deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *deadlineCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner == nil {
		c.inner, c.cancel = context.WithDeadline(c.Context, c.deadline)
	}
	return c.inner.Done()
}

func (c *deadlineCtx) Err() error {
	c.mu.Lock()
	inner := c.inner
	c.mu.Unlock()
	if inner != nil {
		return inner.Err()
	}
	if err := c.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// release stops the timer, if there is one.
func (c *deadlineCtx) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		c.cancel()
	}
}
