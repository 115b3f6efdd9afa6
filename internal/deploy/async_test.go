package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/deploy/asyncq"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/store"
)

// doubler is a replica for the dispatcher's tests: it answers
// {"x": n} with {"y": 2n}, counts the requests it completed per input,
// answers 503 to {"x": -1} and 400 to {"x": -2}, and checks the token.
type doubler struct {
	mu    sync.Mutex
	calls map[int]int
	srv   *httptest.Server
}

func newDoubler(t *testing.T) *doubler {
	d := &doubler{calls: map[int]int{}}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/invocations" || r.Header.Get("Authorization") != "Bearer ep-token" {
			http.Error(w, "wrong path or token", http.StatusUnauthorized)
			return
		}
		var in struct{ X int }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		d.mu.Lock()
		d.calls[in.X]++
		d.mu.Unlock()
		switch in.X {
		case -3:
			select { // slower than any timeout the tests give
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			fmt.Fprint(w, `{"y":"late"}`)
		case -1:
			http.Error(w, "replica overloaded", http.StatusServiceUnavailable)
		case -2:
			http.Error(w, "bad input", http.StatusBadRequest)
		default:
			fmt.Fprintf(w, `{"y":%d}`, 2*in.X)
		}
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *doubler) count(x int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.calls[x]
}

type asyncHarness struct {
	t      *testing.T
	st     store.Store
	bucket *blob.Bucket
	url    string // the bucket's URL
	gw     *Gateway
	front  *httptest.Server
	d      *Dispatcher
	stop   func()
}

// newAsyncHarness makes an async endpoint "ep" (async settings a) whose
// route has the given replica, a gateway in front, and no dispatcher yet.
func newAsyncHarness(t *testing.T, a endpoint.Async, replica *httptest.Server) *asyncHarness {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(t.Context(), filepath.Join(dir, "hpcml.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	url := blob.WithCreateDir("file://" + filepath.Join(dir, "objects"))
	bucket, err := blob.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bucket.Close() })
	spec := endpoint.Spec{Variants: []endpoint.Variant{{Name: "primary", Model: "m", Version: 1}}, Async: &a}
	if err := spec.Check(); err != nil {
		t.Fatal(err)
	}
	e := &endpoint.Endpoint{Name: "ep", Spec: spec, State: endpoint.InService, Token: "ep-token"}
	if err := st.CreateEndpoint(t.Context(), e); err != nil {
		t.Fatal(err)
	}
	rt2 := &endpoint.Endpoint{Name: "rt", Spec: endpoint.Spec{Variants: spec.Variants}, State: endpoint.InService, Token: "x"}
	if err := st.CreateEndpoint(t.Context(), rt2); err != nil {
		t.Fatal(err)
	}
	h := &asyncHarness{t: t, st: st, bucket: bucket, url: url}
	h.gw = NewGateway(GatewayConfig{Authorized: func(tok string) bool { return tok == "server-token" }})
	rt := &Route{Endpoint: "ep", Token: "ep-token", Variants: []RouteVariant{{Name: "primary", Weight: 1}}}
	if replica != nil {
		rt.Variants[0].Fleets = []Fleet{{Percent: 100, Replicas: []*Replica{{JobID: 1, Addr: strings.TrimPrefix(replica.URL, "http://")}}}}
	}
	h.gw.SetRoute(rt)
	h.front = httptest.NewServer(h.gw)
	t.Cleanup(h.front.Close)
	h.d = NewDispatcher(AsyncConfig{Store: h.st, Storage: h.bucket, StorageURL: h.url, Gateway: h.gw, Tick: 20 * time.Millisecond})
	return h
}

// run starts a dispatcher, as a (re)started server does.
func (h *asyncHarness) run(webhookTimeout time.Duration) {
	if webhookTimeout > 0 {
		h.d.cfg.WebhookTimeout = webhookTimeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.d.Run(ctx); close(done) }()
	h.stop = func() { cancel(); <-done; h.d.Close() }
	h.t.Cleanup(func() {
		select {
		case <-done:
		default:
			h.stop()
		}
	})
}

func (h *asyncHarness) do(method, path string, body []byte, hdr ...string) (int, http.Header, []byte) {
	h.t.Helper()
	return gatewayCall(h.t, method, h.front.URL+path, body, hdr...)
}

// gatewayCall sends a request with the server's token (the test
// gateways'), headers given as name, value pairs, and reads the answer.
func gatewayCall(t *testing.T, method, url string, body []byte, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer server-token")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func (h *asyncHarness) submit(body string, hdr ...string) AsyncAccepted {
	h.t.Helper()
	code, head, b := h.do("POST", "/endpoints/ep/async-invocations", []byte(body), hdr...)
	var acc AsyncAccepted
	if code != http.StatusAccepted || json.Unmarshal(b, &acc) != nil || acc.InferenceID == "" {
		h.t.Fatalf("submit %s: %d %s", body, code, b)
	}
	if head.Get(HeaderInferenceID) != acc.InferenceID || head.Get(HeaderSageMakerOutputLocation) != acc.OutputLocation ||
		head.Get(HeaderFailureLocation) != acc.FailureLocation {
		h.t.Fatalf("headers %v do not match %+v", head, acc)
	}
	return acc
}

func (h *asyncHarness) get(id string) *asyncq.Request {
	h.t.Helper()
	r, err := h.st.GetAsync(h.t.Context(), "ep", id)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func (h *asyncHarness) waitEnded(ids []string) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, id := range ids {
		for !h.get(id).State.Terminal() {
			if time.Now().After(deadline) {
				h.t.Fatalf("request %s still %s", id, h.get(id).State)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func (h *asyncHarness) object(loc string) string {
	h.t.Helper()
	b, err := h.bucket.ReadAll(h.t.Context(), loc)
	if err != nil {
		h.t.Fatalf("object %s: %v", loc, err)
	}
	return string(b)
}

// Requests sent inline go to the replica and their answers to storage;
// each one once, with its own answer; the status, the output route and
// the webhook tell the same story.
func TestAsyncDispatch(t *testing.T) {
	rep := newDoubler(t)
	var mu sync.Mutex
	notices := map[string][]Notice{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n Notice
		json.NewDecoder(r.Body).Decode(&n)
		mu.Lock()
		notices[n.InferenceID] = append(notices[n.InferenceID], n)
		mu.Unlock()
	}))
	defer hook.Close()
	h := newAsyncHarness(t, endpoint.Async{Webhook: hook.URL + "/all", MaxConcurrency: 3}, rep.srv)
	// Queued before the dispatcher runs: nothing is lost by waiting.
	var ids []string
	for i := range 40 {
		ids = append(ids, h.submit(fmt.Sprintf(`{"x":%d}`, i)).InferenceID)
	}
	if st := h.get(ids[0]); st.State != asyncq.Queued || !st.Inline || st.WebhookState != asyncq.WebhookWaiting {
		t.Fatalf("before the dispatcher: %+v", st)
	}
	h.run(0)
	h.waitEnded(ids)
	for i, id := range ids {
		r := h.get(id)
		if r.State != asyncq.Succeeded || r.Attempts != 1 {
			t.Fatalf("request %d: %+v", i, r)
		}
		if got, want := h.object(r.Output), fmt.Sprintf(`{"y":%d}`, 2*i); got != want {
			t.Fatalf("request %d: output %s, want %s", i, got, want)
		}
		if rep.count(i) != 1 {
			t.Fatalf("input %d reached the replica %d times", i, rep.count(i))
		}
	}
	code, _, body := h.do("GET", "/endpoints/ep/async-invocations/"+ids[3]+"/output", nil)
	if code != 200 || string(body) != `{"y":6}` {
		t.Fatalf("output route: %d %s", code, body)
	}
	code, _, body = h.do("GET", "/endpoints/ep/async-invocations/"+ids[3], nil)
	var st AsyncStatus
	if code != 200 || json.Unmarshal(body, &st) != nil || st.State != asyncq.Succeeded || st.InvocationTimeoutSeconds != 900 {
		t.Fatalf("status route: %d %s", code, body)
	}
	waitUntil(t, "every webhook delivered", func() bool {
		for _, id := range ids {
			if h.get(id).WebhookState != asyncq.WebhookDelivered {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		n := notices[id]
		if len(n) != 1 || n[0].Status != asyncq.Succeeded || n[0].OutputLocation != h.get(id).Output || n[0].FailureLocation != "" {
			t.Fatalf("notices of %s: %+v", id, n)
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A replica failure is retried up to max attempts, then the request
// fails with its error object; a caller's mistake (4xx) fails at once;
// neither holds up the requests behind them.
func TestAsyncRetriesThenFailure(t *testing.T) {
	rep := newDoubler(t)
	h := newAsyncHarness(t, endpoint.Async{MaxAttempts: 2}, rep.srv)
	h.run(0)
	flaky := h.submit(`{"x":-1}`).InferenceID
	bad := h.submit(`{"x":-2}`).InferenceID
	good := h.submit(`{"x":5}`).InferenceID
	h.waitEnded([]string{flaky, bad, good})
	f := h.get(flaky)
	if f.State != asyncq.Failed || f.Attempts != 2 || f.Failures != 1 || !strings.Contains(f.Error, "503") || rep.count(-1) != 2 {
		t.Fatalf("flaky request: %+v (replica saw it %d times)", f, rep.count(-1))
	}
	var doc failureDoc
	if err := json.Unmarshal([]byte(h.object(f.Failure)), &doc); err != nil || doc.Status != 503 ||
		!strings.Contains(doc.Replica, "overloaded") || doc.InferenceID != flaky {
		t.Fatalf("failure object %+v %v", doc, err)
	}
	if ok, _ := h.bucket.Exists(t.Context(), f.Output); ok {
		t.Fatal("a failed request has an output object")
	}
	b := h.get(bad)
	if b.State != asyncq.Failed || b.Attempts != 1 || !strings.Contains(b.Error, "400") || rep.count(-2) != 1 {
		t.Fatalf("bad request: %+v", b)
	}
	if g := h.get(good); g.State != asyncq.Succeeded {
		t.Fatalf("good request: %+v", g)
	}
	code, _, body := h.do("GET", "/endpoints/ep/async-invocations/"+flaky+"/output", nil)
	if code != 404 || !strings.Contains(string(body), "failed") {
		t.Fatalf("output of a failed request: %d %s", code, body)
	}
}

// After a kill, a request found running whose output object exists is
// marked succeeded without running again; the others run again, and
// every request ends with its own answer once.
func TestAsyncReconcileAfterKill(t *testing.T) {
	rep := newDoubler(t)
	h := newAsyncHarness(t, endpoint.Async{}, rep.srv)
	var ids []string
	for i := range 6 {
		ids = append(ids, h.submit(fmt.Sprintf(`{"x":%d}`, 100+i)).InferenceID)
	}
	// A server that was killed: it leased five, wrote the answer of the
	// first and the error object of the fifth before dying (their rows
	// never said so).
	leased, err := h.st.LeaseAsync(t.Context(), "ep", "dead-server", 5, time.Now())
	if err != nil || len(leased) != 5 {
		t.Fatalf("lease: %v %v", leased, err)
	}
	first := h.get(ids[0])
	if err := h.bucket.WriteAll(t.Context(), first.Output, []byte(`{"y":200}`), nil); err != nil {
		t.Fatal(err)
	}
	fifth := h.get(ids[4])
	doc, _ := json.Marshal(failureDoc{InferenceID: ids[4], Error: "replica answered 400 Bad Request", At: time.Now()})
	if err := h.bucket.WriteAll(t.Context(), fifth.Failure, doc, nil); err != nil {
		t.Fatal(err)
	}
	h.run(0)
	h.waitEnded(ids)
	if rep.count(100) != 0 || rep.count(104) != 0 {
		t.Fatalf("a request whose object was stored ran again (%d, %d times)", rep.count(100), rep.count(104))
	}
	if r := h.get(ids[4]); r.State != asyncq.Failed || r.Error != "replica answered 400 Bad Request" {
		t.Fatalf("the request whose error object was stored: %+v", r)
	}
	for i, id := range ids {
		if i == 4 {
			continue
		}
		r := h.get(id)
		if r.State != asyncq.Succeeded || h.object(r.Output) != fmt.Sprintf(`{"y":%d}`, 2*(100+i)) {
			t.Fatalf("request %d: %+v", i, r)
		}
		wantAttempts := 1
		if i > 0 && i < 4 {
			wantAttempts = 2 // interrupted once, counted
		}
		if r.Attempts != wantAttempts || r.Failures != 0 {
			t.Fatalf("request %d: %d attempts, %d failures; want %d, 0", i, r.Attempts, r.Failures, wantAttempts)
		}
		if i > 0 && rep.count(100+i) != 1 {
			t.Fatalf("request %d reached the replica %d times", i, rep.count(100+i))
		}
	}
}

// A webhook that hangs or fails holds up no request: the queue drains
// while its deliveries wait, and the failures are recorded.
func TestAsyncWebhookNeverBlocks(t *testing.T) {
	rep := newDoubler(t)
	release := make(chan struct{})
	var hung sync.WaitGroup
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung.Add(1)
		defer hung.Done()
		<-release
	}))
	defer slow.Close()
	defer close(release)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer failing.Close()
	h := newAsyncHarness(t, endpoint.Async{Webhook: slow.URL}, rep.srv)
	// Every hanging delivery gives up after 300 ms (and is tried again
	// later), so the failing webhook gets its turn among them.
	h.run(300 * time.Millisecond)
	var ids []string
	for i := range 30 {
		ids = append(ids, h.submit(fmt.Sprintf(`{"x":%d}`, i)).InferenceID) // more than the webhook workers
	}
	other := h.submit(`{"x":77}`, HeaderWebhook, failing.URL+"/hook").InferenceID
	h.waitEnded(append(ids, other))
	for _, id := range ids {
		if r := h.get(id); r.State != asyncq.Succeeded {
			t.Fatalf("%s: %+v", id, r)
		}
	}
	waitUntil(t, "the failing webhook's first attempt recorded", func() bool {
		r := h.get(other)
		return r.WebhookAttempts >= 1 && r.WebhookState == asyncq.WebhookPending && strings.Contains(r.WebhookError, "500")
	})
	if r := h.get(other); r.Webhook != failing.URL+"/hook" {
		t.Fatalf("per-request webhook: %+v", r)
	}
}

// Bad requests get a clear 4xx and change nothing.
func TestAsyncBadRequests(t *testing.T) {
	h := newAsyncHarness(t, endpoint.Async{MaxInlineBytes: 64}, nil)
	h.run(0)
	// An input object one byte over 1 GB (sparse: it takes no disk).
	if err := h.bucket.WriteAll(t.Context(), "in/huge.csv", []byte("1"), nil); err != nil {
		t.Fatal(err)
	}
	objects, _, _ := strings.Cut(strings.TrimPrefix(h.url, "file://"), "?")
	if err := os.Truncate(filepath.Join(objects, "in", "huge.csv"), endpoint.MaxAsyncInputBytes+1); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path, body string
		hdr              []string
		code             int
		msg              string
	}{
		{"unknown endpoint", "/endpoints/nope/async-invocations", `{}`, nil, 404, "does not exist"},
		{"real-time endpoint", "/endpoints/rt/async-invocations", `{}`, nil, 400, "not asynchronous"},
		{"over the inline limit", "/endpoints/ep/async-invocations", strings.Repeat("x", 65), nil, 413, "over the limit of 64"},
		{"empty", "/endpoints/ep/async-invocations", ``, nil, 400, "empty payload"},
		{"missing input", "/endpoints/ep/async-invocations", ``, []string{HeaderInputLocation, "in/nope.json"}, 400, "does not exist"},
		{"input over 1 GB", "/endpoints/ep/async-invocations", ``, []string{HeaderInputLocation, "in/huge.csv"}, 413, "1073741824"},
		{"missing input (SageMaker header)", "/endpoints/ep/async-invocations", ``,
			[]string{HeaderSageMakerInputLocation, "file:///nonexistent-dir/x.json"}, 400, "x.json"},
		{"escaping input", "/endpoints/ep/async-invocations", ``, []string{HeaderInputLocation, "../etc/passwd"}, 400, "escapes"},
		{"the queue's own object", "/endpoints/ep/async-invocations", ``, []string{HeaderInputLocation, "async/ep/input/x.1234abcd"}, 400, "under async/"},
		{"inline and location", "/endpoints/ep/async-invocations", `{}`, []string{HeaderInputLocation, "in/x.json"}, 400, "not both"},
		{"timeout", "/endpoints/ep/async-invocations", `{}`, []string{HeaderSageMakerInvocationTimeout, "3601"}, 400, "1..3600"},
		{"webhook scheme", "/endpoints/ep/async-invocations", `{}`, []string{HeaderWebhook, "file:///etc/x"}, 400, "http or https"},
		{"unknown id", "/endpoints/ep/async-invocations/nope", ``, nil, 404, "nope"},
		{"bad status filter", "/endpoints/ep/async-invocations?status=done", ``, nil, 400, "status"},
		{"no token", "", ``, nil, 401, "token"},
		{"method", "DELETE /endpoints/ep/async-invocations", ``, nil, 405, "takes GET, POST"},
	} {
		method := "POST"
		if strings.Contains(c.path, "/async-invocations/") || strings.Contains(c.path, "?") {
			method = "GET"
		}
		if m, p, ok := strings.Cut(c.path, " "); ok {
			method, c.path = m, p
		}
		var code int
		var body []byte
		if c.path == "" {
			resp, err := http.Post(h.front.URL+"/endpoints/ep/async-invocations", "application/json", strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			code = resp.StatusCode
		} else {
			code, _, body = h.do(method, c.path, []byte(c.body), c.hdr...)
		}
		if code != c.code || !strings.Contains(string(body), c.msg) {
			t.Errorf("%s: %d %s, want %d %q", c.name, code, body, c.code, c.msg)
		}
	}
	if list, _ := h.st.ListAsync(t.Context(), "ep", "", 0); len(list) != 0 {
		t.Fatalf("a refused request was queued: %+v", list[0])
	}
	if err := h.bucket.Delete(t.Context(), "in/huge.csv"); err != nil { // the caller's, not the server's
		t.Fatal(err)
	}
	iter := h.bucket.List(nil)
	if obj, err := iter.Next(t.Context()); err == nil {
		t.Fatalf("a refused request left %s in storage", obj.Key)
	}
	// An input by reference: accepted with its size.
	if err := h.bucket.WriteAll(t.Context(), "in/x.json", []byte(`{"x":1}`), nil); err != nil {
		t.Fatal(err)
	}
	acc := h.submit("", HeaderInputLocation, "in/x.json", HeaderInvocationTimeout, "30")
	r := h.get(acc.InferenceID)
	if r.Inline || r.Input != "in/x.json" || r.InputBytes != 7 || r.Timeout != 30*time.Second {
		t.Fatalf("by reference: %+v", r)
	}
}

// createScaleToZero creates async endpoint "ep" (one model, half a CPU per
// replica) that scales on its backlog between 0 and 2 replicas, scaling
// in after scaleIn without requests.
func createScaleToZero(t *testing.T, h *harness, scaleIn time.Duration) {
	t.Helper()
	auto := &endpoint.Autoscale{Min: 0, Max: 2, Target: 4, Metric: endpoint.MetricBacklog,
		Window: job.Duration(200 * time.Millisecond), ScaleInWindow: job.Duration(scaleIn),
		ScaleInCooldown: job.Duration(100 * time.Millisecond)}
	if _, err := h.c.Create(t.Context(), CreateRequest{Name: "ep", Variants: []VariantRequest{{Model: "m:1", CPUs: 0.5}},
		Autoscale: auto, Async: &endpoint.Async{}}); err != nil {
		t.Fatal(err)
	}
}

// Scale to zero and back, through the controller: an async endpoint
// with min=0 loses its replica once the queue has been empty for the
// scale-in window, and starts one at once when a request is queued,
// which then runs.
func TestAsyncScaleToZero(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	createScaleToZero(t, h, 400*time.Millisecond)
	h.wait("a ready replica", func(s *Status) bool { return len(ready(s)) == 1 })
	st := h.wait("scaled to zero", func(s *Status) bool { return s.Spec.Variants[0].Replicas == 0 && len(s.Replicas) == 0 })
	if st.State != endpoint.InService {
		t.Fatalf("an endpoint at zero is %s (%s), want in service", st.State, st.Reason)
	}
	// Bare keys (inline payloads, default outputs) are in the bucket
	// given as Storage, whatever its URL is called.
	d := NewDispatcher(AsyncConfig{Store: h.st, Storage: h.c.cfg.Storage, StorageURL: "file:///server-storage", Gateway: h.gw,
		Controller: h.c, Tick: 20 * time.Millisecond})
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { d.Run(dctx); close(done) }()
	defer func() { cancel(); <-done }()
	req, _ := http.NewRequest("POST", h.front.URL+"/endpoints/ep/async-invocations", strings.NewReader(`{"x":1}`))
	req.Header.Set("Authorization", "Bearer server-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("submit at zero: %d", resp.StatusCode)
	}
	h.wait("scaled from zero", func(s *Status) bool { return s.Spec.Variants[0].Replicas >= 1 })
	waitUntil(t, "the request to run on the new replica", func() bool {
		l, _ := h.st.ListAsync(ctx, "ep", asyncq.Succeeded, 0)
		return len(l) == 1
	})
	evs, _ := h.st.ListScaleEvents(ctx, "ep", 10)
	if len(evs) < 2 || evs[0].From != 0 || !strings.Contains(evs[0].Reason, "scale from zero") {
		t.Fatalf("scale events %+v", evs)
	}
}

// A caller's own inference id: used as given; the same id again is a
// 409 that leaves the first request (and its payload) as it was; an id
// that could not be part of a key is refused.
func TestAsyncCallerInferenceID(t *testing.T) {
	rep := newDoubler(t)
	h := newAsyncHarness(t, endpoint.Async{}, rep.srv)
	acc := h.submit(`{"x":4}`, HeaderSageMakerInferenceID, "order-17.a")
	if acc.InferenceID != "order-17.a" || !strings.HasSuffix(acc.OutputLocation, "/order-17.a.out") {
		t.Fatalf("caller's id: %+v", acc)
	}
	code, _, body := h.do("POST", "/endpoints/ep/async-invocations", []byte(`{"x":5}`), HeaderInferenceID, "order-17.a")
	if code != http.StatusConflict || !strings.Contains(string(body), "taken") {
		t.Fatalf("the same id again: %d %s", code, body)
	}
	for _, bad := range []string{"../x", ".hidden", "a/b", strings.Repeat("x", 129)} {
		if code, _, body := h.do("POST", "/endpoints/ep/async-invocations", []byte(`{"x":5}`), HeaderInferenceID, bad); code != 400 {
			t.Errorf("id %q: %d %s", bad, code, body)
		}
	}
	h.run(0)
	h.waitEnded([]string{"order-17.a"})
	if r := h.get("order-17.a"); r.State != asyncq.Succeeded || h.object(r.Output) != `{"y":8}` || rep.count(5) != 0 {
		t.Fatalf("the first request after a refused duplicate: %+v (x=5 ran %d times)", r, rep.count(5))
	}
	if list, _ := h.st.ListAsync(t.Context(), "ep", "", 0); len(list) != 1 {
		t.Fatalf("%d requests queued, want 1", len(list))
	}
}

// A request that takes longer than its timeout fails at once with its
// error object, without a retry.
func TestAsyncTimeout(t *testing.T) {
	rep := newDoubler(t)
	h := newAsyncHarness(t, endpoint.Async{}, rep.srv)
	h.run(0)
	slow := h.submit(`{"x":-3}`, HeaderInvocationTimeout, "1").InferenceID
	h.waitEnded([]string{slow})
	r := h.get(slow)
	if r.State != asyncq.Failed || r.Attempts != 1 || !strings.Contains(r.Error, "timed out") || r.Timeout != time.Second {
		t.Fatalf("slow request: %+v", r)
	}
	if !strings.Contains(h.object(r.Failure), "timed out") {
		t.Fatalf("error object: %s", h.object(r.Failure))
	}
}

// A webhook that keeps failing is given up after MaxWebhookAttempts, and
// says so on the request.
func TestAsyncWebhookGivesUp(t *testing.T) {
	rep := newDoubler(t)
	calls := 0
	var mu sync.Mutex
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusFound) // not followed: a failure
	}))
	defer hook.Close()
	h := newAsyncHarness(t, endpoint.Async{Webhook: hook.URL}, rep.srv)
	id := h.submit(`{"x":1}`).InferenceID
	// The request has ended and its webhook has failed all but once.
	if _, err := h.st.LeaseAsync(t.Context(), "ep", "old", 1, time.Now()); err != nil {
		t.Fatal(err)
	}
	if ok, err := h.st.FinishAsync(t.Context(), id, "old", asyncq.Succeeded, "", time.Now()); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := h.st.WebhookResult(t.Context(), id, asyncq.WebhookPending, asyncq.MaxWebhookAttempts-1, "earlier", time.Now()); err != nil {
		t.Fatal(err)
	}
	h.run(0)
	waitUntil(t, "the webhook to be given up", func() bool { return h.get(id).WebhookState == asyncq.WebhookFailed })
	r := h.get(id)
	if r.WebhookAttempts != asyncq.MaxWebhookAttempts || !strings.Contains(r.WebhookError, "302") {
		t.Fatalf("given up: %+v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Fatalf("the webhook was called %d times, want 1", calls)
	}
}

// A failure location storage refuses does not loop for ever: the request
// is tried up to its attempts, then ends failed with the reason on its row.
func TestAsyncUnwritableFailureLocation(t *testing.T) {
	rep := newDoubler(t)
	h := newAsyncHarness(t, endpoint.Async{MaxAttempts: 2, FailurePath: "file:///proc/hpcml-nope/"}, rep.srv)
	h.run(0)
	id := h.submit(`{"x":-2}`).InferenceID
	h.waitEnded([]string{id})
	r := h.get(id)
	if r.State != asyncq.Failed || r.Attempts != 2 || !strings.Contains(r.Error, "400") ||
		!strings.Contains(r.Error, "could not be written") {
		t.Fatalf("request: %+v", r)
	}
}

// backlogFailing is the store with AsyncBacklog failing while fail is set.
type backlogFailing struct {
	store.Store
	fail atomic.Bool
}

func (s *backlogFailing) AsyncBacklog(ctx context.Context) (map[string]store.AsyncCounts, error) {
	if s.fail.Load() {
		return nil, fmt.Errorf("database is locked")
	}
	return s.Store.AsyncBacklog(ctx)
}

// A backlog that cannot be counted is no sample: read as zero, it would
// scale a busy endpoint (min 0) to zero while the database hiccups.
func TestAsyncBacklogUnreadableIsNoSample(t *testing.T) {
	h := newHarness(t)
	h.stop()
	fs := &backlogFailing{Store: h.st}
	h.cfg.Store = fs
	h.start()
	ctx := t.Context()
	createScaleToZero(t, h, 300*time.Millisecond)
	// Two queued requests (no dispatcher runs them): backlog 2, one replica.
	for i := range 2 {
		r := &asyncq.Request{ID: fmt.Sprintf("r%d", i), Endpoint: "ep", Input: "in", Output: "out", Failure: "err", MaxAttempts: 3}
		if err := h.st.InsertAsync(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	h.wait("a ready replica", func(s *Status) bool { return len(ready(s)) == 1 })
	fs.fail.Store(true)
	time.Sleep(4 * (300 + 100) * time.Millisecond) // several scale-in windows
	fs.fail.Store(false)
	st := h.wait("the endpoint", func(*Status) bool { return true })
	if st.Spec.Variants[0].Replicas != 1 {
		evs, _ := h.st.ListScaleEvents(ctx, "ep", 10)
		t.Fatalf("scaled to %d replicas while the backlog (2) could not be read: %+v", st.Spec.Variants[0].Replicas, evs)
	}
}

// endsFailing is the store with FinishAsync and RetryAsync failing while
// fail is set, counting the refusals.
type endsFailing struct {
	store.Store
	fail    atomic.Bool
	refused atomic.Int32
}

func (s *endsFailing) FinishAsync(ctx context.Context, id, owner string, state asyncq.State, msg string, now time.Time) (bool, error) {
	if s.fail.Load() {
		s.refused.Add(1)
		return false, fmt.Errorf("database is locked")
	}
	return s.Store.FinishAsync(ctx, id, owner, state, msg, now)
}

func (s *endsFailing) RetryAsync(ctx context.Context, id, owner string, failed bool, msg string, next time.Time) (bool, error) {
	if s.fail.Load() {
		s.refused.Add(1)
		return false, fmt.Errorf("database is locked")
	}
	return s.Store.RetryAsync(ctx, id, owner, failed, msg, next)
}

// An end the database refuses is written again while the server runs: the
// request does not stay running until a restart. Its answer was computed
// once (the replica saw it once); the retry of a 503 is kept too.
func TestAsyncEndRefusedIsWrittenAgain(t *testing.T) {
	rep := newDoubler(t)
	h := newAsyncHarness(t, endpoint.Async{MaxAttempts: 3}, rep.srv)
	fs := &endsFailing{Store: h.st}
	h.d.cfg.Store = fs
	fs.fail.Store(true)
	h.run(0)
	good := h.submit(`{"x":7}`).InferenceID
	flaky := h.submit(`{"x":-1}`).InferenceID
	waitUntil(t, "both ends refused", func() bool { return fs.refused.Load() >= 2 })
	if g := h.get(good); g.State != asyncq.Running {
		t.Fatalf("while the database refuses, the request is %s", g.State)
	}
	fs.fail.Store(false)
	h.waitEnded([]string{good})
	if g := h.get(good); g.State != asyncq.Succeeded || rep.count(7) != 1 || h.object(g.Output) != `{"y":14}` {
		t.Fatalf("request: %+v, replica saw it %d times", g, rep.count(7))
	}
	h.waitEnded([]string{flaky})
	if f := h.get(flaky); f.State != asyncq.Failed || f.Failures != 2 || rep.count(-1) != 3 {
		t.Fatalf("flaky request: %+v, replica saw it %d times", f, rep.count(-1))
	}
}

// After a kill, objects at a request's locations older than the request
// (a deleted endpoint's of the same name, whose inference ids a caller
// reuses) are not taken for its outcome: it runs again and its own answer
// replaces them.
func TestAsyncReconcileIgnoresStaleObjects(t *testing.T) {
	rep := newDoubler(t)
	h := newAsyncHarness(t, endpoint.Async{}, rep.srv)
	out := h.submit(`{"x":31}`, HeaderInferenceID, "reused-out")
	fail := h.submit(`{"x":32}`, HeaderInferenceID, "reused-fail")
	if _, err := h.st.LeaseAsync(t.Context(), "ep", "dead-server", 2, time.Now()); err != nil {
		t.Fatal(err)
	}
	// The old endpoint's objects, from before these requests were made.
	old := h.get(out.InferenceID).SubmittedAt.Add(-time.Hour)
	if err := h.bucket.WriteAll(t.Context(), h.get(out.InferenceID).Output, []byte(`{"y":"stale"}`), nil); err != nil {
		t.Fatal(err)
	}
	root := strings.TrimPrefix(strings.SplitN(h.url, "?", 2)[0], "file://")
	if err := os.Chtimes(filepath.Join(root, filepath.FromSlash(h.get(out.InferenceID).Output)), old, old); err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(failureDoc{InferenceID: "reused-fail", Error: "an old failure", At: old})
	if err := h.bucket.WriteAll(t.Context(), h.get(fail.InferenceID).Failure, doc, nil); err != nil {
		t.Fatal(err)
	}
	h.run(0)
	h.waitEnded([]string{out.InferenceID, fail.InferenceID})
	for _, c := range []struct {
		id string
		x  int
	}{{out.InferenceID, 31}, {fail.InferenceID, 32}} {
		r := h.get(c.id)
		if r.State != asyncq.Succeeded || rep.count(c.x) != 1 || h.object(r.Output) != fmt.Sprintf(`{"y":%d}`, 2*c.x) {
			t.Fatalf("%s: %+v, the replica saw it %d times", c.id, r, rep.count(c.x))
		}
	}
}

// A request that restarts have interrupted more times than its max
// attempts fails at the next restart (with its error object) instead of
// running again: a request that crashes the server cannot do it for ever.
// One interrupted max-attempts times runs again.
func TestAsyncRestartsAreBounded(t *testing.T) {
	rep := newDoubler(t)
	h := newAsyncHarness(t, endpoint.Async{MaxAttempts: 2}, rep.srv)
	doomed := h.submit(`{"x":41}`).InferenceID
	// Three servers died running it: each leased it, the next one's
	// reconcile requeued it.
	for i := range 3 {
		owner := fmt.Sprintf("dead-%d", i)
		if l, err := h.st.LeaseAsync(t.Context(), "ep", owner, 1, time.Now()); err != nil || len(l) != 1 {
			t.Fatalf("lease: %v %v", l, err)
		}
		if i == 2 {
			break
		}
		if ok, err := h.st.RetryAsync(t.Context(), doomed, owner, false, "interrupted by a server restart", time.Now()); err != nil || !ok {
			t.Fatalf("requeue: %v %v", ok, err)
		}
	}
	// Interrupted twice (its max attempts): it runs again.
	spared := h.submit(`{"x":42}`).InferenceID
	for i := range 2 {
		owner := fmt.Sprintf("dead-%d", i+10)
		if l, err := h.st.LeaseAsync(t.Context(), "ep", owner, 1, time.Now()); err != nil || len(l) != 1 || l[0].ID != spared {
			t.Fatalf("lease: %v %v", l, err)
		}
		if i == 1 {
			break
		}
		if ok, err := h.st.RetryAsync(t.Context(), spared, owner, false, "interrupted by a server restart", time.Now()); err != nil || !ok {
			t.Fatalf("requeue: %v %v", ok, err)
		}
	}
	h.run(0)
	h.waitEnded([]string{doomed, spared})
	r := h.get(doomed)
	if r.State != asyncq.Failed || !strings.Contains(r.Error, "interrupted by 3 server restarts") || rep.count(41) != 0 {
		t.Fatalf("doomed request: %+v, the replica saw it %d times", r, rep.count(41))
	}
	var doc failureDoc
	if err := json.Unmarshal([]byte(h.object(r.Failure)), &doc); err != nil || !strings.Contains(doc.Error, "server restarts") {
		t.Fatalf("its error object: %+v %v", doc, err)
	}
	if s := h.get(spared); s.State != asyncq.Succeeded || rep.count(42) != 1 {
		t.Fatalf("request interrupted once: %+v", s)
	}
}

// The sweep: requests ended longer ago than the retention go with their
// inline payloads and the objects the server placed (a payload named by
// reference stays: it is the caller's); a request still running stays;
// inline payloads no request names go once older than the orphan age,
// younger ones stay.
func TestAsyncSweep(t *testing.T) {
	rep := newDoubler(t)
	h := newAsyncHarness(t, endpoint.Async{}, rep.srv)
	h.d.cfg.Retention, h.d.cfg.SweepEvery, h.d.cfg.OrphanAge = 300*time.Millisecond, 50*time.Millisecond, time.Hour
	h.d.metrics = newAsyncMetrics(prometheus.NewRegistry())
	ctx := t.Context()
	if err := h.bucket.WriteAll(ctx, "in/mine.json", []byte(`{"x":3}`), nil); err != nil {
		t.Fatal(err)
	}
	root := strings.TrimPrefix(strings.SplitN(h.url, "?", 2)[0], "file://")
	ageOf := func(key string, d time.Duration) {
		t.Helper()
		old := time.Now().Add(-d)
		if err := os.Chtimes(filepath.Join(root, filepath.FromSlash(key)), old, old); err != nil {
			t.Fatal(err)
		}
	}
	// Orphans: one old, one recent; and an old payload a queued request
	// still names (its endpoint has no replica to run it).
	for _, k := range []string{"async/ep/input/gone.1234abcd", "async/ep/input/fresh.1234abcd", "async/gone-ep/input/x.1234abcd"} {
		if err := h.bucket.WriteAll(ctx, k, []byte(`{"x":0}`), nil); err != nil {
			t.Fatal(err)
		}
	}
	ageOf("async/ep/input/gone.1234abcd", 2*time.Hour)
	ageOf("async/gone-ep/input/x.1234abcd", 2*time.Hour)

	h.run(0)
	inline := h.submit(`{"x":1}`).InferenceID
	byRef := h.submit(``, HeaderInputLocation, "in/mine.json").InferenceID
	slow := h.submit(`{"x":-3}`).InferenceID // runs for 10 s
	ageOf(h.get(slow).Input, 2*time.Hour)    // old, but its request names it
	h.waitEnded([]string{inline, byRef})
	in, done := h.get(inline), h.get(byRef)
	waitUntil(t, "the ended requests to be swept", func() bool {
		_, e1 := h.st.GetAsync(ctx, "ep", inline)
		_, e2 := h.st.GetAsync(ctx, "ep", byRef)
		return errors.Is(e1, store.ErrNotFound) && errors.Is(e2, store.ErrNotFound)
	})
	exists := func(key string) bool {
		ok, err := h.bucket.Exists(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, k := range []string{in.Input, in.Output, done.Output} {
		if exists(k) {
			t.Fatalf("%s is still there after its request expired", k)
		}
	}
	if !exists("in/mine.json") {
		t.Fatal("the caller's input object was deleted")
	}
	if r := h.get(slow); r.State != asyncq.Running || !exists(r.Input) {
		t.Fatalf("the running request or its payload was swept: %+v", r)
	}
	if exists("async/ep/input/gone.1234abcd") || exists("async/gone-ep/input/x.1234abcd") {
		t.Fatal("an old orphaned payload was kept")
	}
	if !exists("async/ep/input/fresh.1234abcd") {
		t.Fatal("a recent payload with no request yet was deleted")
	}
	if e, o := testutil.ToFloat64(h.d.metrics.swept.WithLabelValues("expired_requests")),
		testutil.ToFloat64(h.d.metrics.swept.WithLabelValues("orphaned_payloads")); e != 2 || o != 2 {
		t.Fatalf("hpcml_async_swept_total: %v expired requests, %v orphaned payloads; want 2 and 2", e, o)
	}
}

// A result object a little older than its request by the store's clock
// (S3 keeps whole seconds) is still the request's own: after a kill it is
// not run again.
func TestAsyncReconcileToleratesCoarseClocks(t *testing.T) {
	rep := newDoubler(t)
	h := newAsyncHarness(t, endpoint.Async{}, rep.srv)
	id := h.submit(`{"x":51}`).InferenceID
	if _, err := h.st.LeaseAsync(t.Context(), "ep", "dead-server", 1, time.Now()); err != nil {
		t.Fatal(err)
	}
	r := h.get(id)
	if err := h.bucket.WriteAll(t.Context(), r.Output, []byte(`{"y":102}`), nil); err != nil {
		t.Fatal(err)
	}
	root := strings.TrimPrefix(strings.SplitN(h.url, "?", 2)[0], "file://")
	at := r.SubmittedAt.Truncate(time.Second).Add(-time.Second) // S3's second, and a second of skew
	if err := os.Chtimes(filepath.Join(root, filepath.FromSlash(r.Output)), at, at); err != nil {
		t.Fatal(err)
	}
	h.run(0)
	h.waitEnded([]string{id})
	if r := h.get(id); r.State != asyncq.Succeeded || rep.count(51) != 0 {
		t.Fatalf("request: %+v, the replica saw it %d times", r, rep.count(51))
	}
}

// Retention deletes only what the server placed by default: a result
// under an endpoint's own output path stays even when that path is
// under async/ENDPOINT/, and a caller's input stays.
func TestAsyncExpireDeletesOnlyDefaults(t *testing.T) {
	h := newAsyncHarness(t, endpoint.Async{}, nil)
	ctx := t.Context()
	r := &asyncq.Request{ID: "x", Endpoint: "ep", Input: "in/x.json", Output: "async/ep/results/x.out",
		Failure: "async/ep/failure/x.error.json"}
	for _, k := range []string{r.Input, r.Output, r.Failure} {
		if err := h.bucket.WriteAll(ctx, k, []byte("{}"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if !h.d.deleteObjects(ctx, r) {
		t.Fatal("deleteObjects failed")
	}
	for k, want := range map[string]bool{r.Input: true, r.Output: true, r.Failure: false} {
		if ok, _ := h.bucket.Exists(ctx, k); ok != want {
			t.Errorf("%s exists: %v, want %v", k, ok, want)
		}
	}
}
