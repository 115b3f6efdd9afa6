package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
	"gopkg.in/yaml.v3"
)

type errorDoc struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field"`
	} `json:"error"`
}

// TestBadInput sends what a careless or hostile caller would, over raw
// HTTP: each gets a 4xx with the documented JSON error, and no job is
// stored by any of them.
func TestBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	done := s.wait(s.submit(job.Spec{Command: []string{"true"}}), 10*time.Second)
	before := s.jobCount()

	big := append([]byte(`{"command":["echo"],"name":"`), bytes.Repeat([]byte("a"), 2<<20)...)
	big = append(big, `"}`...)
	wrongToken := s.Token[:len(s.Token)-1] + "x"
	tests := []struct {
		name, method, path, token string
		body                      []byte
		status                    int
		code, field, message      string
	}{
		{name: "no token", method: "GET", path: "/api/v1/jobs", status: 401, code: "unauthorized"},
		{name: "wrong token", method: "GET", path: "/api/v1/jobs", token: wrongToken, status: 401, code: "unauthorized"},
		{name: "token prefix", method: "GET", path: "/api/v1/jobs", token: s.Token[:8], status: 401, code: "unauthorized"},
		{name: "submit without token", method: "POST", path: "/api/v1/jobs", body: []byte(`{"command":["true"]}`), status: 401, code: "unauthorized"},
		{name: "metrics without token", method: "GET", path: "/metrics", status: 401, code: "unauthorized"},
		{name: "spec without token", method: "GET", path: "/api/v1/openapi.yaml", status: 401, code: "unauthorized"},
		{name: "unknown field", method: "POST", path: "/api/v1/jobs", token: s.Token,
			body: []byte(`{"command":["true"],"cpu":2}`), status: 400, message: `unknown field "cpu"`},
		{name: "unknown nested field", method: "POST", path: "/api/v1/jobs", token: s.Token,
			body: []byte(`{"command":["true"],"retry":{"attempt":2}}`), status: 400, message: `unknown field "attempt"`},
		{name: "malformed JSON", method: "POST", path: "/api/v1/jobs", token: s.Token,
			body: []byte(`{"command":["true"]`), status: 400, code: "invalid", message: "malformed"},
		{name: "two JSON documents", method: "POST", path: "/api/v1/jobs", token: s.Token,
			body: []byte(`{"command":["true"]}}`), status: 400, message: "trailing data"},
		{name: "empty body", method: "POST", path: "/api/v1/jobs", token: s.Token, body: []byte{}, status: 400},
		{name: "no command", method: "POST", path: "/api/v1/jobs", token: s.Token, body: []byte(`{"name":"x"}`), status: 400, field: "command"},
		{name: "oversized body", method: "POST", path: "/api/v1/jobs", token: s.Token, body: big, status: 413, code: "too_large"},
		{name: "oversized queue", method: "POST", path: "/api/v1/queues", token: s.Token, body: big, status: 413, code: "too_large"},
		{name: "oversized body that is not JSON", method: "POST", path: "/api/v1/queues", token: s.Token, body: bytes.Repeat([]byte("x"), 2<<20), status: 413, code: "too_large"},
		{name: "unknown queue", method: "POST", path: "/api/v1/jobs", token: s.Token,
			body: []byte(`{"command":["true"],"queue":"nope"}`), status: 400, field: "queue", message: "nope"},
		{name: "unknown dependency", method: "POST", path: "/api/v1/jobs", token: s.Token,
			body: []byte(`{"command":["true"],"depends_on":[{"type":"afterok","job_id":999999}]}`), status: 400,
			field: "depends_on[0].job_id", message: "999999"},
		{name: "bad dependency type", method: "POST", path: "/api/v1/jobs", token: s.Token,
			body: []byte(`{"command":["true"],"depends_on":[{"type":"before","job_id":1}]}`), status: 400, field: "depends_on[0].type"},
		{name: "negative cpus", method: "POST", path: "/api/v1/jobs", token: s.Token,
			body: []byte(`{"command":["true"],"resources":{"cpus":-2}}`), status: 400, field: "resources.cpus"},
		{name: "output escaping", method: "POST", path: "/api/v1/jobs", token: s.Token,
			body: []byte(`{"command":["true"],"outputs":[{"path":"../escape","url":"x"}]}`), status: 400, field: "outputs[0].path"},
		{name: "HPCML_ env", method: "POST", path: "/api/v1/jobs", token: s.Token,
			body: []byte(`{"command":["true"],"env":{"HPCML_JOB_ID":"1"}}`), status: 400, field: "env"},
		{name: "bad array", method: "POST", path: "/api/v1/jobs", token: s.Token,
			body: []byte(`{"command":["true"],"array":"0-99999"}`), status: 400, field: "array"},
		{name: "YAML with unknown field", method: "POST", path: "/api/v1/jobs", token: s.Token,
			body: []byte("command: [true]\ncpus: 2\n"), status: 400, message: "cpus"},
		{name: "missing job", method: "GET", path: "/api/v1/jobs/999999", token: s.Token, status: 404, code: "not_found"},
		{name: "missing task", method: "GET", path: fmt.Sprintf("/api/v1/jobs/%d_5", done.ID), token: s.Token, status: 404, code: "not_found"},
		{name: "not a job id", method: "GET", path: "/api/v1/jobs/abc", token: s.Token, status: 400, code: "invalid", message: "abc"},
		{name: "traversal in id", method: "GET", path: "/api/v1/jobs/..%2F..%2Ftoken", token: s.Token, status: 400, code: "invalid"},
		{name: "unknown route", method: "GET", path: "/api/v1/nothing", token: s.Token, status: 404, code: "not_found"},
		{name: "unknown route without token", method: "GET", path: "/api/v1/nothing", status: 401, code: "unauthorized"},
		{name: "cancel missing job", method: "POST", path: "/api/v1/jobs/999999/cancel", token: s.Token, status: 404, code: "not_found"},
		{name: "bad state filter", method: "GET", path: "/api/v1/jobs?state=DONE", token: s.Token, status: 400, code: "invalid"},
		{name: "bad limit", method: "GET", path: "/api/v1/jobs?limit=100000", token: s.Token, status: 400, code: "invalid"},
		{name: "bad wait", method: "GET", path: fmt.Sprintf("/api/v1/jobs/%d?wait=forever", done.ID), token: s.Token, status: 400},
		{name: "ids with a missing job", method: "GET", path: fmt.Sprintf("/api/v1/jobs?ids=%d,999999&wait=1s", done.ID), token: s.Token,
			status: 404, code: "not_found", message: "999999"},
		{name: "ids not job ids", method: "GET", path: fmt.Sprintf("/api/v1/jobs?ids=%d,abc", done.ID), token: s.Token, status: 400, code: "invalid", message: "abc"},
		{name: "empty ids", method: "GET", path: "/api/v1/jobs?ids=", token: s.Token, status: 400, code: "invalid"},
		{name: "too many ids", method: "GET", path: "/api/v1/jobs?ids=1" + strings.Repeat(",1", 1000), token: s.Token, status: 400, code: "invalid", message: "at most 1000"},
		{name: "ids with a filter", method: "GET", path: "/api/v1/jobs?ids=1&state=RUNNING", token: s.Token, status: 400, message: "state"},
		{name: "wait without ids", method: "GET", path: "/api/v1/jobs?wait=5s", token: s.Token, status: 400, message: "ids"},
		{name: "ids with a bad wait", method: "GET", path: fmt.Sprintf("/api/v1/jobs?ids=%d&wait=soon", done.ID), token: s.Token, status: 400, message: "soon"},
		{name: "missing queue", method: "GET", path: "/api/v1/queues/nope", token: s.Token, status: 404, code: "not_found"},
		{name: "malformed queue", method: "POST", path: "/api/v1/queues", token: s.Token, body: []byte(`{"name":`), status: 400},
		{name: "queue unknown field", method: "POST", path: "/api/v1/queues", token: s.Token,
			body: []byte(`{"name":"q","priorty":3}`), status: 400, message: "priorty"},
		{name: "queue with trailing data", method: "POST", path: "/api/v1/queues", token: s.Token,
			body: []byte(`{"name":"q2"}{"name":"q3"}`), status: 400, message: "trailing data"},
		{name: "wrong method on a known path", method: "PUT", path: "/api/v1/jobs", token: s.Token,
			body: []byte(`{}`), status: 405, code: "method_not_allowed", message: "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := s.with(t)
			status, hdr, body := s.raw(tt.method, tt.path, tt.token, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %.300s", status, tt.status, body)
			}
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("Content-Type %q: %.300s", ct, body)
			}
			var doc errorDoc
			if err := json.Unmarshal(body, &doc); err != nil || doc.Error.Message == "" {
				t.Fatalf("error body %q is not the documented JSON error (%v)", body, err)
			}
			if tt.code != "" && doc.Error.Code != tt.code {
				t.Errorf("code %q, want %q", doc.Error.Code, tt.code)
			}
			if doc.Error.Field != tt.field {
				t.Errorf("field %q, want %q (%s)", doc.Error.Field, tt.field, doc.Error.Message)
			}
			if !strings.Contains(doc.Error.Message, tt.message) {
				t.Errorf("message %q does not contain %q", doc.Error.Message, tt.message)
			}
			if status == 401 && hdr.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if status == 405 && !strings.Contains(hdr.Get("Allow"), "POST") {
				t.Errorf("405 with Allow %q, want the path's methods", hdr.Get("Allow"))
			}
		})
	}
	if after := s.jobCount(); after != before {
		t.Fatalf("bad requests changed the jobs: %d -> %d", before, after)
	}

	// Health needs no token; nothing else answers without one.
	status, _, body := s.raw("GET", "/healthz", "", nil)
	if status != 200 || !strings.Contains(string(body), "ok") {
		t.Fatalf("/healthz: %d %s", status, body)
	}
	// The token is accepted only as a bearer token.
	req, _ := http.NewRequest("GET", s.URL+"/api/v1/jobs?token="+s.Token, nil)
	req.Header.Set("Authorization", "Basic "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("Basic auth / query token accepted: %d", resp.StatusCode)
	}
}

// TestServedRoutesMatchSpec requests every route of the served OpenAPI
// document on the live server: each must be routed (no 404 from the
// router, no 405), and each method the spec does not list must not be.
func TestServedRoutesMatchSpec(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	j := s.wait(s.submit(job.Spec{Command: []string{"echo", "x"}}), 10*time.Second)
	status, _, body := s.raw("GET", "/api/v1/openapi.yaml", s.Token, nil)
	if status != 200 {
		t.Fatalf("openapi.yaml: %d", status)
	}
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	fill := strings.NewReplacer("{id}", fmt.Sprint(j.ID), "{name}", "default")
	all := []string{"GET", "POST", "PUT", "PATCH", "DELETE"}
	for path, ops := range doc.Paths {
		for _, m := range all {
			_, specd := ops[strings.ToLower(m)]
			status, hdr, body := s.raw(m, fill.Replace(path), s.Token, []byte(`{}`))
			// Not routed: the mux's 405, or the API's JSON 404 for unknown routes.
			routerMiss := status == 405 || status == 404 &&
				(!strings.HasPrefix(hdr.Get("Content-Type"), "application/json") || strings.Contains(string(body), "no route"))
			switch {
			case specd && (routerMiss || status == 405):
				t.Errorf("%s %s is in the spec but not served: %d %.100s", m, path, status, body)
			case !specd && !routerMiss && status != 405:
				t.Errorf("%s %s is served (%d) but not in the spec", m, path, status)
			}
		}
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	expectState(t, s.wait(s.submit(job.Spec{Command: []string{"true"}}), 10*time.Second), job.Succeeded)
	// The gauges read the scheduler's snapshot, published just after the
	// commit the job's state is read from: wait for it to catch up.
	var text string
	waitUntil(t, 5*time.Second, "metrics caught up", func() bool {
		status, _, body := s.raw("GET", "/metrics", s.Token, nil)
		if status != 200 {
			t.Fatalf("/metrics: %d", status)
		}
		text = string(body)
		return strings.Contains(text, `hpcml_jobs{queue="default",state="SUCCEEDED"} 1`)
	})
	for _, want := range []string{
		`hpcml_jobs{queue="default",state="SUCCEEDED"} 1`,
		`hpcml_jobs{queue="default",state="RUNNING"} 0`,
		`hpcml_queue_depth{queue="default"} 0`,
		`hpcml_job_submit_to_start_seconds_count 1`,
		`hpcml_jobs_submitted_total 1`,
		`hpcml_jobs_finished_total{state="SUCCEEDED"} 1`,
		`hpcml_http_request_duration_seconds_bucket{code="201",method="POST",route="/api/v1/jobs"`,
		`hpcml_capacity_cpus `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "hpcml_http_request_duration_seconds_bucket") && strings.Contains(line, `route="/api/v1/jobs/1"`) {
			t.Errorf("request metrics are labelled by raw path (unbounded cardinality): %s", line)
		}
	}
}

// TestTokenFile: the token is created at first start with mode 0600 and
// kept across restarts, so clients configured once stay valid.
func TestTokenFile(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	path := filepath.Join(s.DataDir, "token")
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("token file mode %v, want 0600", perm)
	}
	before := s.Token
	s.Kill9()
	s.Restart()
	after := strings.TrimSpace(readFile(t, path))
	if after != before {
		t.Fatalf("token changed across a restart")
	}
	if err := s.Client.Health(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.ListJobs(ctxFor(t, 5*time.Second), client.ListOptions{}); err != nil {
		t.Fatalf("the old token no longer works: %v", err)
	}
}
