package dashboard

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

func newTestHandler(t *testing.T, src Source) (http.Handler, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	return New(src, testAuth{testToken}, logger), &logs
}

type response struct {
	Code   int
	Header http.Header
	Body   string
	Resp   *http.Response
}

// do serves one request; with login it carries the session cookie.
func do(t *testing.T, h http.Handler, method, target string, login bool, body url.Values) response {
	t.Helper()
	var r *http.Request
	if body != nil {
		r = httptest.NewRequest(method, target, strings.NewReader(body.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	if login {
		r.AddCookie(SessionCookie(testAuth{testToken}))
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	return response{Code: res.StatusCode, Header: res.Header, Body: string(b), Resp: res}
}

func sessionCookieOf(res response) *http.Cookie {
	for _, c := range res.Resp.Cookies() {
		if c.Name == cookieName {
			return c
		}
	}
	return nil
}

func TestAuthRequired(t *testing.T) {
	h, _ := newTestHandler(t, newFakeSource())
	tests := []struct {
		target   string
		code     int
		location string
	}{
		{"/", http.StatusSeeOther, "/login"},
		{"/queues", http.StatusSeeOther, "/login?next=%2Fqueues"},
		{"/jobs/1?attempt=1", http.StatusSeeOther, "/login?next=%2Fjobs%2F1%3Fattempt%3D1"},
		{"/no/such/page", http.StatusSeeOther, "/login?next=%2Fno%2Fsuch%2Fpage"},
		{"/ui/jobs", http.StatusUnauthorized, ""},
		{"/ui/jobs/1", http.StatusUnauthorized, ""},
		{"/ui/jobs/1/log?stream=stdout", http.StatusUnauthorized, ""},
		{"/ui/capacity", http.StatusUnauthorized, ""},
		{"/login", http.StatusOK, ""},
		{"/favicon.ico", http.StatusOK, ""},
	}
	for _, tt := range tests {
		res := do(t, h, "GET", tt.target, false, nil)
		if res.Code != tt.code || res.Header.Get("Location") != tt.location {
			t.Errorf("GET %s: %d %q, want %d %q", tt.target, res.Code, res.Header.Get("Location"), tt.code, tt.location)
		}
		if strings.Contains(res.Body, "train-mnist") {
			t.Errorf("GET %s without a session shows a job", tt.target)
		}
	}
}

func TestStaticAssets(t *testing.T) {
	h, _ := newTestHandler(t, newFakeSource())
	page := do(t, h, "GET", "/", true, nil)
	if page.Code != http.StatusOK {
		t.Fatalf("GET /: %d", page.Code)
	}
	// Every asset a page refers to is served, without a session, cached.
	refs := regexp.MustCompile(`(?:href|src)="(/static/[^"]+)"`).FindAllStringSubmatch(page.Body, -1)
	if len(refs) < 3 {
		t.Fatalf("the page refers to %d static assets, want the icon, CSS and script", len(refs))
	}
	for _, m := range refs {
		target := strings.ReplaceAll(m[1], "&amp;", "&")
		res := do(t, h, "GET", target, false, nil)
		if res.Code != http.StatusOK || len(res.Body) == 0 {
			t.Errorf("GET %s: %d, %d bytes", target, res.Code, len(res.Body))
		}
		if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=31536000") {
			t.Errorf("GET %s: Cache-Control %q, want a long max-age", target, cc)
		}
	}
	if res := do(t, h, "GET", "/static/", false, nil); res.Code != http.StatusNotFound {
		t.Errorf("GET /static/: %d, want 404 (no listing)", res.Code)
	}
	if res := do(t, h, "GET", "/static/nope.js", false, nil); res.Code != http.StatusNotFound {
		t.Errorf("GET /static/nope.js: %d, want 404", res.Code)
	}
	if res := do(t, h, "GET", "/static/style.css", false, nil); !strings.HasPrefix(res.Header.Get("Content-Type"), "text/css") {
		t.Errorf("style.css has Content-Type %q", res.Header.Get("Content-Type"))
	}
}

func TestLogin(t *testing.T) {
	h, _ := newTestHandler(t, newFakeSource())

	t.Run("good token", func(t *testing.T) {
		res := do(t, h, "POST", "/login", false, url.Values{"token": {testToken}, "next": {"/jobs/1"}})
		if res.Code != http.StatusSeeOther || res.Header.Get("Location") != "/jobs/1" {
			t.Fatalf("POST /login: %d to %q, want 303 to /jobs/1", res.Code, res.Header.Get("Location"))
		}
		c := sessionCookieOf(res)
		if c == nil {
			t.Fatal("no session cookie set")
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
			t.Errorf("cookie %v: want HttpOnly, SameSite=Strict, Path=/", c)
		}
		if c.Value == testToken || strings.Contains(c.Value, testToken) {
			t.Errorf("the cookie holds the token")
		}
		if c.Value != SessionCookie(testAuth{testToken}).Value {
			t.Errorf("the login cookie differs from SessionCookie")
		}
		// The cookie logs in.
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(c)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "train-mnist") {
			t.Errorf("GET / with the login cookie: %d", w.Code)
		}
	})

	t.Run("bad token", func(t *testing.T) {
		res := do(t, h, "POST", "/login", false, url.Values{"token": {"wrong"}})
		if res.Code != http.StatusUnauthorized {
			t.Errorf("POST /login with a bad token: %d, want 401", res.Code)
		}
		if c := sessionCookieOf(res); c != nil {
			t.Errorf("a bad token set a cookie")
		}
		if !strings.Contains(res.Body, "not valid") {
			t.Errorf("the login page does not say the token is wrong")
		}
		if res := do(t, h, "POST", "/login", false, url.Values{"token": {""}}); res.Code != http.StatusUnauthorized {
			t.Errorf("an empty token: %d", res.Code)
		}
	})

	t.Run("no open redirect", func(t *testing.T) {
		for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)", "/login"} {
			res := do(t, h, "POST", "/login", false, url.Values{"token": {testToken}, "next": {next}})
			if loc := res.Header.Get("Location"); loc != "/" {
				t.Errorf("next=%q redirected to %q, want /", next, loc)
			}
		}
	})

	t.Run("already logged in", func(t *testing.T) {
		res := do(t, h, "GET", "/login?next=%2Fqueues", true, nil)
		if res.Code != http.StatusSeeOther || res.Header.Get("Location") != "/queues" {
			t.Errorf("GET /login with a session: %d to %q", res.Code, res.Header.Get("Location"))
		}
	})

	t.Run("cross-site arrival reloads once", func(t *testing.T) {
		r := httptest.NewRequest("GET", "/login?next=%2Fjobs%2F1", nil)
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `<meta http-equiv="refresh" content="0">`) {
			t.Errorf("a cross-site arrival at /login: %d, no reload", w.Code)
		}
		r.Header.Set("Sec-Fetch-Site", "same-origin")
		w = httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if strings.Contains(w.Body.String(), `http-equiv="refresh"`) {
			t.Errorf("a same-origin arrival at /login reloads")
		}
	})

	t.Run("form", func(t *testing.T) {
		res := do(t, h, "GET", "/login?next=%2Fjobs%2F3", false, nil)
		if !strings.Contains(res.Body, `name="token"`) || !strings.Contains(res.Body, `value="/jobs/3"`) {
			t.Errorf("the login form lacks the token field or the next target:\n%s", res.Body)
		}
		if strings.Contains(res.Body, `class="nav"`) {
			t.Errorf("the login page shows the navigation")
		}
	})
}

func TestTokenQuery(t *testing.T) {
	h, _ := newTestHandler(t, newFakeSource())

	res := do(t, h, "GET", "/jobs/1?stream=stderr&token="+testToken, false, nil)
	if res.Code != http.StatusSeeOther || res.Header.Get("Location") != "/jobs/1?stream=stderr" {
		t.Fatalf("GET ?token=: %d to %q, want 303 to /jobs/1?stream=stderr", res.Code, res.Header.Get("Location"))
	}
	c := sessionCookieOf(res)
	if c == nil || c.Value != SessionCookie(testAuth{testToken}).Value {
		t.Fatalf("?token= set cookie %v", c)
	}

	res = do(t, h, "GET", "/?token="+testToken, false, nil)
	if res.Header.Get("Location") != "/" || sessionCookieOf(res) == nil {
		t.Errorf("GET /?token=: to %q", res.Header.Get("Location"))
	}

	res = do(t, h, "GET", "/queues?token=wrong", false, nil)
	if res.Code != http.StatusSeeOther || sessionCookieOf(res) != nil {
		t.Fatalf("a bad ?token=: %d, cookie %v", res.Code, sessionCookieOf(res))
	}
	loc, _ := url.Parse(res.Header.Get("Location"))
	if loc.Path != "/login" || loc.Query().Get("next") != "/queues" || loc.Query().Get("error") != "token" {
		t.Errorf("a bad ?token= redirected to %s", loc)
	}
	if strings.Contains(res.Header.Get("Location"), "wrong") {
		t.Errorf("the redirect keeps the bad token")
	}
	login := do(t, h, "GET", res.Header.Get("Location"), false, nil)
	if !strings.Contains(login.Body, "token in the link is not valid") {
		t.Errorf("the login page does not say the link's token is wrong")
	}

	// /login?token= works too.
	res = do(t, h, "GET", "/login?token="+testToken+"&next=%2Fqueues", false, nil)
	if res.Header.Get("Location") != "/queues" || sessionCookieOf(res) == nil {
		t.Errorf("GET /login?token=: to %q", res.Header.Get("Location"))
	}
}

func TestSessionCookie(t *testing.T) {
	auth := testAuth{testToken}
	c := SessionCookie(auth)
	if c.Value == "" || c.Value == testToken || strings.Contains(c.Value, testToken) {
		t.Fatalf("SessionCookie value %q must not be, or hold, the token", c.Value)
	}
	if c.Name != cookieName || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Errorf("SessionCookie = %v", c)
	}
	if other := SessionCookie(testAuth{"another-token"}); other.Value == c.Value {
		t.Errorf("two keys give the same cookie")
	}

	h, _ := newTestHandler(t, newFakeSource())
	for name, value := range map[string]string{
		"the raw token":      testToken,
		"another key's MAC":  SessionCookie(testAuth{"another-token"}).Value,
		"garbage":            "zz",
		"a truncated cookie": c.Value[:20],
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(&http.Cookie{Name: cookieName, Value: value})
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusSeeOther {
			t.Errorf("%s as the cookie: %d, want a redirect to /login", name, w.Code)
		}
	}

	// Without a session key there are no sessions, rather than a
	// predictable cookie.
	noKey := New(newFakeSource(), testAuth{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(SessionCookie(testAuth{}))
	w := httptest.NewRecorder()
	noKey.ServeHTTP(w, r)
	if w.Code != http.StatusSeeOther {
		t.Errorf("an empty session key accepted a cookie: %d", w.Code)
	}
}

func TestBearerToken(t *testing.T) {
	h, _ := newTestHandler(t, newFakeSource())
	r := httptest.NewRequest("GET", "/ui/jobs", nil)
	r.Header.Set("Authorization", "Bearer "+testToken)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Errorf("a bearer token: %d", w.Code)
	}
	r.Header.Set("Authorization", "Bearer nope")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized {
		t.Errorf("a wrong bearer token: %d", w.Code)
	}
}

func mustContain(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
}

func mustNotContain(t *testing.T, what, body string, nots ...string) {
	t.Helper()
	for _, n := range nots {
		if strings.Contains(body, n) {
			t.Errorf("%s has %q", what, n)
		}
	}
}

func TestJobsPage(t *testing.T) {
	h, _ := newTestHandler(t, newFakeSource())
	res := do(t, h, "GET", "/", true, nil)
	if res.Code != http.StatusOK {
		t.Fatalf("GET /: %d\n%s", res.Code, res.Body)
	}
	mustContain(t, "the jobs page", res.Body,
		"<title>hpcml</title>",
		`href="/queues"`,
		"train-mnist", "preprocess", "flaky-eval", "sweep", "report",
		`class="badge st-running">RUNNING<`, `class="badge st-failed">FAILED<`, `class="badge st-pending">PENDING<`,
		`data-href="/jobs/1"`,
		"array · 4 tasks", "2 runnable, 1 running, 1 succeeded",
		`<option value="FAILED">FAILED</option>`, `<option value="gpu">gpu</option>`,
		`data-refresh="/ui/jobs"`,
		"exit code 1 &lt;b&gt;bold&lt;/b&gt;", // escaped
		"2.5 / 8",                             // capacity
		"6 GiB / 16 GiB",
		`<svg class="meter-bar"`,
		`<strong>8</strong> jobs`, // summary: plain jobs and tasks, not the parent
	)
	mustNotContain(t, "the jobs page", res.Body, "<b>bold</b>", `data-id="4_0"`)
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("a page has Cache-Control %q", cc)
	}

	// Filters.
	res = do(t, h, "GET", "/?state=FAILED", true, nil)
	mustContain(t, "the FAILED filter", res.Body, "flaky-eval", `<option value="FAILED" selected>`, `data-refresh="/ui/jobs?state=FAILED"`)
	mustNotContain(t, "the FAILED filter", res.Body, `data-id="1"`, `data-id="2"`)
	res = do(t, h, "GET", "/?queue=gpu", true, nil)
	mustContain(t, "the gpu filter", res.Body, `data-id="1"`)
	mustNotContain(t, "the gpu filter", res.Body, `data-id="2"`)
	res = do(t, h, "GET", "/?state=running&queue=default", true, nil)
	mustContain(t, "a lower-case state", res.Body, `data-id="4"`)

	// An array's tasks.
	res = do(t, h, "GET", "/?array=4", true, nil)
	mustContain(t, "the array page", res.Body, `data-id="4_0"`, `data-id="4_3"`, `href="/jobs/4_1"`, "Array <span class=\"mono\">4</span>")
	mustNotContain(t, "the array page", res.Body, "train-mnist")

	for _, bad := range []string{"/?state=NOPE", "/?limit=-1"} {
		if res := do(t, h, "GET", bad, true, nil); res.Code != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400", bad, res.Code)
		}
	}
	for _, bad := range []string{"/?array=abc", "/?array=999", "/?array=1", "/?array=4_1"} {
		if res := do(t, h, "GET", bad, true, nil); res.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", bad, res.Code)
		}
	}
}

func TestJobPage(t *testing.T) {
	h, _ := newTestHandler(t, newFakeSource())

	res := do(t, h, "GET", "/jobs/1", true, nil)
	if res.Code != http.StatusOK {
		t.Fatalf("GET /jobs/1: %d\n%s", res.Code, res.Body)
	}
	mustContain(t, "the running job's page", res.Body,
		"<title>hpcml · job 1</title>",
		"train-mnist", `class="badge st-running">RUNNING<`,
		`hpcml train --epochs 3 --data &#39;file:///data/mnist dir&#39;`, // shell-quoted command
		"epoch 1/3 loss=0.3124",                    // stdout
		"warning: &lt;no GPU&gt; found, using CPU", // stderr, escaped
		`data-refresh="/ui/jobs/1"`, `data-refresh="/ui/jobs/1/log?stream=stdout"`, `data-refresh="/ui/jobs/1/log?stream=stderr"`,
		`<svg class="timeline"`, "attempt 1",
		"812 MiB",              // max RSS in the attempts table
		"2m30s",                // CPU time
		`&#34;command&#34;: [`, // pretty JSON spec
		// the progress the job reports, its message escaped
		`id="progress"`, `role="progressbar"`, `aria-valuenow="33"`, `<rect class="progress-fg" width="33.33"`,
		"1 of 3 epochs · 0.02 epochs/s · ETA 1m40s", "epoch 1/3 &lt;loss=0.3124&gt;",
	)

	res = do(t, h, "GET", "/jobs/3?attempt=2&stream=stderr", true, nil)
	mustContain(t, "the failed job's page", res.Body,
		"flaky-eval", `class="badge st-failed">FAILED<`, "SIGKILL", "Traceback: boom",
		`data-terminal`, "attempt 2", "up to 2 attempts on any failure",
		`data-tab="stderr" aria-selected="true"`, `class="shown"`,
		"slurm:77", ">interrupted<", // where attempt 1 ran, and how it was lost
	)
	mustNotContain(t, "a finished job's page", res.Body, `data-refresh="/ui/jobs/3`, `id="progress"`)

	res = do(t, h, "GET", "/jobs/4", true, nil)
	mustContain(t, "the array parent's page", res.Body, "Array tasks", `href="/jobs/4_0"`, `href="/jobs/4_3"`, "array · 4 tasks", `href="/?array=4"`)

	res = do(t, h, "GET", "/jobs/4_1", true, nil)
	mustContain(t, "an array task's page", res.Body, "index 1 of job 4", `href="/jobs/4"`)

	res = do(t, h, "GET", "/jobs/9", true, nil)
	mustContain(t, "a pending job's page", res.Body, "waiting for job 3 (afterok)", "afterok 3", "no attempt has started", "queued")
}

func TestNotFound(t *testing.T) {
	h, _ := newTestHandler(t, newFakeSource())
	for _, target := range []string{"/jobs/999", "/jobs/abc", "/jobs/0", "/jobs/-1", "/jobs/1_x", "/jobs/4_9", "/nope", "/ui/jobs/999", "/ui/jobs/abc/log"} {
		res := do(t, h, "GET", target, true, nil)
		if res.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", target, res.Code)
		}
		if !strings.HasPrefix(target, "/ui/") {
			mustContain(t, "the 404 page for "+target, res.Body, "404", "Not Found", `href="/queues"`)
		}
	}
}

func TestSourceError(t *testing.T) {
	src := newFakeSource()
	src.err = errors.New("database is locked (secret detail)")
	h, logs := newTestHandler(t, src)
	for _, target := range []string{"/", "/jobs/1", "/queues", "/ui/jobs"} {
		res := do(t, h, "GET", target, true, nil)
		if res.Code != http.StatusInternalServerError {
			t.Errorf("GET %s: %d, want 500", target, res.Code)
		}
		mustContain(t, "the 500 page for "+target, res.Body, "Could not read the")
		mustNotContain(t, "the 500 page for "+target, res.Body, "secret detail")
	}
	if !strings.Contains(logs.String(), "secret detail") || !strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("the error was not logged:\n%s", logs)
	}
}

func TestFragments(t *testing.T) {
	src := newFakeSource()
	h, _ := newTestHandler(t, src)

	res := do(t, h, "GET", "/ui/jobs?state=RUNNING", true, nil)
	if res.Code != http.StatusOK {
		t.Fatalf("GET /ui/jobs: %d", res.Code)
	}
	mustContain(t, "the jobs fragment", res.Body, "train-mnist", `<table class="jobs">`, `class="summary"`)
	mustNotContain(t, "the jobs fragment", res.Body, "<html", "<header", "preprocess")

	// The fragment is the page's own: the same markup for the same rows.
	page := do(t, h, "GET", "/?state=RUNNING", true, nil)
	frag := strings.TrimSpace(res.Body)
	if !strings.Contains(page.Body, frag) {
		t.Errorf("the page does not embed the fragment verbatim")
	}

	src.setState("1", job.Succeeded)
	res = do(t, h, "GET", "/ui/jobs", true, nil)
	mustContain(t, "the refreshed fragment", res.Body, `data-id="1" data-state="SUCCEEDED"`)

	res = do(t, h, "GET", "/ui/jobs/1", true, nil)
	mustContain(t, "the job fragment", res.Body, "train-mnist", "data-terminal", `class="badge st-succeeded">SUCCEEDED<`)
	mustNotContain(t, "the job fragment", res.Body, "<html")

	src.appendLog("1", 1, "stdout", "epoch 2/3 loss=<0.2>\n")
	res = do(t, h, "GET", "/ui/jobs/1/log?stream=stdout", true, nil)
	if ct := res.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("the log has Content-Type %q", ct)
	}
	if res.Body != "epoch 1/3 loss=0.3124\nepoch 2/3 loss=<0.2>\n" {
		t.Errorf("the log = %q", res.Body)
	}
	res = do(t, h, "GET", "/ui/jobs/1/log?stream=stderr&attempt=1", true, nil)
	mustContain(t, "stderr", res.Body, "<no GPU>")
	res = do(t, h, "GET", "/ui/jobs/9/log", true, nil) // no attempt yet
	if res.Code != http.StatusOK || res.Body != "" {
		t.Errorf("the log of a pending job: %d %q", res.Code, res.Body)
	}
	res = do(t, h, "GET", "/ui/jobs/2/log?stream=stderr&attempt=1", true, nil) // no such log
	if res.Code != http.StatusOK || res.Body != "" {
		t.Errorf("a missing log: %d %q", res.Code, res.Body)
	}
	for _, bad := range []string{"/ui/jobs/1/log?stream=stdin", "/ui/jobs/1/log?attempt=0"} {
		if res := do(t, h, "GET", bad, true, nil); res.Code != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400", bad, res.Code)
		}
	}

	res = do(t, h, "GET", "/ui/capacity", true, nil)
	mustContain(t, "the capacity fragment", res.Body, "2.5 / 8", "<svg", "running")
	res = do(t, h, "GET", "/ui/queues", true, nil)
	mustContain(t, "the queues fragment", res.Body, "default", "gpu")
}

func TestLongLog(t *testing.T) {
	src := newFakeSource()
	h, _ := newTestHandler(t, src)
	var b strings.Builder
	for i := 0; b.Len() < 3*logTail; i++ {
		b.WriteString("line " + strings.Repeat("x", 50) + "\n")
	}
	b.WriteString("the last line\n")
	src.logs["2/1/stdout"] = b.String()
	res := do(t, h, "GET", "/ui/jobs/2/log?stream=stdout", true, nil)
	if len(res.Body) > logTail+200 {
		t.Errorf("the log tail is %d bytes", len(res.Body))
	}
	if !strings.HasPrefix(res.Body, "[… earlier output not shown") || !strings.HasSuffix(res.Body, "the last line\n") {
		t.Errorf("the log tail starts %q and ends %q", res.Body[:40], res.Body[len(res.Body)-20:])
	}
	if strings.Contains(res.Body, "]\nx") {
		t.Errorf("the tail starts in the middle of a line")
	}
}

func TestQueuesPage(t *testing.T) {
	h, _ := newTestHandler(t, newFakeSource())
	res := do(t, h, "GET", "/queues", true, nil)
	if res.Code != http.StatusOK {
		t.Fatalf("GET /queues: %d", res.Code)
	}
	mustContain(t, "the queues page", res.Body,
		"<title>hpcml · queues</title>", `aria-current="page">Queues`,
		`data-queue="gpu"`, `data-queue="default"`, "no limit", "0.05", "0.5",
		`href="/?queue=default&amp;state=RUNNABLE"`, "2 runnable", "1 pending",
	)
	// Higher priority first.
	if strings.Index(res.Body, `data-queue="gpu"`) > strings.Index(res.Body, `data-queue="default"`) {
		t.Errorf("the queues are not ordered by priority")
	}
}

func TestFormat(t *testing.T) {
	bytesTests := map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 812 << 20: "812 MiB", 5 << 30: "5 GiB", 16<<30 + 300<<20: "16.3 GiB"}
	for n, want := range bytesTests {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
	durTests := map[time.Duration]string{
		850 * time.Millisecond: "850ms", 1500 * time.Millisecond: "1.5s", 12 * time.Second: "12s",
		184 * time.Second: "3m04s", 62 * time.Minute: "1h02m", 51 * time.Hour: "2d03h", -time.Second: "0ms",
	}
	for d, want := range durTests {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
	costTests := map[float64]string{0: "0", 0.0021: "0.0021", 1.234: "1.23", 12345.6: "12346"}
	for c, want := range costTests {
		if got := formatCost(c); got != want {
			t.Errorf("formatCost(%v) = %q, want %q", c, got, want)
		}
	}
	if got := shellQuote([]string{"echo", "it's", "a b", "--x=1"}); got != `echo 'it'\''s' 'a b' --x=1` {
		t.Errorf("shellQuote = %s", got)
	}
	nextTests := map[string]string{
		"/jobs/1?x=2": "/jobs/1?x=2", "": "/", "//evil": "/", "http://evil/": "/", "/\\evil": "/", "jobs": "/", "/login?next=/": "/",
	}
	for in, want := range nextTests {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
