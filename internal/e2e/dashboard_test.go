package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hpcml/hpcml/internal/dashboard/browsertest"
	"github.com/hpcml/hpcml/internal/job"
)

// TestDashboardShowsJobsFromTheAPI drives the real server's dashboard in
// headless Chromium: log in with the token link that `hpcml server`
// prints, find jobs submitted through the API, follow a job to its page
// and its logs, and see a state change arrive without a reload — with no
// console error on the way.
func TestDashboardShowsJobsFromTheAPI(t *testing.T) {
	s := startServer(t)
	done := s.wait(s.submit(job.Spec{Name: "dash-hello", Command: []string{"echo", "hello from the dashboard test"}}), 20*time.Second)
	expectState(t, done, job.Succeeded)
	slow := s.submit(job.Spec{Name: "dash-slow", Command: []string{"sleep", "3"}})
	s.waitRunning(slow)

	ctx := browsertest.Start(t)
	text := func() string {
		t.Helper()
		body, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		if err != nil {
			t.Fatalf("read page: %v", err)
		}
		return body
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.URL+"/?token="+s.Token),
		chromedp.WaitVisible(chromedp.CSS(`#jobs table tbody tr`)),
	); err != nil {
		t.Fatalf("load jobs page: %v", err)
	}
	row := func(j *job.Job) string {
		t.Helper()
		r, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`(document.querySelector('tr[data-id="`+id(j)+`"]') || {innerText: ""}).innerText`))
		if err != nil {
			t.Fatalf("read row of job %s: %v", id(j), err)
		}
		return r
	}
	if r := row(done); !strings.Contains(r, "dash-hello") || !strings.Contains(r, "SUCCEEDED") {
		t.Errorf("row of job %s reads %q", id(done), r)
	}
	if r := row(slow); !strings.Contains(r, "dash-slow") || !strings.Contains(r, "RUNNING") {
		t.Errorf("row of job %s reads %q", id(slow), r)
	}
	// The token must not stay in the address bar.
	loc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(loc, s.Token) {
		t.Errorf("token left in the URL: %s", loc)
	}

	// Live refresh: the running job turns SUCCEEDED without a reload.
	s.wait(slow, 20*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := row(slow)
		if strings.Contains(r, "SUCCEEDED") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page never showed dash-slow ending: %q", r)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// The job page shows the attempt and the log the job wrote.
	var body string
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL+"/jobs/"+id(done))); err != nil {
		t.Fatalf("load job page: %v", err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for body = text(); !strings.Contains(body, "hello from the dashboard test") && time.Now().Before(deadline); body = text() {
		time.Sleep(200 * time.Millisecond) // the log pane fills in after load
	}
	for _, want := range []string{"dash-hello", "hello from the dashboard test", "SUCCEEDED"} {
		if !strings.Contains(body, want) {
			t.Errorf("job page does not show %q:\n%s", want, body)
		}
	}
	browsertest.Console(ctx).Check(t)
}
