package dashboard

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hpcml/hpcml/internal/dashboard/browsertest"
)

// TestBrowserModels opens the Models tab in headless Chromium on a real
// registry: the nav leads to the list, a click on a model's row opens it
// with the latest version in full, a click on an older version's row
// shows that one with its alias, and the alias chips link to their
// versions. Nothing may log an error (CSP violations included).
func TestBrowserModels(t *testing.T) {
	ctx := browsertest.Start(t)
	console := browsertest.Console(ctx)
	src, _ := newModelsSource(t)
	var logs syncBuffer
	srv := httptest.NewServer(New(src, testAuth{testToken}, slog.New(slog.NewTextHandler(&logs, nil))))
	t.Cleanup(srv.Close)
	if err := browsertest.SetCookie(ctx, srv.URL, SessionCookie(testAuth{testToken})); err != nil {
		t.Fatal(err)
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`nav.nav`))); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('nav.nav a[href="/models"]').click()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the models list", `location.pathname === "/models" && document.querySelectorAll("tr[data-model]").length === 2`, 10*time.Second)
	if got := evalString(t, ctx, `[...document.querySelectorAll("tr[data-model]")].map(r => r.dataset.model + ":" + r.querySelector(".latest").textContent).join(" ")`); got != "digits:1 iris:2" {
		t.Errorf("models listed as %q", got)
	}
	if got := evalString(t, ctx, `[...document.querySelectorAll('tr[data-model="iris"] a.alias')].map(a => a.textContent).join(", ")`); got != "production → 1, staging → 2" {
		t.Errorf("iris's aliases shown as %q", got)
	}
	screenshot(t, ctx, "models-list")

	// A click anywhere on the row opens the model.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('tr[data-model="iris"] td.when').click()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the model page", `location.pathname === "/models/iris" && !!document.getElementById("signature")`, 10*time.Second)
	if got := evalString(t, ctx, `[...document.querySelectorAll("#signature tbody tr")].map(r => [...r.cells].map(c => c.textContent).join("|")).join(" / ")`); got != "input|input|FP32|[N, 4] / output|output|FP32|[N, 3]" {
		t.Errorf("signature shown as %q", got)
	}
	if got := evalString(t, ctx, `[...document.querySelectorAll("#metrics tr[data-metric]")].map(r => r.dataset.metric).join(",")`); got != "accuracy,loss" {
		t.Errorf("metrics of version 2: %q", got)
	}
	if got := evalString(t, ctx, `document.querySelector("tr[aria-current]").dataset.version`); got != "2" {
		t.Errorf("selected version %q, want the latest (2)", got)
	}
	screenshot(t, ctx, "model-latest")

	// The older version, by its row.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('tr[data-version="1"] td.when').click()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "version 1", `location.search === "?version=1" && document.querySelector("tr[aria-current]").dataset.version === "1"`, 10*time.Second)
	if got := evalString(t, ctx, `document.querySelector("h1").textContent.replace(/\s+/g, " ").trim()`); got != "iris version 1 production" {
		t.Errorf("heading %q", got)
	}
	if got := evalString(t, ctx, `document.getElementById("model-download").getAttribute("href")`); got != "/models/iris/versions/1/model.onnx" {
		t.Errorf("download link %q", got)
	}
	// The staging chip leads to version 2.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('#versions .card-head a[data-alias="staging"]').click()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "staging's version", `location.search === "?version=2" && !!document.querySelector('tr[aria-current][data-version="2"]')`, 10*time.Second)
	console.Check(t)
	if l := logs.String(); strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
		t.Errorf("the dashboard logged:\n%s", logs.String())
	}
}
