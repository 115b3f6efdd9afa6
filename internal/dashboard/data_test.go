package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/analysis"
	"github.com/hpcml/hpcml/internal/profile"
)

// hostileLabel is a category that would end the page's JSON script
// element if it were not escaped.
const hostileLabel = `</script><script>alert("x")</script>`

// writeProfileCSV writes a table of n rows with every kind of column a
// report charts: x and y (strongly correlated), z (a fifth missing), an
// integer count, a label (with hostileLabel among its values), a
// boolean, a timestamp and a constant.
func writeProfileCSV(t testing.TB, n int) string {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 8))
	var b strings.Builder
	b.WriteString("x,y,z,count,label,flag,when,const\n")
	labels := []string{"red", "green", "blue", "red", "green", "red", hostileLabel}
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		x := r.NormFloat64()
		z := ""
		if r.Float64() > 0.2 {
			z = fmt.Sprintf("%.4f", math.Exp(r.NormFloat64()))
		}
		label := labels[r.IntN(len(labels))]
		if strings.ContainsAny(label, `",<`) {
			label = `"` + strings.ReplaceAll(label, `"`, `""`) + `"`
		}
		fmt.Fprintf(&b, "%.6f,%.6f,%s,%d,%s,%t,%s,7\n", x, 2*x+0.1*r.NormFloat64(), z, r.IntN(50),
			label, r.Float64() < 0.3, start.Add(time.Duration(i)*time.Hour).Format(time.RFC3339))
	}
	path := filepath.Join(t.TempDir(), "table.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// profileReport profiles the CSV at path as `hpcml data profile --save`
// does, in two partitions.
func profileReport(t testing.TB, id, path string, opts profile.Options, created time.Time) *analysis.ProfileReport {
	t.Helper()
	st, parts, err := analysis.ProfileLocal(context.Background(), path, analysis.ProfileOptions{Partitions: 2, Profile: opts})
	if err != nil {
		t.Fatal(err)
	}
	return &analysis.ProfileReport{ID: id, Kind: analysis.KindProfile, Source: path, CreatedAt: created,
		Partitions: len(parts), Seconds: 0.25, Profile: st.Report()}
}

// summaryReport is a report with only what a list shows.
func summaryReport(id, source string, created time.Time, rows int64) *analysis.ProfileReport {
	return &analysis.ProfileReport{ID: id, Kind: analysis.KindProfile, Source: source, CreatedAt: created, Partitions: 3,
		Profile: &profile.Report{Table: profile.Table{Rows: rows, Columns: 4}, Alerts: []profile.Alert{{Type: profile.AlertDuplicates}}}}
}

func TestDataPage(t *testing.T) {
	src := newFakeSource()
	h, _ := newTestHandler(t, src)

	res := do(t, h, "GET", "/data", true, nil)
	if res.Code != http.StatusOK {
		t.Fatalf("GET /data: %d\n%s", res.Code, res.Body)
	}
	mustContain(t, "the empty data page", res.Body,
		"<title>hpcml · data</title>", `<a href="/data" aria-current="page">Data</a>`,
		"No profile reports yet", "hpcml data profile URL --save", "hpcml data profile URL --submit")

	now := time.Now()
	src.addReport(summaryReport("old", "/data/old.csv", now.Add(-72*time.Hour), 10))
	src.addReport(summaryReport("newest", "s3://lake/new/", now.Add(-time.Minute), 1234567))
	src.addReport(summaryReport("middle", "/data/<b>middle</b>.csv", now.Add(-2*time.Hour), 20))
	res = do(t, h, "GET", "/data", true, nil)
	if res.Code != http.StatusOK {
		t.Fatalf("GET /data: %d", res.Code)
	}
	mustContain(t, "the data page", res.Body,
		`href="/data/reports/newest"`, "s3://lake/new/", "1,234,567", "1m ago",
		"/data/&lt;b&gt;middle&lt;/b&gt;.csv", `<span class="alert-count">1</span>`)
	mustNotContain(t, "the data page", res.Body, "No profile reports yet", "<b>middle</b>")
	order := regexp.MustCompile(`data-report="([^"]+)"`).FindAllStringSubmatch(res.Body, -1)
	var ids []string
	for _, m := range order {
		ids = append(ids, m[1])
	}
	if strings.Join(ids, " ") != "newest middle old" {
		t.Errorf("reports listed as %v, want newest first", ids)
	}

	// Every page links to it.
	mustContain(t, "the jobs page", do(t, h, "GET", "/", true, nil).Body, `<a href="/data">Data</a>`)
}

// reportJSON extracts and decodes the report data embedded in a page.
func reportJSON(t *testing.T, body string) (chartData, string) {
	t.Helper()
	m := regexp.MustCompile(`(?s)<script type="application/json" id="report-data">(.*?)</script>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no report data in the page")
	}
	var d chartData
	if err := json.Unmarshal([]byte(m[1]), &d); err != nil {
		t.Fatalf("the embedded report data is not JSON: %v\n%.300s", err, m[1])
	}
	return d, m[1]
}

func TestReportPage(t *testing.T) {
	src := newFakeSource()
	h, logs := newTestHandler(t, src)
	path := writeProfileCSV(t, 3000)
	rep := profileReport(t, "20260101-120000-abcdef", path, profile.Options{}, time.Now().Add(-time.Hour))
	src.addReport(rep)

	res := do(t, h, "GET", "/data/reports/"+rep.ID, true, nil)
	if res.Code != http.StatusOK {
		t.Fatalf("GET the report: %d\n%s", res.Code, res.Body)
	}
	mustContain(t, "the report page", res.Body,
		"<title>hpcml · report 20260101-120000-abcdef</title>", `<a href="/data" aria-current="page">Data</a>`,
		path, "3,000", "2 (here)", "Duplicate rows",
		"HIGH_CORRELATION", "CONSTANT", `<a class="alert-col" href="#col-0">x</a>`,
		`id="chart-missing"`, `id="chart-corr"`, `data-corr="spearman"`, `id="chart-scatter"`,
		`<select id="scatter-x"><option value="0" selected>x</option>`, `<option value="1" selected>y</option>`,
		`data-chart="numeric" data-column="0"`, `data-chart="top" data-column="4"`, `data-chart="top" data-column="5"`,
		"whiskers reach 5% and 95%",
		"A sample of 1,000 of 3,000 rows",
		`src="/static/vendor/echarts/echarts-6.1.0.min.js?v=`, `src="/static/data.js?v=`,
		`title="2024-01-01T00:00:00Z">2024-01-01<`, // the timestamp column's min
	)
	mustNotContain(t, "the report page", res.Body, hostileLabel, "Charts show the first")
	// Numeric columns get a histogram, categorical and boolean ones their
	// top values, the timestamp none.
	if n := strings.Count(res.Body, `data-chart="numeric"`); n != 5 {
		t.Errorf("%d histograms, want 5 (x, y, z, count, const)", n)
	}
	if n := strings.Count(res.Body, `data-chart="top"`); n != 2 {
		t.Errorf("%d top-value charts, want 2 (label, flag)", n)
	}
	if n := strings.Count(res.Body, "</script>"); n != 4 {
		t.Errorf("%d </script> in the page, want 4 (app.js, the data, ECharts, data.js): the hostile label is not escaped", n)
	}

	d, raw := reportJSON(t, res.Body)
	if strings.Contains(raw, "NaN") || strings.Contains(raw, "Infinity") {
		t.Error("the embedded JSON holds NaN or Infinity")
	}
	if len(d.Columns) != 8 || d.Rows != 3000 || d.Columns[2].Name != "z" || d.Columns[2].Missing == 0 {
		t.Fatalf("embedded columns %d, rows %d", len(d.Columns), d.Rows)
	}
	var found bool
	for _, tv := range d.Columns[4].TopValues {
		found = found || tv.Value == hostileLabel
	}
	if !found {
		t.Errorf("the label's top values lost the hostile one: %+v", d.Columns[4].TopValues)
	}
	if d.Correlations == nil || len(d.Correlations.Columns) != 5 || len(d.Correlations.Spearman) != 5 {
		t.Fatalf("embedded correlations %+v", d.Correlations)
	}
	if d.Sample == nil || len(d.Sample.Rows) != 1000 || len(d.Sample.Rows[0]) != 5 || d.Sample.Exact {
		t.Fatalf("embedded sample: %+v", d.Sample)
	}
	var nulls int
	for _, row := range d.Sample.Rows {
		if row[2] == nil {
			nulls++
		}
	}
	if nulls < 100 || nulls > 300 {
		t.Errorf("%d of 1000 sampled z are null, want about a fifth", nulls)
	}

	for target, code := range map[string]int{
		"/data/reports/no-such-report":             http.StatusNotFound,
		"/data/reports/Bad_Id":                     http.StatusBadRequest,
		"/data/reports/-dash":                      http.StatusBadRequest,
		"/data/reports/" + strings.Repeat("a", 64): http.StatusBadRequest,
		"/data/reports/" + rep.ID + "/more":        http.StatusNotFound,
	} {
		res := do(t, h, "GET", target, true, nil)
		if res.Code != code {
			t.Errorf("GET %s: %d, want %d", target, res.Code, code)
		}
		mustContain(t, "the error page of "+target, res.Body, `href="/data"`)
	}
	if res := do(t, h, "GET", "/data/reports/"+rep.ID, false, nil); res.Code != http.StatusSeeOther ||
		res.Header.Get("Location") != "/login?next=%2Fdata%2Freports%2F"+rep.ID {
		t.Errorf("without a session: %d to %q", res.Code, res.Header.Get("Location"))
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("logged errors:\n%s", logs)
	}
}

// TestReportPageWide: a table of 100 columns charts the first 64, and says
// so; the table lists all.
func TestReportPageWide(t *testing.T) {
	var b strings.Builder
	for c := range 100 {
		if c > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "c%03d", c)
	}
	b.WriteByte('\n')
	for r := range 30 {
		for c := range 100 {
			if c > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%d", (r*(c+1))%17)
		}
		b.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "wide.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	src := newFakeSource()
	src.addReport(profileReport(t, "wide", path, profile.Options{MaxCorrelationColumns: 100}, time.Now()))
	h, _ := newTestHandler(t, src)
	res := do(t, h, "GET", "/data/reports/wide", true, nil)
	if res.Code != http.StatusOK {
		t.Fatalf("GET: %d", res.Code)
	}
	mustContain(t, "the wide report", res.Body, "Charts show the first 64 of 100 columns", ">c099</td>", `id="col-63"`)
	mustNotContain(t, "the wide report", res.Body, `id="col-64"`, ">c064</option>")
	if n := strings.Count(res.Body, `data-chart="numeric"`); n != 64 {
		t.Errorf("%d histograms, want 64", n)
	}
	d, _ := reportJSON(t, res.Body)
	if len(d.Columns) != 64 || len(d.Correlations.Columns) != 64 || len(d.Correlations.Pearson) != 64 ||
		len(d.Correlations.Pearson[63]) != 64 || len(d.Sample.Columns) != 64 || len(d.Sample.Rows[0]) != 64 || !d.Sample.Exact {
		t.Errorf("embedded data not cut to 64 columns: %d columns, %d correlated, %d sampled",
			len(d.Columns), len(d.Correlations.Columns), len(d.Sample.Columns))
	}
}

func TestDataSourceError(t *testing.T) {
	src := newFakeSource()
	src.err = errors.New("bucket unreachable (secret detail)")
	h, _ := newTestHandler(t, src)
	for _, target := range []string{"/data", "/data/reports/some-id"} {
		res := do(t, h, "GET", target, true, nil)
		if res.Code != http.StatusInternalServerError {
			t.Errorf("GET %s: %d, want 500", target, res.Code)
		}
		mustNotContain(t, "the 500 page", res.Body, "secret detail")
	}
}

func TestDataFormat(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		want string
	}{
		{0, "0"}, {1, "1"}, {-2.5, "-2.5"}, {1234567.891, "1234568"}, {0.123456789, "0.123457"},
		{0.000123456, "0.000123456"}, {1e-7, "1e-07"}, {3e20, "3e+20"}, {1e6 + 0.3, "1000000"},
	} {
		if got := formatFloat(tt.v); got != tt.want {
			t.Errorf("formatFloat(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
	for _, tt := range []struct {
		v    float64
		want string
	}{{0, "0%"}, {0.0004, "<0.1%"}, {0.125, "12.5%"}, {1, "100.0%"}, {0.9999, ">99.9%"}} {
		if got := percent(tt.v); got != tt.want {
			t.Errorf("percent(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", -1234567: "-1,234,567"} {
		if got := groupDigits(n); got != want {
			t.Errorf("groupDigits(%d) = %q, want %q", n, got, want)
		}
	}
	if got := jobRange([]int64{4, 5, 6}); got != "4-6" {
		t.Errorf("jobRange = %q", got)
	}
	for in, want := range map[string]string{
		"2024-03-04T05:06:07.5+02:00": "2024-03-04 05:06:07 +02:00",
		"2024-03-04T05:06:00Z":        "2024-03-04 05:06",
		"2024-03-04T00:00:00Z":        "2024-03-04",
		"not a time":                  "not a time",
	} {
		if got := shortTime(in); got != want {
			t.Errorf("shortTime(%q) = %q, want %q", in, got, want)
		}
	}
	if got := jobRange([]int64{4, 9}); got != "4, 9" {
		t.Errorf("jobRange = %q", got)
	}
}
