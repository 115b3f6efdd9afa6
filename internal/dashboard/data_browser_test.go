package dashboard

import (
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hpcml/hpcml/internal/dashboard/browsertest"
	"github.com/hpcml/hpcml/internal/profile"
)

// artifactDir is where tests keep what a person may want to look at
// (screenshots): $HPCML_TEST_ARTIFACTS, else .artifacts/ at the root of the
// repository (git-ignored).
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HPCML_TEST_ARTIFACTS")
	if dir == "" {
		root, err := filepath.Abs(".")
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(root)
			if parent == root {
				t.Fatal("no go.mod above the test's directory")
			}
			root = parent
		}
		dir = filepath.Join(root, ".artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBrowserDataReport opens the data pages in headless Chromium on a
// report made from a real profile: every chart container gets an ECharts
// chart drawn on a canvas, the correlation toggle and the scatter's
// selects redraw, a tooltip shows, and nothing logs an error. A full-page
// screenshot is kept as a test artefact.
func TestBrowserDataReport(t *testing.T) {
	ctx := browsertest.Start(t)
	console := browsertest.Console(ctx)

	src := newFakeSource()
	rep := profileReport(t, "20260102-030405-a1b2c3", writeProfileCSV(t, 3000), profile.Options{}, time.Now().Add(-10*time.Minute))
	src.addReport(summaryReport("older-report", "/data/older.csv", time.Now().Add(-48*time.Hour), 42))
	src.addReport(rep)
	var logs syncBuffer
	srv := httptest.NewServer(New(src, testAuth{testToken}, slog.New(slog.NewTextHandler(&logs, nil))))
	t.Cleanup(srv.Close)
	if err := browsertest.SetCookie(ctx, srv.URL, SessionCookie(testAuth{testToken})); err != nil {
		t.Fatal(err)
	}

	// The list, newest first; a click opens the report.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/data"),
		chromedp.WaitVisible(chromedp.CSS(`table.reports tbody tr`))); err != nil {
		t.Fatal(err)
	}
	if got := evalString(t, ctx, `[...document.querySelectorAll("tr[data-report]")].map(r => r.dataset.report).join(" ")`); got != rep.ID+" older-report" {
		t.Errorf("reports listed as %q, want the newest first", got)
	}
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('tr[data-report="`+rep.ID+`"] td.when').click()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the report page", `location.pathname === "/data/reports/`+rep.ID+`"`, 5*time.Second)

	// Every chart is drawn: an ECharts instance with series, on a canvas
	// of some size with something painted on it.
	waitJS(t, ctx, "the charts", `(() => {
		const els = [...document.querySelectorAll("[data-chart]")];
		return els.length > 0 && els.every(el => el.hasAttribute("data-drawn") || el.hasAttribute("data-error"));
	})()`, 15*time.Second)
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("[data-chart]").length`))
	if err != nil {
		t.Fatal(err)
	}
	// missing, correlations, scatter, 5 histograms, 2 top-value charts
	if n != 10 {
		t.Errorf("%d chart containers, want 10", n)
	}
	problems := evalString(t, ctx, `(() => {
		const out = [];
		for (const el of document.querySelectorAll("[data-chart]")) {
			const name = el.id || (el.dataset.chart + " " + el.dataset.column);
			if (el.dataset.error) { out.push(name + ": " + el.dataset.error); continue; }
			const chart = echarts.getInstanceByDom(el);
			if (!chart) { out.push(name + ": no chart"); continue; }
			const series = chart.getOption().series || [];
			if (series.length === 0) out.push(name + ": no series");
			const c = el.querySelector("canvas");
			if (!c || c.width === 0 || c.height === 0 || c.clientWidth === 0 || c.clientHeight === 0) {
				out.push(name + ": no canvas of some size"); continue;
			}
			const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
			let painted = 0;
			for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) painted++;
			if (painted < 200) out.push(name + ": " + painted + " painted pixels");
		}
		return out.join("\n");
	})()`)
	if problems != "" {
		t.Errorf("charts not drawn:\n%s", problems)
	}
	// The histogram has a bar per bin, the box plot the five quantiles.
	if got := evalString(t, ctx, `(() => {
		const o = echarts.getInstanceByDom(document.querySelector('[data-chart="numeric"][data-column="0"]')).getOption();
		return o.series.map(s => s.type + ":" + s.data.length).join(" ");
	})()`); got != "custom:20 boxplot:1 scatter:2" {
		t.Errorf("x's chart has series %q", got)
	}

	// The correlation heatmap switches to Spearman.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-corr="spearman"]').click()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the Spearman heatmap", `document.getElementById("chart-corr").dataset.method === "spearman" &&
		document.getElementById("corr-note").textContent === "Spearman over every row."`, 3*time.Second)
	if got := evalString(t, ctx, `document.querySelector('[data-corr="spearman"]').getAttribute("aria-selected")`); got != "true" {
		t.Errorf("the Spearman tab is not selected: %q", got)
	}

	// The scatter redraws when a select changes: z against y, over the
	// sampled rows where z is present.
	before := evalString(t, ctx, `JSON.stringify(echarts.getInstanceByDom(document.getElementById("chart-scatter")).getOption().series[0].data.slice(0, 3))`)
	if got := evalString(t, ctx, `document.getElementById("chart-scatter").dataset.x + " " + document.getElementById("chart-scatter").dataset.points`); got != "x 1000" {
		t.Errorf("the first scatter is %q, want x over 1000 points", got)
	}
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`(() => {
		const sel = document.getElementById("scatter-x");
		sel.value = "2";
		sel.dispatchEvent(new Event("change", {bubbles: true}));
	})()`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the scatter of z", `document.getElementById("chart-scatter").dataset.x === "z" &&
		echarts.getInstanceByDom(document.getElementById("chart-scatter")).getOption().xAxis[0].name === "z"`, 3*time.Second)
	points, err := strconv.Atoi(evalString(t, ctx, `document.getElementById("chart-scatter").dataset.points`))
	if err != nil || points < 700 || points > 900 {
		t.Errorf("z's scatter has %d points (%v), want about 800 of 1000", points, err)
	}
	after := evalString(t, ctx, `JSON.stringify(echarts.getInstanceByDom(document.getElementById("chart-scatter")).getOption().series[0].data.slice(0, 3))`)
	if after == before {
		t.Errorf("the scatter's data did not change: %s", after)
	}
	if got := evalString(t, ctx, `document.getElementById("scatter-count").textContent`); !strings.Contains(got, "of 1,000 sampled rows have both values") {
		t.Errorf("the scatter's count reads %q", got)
	}

	// A tooltip shows, escaped, within the page's CSP.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`echarts.getInstanceByDom(document.getElementById("chart-missing")).dispatchAction({type: "showTip", seriesIndex: 0, dataIndex: 2})`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the missing-value tooltip", `[...document.querySelectorAll("#chart-missing div")].some(d => d.innerText.includes("missing (") && d.innerText.includes("of 3,000 rows"))`, 3*time.Second)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`echarts.getInstanceByDom(document.getElementById("chart-missing")).dispatchAction({type: "hideTip"})`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // the tooltip fades out

	// The page as a person sees it, kept for review.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(artifactDir(t), "dashboard-data-report.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the report page: %s", path)

	time.Sleep(300 * time.Millisecond) // let late console events arrive
	console.Check(t)
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("the dashboard logged errors:\n%s", logs.String())
	}
}
