package e2e

import (
	"encoding/json"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestDashboardDataReports: a report stored with `hpcml data profile
// --save` is listed on the dashboard's /data, and its page renders with
// the chart data embedded and the vendored ECharts served.
func TestDashboardDataReports(t *testing.T) {
	t.Parallel()
	path, _, _ := profileTable(t, 2000)
	s := startServer(t)

	get := func(target string, want int) string {
		t.Helper()
		code, _, body := s.raw("GET", target, s.Token, nil)
		if code != want {
			t.Fatalf("GET %s: %d, want %d\n%.400s", target, code, want, body)
		}
		return string(body)
	}
	if body := get("/data", http.StatusOK); !strings.Contains(body, "No profile reports yet") {
		t.Fatalf("the data page before any report:\n%.1000s", body)
	}

	rep := runProfile(t, s, path, "--save")
	list := get("/data", http.StatusOK)
	for _, want := range []string{`href="/data/reports/` + rep.ID + `"`, html.EscapeString(rep.Source), "2,000"} {
		if !strings.Contains(list, want) {
			t.Errorf("the data page lacks %q", want)
		}
	}

	page := get("/data/reports/"+rep.ID, http.StatusOK)
	for _, want := range []string{"HIGH_CORRELATION", `id="chart-missing"`, `id="chart-corr"`, `id="chart-scatter"`,
		`data-chart="numeric"`, `data-chart="top"`, "A sample of 1,000 of 2,000 rows"} {
		if !strings.Contains(page, want) {
			t.Errorf("the report page lacks %q", want)
		}
	}
	m := regexp.MustCompile(`(?s)<script type="application/json" id="report-data">(.*?)</script>`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the report page embeds no report data")
	}
	var data struct {
		Columns []struct{ Name string } `json:"columns"`
		Sample  struct {
			Columns []string     `json:"columns"`
			Rows    [][]*float64 `json:"rows"`
		} `json:"sample"`
	}
	if err := json.Unmarshal([]byte(m[1]), &data); err != nil {
		t.Fatalf("the embedded report data: %v", err)
	}
	if len(data.Columns) != 4 || strings.Join(data.Sample.Columns, ",") != "x,y,z" || len(data.Sample.Rows) != 1000 {
		t.Errorf("embedded: %d columns, sample of %v × %d rows", len(data.Columns), data.Sample.Columns, len(data.Sample.Rows))
	}
	// The page's scripts are served (without a session, as static files).
	for _, src := range regexp.MustCompile(`<script src="(/static/[^"]+)"`).FindAllStringSubmatch(page, -1) {
		code, _, body := s.raw("GET", html.UnescapeString(src[1]), "", nil)
		if code != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s: %d, %d bytes", src[1], code, len(body))
		}
	}
	if !strings.Contains(page, "/static/vendor/echarts/echarts-6.1.0.min.js") {
		t.Error("the report page does not load ECharts")
	}

	get("/data/reports/no-such-report", http.StatusNotFound)
	get("/data/reports/Not_An_Id", http.StatusBadRequest)
}
