package dashboard

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/analysis"
	"github.com/hpcml/hpcml/internal/profile"
)

// The data pages: the stored profile reports (`hpcml data profile --save`
// or --submit), listed, and one drawn as charts by web/static/data.js from
// the report's JSON embedded in the page.

// maxChartColumns bounds the columns a report page charts (the first ones
// in schema order); the statistics table lists every column.
const maxChartColumns = 64

// ---- /data ----

type dataView struct {
	Reports []reportRow
}

type reportRow struct {
	ID           string
	Href         string
	Source       string
	Created      string
	CreatedTitle string
	Rows         string
	Columns      string
	Partitions   int
	Alerts       int
}

func (h *handler) dataPage(r *http.Request) (*pageResult, error) {
	list, err := h.src.ListReports(r.Context())
	if err != nil {
		return nil, sourceErr("reports", err)
	}
	slices.SortStableFunc(list, func(a, b analysis.Summary) int { return b.CreatedAt.Compare(a.CreatedAt) })
	now := h.now()
	v := &dataView{}
	for _, s := range list {
		v.Reports = append(v.Reports, reportRow{
			ID:           s.ID,
			Href:         reportHref(s.ID),
			Source:       s.Source,
			Created:      relTime(now, s.CreatedAt),
			CreatedTitle: absTime(s.CreatedAt),
			Rows:         groupDigits(s.Rows),
			Columns:      groupDigits(int64(s.Columns)),
			Partitions:   s.Partitions,
			Alerts:       s.Alerts,
		})
	}
	return &pageResult{Template: "data", Title: "data", Nav: "data", Content: v}, nil
}

func reportHref(id string) string { return "/data/reports/" + id }

// ---- /data/reports/{id} ----

type reportView struct {
	ID      string
	Source  string
	Fields  []field
	Types   string
	Alerts  []alertRow
	Columns []columnRow

	// Charted is how many columns are charted, of Total.
	Charted, Total int
	// ColumnCharts are the per-column charts, in schema order.
	ColumnCharts []columnChart
	// Correlations: the heatmap, over CorrColumns columns.
	Correlations   bool
	CorrColumns    int
	SpearmanNote   string
	ScatterColumns []string
	SampleNote     string
	// Data is what data.js draws, rendered as JSON by html/template.
	Data chartData
}

type alertRow struct {
	Type    string
	Columns []columnLink
	Message string
}

type columnLink struct {
	Name string
	Href string // "" when the column has no chart
}

type columnRow struct {
	Name     string
	Href     string
	Type     string
	Count    string
	Missing  string
	Distinct string
	Mean     cell
	Stddev   cell
	Min      cell
	P25      cell
	P50      cell
	P75      cell
	Max      cell
	Top      string
	TopTitle string
}

// cell is a number as shown, with its full value as a tooltip.
type cell struct {
	Text  string
	Title string
}

// columnChart is one column's chart container.
type columnChart struct {
	Index int // in chartData.Columns
	ID    string
	Name  string
	Type  string
	Kind  string // numeric (histogram and box plot), top (top values), none
	Note  string
}

// chartData is the part of the report that data.js draws, in the report's
// own JSON shape (docs/profile.md): the first maxChartColumns columns, the
// correlation matrices and the row sample over the charted columns.
type chartData struct {
	Columns      []profile.Column      `json:"columns"`
	Correlations *profile.Correlations `json:"correlations"`
	Sample       *profile.Sample       `json:"sample"`
	Rows         int64                 `json:"rows"`
}

func (h *handler) reportPage(r *http.Request) (*pageResult, error) {
	id := r.PathValue("id")
	if err := analysis.CheckID(id); err != nil {
		return nil, badRequest("That is not a report id: ids are 1-63 characters of a-z, 0-9 and -.")
	}
	rep, err := h.src.GetReport(r.Context(), id)
	if err != nil {
		return nil, sourceErr("report", err)
	}
	if rep.Profile == nil {
		return nil, &httpError{Status: http.StatusInternalServerError, Msg: "Could not read the report.",
			Err: fmt.Errorf("report %s has no profile", id)}
	}
	return &pageResult{Template: "report", Title: "report " + id, Nav: "data", Content: reportOf(rep, h.now())}, nil
}

func reportOf(rep *analysis.ProfileReport, now time.Time) *reportView {
	p := rep.Profile
	v := &reportView{ID: rep.ID, Source: rep.Source, Total: len(p.Columns)}
	v.Charted = min(len(p.Columns), maxChartColumns)
	charted := map[string]string{} // name -> anchor
	for i, c := range p.Columns[:v.Charted] {
		if _, dup := charted[c.Name]; !dup {
			charted[c.Name] = "#" + chartID(i)
		}
	}

	t := p.Table
	add := func(label, value, title string) {
		v.Fields = append(v.Fields, field{Label: label, Value: value, Title: title})
	}
	add("Source", rep.Source, "")
	add("Created", relTime(now, rep.CreatedAt), absTime(rep.CreatedAt))
	add("Rows", groupDigits(t.Rows), "")
	add("Columns", groupDigits(int64(t.Columns)), "")
	add("Memory", humanBytes(t.MemoryBytes), "the data as Arrow arrays")
	add("Missing cells", fmt.Sprintf("%s (%s)", groupDigits(t.MissingCells), percent(t.MissingCellsShare)), "")
	dup := fmt.Sprintf("%s (%s)", groupDigits(t.DuplicateRows), percent(t.DuplicateRowsShare))
	dupTitle := "exact"
	if !t.DuplicateRowsExact {
		dup = "≈" + dup
		dupTitle = fmt.Sprintf("estimated, standard error %.0f rows", t.DuplicateRowsStdErr)
	}
	add("Duplicate rows", dup, dupTitle)
	parts := strconv.Itoa(rep.Partitions)
	if len(rep.Jobs) > 0 {
		parts += fmt.Sprintf(" (%d jobs)", len(rep.Jobs))
	} else {
		parts += " (here)"
	}
	add("Partitions", parts, "")
	if rep.Seconds > 0 {
		add("Took", humanDuration(time.Duration(rep.Seconds*float64(time.Second))), "")
	}
	if len(rep.Jobs) > 0 {
		// The first partition's job; the rest follow it.
		first := strconv.FormatInt(rep.Jobs[0], 10)
		v.Fields = append(v.Fields, field{Label: "Jobs", Value: jobRange(rep.Jobs), Href: "/jobs/" + first, Mono: true})
	}
	var types []string
	for _, name := range []string{profile.TypeNumeric, profile.TypeCategorical, profile.TypeText,
		profile.TypeBoolean, profile.TypeDateTime, profile.TypeUnsupported} {
		if n := t.Types[name]; n > 0 {
			types = append(types, fmt.Sprintf("%d %s", n, name))
		}
	}
	v.Types = strings.Join(types, " · ")

	for _, a := range p.Alerts {
		ar := alertRow{Type: a.Type, Message: a.Message}
		for _, c := range a.Columns {
			ar.Columns = append(ar.Columns, columnLink{Name: c, Href: charted[c]})
		}
		v.Alerts = append(v.Alerts, ar)
	}

	for i, c := range p.Columns {
		row := columnRow{
			Name:     c.Name,
			Type:     c.Type,
			Count:    groupDigits(c.Count),
			Missing:  groupDigits(c.Missing),
			Distinct: groupDigits(c.Distinct),
		}
		if i < v.Charted {
			row.Href = "#" + chartID(i)
		}
		if c.Missing > 0 {
			row.Missing += " (" + percent(c.MissingShare) + ")"
		}
		if !c.DistinctExact {
			row.Distinct = "≈" + row.Distinct
		}
		none := cell{Text: dash}
		row.Mean, row.Stddev, row.Min, row.P25, row.P50, row.P75, row.Max = none, none, none, none, none, none, none
		switch {
		case c.Numeric != nil:
			n := c.Numeric
			row.Mean, row.Stddev, row.Min = numCell(n.Mean), numCell(n.Stddev), numCell(n.Min)
			row.P25, row.P50, row.P75, row.Max = numCell(n.P25), numCell(n.P50), numCell(n.P75), numCell(n.Max)
		case c.DateTime != nil:
			if c.DateTime.Min != nil && c.DateTime.Max != nil {
				row.Min = cell{Text: shortTime(*c.DateTime.Min), Title: *c.DateTime.Min}
				row.Max = cell{Text: shortTime(*c.DateTime.Max), Title: *c.DateTime.Max}
			}
		}
		if len(c.TopValues) > 0 {
			tv := c.TopValues[0]
			row.Top = fmt.Sprintf("%s (%s)", shorten(displayValue(tv.Value), 40), percent(tv.Share))
			row.TopTitle = fmt.Sprintf("%s: %s of %s values", displayValue(tv.Value), groupDigits(tv.Count), groupDigits(c.Count))
		}
		v.Columns = append(v.Columns, row)
	}

	d := chartData{Columns: p.Columns[:v.Charted], Rows: t.Rows}
	for i, c := range d.Columns {
		ch := columnChart{Index: i, ID: chartID(i), Name: c.Name, Type: c.Type, Kind: "none"}
		switch {
		case c.Numeric != nil && c.Numeric.Histogram != nil && len(c.Numeric.Histogram.Counts) > 0:
			ch.Kind = "numeric"
			if !c.Numeric.Histogram.Exact {
				ch.Note = "Bin counts from the quantile sketch."
			}
		case c.Numeric != nil:
			ch.Note = "No finite values."
		case len(c.TopValues) > 0:
			ch.Kind = "top"
			if c.TopValuesErrorBound > 0 {
				ch.Note = fmt.Sprintf("Counts are lower bounds, short by at most %s.", groupDigits(c.TopValuesErrorBound))
			}
		case c.DateTime != nil && c.DateTime.Min != nil && c.DateTime.Max != nil:
			ch.Note = fmt.Sprintf("From %s to %s.", *c.DateTime.Min, *c.DateTime.Max)
		case c.Count == 0:
			ch.Note = "All values missing."
		default:
			ch.Note = "Nothing to chart."
		}
		v.ColumnCharts = append(v.ColumnCharts, ch)
	}
	if cr := p.Correlations; cr != nil && len(cr.Columns) > 0 {
		d.Correlations = cutCorrelations(cr, charted)
		v.Correlations = len(d.Correlations.Columns) > 0
		v.CorrColumns = len(d.Correlations.Columns)
		if cr.SpearmanExact {
			v.SpearmanNote = "Spearman over every row."
		} else {
			v.SpearmanNote = fmt.Sprintf("Spearman over a sample of %s rows (standard error ≈ %.3f).",
				groupDigits(cr.SpearmanSampleRows), cr.SpearmanStdErr)
		}
	}
	if s := p.Sample; s != nil && len(s.Columns) > 0 {
		d.Sample = cutSample(s, charted)
		v.ScatterColumns = d.Sample.Columns
		if s.Exact {
			v.SampleNote = fmt.Sprintf("Every row (%s).", groupDigits(int64(len(s.Rows))))
		} else {
			v.SampleNote = fmt.Sprintf("A sample of %s of %s rows, the same however the table was partitioned.",
				groupDigits(int64(len(s.Rows))), groupDigits(t.Rows))
		}
	}
	v.Data = d
	return v
}

// cutCorrelations keeps the matrices' rows and columns of charted columns.
func cutCorrelations(cr *profile.Correlations, charted map[string]string) *profile.Correlations {
	keep := keepIndexes(cr.Columns, charted)
	out := *cr
	out.Columns = pick(cr.Columns, keep)
	out.Pearson = cutMatrix(cr.Pearson, keep)
	out.Spearman = cutMatrix(cr.Spearman, keep)
	return &out
}

func cutSample(s *profile.Sample, charted map[string]string) *profile.Sample {
	keep := keepIndexes(s.Columns, charted)
	if len(keep) == len(s.Columns) {
		return s
	}
	out := &profile.Sample{Columns: pick(s.Columns, keep), Rows: make([][]*float64, len(s.Rows)), Exact: s.Exact}
	for i, row := range s.Rows {
		out.Rows[i] = pick(row, keep)
	}
	return out
}

func keepIndexes(names []string, charted map[string]string) []int {
	var keep []int
	for i, n := range names {
		if _, ok := charted[n]; ok {
			keep = append(keep, i)
		}
	}
	return keep
}

func pick[T any](xs []T, idx []int) []T {
	out := make([]T, 0, len(idx))
	for _, i := range idx {
		if i < len(xs) {
			out = append(out, xs[i])
		}
	}
	return out
}

func cutMatrix(m [][]*float64, keep []int) [][]*float64 {
	out := make([][]*float64, 0, len(keep))
	for _, i := range keep {
		if i < len(m) {
			out = append(out, pick(m[i], keep))
		}
	}
	return out
}

func chartID(i int) string { return "col-" + strconv.Itoa(i) }

// jobRange writes job ids compactly: "12-17" when consecutive.
func jobRange(ids []int64) string {
	if len(ids) == 1 {
		return strconv.FormatInt(ids[0], 10)
	}
	consecutive := true
	for i := 1; i < len(ids); i++ {
		consecutive = consecutive && ids[i] == ids[i-1]+1
	}
	if consecutive {
		return fmt.Sprintf("%d-%d", ids[0], ids[len(ids)-1])
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ", ")
}

// shortTime writes an RFC 3339 time of a report for a table cell:
// "2024-01-02 03:04:05", without the seconds or the time when they are
// zero, with the offset unless it is UTC.
func shortTime(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	layout := "2006-01-02 15:04:05"
	switch {
	case t.Nanosecond() != 0:
	case t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0:
		layout = "2006-01-02"
	case t.Second() == 0:
		layout = "2006-01-02 15:04"
	}
	if _, off := t.Zone(); off != 0 {
		layout += " -07:00"
	}
	return t.Format(layout)
}

// displayValue shows the empty string as such.
func displayValue(s string) string {
	if s == "" {
		return "(empty)"
	}
	return s
}

func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// percent writes a share as a percentage: "12.5%", "<0.1%" for small
// non-zero shares.
func percent(share float64) string {
	switch {
	case share == 0:
		return "0%"
	case share < 0.001:
		return "<0.1%"
	case share > 0.999 && share < 1:
		return ">99.9%"
	}
	return strconv.FormatFloat(100*share, 'f', 1, 64) + "%"
}

func numCell(v *float64) cell {
	if v == nil {
		return cell{Text: dash}
	}
	return cell{Text: formatFloat(*v), Title: strconv.FormatFloat(*v, 'g', -1, 64)}
}

// formatFloat writes a statistic with about six significant digits, in
// plain notation for magnitudes from 1e-4 to 1e15.
func formatFloat(v float64) string {
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case math.IsNaN(v) || math.IsInf(v, 0):
		return strconv.FormatFloat(v, 'g', -1, 64)
	case a >= 1e-4 && a < 1e15:
		digits := int(math.Floor(math.Log10(a))) + 1
		s := strconv.FormatFloat(v, 'f', max(0, 6-digits), 64)
		if strings.Contains(s, ".") {
			s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
		}
		return s
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// groupDigits writes an integer with thousands separators: "1,234,567".
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
