package dashboard

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hpcml/hpcml/internal/dashboard/browsertest"
	"github.com/hpcml/hpcml/internal/job"
)

// syncBuffer is a log sink for handlers running on the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitJS polls a JavaScript condition until it holds. Errors while polling
// (a page being replaced by navigation) count as "not yet".
func waitJS(t *testing.T, ctx context.Context, what, expr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("browser: %s: not within %v (last error: %v)", what, timeout, lastErr)
}

func evalString(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("browser: evaluating %s: %v", expr, err)
	}
	return s
}

// screenshot saves the page as PNG into $HPCML_DASH_SCREENSHOTS, if set.
func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("HPCML_DASH_SCREENSHOTS")
	if dir == "" {
		return
	}
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, "dash-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

func TestBrowser(t *testing.T) {
	ctx := browsertest.Start(t)
	console := browsertest.Console(ctx)

	src := newFakeSource()
	var logs syncBuffer
	var uiRequests atomic.Int64
	dash := New(src, testAuth{testToken}, slog.New(slog.NewTextHandler(&logs, nil)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/ui/") {
			uiRequests.Add(1)
		}
		dash.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	// The collector works: an error the page makes is seen.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank"),
		chromedp.Evaluate[chromedp.Void](`console.error("probe")`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the probe error", `true`, time.Second)
	for deadline := time.Now().Add(2 * time.Second); len(console.Messages()) == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if m := console.Messages(); len(m) != 1 || !strings.Contains(m[0], "probe") {
		t.Fatalf("the console collector saw %q, want the probe", m)
	}
	console.Reset()

	// Without a session the browser lands on the login page; logging in
	// with the form brings it back.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/queues")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the login page", `location.pathname === "/login" && !!document.querySelector("#token")`, 5*time.Second)
	screenshot(t, ctx, "login")
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#token"), testToken),
		chromedp.Submit(chromedp.CSS("#token")),
	); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the queues page after login", `location.pathname === "/queues" && !!document.querySelector('tr[data-queue="gpu"]')`, 5*time.Second)
	screenshot(t, ctx, "queues")

	// Jobs page, logged in with the cookie the server would set.
	if err := browsertest.SetCookie(ctx, srv.URL, SessionCookie(testAuth{testToken})); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#jobs table.jobs tbody tr`)),
	); err != nil {
		t.Fatal(err)
	}
	if title := evalString(t, ctx, `document.title`); title != "hpcml" {
		t.Errorf("title %q, want hpcml", title)
	}
	row := evalString(t, ctx, `document.querySelector('tr[data-id="1"]').innerText`)
	if !strings.Contains(row, "train-mnist") || !strings.Contains(row, "RUNNING") {
		t.Errorf("job 1's row reads %q", row)
	}
	if n := evalString(t, ctx, `String(document.querySelectorAll("#jobs tbody tr").length)`); n != "5" {
		t.Errorf("%s rows, want 5 (4 jobs and an array parent)", n)
	}
	screenshot(t, ctx, "jobs")

	// Live refresh: a change in the source shows up without a reload.
	src.setState("1", job.Succeeded)
	time.Sleep(2100 * time.Millisecond)
	waitJS(t, ctx, "the refreshed state of job 1",
		`document.querySelector('tr[data-id="1"] .badge').textContent === "SUCCEEDED"`, 5*time.Second)
	if got := evalString(t, ctx, `document.getElementById("live").textContent.trim()`); got != "live" {
		t.Errorf("the live indicator says %q", got)
	}

	// Refresh pauses while the tab is hidden, and resumes when it shows.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`
		Object.defineProperty(document, "hidden", {configurable: true, get: () => true});
		document.dispatchEvent(new Event("visibilitychange"));`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // a round in flight may finish
	before := uiRequests.Load()
	time.Sleep(4500 * time.Millisecond)
	if after := uiRequests.Load(); after != before {
		t.Errorf("%d refresh requests while the tab was hidden", after-before)
	}
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`
		Object.defineProperty(document, "hidden", {configurable: true, get: () => false});
		document.dispatchEvent(new Event("visibilitychange"));`)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(3 * time.Second); uiRequests.Load() == before && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if uiRequests.Load() == before {
		t.Errorf("refresh did not resume when the tab showed again")
	}

	// Clicking a row opens the job's page. The click is dispatched in the
	// page: the live refresh may replace the table between a node lookup
	// over the devtools protocol and a click on it.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('tr[data-id="3"] td.when').click()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "job 3's page", `location.pathname === "/jobs/3" && !!document.querySelector("#logs")`, 5*time.Second)
	text := evalString(t, ctx, `document.querySelector("main").innerText`)
	for _, want := range []string{"flaky-eval", "FAILED", "SIGKILL", "Attempts"} {
		if !strings.Contains(text, want) {
			t.Errorf("job 3's page lacks %q", want)
		}
	}
	// The stderr tab shows stderr.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-tab="stderr"]').click()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the stderr tab", `!document.getElementById("log-stderr").hidden && document.getElementById("log-stdout").hidden`, 2*time.Second)
	screenshot(t, ctx, "job-failed")

	// A running task's log grows live, and refresh stops when it ends.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/jobs/4_1")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "job 4_1's page", `!!document.querySelector("#log-stdout[data-refresh]")`, 5*time.Second)
	src.appendLog("4_1", 1, "stdout", "hello from task 1\n")
	waitJS(t, ctx, "the live log", `document.getElementById("log-stdout").textContent.includes("hello from task 1")`, 6*time.Second)
	screenshot(t, ctx, "job")
	// The progress the task reports appears, moves, and goes when it ends.
	src.setProgress("4_1", &job.Progress{Done: 25, Total: 100, Unit: "steps", Message: "step 25"})
	waitJS(t, ctx, "the progress bar", `(document.querySelector('#progress [role="progressbar"]') || {getAttribute() {}}).getAttribute("aria-valuenow") === "25"`, 6*time.Second)
	src.setProgress("4_1", &job.Progress{Done: 60, Total: 100, Unit: "steps", Message: "step 60"})
	waitJS(t, ctx, "the progress bar moving", `document.querySelector('#progress [role="progressbar"]').getAttribute("aria-valuenow") === "60"`, 6*time.Second)
	if got := evalString(t, ctx, `document.getElementById("progress").innerText`); !strings.Contains(got, "60%") || !strings.Contains(got, "60 of 100 steps · step 60") {
		t.Errorf("the progress card reads %q", got)
	}
	screenshot(t, ctx, "job-progress")
	src.appendLog("4_1", 1, "stdout", "done\n")
	src.setState("4_1", job.Succeeded)
	waitJS(t, ctx, "the end of job 4_1", `!!document.querySelector("[data-terminal]") && !document.querySelector("[data-stop-when-terminal][data-refresh]")`, 6*time.Second)
	if got := evalString(t, ctx, `document.getElementById("log-stdout").textContent`); !strings.HasSuffix(got, "done\n") {
		t.Errorf("the final log is %q, want it to end with the last line", got)
	}
	if got := evalString(t, ctx, `document.querySelector(".job-head .badge").textContent`); got != "SUCCEEDED" {
		t.Errorf("job 4_1's badge says %q", got)
	}
	if got := evalString(t, ctx, `String(!!document.getElementById("progress"))`); got != "false" {
		t.Errorf("the ended job still shows its progress")
	}

	// The array parent lists its tasks.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/jobs/4")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the array's tasks", `document.querySelectorAll('tr[data-id^="4_"]').length === 4`, 5*time.Second)
	screenshot(t, ctx, "array")

	// A phone-sized screen.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844), chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(`#jobs table.jobs`))); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "mobile")

	time.Sleep(500 * time.Millisecond) // let late console events arrive
	console.Check(t)
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("the dashboard logged errors:\n%s", logs.String())
	}
}
