package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeReplica is a real HTTP server on loopback that answers like a
// replica: it checks the replica token and echoes what it was asked.
type fakeReplica struct {
	srv   *httptest.Server
	name  string
	hits  atomic.Int64
	block chan struct{} // when set, requests wait for it to close
}

func newFakeReplica(t *testing.T, name string) *fakeReplica {
	f := &fakeReplica{name: name}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer replica-token" {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		f.hits.Add(1)
		if f.block != nil {
			<-f.block
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"replica": f.name, "path": r.URL.Path, "body": string(body),
			"query": r.URL.RawQuery})
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeReplica) replica(variant string, rev int64) *Replica {
	return &Replica{Addr: strings.TrimPrefix(f.srv.URL, "http://"), Variant: variant, Revision: rev}
}

func newTestGateway(t *testing.T) (*Gateway, *httptest.Server) {
	g := NewGateway(GatewayConfig{Authorized: func(tok string) bool { return tok == "server-token" }})
	mux := http.NewServeMux()
	mux.Handle("/endpoints/", g)
	front := httptest.NewServer(mux)
	t.Cleanup(func() { front.Close(); g.Close() })
	return g, front
}

type answer struct {
	status  int
	variant string
	body    map[string]string
}

func call(t *testing.T, front *httptest.Server, method, path, body string, hdr map[string]string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, front.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer server-token")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]string
	json.NewDecoder(resp.Body).Decode(&m)
	return answer{resp.StatusCode, resp.Header.Get(HeaderInvokedVariant), m}
}

func TestGatewayRoutes(t *testing.T) {
	g, front := newTestGateway(t)
	a, b := newFakeReplica(t, "a"), newFakeReplica(t, "b")
	g.SetRoute(&Route{Endpoint: "ep", Token: "replica-token", Variants: []RouteVariant{
		{Name: "one", Weight: 1, Fleets: []Fleet{{Model: "mlp", Percent: 100, Replicas: []*Replica{a.replica("one", 0)},
			Stats: g.Stats("ep", "one", 0)}}},
		{Name: "two", Weight: 3, Fleets: []Fleet{{Model: "cnn", Percent: 100, Replicas: []*Replica{b.replica("two", 0)},
			Stats: g.Stats("ep", "two", 0)}}},
	}})

	// OIP paths: the model name is the variant's model, the query stays.
	got := call(t, front, "POST", "/endpoints/ep/v2/models/ep/infer?x=1", `{"inputs":[]}`,
		map[string]string{HeaderTargetVariant: "two"})
	if got.status != 200 || got.body["path"] != "/v2/models/cnn/infer" || got.body["query"] != "x=1" ||
		got.body["body"] != `{"inputs":[]}` || got.variant != "two" {
		t.Fatalf("OIP infer: %+v", got)
	}
	if got := call(t, front, "POST", "/endpoints/ep/v2/models/whatever/infer", `{"inputs":[]}`, nil); got.status != http.StatusNotFound ||
		!strings.Contains(fmt.Sprint(got.body["error"]), `serves no model "whatever"`) {
		t.Fatalf("a model the endpoint does not serve: %+v", got)
	}
	got = call(t, front, "GET", "/endpoints/ep/v2/models/cnn", "", map[string]string{HeaderSageMakerTargetVariant: "one"})
	if got.status != 200 || got.body["path"] != "/v2/models/mlp" || got.body["replica"] != "a" {
		t.Fatalf("model metadata with the SageMaker header: %+v", got)
	}
	got = call(t, front, "POST", "/endpoints/ep/invocations", "1,2,3", map[string]string{HeaderTargetVariant: "one"})
	if got.status != 200 || got.body["path"] != "/invocations" || got.body["body"] != "1,2,3" {
		t.Fatalf("invocations: %+v", got)
	}

	// By weight: 1:3 over 400 requests (a loose bound: it is random).
	count := map[string]int{}
	for range 400 {
		count[call(t, front, "POST", "/endpoints/ep/invocations", "x", nil).variant]++
	}
	if count["one"] < 40 || count["one"] > 170 || count["one"]+count["two"] != 400 {
		t.Fatalf("split by weight 1:3: %v", count)
	}
	w := g.Stats("ep", "two", 0).Window(time.Now(), time.Minute, time.Time{})
	if w.Requests != count["two"]+1 || w.Errors != 0 || w.P50 <= 0 || w.P99 < w.P50 {
		t.Fatalf("stats of variant two: %+v (requests sent %d)", w, count["two"]+1)
	}

	// Errors name the problem.
	for _, c := range []struct {
		method, path string
		hdr          map[string]string
		status       int
		msg          string
	}{
		{"POST", "/endpoints/nope/invocations", nil, 404, `endpoint "nope" does not exist`},
		{"POST", "/endpoints/ep/invocations", map[string]string{HeaderTargetVariant: "three"}, 400, `no variant "three"`},
		{"GET", "/endpoints/ep/invocations", nil, 405, "POST"},
		{"GET", "/endpoints/ep/other", nil, 404, "no route"},
	} {
		got := call(t, front, c.method, c.path, "", c.hdr)
		if got.status != c.status || !strings.Contains(got.body["error"], c.msg) {
			t.Errorf("%s %s: %d %v, want %d with %q", c.method, c.path, got.status, got.body, c.status, c.msg)
		}
	}
	req, _ := http.NewRequest("POST", front.URL+"/endpoints/ep/invocations", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("wrong token: %v %v", resp, err)
	}
	big := strings.Repeat("x", DefaultMaxBody+1)
	if got := call(t, front, "POST", "/endpoints/ep/invocations", big, nil); got.status != 413 {
		t.Fatalf("oversized body: %+v", got)
	}
}

// A replica that refuses connections (its process died) costs no
// request: the gateway sends it to another replica.
func TestGatewayConnectionRefused(t *testing.T) {
	g, front := newTestGateway(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := ln.Addr().String()
	ln.Close()
	live := newFakeReplica(t, "live")
	dead := &Replica{Addr: deadAddr, Variant: "v"}
	g.SetRoute(&Route{Endpoint: "ep", Token: "replica-token", Variants: []RouteVariant{{Name: "v", Weight: 1,
		Fleets: []Fleet{{Percent: 100, Replicas: []*Replica{dead, live.replica("v", 0)}, Stats: g.Stats("ep", "v", 0)}}}}})
	for i := range 50 {
		if got := call(t, front, "POST", "/endpoints/ep/invocations", "x", nil); got.status != 200 {
			t.Fatalf("request %d: %+v", i, got)
		}
	}
	if dead.Outstanding() != 0 {
		t.Fatalf("dead replica holds %d requests", dead.Outstanding())
	}
	// Only dead replicas: 503, naming the variant.
	g.SetRoute(&Route{Endpoint: "ep", Token: "replica-token", Variants: []RouteVariant{{Name: "v", Weight: 1,
		Fleets: []Fleet{{Percent: 100, Replicas: []*Replica{dead}, Stats: g.Stats("ep", "v", 0)}}}}})
	if got := call(t, front, "POST", "/endpoints/ep/invocations", "x", nil); got.status != 503 || !strings.Contains(got.body["error"], `"v"`) {
		t.Fatalf("only a dead replica: %+v", got)
	}
}

// Least outstanding requests: while one replica holds a slow request,
// the next ones go to the other; a draining replica gets none, and its
// held request completes.
func TestGatewayLeastOutstandingAndDrain(t *testing.T) {
	g, front := newTestGateway(t)
	slow, fast := newFakeReplica(t, "slow"), newFakeReplica(t, "fast")
	slow.block = make(chan struct{})
	rs, rf := slow.replica("v", 0), fast.replica("v", 0)
	g.SetRoute(&Route{Endpoint: "ep", Token: "replica-token", Variants: []RouteVariant{{Name: "v", Weight: 1,
		Fleets: []Fleet{{Percent: 100, Replicas: []*Replica{rs}, Stats: g.Stats("ep", "v", 0)}}}}})
	var wg sync.WaitGroup
	var held answer
	wg.Add(1)
	go func() { defer wg.Done(); held = call(t, front, "POST", "/endpoints/ep/invocations", "held", nil) }()
	for rs.Outstanding() != 1 {
		time.Sleep(time.Millisecond)
	}
	g.SetRoute(&Route{Endpoint: "ep", Token: "replica-token", Variants: []RouteVariant{{Name: "v", Weight: 1,
		Fleets: []Fleet{{Percent: 100, Replicas: []*Replica{rs, rf}, Stats: g.Stats("ep", "v", 0)}}}}})
	for range 20 {
		if got := call(t, front, "POST", "/endpoints/ep/invocations", "x", nil); got.body["replica"] != "fast" {
			t.Fatalf("went to the busy replica: %+v", got)
		}
	}
	// Drain the slow one: flagged, so no new request reaches it even
	// from the old table; its held request still completes.
	rs.draining.Store(true)
	for range 10 {
		if got := call(t, front, "POST", "/endpoints/ep/invocations", "x", nil); got.body["replica"] != "fast" {
			t.Fatalf("went to the draining replica: %+v", got)
		}
	}
	close(slow.block)
	wg.Wait()
	if held.status != 200 || held.body["replica"] != "slow" || rs.Outstanding() != 0 {
		t.Fatalf("held request: %+v, outstanding %d", held, rs.Outstanding())
	}
}

// Blue/green inside a variant: the percentages split its traffic, a
// fleet without ready replicas passes its share on.
func TestGatewayFleets(t *testing.T) {
	g, front := newTestGateway(t)
	blue, green := newFakeReplica(t, "blue"), newFakeReplica(t, "green")
	set := func(greenPct int, greenReps []*Replica) {
		g.SetRoute(&Route{Endpoint: "ep", Token: "replica-token", Variants: []RouteVariant{{Name: "v", Weight: 1, Fleets: []Fleet{
			{Revision: 0, Model: "m1", Percent: 100 - greenPct, Replicas: []*Replica{blue.replica("v", 0)}, Stats: g.Stats("ep", "v", 0)},
			{Revision: 7, Model: "m2", Percent: greenPct, Replicas: greenReps, Stats: g.Stats("ep", "v", 7)},
		}}}})
	}
	set(0, []*Replica{green.replica("v", 7)})
	for range 20 {
		if got := call(t, front, "POST", "/endpoints/ep/v2/models/m2/infer", "x", nil); got.body["replica"] != "blue" || got.body["path"] != "/v2/models/m1/infer" {
			t.Fatalf("green at 0%%: %+v", got)
		}
	}
	set(100, nil)
	if got := call(t, front, "POST", "/endpoints/ep/invocations", "x", nil); got.body["replica"] != "blue" {
		t.Fatalf("green at 100%% with no ready replica: %+v", got)
	}
	set(50, []*Replica{green.replica("v", 7)})
	n := map[string]int{}
	for range 200 {
		n[call(t, front, "POST", "/endpoints/ep/invocations", "x", nil).body["replica"]]++
	}
	if n["green"] < 50 || n["blue"] < 50 {
		t.Fatalf("50/50: %v", n)
	}
	if w := g.Stats("ep", "v", 7).Window(time.Now(), time.Minute, time.Time{}); w.Requests != n["green"] {
		t.Fatalf("green stats %+v, sent %d", w, n["green"])
	}
}

func TestStatsWindow(t *testing.T) {
	var s Stats
	now := time.Unix(1_000_000, 0)
	for i := range 100 {
		s.Record(now.Add(-time.Duration(i%10)*time.Second), time.Duration(i+1)*time.Millisecond, i%20 == 0)
	}
	s.Record(now.Add(-100*time.Second), time.Hour, true) // outside a 60 s window
	w := s.Window(now, time.Minute, time.Time{})
	if w.Requests != 100 || w.Errors != 5 {
		t.Fatalf("window %+v", w)
	}
	// p50 ~ 50 ms, p99 ~ 99 ms, within the histogram's 12.5 %.
	if w.P50 < 44*time.Millisecond || w.P50 > 57*time.Millisecond || w.P99 < 87*time.Millisecond || w.P99 > 112*time.Millisecond {
		t.Fatalf("percentiles %v %v", w.P50, w.P99)
	}
	if w := s.Window(now, time.Minute, now.Add(-4*time.Second)); w.Requests != 50 {
		t.Fatalf("since 4 s ago: %+v", w)
	}
	for _, ns := range []int64{0, 1, 7, 8, 9, 15, 16, 1000, 123456789, 1 << 40} {
		b := bucketOf(ns)
		if mid := bucketMid(b); ns >= 8 && (float64(mid) < float64(ns)*0.87 || float64(mid) > float64(ns)*1.13) {
			t.Errorf("bucket of %d has middle %d", ns, mid)
		}
	}
}

// The gateway's own HTTP client: a pooled connection the replica closed
// while idle is replaced without failing the request; chunked answers
// and answers to HEAD pass through; the caller going away frees the
// replica.
func TestGatewayUpstream(t *testing.T) {
	g, front := newTestGateway(t)
	release := make(chan struct{})
	rep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/invocations":
			w.Write([]byte("part one, "))
			w.(http.Flusher).Flush() // chunked from here
			w.Write([]byte("part two"))
		case "/v2/slow":
			<-release
		default:
			w.Header().Set("X-Seen", r.Method)
		}
	}))
	t.Cleanup(rep.Close)
	r := &Replica{Addr: strings.TrimPrefix(rep.URL, "http://")}
	g.SetRoute(&Route{Endpoint: "ep", Variants: []RouteVariant{{Name: "v", Weight: 1,
		Fleets: []Fleet{{Percent: 100, Replicas: []*Replica{r}, Stats: g.Stats("ep", "v", 0)}}}}})
	do := func(method, path string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, front.URL+path, strings.NewReader("x"))
		req.Header.Set("Authorization", "Bearer server-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	for i := range 3 {
		if code, body, _ := do("POST", "/endpoints/ep/invocations"); code != 200 || body != "part one, part two" {
			t.Fatalf("chunked answer %d: %d %q", i, code, body)
		}
		rep.CloseClientConnections() // the pooled connection dies while idle
	}
	if code, _, h := do("HEAD", "/endpoints/ep/v2/health/ready"); code != 200 || h.Get("X-Seen") != "HEAD" {
		t.Fatalf("HEAD: %d %v", code, h)
	}
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "POST", front.URL+"/endpoints/ep/v2/slow", strings.NewReader("x"))
	req.Header.Set("Authorization", "Bearer server-token")
	go func() {
		for r.Outstanding() == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("a cancelled request succeeded")
	}
	waitUntil := time.Now().Add(5 * time.Second)
	for r.Outstanding() != 0 && time.Now().Before(waitUntil) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	if r.Outstanding() != 0 {
		t.Fatalf("the replica still holds %d requests after the caller left", r.Outstanding())
	}
}

// A replica that closes every idle connection the gateway keeps to it
// (it drained, or exited and came back) fails none of the requests that
// follow: each dead pooled connection is noticed before a request is
// written to it, however many there are.
func TestGatewayDeadPooledConnections(t *testing.T) {
	g, front := newTestGateway(t)
	const conns = 8
	var arrived sync.WaitGroup
	arrived.Add(conns)
	gather := make(chan struct{})
	go func() { arrived.Wait(); close(gather) }()
	rep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/gather" {
			arrived.Done()
			<-gather // all in flight at once: one pooled connection each
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(rep.Close)
	r := &Replica{Addr: strings.TrimPrefix(rep.URL, "http://")}
	g.SetRoute(&Route{Endpoint: "ep", Variants: []RouteVariant{{Name: "v", Weight: 1,
		Fleets: []Fleet{{Percent: 100, Replicas: []*Replica{r}, Stats: g.Stats("ep", "v", 0)}}}}})
	call := func(path string) int {
		req, _ := http.NewRequest("POST", front.URL+"/endpoints/ep"+path, strings.NewReader("x"))
		req.Header.Set("Authorization", "Bearer server-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			if code := call("/v2/gather"); code != 200 {
				t.Errorf("filling the pool: %d", code)
			}
		})
	}
	wg.Wait()
	g.up.mu.Lock()
	pooled := len(g.up.idle[r.Addr])
	g.up.mu.Unlock()
	if pooled != conns {
		t.Fatalf("%d pooled connections, want %d", pooled, conns)
	}
	rep.CloseClientConnections()
	time.Sleep(50 * time.Millisecond) // the closes reach the gateway's sockets
	for i := range 2 * conns {
		if code := call("/invocations"); code != 200 {
			t.Fatalf("request %d after the replica closed its connections: %d", i, code)
		}
	}
}

// The gateway's Prometheus series count answers by status class and
// time them, per endpoint and variant; deleting the endpoint drops them.
func TestGatewayMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := NewGateway(GatewayConfig{Authorized: func(tok string) bool { return tok == "server-token" }, Registry: reg})
	mux := http.NewServeMux()
	mux.Handle("/endpoints/", g)
	front := httptest.NewServer(mux)
	t.Cleanup(func() { front.Close(); g.Close() })
	rep := newFakeReplica(t, "a")
	g.SetRoute(&Route{Endpoint: "ep", Token: "replica-token", Variants: []RouteVariant{{Name: "v", Weight: 1,
		Fleets: []Fleet{{Percent: 100, Replicas: []*Replica{rep.replica("v", 0)}, Stats: g.Stats("ep", "v", 0),
			metrics: g.variantMetrics("ep", "v")}}}}})
	for range 3 {
		call(t, front, "POST", "/endpoints/ep/invocations", "x", nil)
	}
	wrong := &Route{Endpoint: "ep", Token: "wrong", Variants: []RouteVariant{{Name: "v", Weight: 1,
		Fleets: []Fleet{{Percent: 100, Replicas: []*Replica{rep.replica("v", 0)}, Stats: g.Stats("ep", "v", 0),
			metrics: g.variantMetrics("ep", "v")}}}}}
	g.SetRoute(wrong)
	call(t, front, "POST", "/endpoints/ep/invocations", "x", nil) // the replica answers 401
	if n := series(t, reg, "hpcml_gateway_requests_total", "2xx"); n != 3 {
		t.Fatalf("2xx: %v", n)
	}
	if n := series(t, reg, "hpcml_gateway_requests_total", "4xx"); n != 1 {
		t.Fatalf("4xx: %v", n)
	}
	if n := series(t, reg, "hpcml_gateway_request_duration_seconds", ""); n != 4 {
		t.Fatalf("durations observed: %v", n)
	}
	g.RemoveRoute("ep")
	if n := series(t, reg, "hpcml_gateway_requests_total", "2xx"); n != -1 {
		t.Fatalf("series after the endpoint went: %v", n)
	}
}

// series reads a counter's value (code label given) or a histogram's
// count from reg; -1 if there is no such series.
func series(t *testing.T, reg *prometheus.Registry, name, code string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["endpoint"] != "ep" || labels["variant"] != "v" {
				t.Fatalf("labels %v", labels)
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			if labels["code"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

// TestGatewayNoSmuggling: a path whose escapes decode to CR LF and spaces
// reaches the replica as one request with that path (escaped again on
// the way), not as a second request on the connection; dot segments are
// refused before anything is sent.
func TestGatewayNoSmuggling(t *testing.T) {
	g, front := newTestGateway(t)
	a := newFakeReplica(t, "a")
	g.SetRoute(&Route{Endpoint: "ep", Token: "replica-token", Variants: []RouteVariant{
		{Name: "one", Weight: 1, Fleets: []Fleet{{Percent: 100, Replicas: []*Replica{a.replica("one", 0)},
			Stats: g.Stats("ep", "one", 0)}}},
	}})
	// Control characters in a path are refused outright.
	evil := "/endpoints/ep/v2/models/m/infer%20HTTP/1.1%0d%0aHost:%20x%0d%0aContent-Length:%200%0d%0a%0d%0aGET%20/smuggled"
	if got := call(t, front, "POST", evil, "{}", nil); got.status != http.StatusBadRequest {
		t.Fatalf("a path with CR LF: %+v, want 400", got)
	}
	// A space is legal in a path: it must reach the replica escaped, as
	// part of one request line.
	got := call(t, front, "POST", "/endpoints/ep/v2/models/m%20HTTP%2F1.1/infer", "x", nil)
	if got.status != 200 || got.body["path"] != "/v2/models/m HTTP/1.1/infer" || got.body["body"] != "x" {
		t.Fatalf("a path with a space: %+v", got)
	}
	// The pooled connection still answers the next caller with its own answer.
	got = call(t, front, "POST", "/endpoints/ep/invocations", "after", nil)
	if got.status != 200 || got.body["path"] != "/invocations" || got.body["body"] != "after" {
		t.Fatalf("the request after the crafted ones got %+v", got)
	}
	for _, p := range []string{"/endpoints/ep/v2/models/m/..%2F..%2Fmetrics", "/endpoints/ep/v2/models/%2E%2E/x"} {
		req, _ := http.NewRequest("GET", front.URL+p, nil)
		req.Header.Set("Authorization", "Bearer server-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusMovedPermanently {
			t.Errorf("%s: status %d, want 400 (or the mux's redirect)", p, resp.StatusCode)
		}
	}
	if n := a.hits.Load(); n != 2 {
		t.Fatalf("the replica saw %d requests, want the 2 legal ones", n)
	}
}

// TestGatewayDropsConnectionNamedHeaders: headers a request's Connection
// header names are that hop's and do not reach the replica; others do.
func TestGatewayDropsConnectionNamedHeaders(t *testing.T) {
	g, front := newTestGateway(t)
	rep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Got-Private", r.Header.Get("X-Private"))
		w.Header().Set("X-Got-Public", r.Header.Get("X-Public"))
	}))
	t.Cleanup(rep.Close)
	g.SetRoute(&Route{Endpoint: "ep", Variants: []RouteVariant{{Name: "v", Weight: 1,
		Fleets: []Fleet{{Percent: 100, Replicas: []*Replica{{Addr: strings.TrimPrefix(rep.URL, "http://")}}, Stats: g.Stats("ep", "v", 0)}}}}})
	req, _ := http.NewRequest("POST", front.URL+"/endpoints/ep/invocations", strings.NewReader("x"))
	req.Header.Set("Authorization", "Bearer server-token")
	req.Header.Set("Connection", "X-Private")
	req.Header.Set("X-Private", "hop only")
	req.Header.Set("X-Public", "end to end")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Got-Private") != "" || resp.Header.Get("X-Got-Public") != "end to end" {
		t.Fatalf("status %d, replica saw X-Private %q and X-Public %q", resp.StatusCode, resp.Header.Get("X-Got-Private"), resp.Header.Get("X-Got-Public"))
	}
}
