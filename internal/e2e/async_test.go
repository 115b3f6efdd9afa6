package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/deploy"
	"github.com/hpcml/hpcml/internal/deploy/asyncq"
)

// asyncBody is request i's payload: one of ten distinct rows, so that an
// answer given to the wrong request shows.
func asyncBody(i int) []byte {
	return fmt.Appendf(nil, `{"instances": [[%.1f, 0.5]]}`, 0.1*float64(i%10))
}

// hookRecorder is a webhook receiver: the notices it got, by id.
type hookRecorder struct {
	mu      sync.Mutex
	notices map[string][]deploy.Notice
	srv     *httptest.Server
}

func newHookRecorder(t *testing.T, status int) *hookRecorder {
	h := &hookRecorder{notices: map[string][]deploy.Notice{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n deploy.Notice
		if err := json.NewDecoder(r.Body).Decode(&n); err == nil {
			h.mu.Lock()
			h.notices[n.InferenceID] = append(h.notices[n.InferenceID], n)
			h.mu.Unlock()
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookRecorder) get(id string) []deploy.Notice {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]deploy.Notice(nil), h.notices[id]...)
}

// submitAsync posts body to the endpoint's async route; ok is false when
// the server did not accept it (it is down), else the 202's answer.
func submitAsync(hc *http.Client, s *server, ep string, body []byte, hdr ...string) (deploy.AsyncAccepted, int, string) {
	req, _ := http.NewRequest("POST", s.URL+"/endpoints/"+ep+"/async-invocations", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	var acc deploy.AsyncAccepted
	resp, err := hc.Do(req)
	if err != nil {
		return acc, 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusAccepted {
		json.Unmarshal(b, &acc)
	}
	return acc, resp.StatusCode, string(b)
}

// TestAsyncInferenceSurvivesKill: 1,000 asynchronous requests, with a
// kill -9 of the server while requests are queued and running and a
// restart; every accepted request succeeds exactly once (one "ended"
// record in the server's log across both lives), its result object holds
// the answer to its own payload (the synchronous answer for the same
// row), and its webhook was called.
func TestAsyncInferenceSurvivesKill(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "2")
	trainModel(t, s, "moons")
	hook := newHookRecorder(t, http.StatusOK)
	s.cli("endpoint", "create", "ep", "--model", "moons:1", "--cpus", "0.5", "--async", "--webhook", hook.srv.URL+"/done",
		"--async-concurrency", "8", "--wait")
	// What each distinct payload's answer is: the synchronous route of
	// the same replica.
	want := map[int]string{}
	for k := range 10 {
		inv, err := s.Client.InvokeEndpoint(t.Context(), "ep", "invocations", "application/json", asyncBody(k), "")
		if err != nil || inv.Status != 200 {
			t.Fatalf("synchronous answer %d: %v %+v", k, err, inv)
		}
		want[k] = strings.TrimSpace(string(inv.Body))
	}

	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	var mu sync.Mutex
	payload := map[string]int{} // accepted id → request index
	submit := func(from, to int) {
		var wg sync.WaitGroup
		next := from
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					mu.Lock()
					i := next
					next++
					mu.Unlock()
					if i >= to {
						return
					}
					acc, code, msg := submitAsync(hc, s, "ep", asyncBody(i))
					if code != http.StatusAccepted {
						t.Errorf("request %d: %d %s", i, code, msg)
						return
					}
					mu.Lock()
					payload[acc.InferenceID] = i
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	submit(0, 600)
	if t.Failed() {
		t.FailNow()
	}
	waitFor(t, 120*time.Second, "some requests to succeed", func() bool {
		l, err := s.Client.ListAsync(t.Context(), "ep", string(asyncq.Succeeded), 100)
		return err == nil && len(l) >= 100
	})
	before, _ := s.Client.ListAsync(t.Context(), "ep", "", 1000)
	counts := map[asyncq.State]int{}
	firstLife := map[string]bool{}
	for _, r := range before {
		counts[r.State]++
		firstLife[r.ID] = true
	}
	s.Kill9()
	t.Logf("killed the server with %v", counts)
	if counts[asyncq.Queued] == 0 {
		t.Fatalf("the kill came after the queue drained (%v): it proves nothing", counts)
	}
	s.Restart()
	submit(600, 1000)
	if t.Failed() {
		t.FailNow()
	}
	if len(payload) != 1000 {
		t.Fatalf("%d requests accepted, want 1000", len(payload))
	}
	waitFor(t, 300*time.Second, "every request to end", func() bool {
		l, err := s.Client.ListAsync(t.Context(), "ep", "", 1000)
		if err != nil || len(l) != 1000 {
			return false
		}
		for _, r := range l {
			if !r.State.Terminal() {
				return false
			}
		}
		return true
	})
	all, err := s.Client.ListAsync(t.Context(), "ep", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	attempts := 0
	for _, r := range all {
		i, ok := payload[r.ID]
		if !ok {
			t.Fatalf("a request nobody submitted: %+v", r)
		}
		if r.State != asyncq.Succeeded {
			t.Fatalf("request %d (%s): %s after %d attempts: %s", i, r.ID, r.State, r.Attempts, r.Error)
		}
		got, err := os.ReadFile(filepath.Join(s.DataDir, "objects", r.Output))
		if err != nil {
			t.Fatalf("request %d: result object: %v", i, err)
		}
		if strings.TrimSpace(string(got)) != want[i%10] {
			t.Fatalf("request %d: result %s, want %s", i, got, want[i%10])
		}
		attempts += r.Attempts
	}
	t.Logf("1000 requests, %d attempts", attempts)
	// Exactly once: one "ended" record per request in the log of both
	// server lives (the conditional update logs only when it applies).
	logb, _ := os.ReadFile(filepath.Join(s.DataDir, "server.log"))
	ended := map[string]int{}
	re := regexp.MustCompile(`msg="async request ended".* id=([0-9a-f-]+)`)
	for _, m := range re.FindAllStringSubmatch(string(logb), -1) {
		ended[m[1]]++
	}
	for id, i := range payload {
		if !firstLife[id] && ended[id] != 1 {
			t.Fatalf("request %d (%s), submitted after the restart, ended %d times", i, id, ended[id])
		}
		// One of the first life may have committed its end and been
		// killed before logging it (its record says it succeeded once,
		// checked above); twice is never right.
		if n := ended[id]; n > 1 {
			t.Fatalf("request %d (%s) ended %d times", i, id, n)
		}
	}
	waitFor(t, 60*time.Second, "every webhook", func() bool {
		for id := range payload {
			if len(hook.get(id)) == 0 {
				return false
			}
		}
		return true
	})
	for id := range payload {
		for _, n := range hook.get(id) {
			if n.Status != asyncq.Succeeded || n.OutputLocation == "" {
				t.Fatalf("notice of %s: %+v", id, n)
			}
		}
	}
}

// TestAsyncInferenceEdges: a failing webhook is retried and recorded
// while the queue goes on; a payload over the inline limit, a missing
// input location and a real-time endpoint are refused and queue nothing;
// an input by reference works; an endpoint with min=0 scales to zero
// and back when work arrives; the CLI's -o json and --wait.
func TestAsyncInferenceEdges(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "2")
	trainModel(t, s, "moons")
	failing := newHookRecorder(t, http.StatusInternalServerError)
	s.cli("endpoint", "create", "ep", "--model", "moons:1", "--cpus", "0.5", "--async", "--max-inline-bytes", "1K",
		"--webhook", failing.srv.URL+"/hook",
		"--autoscale", "min=0,max=1,target=1,window=1s,scale-in-window=2s,scale-in-cooldown=1s", "--wait")

	// A failing webhook: retried, recorded, and the requests behind it
	// are served all the same.
	var ids []string
	for i := range 5 {
		out := s.cli("endpoint", "invoke", "ep", "--async", "--data", string(asyncBody(i)), "-o", "json")
		var acc deploy.AsyncAccepted
		if err := json.Unmarshal([]byte(out), &acc); err != nil || acc.InferenceID == "" {
			t.Fatalf("invoke --async -o json: %v\n%s", err, out)
		}
		ids = append(ids, acc.InferenceID)
	}
	waitFor(t, 60*time.Second, "the requests to succeed with their webhook retried", func() bool {
		for _, id := range ids {
			st, err := s.Client.GetAsync(t.Context(), "ep", id)
			if err != nil || st.State != asyncq.Succeeded || st.WebhookAttempts < 2 || !strings.Contains(st.WebhookError, "500") {
				return false
			}
		}
		return true
	})
	if len(failing.get(ids[0])) < 2 {
		t.Fatalf("the failing webhook was called %d times", len(failing.get(ids[0])))
	}
	if out := s.cli("endpoint", "async", "get", "ep", ids[0]); !strings.Contains(out, "Webhook:") || !strings.Contains(out, "pending") {
		t.Fatalf("async get:\n%s", out)
	}
	var listed []deploy.AsyncStatus
	if out := s.cli("endpoint", "async", "list", "ep", "--status", "succeeded", "-o", "json"); json.Unmarshal([]byte(out), &listed) != nil ||
		len(listed) != len(ids) || listed[0].ID != ids[len(ids)-1] {
		t.Fatalf("async list -o json (newest first):\n%s", out)
	}
	if out := s.cli("endpoint", "async", "list", "ep"); !strings.Contains(out, "INFERENCE ID") || !strings.Contains(out, ids[2]) {
		t.Fatalf("async list:\n%s", out)
	}
	// The result command prints the result object (the replica may be
	// gone by now: the endpoint scales to zero when idle).
	st3, err := s.Client.GetAsync(t.Context(), "ep", ids[3])
	if err != nil {
		t.Fatal(err)
	}
	obj, err := os.ReadFile(filepath.Join(s.DataDir, "objects", st3.Output))
	if err != nil || !strings.Contains(string(obj), "predictions") {
		t.Fatalf("result object %s: %v %s", st3.Output, err, obj)
	}
	if out := s.cli("endpoint", "async", "result", "ep", ids[3]); out != string(obj) {
		t.Fatalf("async result %q, want %q", out, obj)
	}
	if _, stderr, err := hpcml(s, "endpoint", "async", "result", "ep", "no-such-id"); err == nil || !strings.Contains(stderr, "no asynchronous request") {
		t.Fatalf("result of an unknown id: %v %s", err, stderr)
	}
	_, _, metrics := s.raw("GET", "/metrics", s.Token, nil)
	if !strings.Contains(string(metrics), `hpcml_async_requests_total{outcome="succeeded"}`) ||
		!strings.Contains(string(metrics), "hpcml_async_request_seconds_count") {
		t.Fatal("/metrics lacks the async series")
	}

	// Refused: nothing queued, a clear message, a non-zero exit.
	big := `{"instances": [` + strings.Repeat("[0.1, 0.5],", 200) + `[0.1, 0.5]]}`
	if _, stderr, err := hpcml(s, "endpoint", "invoke", "ep", "--async", "--data", big); err == nil || !strings.Contains(stderr, "over the limit of 1024") {
		t.Fatalf("over the inline limit: %v %s", err, stderr)
	}
	if _, stderr, err := hpcml(s, "endpoint", "invoke", "ep", "--async", "--input-location", "in/none.json"); err == nil ||
		!strings.Contains(stderr, "input location in/none.json does not exist") {
		t.Fatalf("missing input: %v %s", err, stderr)
	}
	if list, _ := s.Client.ListAsync(t.Context(), "ep", "", 100); len(list) != len(ids) {
		t.Fatalf("%d requests queued, want %d", len(list), len(ids))
	}

	// Scale to zero once the queue has been empty, and back when work
	// arrives; the input goes by reference.
	waitFor(t, 60*time.Second, "scale to zero", func() bool {
		st := getEndpoint(t, s, "ep")
		return st.Spec.Variants[0].Replicas == 0 && len(st.Replicas) == 0
	})
	if st := getEndpoint(t, s, "ep"); st.State != "in-service" {
		t.Fatalf("an endpoint at zero is %s (%s)", st.State, st.Reason)
	}
	in := filepath.Join(s.DataDir, "objects", "in", "big.json")
	os.MkdirAll(filepath.Dir(in), 0o755)
	var rows strings.Builder
	rows.WriteString(`{"instances": [`)
	for i := range 2000 {
		if i > 0 {
			rows.WriteString(",")
		}
		fmt.Fprintf(&rows, "[%.3f, 0.5]", float64(i)/2000)
	}
	rows.WriteString("]}")
	if err := os.WriteFile(in, []byte(rows.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := hpcml(s, "endpoint", "invoke", "ep", "--async", "--input-location", "in/big.json", "--wait", "--wait-timeout", "2m")
	if err != nil {
		t.Fatalf("invoke --async --wait from zero: %v\n%s", err, stderr)
	}
	var ans struct {
		Predictions [][]float64 `json:"predictions"`
	}
	if err := json.Unmarshal([]byte(out), &ans); err != nil || len(ans.Predictions) != 2000 {
		t.Fatalf("result of 2000 rows: %v %.200s", err, out)
	}
	// CSV in, CSV out: the content type and Accept go to the replica.
	csvOut, csvErr, err := hpcml(s, "endpoint", "invoke", "ep", "--async", "--content-type", "text/csv", "--accept", "text/csv",
		"--data", "0.1,0.5\n0.9,0.5", "--wait")
	lines := strings.Split(strings.TrimSpace(csvOut), "\n")
	if err != nil || len(lines) != 2 || strings.Contains(csvOut, "{") {
		t.Fatalf("CSV answer: %v\n%s\n%s", err, csvOut, csvErr)
	}
	for _, l := range lines {
		if _, err := strconv.ParseFloat(strings.Split(l, ",")[0], 64); err != nil {
			t.Fatalf("CSV answer line %q: %v", l, err)
		}
	}
	st := getEndpoint(t, s, "ep")
	fromZero := false
	for _, ev := range st.ScaleEvents {
		fromZero = fromZero || ev.From == 0 && ev.To == 1 && strings.Contains(ev.Reason, "scale from zero")
	}
	if !fromZero {
		t.Fatalf("no scale-from-zero event: %+v", st.ScaleEvents)
	}
	if st.AsyncQueue == nil || st.AsyncQueue.Backlog() != 0 {
		t.Fatalf("queue of an idle async endpoint: %+v", st.AsyncQueue)
	}
	if out := s.cli("endpoint", "get", "ep"); !strings.Contains(out, "/endpoints/ep/async-invocations; 0 queued, 0 running") {
		t.Fatalf("endpoint get of an async endpoint:\n%s", out)
	}
	// A real-time endpoint has no async route.
	s.cli("endpoint", "create", "rt", "--model", "moons:1", "--cpus", "0.25")
	if _, code, msg := submitAsync(http.DefaultClient, s, "rt", asyncBody(0)); code != 400 || !strings.Contains(msg, "not asynchronous") {
		t.Fatalf("async on a real-time endpoint: %d %s", code, msg)
	}
	if _, stderr, err := hpcml(s, "endpoint", "update", "rt", "--webhook", "http://127.0.0.1:1/x"); err == nil || !strings.Contains(stderr, "real-time") {
		t.Fatalf("async settings on a real-time endpoint: %v %s", err, stderr)
	}

	// Settings change in place: the new webhook gets the next request's
	// notice; the other settings stay.
	good := newHookRecorder(t, http.StatusOK)
	s.cli("endpoint", "update", "ep", "--webhook", good.srv.URL+"/new", "--max-attempts", "5")
	st = getEndpoint(t, s, "ep")
	if a := st.Spec.Async; a.Webhook != good.srv.URL+"/new" || a.MaxAttempts != 5 || a.MaxInlineBytes != 1024 {
		t.Fatalf("async settings after update: %+v", a)
	}
	if _, stderr, err := hpcml(s, "endpoint", "update", "ep", "--max-attempts", "99"); err == nil || !strings.Contains(stderr, "async.max_attempts") {
		t.Fatalf("a bad setting: %v %s", err, stderr)
	}
	out = s.cli("endpoint", "invoke", "ep", "--async", "--data", string(asyncBody(1)), "-o", "json")
	var acc deploy.AsyncAccepted
	if err := json.Unmarshal([]byte(out), &acc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the new webhook's notice", func() bool { return len(good.get(acc.InferenceID)) == 1 })
}
