package dashboard

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hpcml/hpcml/internal/dashboard/browsertest"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
)

// TestBrowserEndpoints opens the Endpoints tab in headless Chromium: the
// nav leads to the list with each variant's traffic, a click on a row
// opens the endpoint with its variants (green's own line during the
// canary), its running deployment and its history; the page follows the
// controller without a reload (the deployment ends, a scale event
// appears). Nothing may log an error (CSP violations included).
func TestBrowserEndpoints(t *testing.T) {
	ctx := browsertest.Start(t)
	console := browsertest.Console(ctx)
	src := newEndpointsSource(t)
	var logs syncBuffer
	srv := httptest.NewServer(New(src, testAuth{testToken}, slog.New(slog.NewTextHandler(&logs, nil))))
	t.Cleanup(srv.Close)
	if err := browsertest.SetCookie(ctx, srv.URL, SessionCookie(testAuth{testToken})); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`nav.nav`))); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('nav.nav a[href="/serving"]').click()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the endpoints list", `location.pathname === "/serving" && document.querySelectorAll("tr[data-endpoint]").length === 3`, 10*time.Second)
	if got := evalString(t, ctx, `[...document.querySelectorAll("tr[data-endpoint]")].map(r => r.dataset.endpoint + "/" + r.dataset.variant + " " + r.querySelector(".replicas").textContent).join(", ")`); got != "digits/a 0/2, digits/b 0/2, iris/primary 0/2" {
		t.Errorf("rows %q", got)
	}
	screenshot(t, ctx, "endpoints-list")

	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('tr[data-endpoint="digits"][data-variant="b"] td.rps').click()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the endpoint page", `location.pathname === "/serving/digits" && !!document.getElementById("deployment")`, 10*time.Second)
	if got := evalString(t, ctx, `[...document.querySelectorAll("#variants tbody tr")].map(r => (r.dataset.variant || r.dataset.fleet) + ":" + r.querySelector(".requests, td:nth-child(6)").textContent).join(" ")`); got != "a:80 green:40 b:40" {
		t.Errorf("variants shown as %q", got)
	}
	if got := evalString(t, ctx, `document.querySelector('#history tr[data-deployment="1"] .reason').textContent`); !strings.Contains(got, "green error rate 50%") {
		t.Errorf("rolled-back deployment's reason %q", got)
	}
	screenshot(t, ctx, "endpoint-canary")

	// The deployment ends and a scale event is recorded: the page shows
	// both on its next refresh, without a reload.
	running, err := src.st.ListDeployments(t.Context(), "digits", 1)
	if err != nil {
		t.Fatal(err)
	}
	d := running[0]
	d.Phase, d.Outcome, d.EndedAt = "succeeded", endpoint.Succeeded, time.Now()
	if err := src.st.UpdateDeployment(t.Context(), d, []endpoint.Event{{At: time.Now(), Message: "succeeded"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := src.st.AddScaleEvent(t.Context(), &endpoint.ScaleEvent{Endpoint: "digits", Variant: "b", From: 2, To: 4,
		Reason: "in-flight 9 per replica above target 2", At: time.Now()}, nil); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the live update", `!document.getElementById("deployment") && !document.querySelector('[data-fleet="green"]') && !!document.querySelector('#history tr[data-deployment="2"][data-outcome="succeeded"]') && !!document.querySelector('#scale-events tr[data-scale="out"]')`, 15*time.Second)
	screenshot(t, ctx, "endpoint-after")
	console.Check(t)
	if l := logs.String(); strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
		t.Errorf("the dashboard logged:\n%s", logs.String())
	}
}
