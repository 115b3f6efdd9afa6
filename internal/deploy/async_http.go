package deploy

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/deploy/asyncq"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
	"github.com/hpcml/hpcml/internal/store"
)

// HeaderSageMakerInferenceID names a request's inference id on input
// (as does HeaderInferenceID): a caller that sends its own id can submit
// again after losing the answer and is told 409 if the first try was
// queued, so a request is never queued twice.
const HeaderSageMakerInferenceID = "X-Amzn-SageMaker-Inference-Id"

// inferenceIDRE is what a caller's inference id may be: it is part of
// object keys (<prefix><id>.out).
var inferenceIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// AsyncAccepted is the 202 answer to an asynchronous invocation.
type AsyncAccepted struct {
	InferenceID     string `json:"inference_id"`
	OutputLocation  string `json:"output_location"`
	FailureLocation string `json:"failure_location"`
}

// AsyncStatus is a request as GET .../async-invocations/{id} shows it.
type AsyncStatus struct {
	*asyncq.Request
	InvocationTimeoutSeconds float64 `json:"invocation_timeout_seconds"`
}

func statusOf(r *asyncq.Request) *AsyncStatus {
	return &AsyncStatus{Request: r, InvocationTimeoutSeconds: r.Timeout.Seconds()}
}

// asyncEndpoint reads an endpoint that takes asynchronous requests: a
// store.ErrNotFound, or an error saying why not (ErrNotAsync).
func (d *Dispatcher) asyncEndpoint(ctx context.Context, name string) (*endpoint.Endpoint, error) {
	e, err := d.cfg.Store.GetEndpoint(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFoundError(fmt.Sprintf("endpoint %s does not exist", name))
	}
	if err != nil {
		return nil, err
	}
	if e.State == endpoint.Deleting {
		return nil, notFoundError(fmt.Sprintf("endpoint %s is being deleted", name))
	}
	if e.Spec.Async == nil {
		return nil, fmt.Errorf("endpoint %s is not asynchronous (create it with --async); call /endpoints/%s/invocations: %w",
			name, name, ErrNotAsync)
	}
	return e, nil
}

// ErrNotAsync: an async route on a real-time endpoint (400).
var ErrNotAsync = errors.New("not an asynchronous endpoint")

// notFoundError is a store.ErrNotFound with a message of its own.
type notFoundError string

func (e notFoundError) Error() string        { return string(e) }
func (e notFoundError) Is(target error) bool { return target == store.ErrNotFound }

// Get reads one request of an asynchronous endpoint.
func (d *Dispatcher) Get(ctx context.Context, name, id string) (*AsyncStatus, error) {
	if _, err := d.asyncEndpoint(ctx, name); err != nil {
		return nil, err
	}
	r, err := d.cfg.Store.GetAsync(ctx, name, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFoundError(fmt.Sprintf("endpoint %s has no asynchronous request %q", name, id))
	}
	if err != nil {
		return nil, err
	}
	return statusOf(r), nil
}

// List lists an asynchronous endpoint's requests, newest first.
func (d *Dispatcher) List(ctx context.Context, name string, state asyncq.State, limit int) ([]*AsyncStatus, error) {
	if _, err := d.asyncEndpoint(ctx, name); err != nil {
		return nil, err
	}
	rs, err := d.cfg.Store.ListAsync(ctx, name, state, limit)
	if err != nil {
		return nil, err
	}
	out := make([]*AsyncStatus, len(rs))
	for i, r := range rs {
		out[i] = statusOf(r)
	}
	return out, nil
}

// serveAsync is the gateway's /endpoints/{name}/async-invocations[/...].
func (g *Gateway) serveAsync(w http.ResponseWriter, r *http.Request, name, sub string) {
	d := g.asyncH.Load()
	if d == nil {
		gatewayError(w, http.StatusNotFound, "asynchronous inference is not enabled on this server")
		return
	}
	d.ServeAsync(w, r, name, strings.TrimPrefix(sub, "async-invocations"))
}

// ServeAsync serves POST "" (submit), GET "" (list), GET "/ID" (status)
// and GET "/ID/output" (the result object) of endpoint name.
func (d *Dispatcher) ServeAsync(w http.ResponseWriter, r *http.Request, name, rest string) {
	id, tail, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	ctx := r.Context()
	fail := func(err error) {
		switch {
		case errors.Is(err, store.ErrNotFound):
			gatewayError(w, http.StatusNotFound, "%v", err)
		case errors.Is(err, store.ErrExists):
			gatewayError(w, http.StatusConflict, "%v", err)
		case errors.Is(err, ErrNotAsync):
			gatewayError(w, http.StatusBadRequest, "%v", err)
		default:
			d.log.Warn("async route", "endpoint", name, "err", err)
			gatewayError(w, http.StatusInternalServerError, "%v", err)
		}
	}
	// allow checks the method of a route that reads (GET, HEAD); the
	// collection also takes POST (handled before), which Allow says.
	allow := func(m string, others ...string) bool {
		if r.Method == m || m == http.MethodGet && r.Method == http.MethodHead {
			return true
		}
		all := strings.Join(append([]string{m}, others...), ", ")
		w.Header().Set("Allow", all)
		gatewayError(w, http.StatusMethodNotAllowed, "%s takes %s", r.URL.Path, all)
		return false
	}
	switch {
	case rest == "" && r.Method == http.MethodPost:
		acc, status, err := d.submit(ctx, name, r)
		if err != nil {
			if status != 0 {
				gatewayError(w, status, "%v", err)
			} else {
				fail(err)
			}
			return
		}
		h := w.Header()
		h.Set(HeaderInferenceID, acc.InferenceID)
		h.Set(HeaderOutputLocation, acc.OutputLocation)
		h.Set(HeaderFailureLocation, acc.FailureLocation)
		h.Set(HeaderSageMakerOutputLocation, acc.OutputLocation)
		h.Set(HeaderSageMakerFailureLocation, acc.FailureLocation)
		writeJSONAnswer(w, http.StatusAccepted, acc)
	case rest == "":
		if !allow(http.MethodGet, http.MethodPost) {
			return
		}
		q := r.URL.Query()
		state := asyncq.State(q.Get("status"))
		if state != "" && !state.Valid() {
			gatewayError(w, http.StatusBadRequest, "status %q: want queued, running, succeeded or failed", state)
			return
		}
		limit := 0
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 1000 {
				gatewayError(w, http.StatusBadRequest, "limit: want 1..1000")
				return
			}
			limit = n
		}
		list, err := d.List(ctx, name, state, limit)
		if err != nil {
			fail(err)
			return
		}
		writeJSONAnswer(w, http.StatusOK, list)
	case tail == "" && id != "":
		if !allow(http.MethodGet) {
			return
		}
		st, err := d.Get(ctx, name, id)
		if err != nil {
			fail(err)
			return
		}
		writeJSONAnswer(w, http.StatusOK, st)
	case tail == "output" && id != "":
		if !allow(http.MethodGet) {
			return
		}
		d.serveOutput(w, r, name, id, fail)
	default:
		gatewayError(w, http.StatusNotFound, "no route %s (async-invocations, async-invocations/ID, async-invocations/ID/output)", r.URL.Path)
	}
}

func writeJSONAnswer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// serveOutput streams a succeeded request's result object.
func (d *Dispatcher) serveOutput(w http.ResponseWriter, r *http.Request, name, id string, fail func(error)) {
	ctx := r.Context()
	st, err := d.Get(ctx, name, id)
	if err != nil {
		fail(err)
		return
	}
	if st.State != asyncq.Succeeded {
		msg := fmt.Sprintf("request %s is %s: it has no output", id, st.State)
		if st.State == asyncq.Failed {
			msg = fmt.Sprintf("request %s failed: %s (error object at %s)", id, st.Error, st.Failure)
		}
		gatewayError(w, http.StatusNotFound, "%s", msg)
		return
	}
	b, key, err := d.locate(ctx, st.Output, false)
	if err != nil {
		fail(err)
		return
	}
	rd, err := b.NewReader(ctx, key, nil)
	if err != nil {
		if blob.IsNotFound(err) {
			gatewayError(w, http.StatusNotFound, "the output object of request %s (%s) is gone", id, st.Output)
			return
		}
		fail(err)
		return
	}
	defer rd.Close()
	if ct := rd.ContentType(); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("Content-Length", strconv.FormatInt(rd.Size(), 10))
	w.Header().Set(HeaderInferenceID, id)
	if r.Method == http.MethodHead {
		return
	}
	io.Copy(w, rd)
}

// errTooLarge ends an inline upload that passes its limit.
var errTooLarge = errors.New("over the limit")

type limitReader struct {
	r    io.Reader
	left int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, errTooLarge
	}
	return n, err
}

// submit validates an asynchronous invocation, stores an inline body in
// storage, queues the request and only then returns what the caller is
// told (202). status, if not 0, is the answer for err.
func (d *Dispatcher) submit(ctx context.Context, name string, r *http.Request) (*AsyncAccepted, int, error) {
	e, err := d.asyncEndpoint(ctx, name)
	if err != nil {
		return nil, 0, err
	}
	a := e.Spec.Async
	req := &asyncq.Request{ID: newInferenceID(), Endpoint: name, ContentType: r.Header.Get("Content-Type"),
		Accept: r.Header.Get("Accept"), Timeout: time.Duration(a.InvocationTimeout), MaxAttempts: a.MaxAttempts, Webhook: a.Webhook}
	if req.ContentType == "" {
		req.ContentType = "application/json"
	}
	if v := firstHeader(r.Header, HeaderInferenceID, HeaderSageMakerInferenceID); v != "" {
		if !inferenceIDRE.MatchString(v) {
			return nil, http.StatusBadRequest, fmt.Errorf("inference id %q: want 1..128 letters, digits, '.', '_' or '-', "+
				"starting with a letter or digit", v)
		}
		req.ID = v
	}
	if v := firstHeader(r.Header, HeaderInvocationTimeout, HeaderSageMakerInvocationTimeout); v != "" {
		secs, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || secs < 1 || time.Duration(secs)*time.Second > endpoint.MaxAsyncTimeout {
			return nil, http.StatusBadRequest, fmt.Errorf("%s %q: want whole seconds, 1..%d", HeaderInvocationTimeout, v,
				int(endpoint.MaxAsyncTimeout.Seconds()))
		}
		req.Timeout = time.Duration(secs) * time.Second
	}
	if v := r.Header.Get(HeaderWebhook); v != "" {
		if err := endpoint.CheckWebhookURL(v); err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("%s: %v", HeaderWebhook, err)
		}
		req.Webhook = v
	}
	req.Output = joinLocation(outputPrefix(e), req.ID+".out")
	req.Failure = joinLocation(failurePrefix(e), req.ID+".error.json")

	if loc := firstHeader(r.Header, HeaderInputLocation, HeaderSageMakerInputLocation); loc != "" {
		if hasBody(r) {
			return nil, http.StatusBadRequest, fmt.Errorf("send the payload inline or name it with %s, not both", HeaderInputLocation)
		}
		size, status, err := d.checkInput(ctx, loc)
		if err != nil {
			return nil, status, err
		}
		req.Input, req.InputBytes = loc, size
	} else {
		if r.ContentLength > a.MaxInlineBytes {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("inline payload of %d bytes is over the limit of %d: "+
				"put it in storage and name it with %s (up to %d bytes)", r.ContentLength, a.MaxInlineBytes, HeaderInputLocation,
				int64(endpoint.MaxAsyncInputBytes))
		}
		// A key of its own per submission: a second submission with the
		// same (caller's) id must not overwrite the first one's payload
		// before its insert is refused.
		key := "async/" + name + "/input/" + req.ID + "." + newInferenceID()[:8]
		n, err := blob.UploadReader(ctx, d.cfg.Storage, key, &limitReader{r: r.Body, left: a.MaxInlineBytes}, r.ContentLength)
		if errors.Is(err, errTooLarge) {
			return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("inline payload is over the limit of %d bytes: "+
				"put it in storage and name it with %s (up to %d bytes)", a.MaxInlineBytes, HeaderInputLocation,
				int64(endpoint.MaxAsyncInputBytes))
		}
		if err != nil {
			return nil, 0, fmt.Errorf("store the payload: %w", err)
		}
		if n == 0 {
			d.cfg.Storage.Delete(context.WithoutCancel(ctx), key)
			return nil, http.StatusBadRequest, fmt.Errorf("empty payload: send it as the body, or name an object with %s",
				HeaderInputLocation)
		}
		req.Input, req.InputBytes, req.Inline = key, n, true
	}
	if err := d.cfg.Store.InsertAsync(ctx, req); err != nil {
		if req.Inline {
			d.cfg.Storage.Delete(context.WithoutCancel(ctx), req.Input)
		}
		if errors.Is(err, store.ErrExists) {
			return nil, 0, fmt.Errorf("inference id %s is taken: it was submitted before (see GET %s/%s): %w", req.ID,
				"/endpoints/"+name+"/async-invocations", req.ID, store.ErrExists)
		}
		return nil, 0, err
	}
	d.poke()
	if d.cfg.Controller != nil && e.Spec.Variants[0].Replicas == 0 {
		// A fleet at zero starts a replica now, not at the next tick (a
		// poke for every request would run the controller's whole
		// reconciliation, readiness checks included, once per request).
		d.cfg.Controller.poke()
	}
	return &AsyncAccepted{InferenceID: req.ID, OutputLocation: req.Output, FailureLocation: req.Failure}, 0, nil
}

// checkInput checks that an input location names an existing object of
// at most MaxAsyncInputBytes and returns its size.
func (d *Dispatcher) checkInput(ctx context.Context, loc string) (int64, int, error) {
	if len(loc) > 2048 {
		return 0, http.StatusBadRequest, fmt.Errorf("%s is longer than 2048 bytes", HeaderInputLocation)
	}
	b, key, err := d.locate(ctx, loc, false)
	if err != nil {
		return 0, http.StatusBadRequest, fmt.Errorf("%s %q: %v", HeaderInputLocation, loc, err)
	}
	if b == d.cfg.Storage && strings.HasPrefix(key, "async/") {
		// The queue's own objects: payloads and results come and go with
		// their requests (retention, the orphan sweep), so another
		// request must not depend on them.
		return 0, http.StatusBadRequest, fmt.Errorf("%s %q is under async/, where the server keeps its queue's objects: "+
			"copy the object elsewhere and name that", HeaderInputLocation, loc)
	}
	attrs, err := b.Attributes(ctx, key)
	if err != nil {
		if blob.IsNotFound(err) {
			return 0, http.StatusBadRequest, fmt.Errorf("input location %s does not exist", loc)
		}
		return 0, http.StatusBadRequest, fmt.Errorf("input location %s cannot be read: %v", loc, err)
	}
	if attrs.Size > endpoint.MaxAsyncInputBytes {
		return 0, http.StatusRequestEntityTooLarge, fmt.Errorf("input location %s holds %d bytes, over the limit of %d",
			loc, attrs.Size, int64(endpoint.MaxAsyncInputBytes))
	}
	if attrs.Size == 0 {
		return 0, http.StatusBadRequest, fmt.Errorf("input location %s is empty", loc)
	}
	return attrs.Size, 0, nil
}

// hasBody reports whether a request carries a body (peeking one byte of
// a body of unknown length).
func hasBody(r *http.Request) bool {
	if r.ContentLength > 0 {
		return true
	}
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return false
	}
	var b [1]byte
	n, _ := io.ReadFull(r.Body, b[:])
	return n > 0
}

func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}

func outputPrefix(e *endpoint.Endpoint) string {
	if p := e.Spec.Async.OutputPath; p != "" {
		return p
	}
	return "async/" + e.Name + "/output/"
}

func failurePrefix(e *endpoint.Endpoint) string {
	if p := e.Spec.Async.FailurePath; p != "" {
		return p
	}
	if p := e.Spec.Async.OutputPath; p != "" {
		return joinLocation(p, "failures/")
	}
	return "async/" + e.Name + "/failure/"
}

// joinLocation appends name to a location prefix (a URL, whose query
// stays at the end, or a bare key prefix).
func joinLocation(prefix, name string) string {
	u, err := url.Parse(prefix)
	if err != nil || u.Scheme == "" {
		return strings.TrimSuffix(prefix, "/") + "/" + name
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + name
	return u.String()
}

// newInferenceID is a random UUID (version 4), as SageMaker's.
func newInferenceID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
