package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

// ---- capacity (header of every page) ----

type capacityView struct {
	Running int
	Meters  []meter
}

// meter is one resource's use, drawn as an SVG bar.
type meter struct {
	Label string // CPU, Memory, GPU
	Text  string // "1.5 / 8"
	Pct   string // SVG width of the used part, of 100
	Level string // ok, high, full: the bar's colour
	Title string
}

func (h *handler) capacity(ctx context.Context) *capacityView {
	c, err := h.src.Capacity(ctx)
	if err != nil {
		// The header is not worth failing a page for.
		h.log.Warn("dashboard: reading capacity", "err", err)
		return nil
	}
	return capacityOf(c)
}

func capacityOf(c job.Capacity) *capacityView {
	v := &capacityView{Running: c.Running}
	v.Meters = append(v.Meters,
		newMeter("CPU", c.Used.CPUs, c.Total.CPUs,
			formatCPUs(c.Used.CPUs)+" / "+formatCPUs(c.Total.CPUs), "cores"),
		newMeter("Memory", float64(c.Used.MemoryMB), float64(c.Total.MemoryMB),
			humanMB(c.Used.MemoryMB)+" / "+humanMB(c.Total.MemoryMB), ""))
	if c.Total.GPUs > 0 {
		v.Meters = append(v.Meters, newMeter("GPU", float64(c.Used.GPUs), float64(c.Total.GPUs),
			fmt.Sprintf("%d / %d", c.Used.GPUs, c.Total.GPUs), "GPUs"))
	}
	return v
}

func newMeter(label string, used, total float64, text, unit string) meter {
	m := meter{Label: label, Text: text, Pct: pct(used, total), Level: "ok"}
	if total > 0 {
		switch f := used / total; {
		case f >= 0.999:
			m.Level = "full"
		case f >= 0.8:
			m.Level = "high"
		}
	}
	m.Title = fmt.Sprintf("%s in use: %s %s", label, text, unit)
	return m
}

func (h *handler) capacityFragment(r *http.Request) (string, any, error) {
	c, err := h.src.Capacity(r.Context())
	if err != nil {
		return "", nil, sourceErr("capacity", err)
	}
	return "capacity", capacityOf(c), nil
}

// ---- job rows (jobs page, array tasks) ----

type stateCount struct {
	State job.State
	Class string
	Count int
	Href  string
}

// jobRow is one job, formatted for a table row.
type jobRow struct {
	ID             string
	Href           string
	Name           string
	Queue          string
	QueueHref      string
	State          job.State
	Class          string
	Reason         string
	Attempt        string
	Submitted      string
	SubmittedTitle string
	Elapsed        string
	Exit           string
	ExitBad        bool
	Cost           string
	Array          *arrayView
}

// arrayView is an array parent's tasks by state, with a stacked bar.
type arrayView struct {
	Size     int
	Href     string
	Counts   []stateCount
	Segments []segment
	Summary  string
}

type segment struct {
	X, W  string
	Class string
	Title string
}

func (h *handler) rowOf(j *job.Job, now time.Time) jobRow {
	id := j.DisplayID()
	r := jobRow{
		ID:             id,
		Href:           "/jobs/" + id,
		Name:           j.Name,
		Queue:          j.Queue,
		QueueHref:      "/?" + url.Values{"queue": {j.Queue}}.Encode(),
		State:          j.State,
		Class:          stateClass(j.State),
		Reason:         j.Reason,
		Attempt:        dash,
		Submitted:      relTime(now, j.SubmittedAt),
		SubmittedTitle: absTime(j.SubmittedAt),
		Elapsed:        dash,
		Exit:           exitString(j.ExitCode, j.Signal),
		ExitBad:        exitBad(j.ExitCode, j.Signal),
		Cost:           formatCost(j.Cost),
	}
	if r.Name == "" {
		r.Name = dash
	}
	if j.Attempt > 0 {
		r.Attempt = strconv.Itoa(j.Attempt)
		if max := j.Spec.Retry.Attempts; max > 1 {
			r.Attempt += "/" + strconv.Itoa(max)
		}
	}
	if j.StartedAt != nil {
		end := now
		if j.EndedAt != nil {
			end = *j.EndedAt
		}
		r.Elapsed = humanDuration(end.Sub(*j.StartedAt))
	}
	if j.IsArrayParent() {
		r.Array = arrayOf(j)
	}
	return r
}

func arrayOf(j *job.Job) *arrayView {
	a := &arrayView{Size: j.ArraySize, Href: "/?array=" + strconv.FormatInt(j.ID, 10)}
	counted := 0
	for _, s := range job.States {
		if n := j.ArrayCounts[s]; n > 0 {
			a.Counts = append(a.Counts, stateCount{State: s, Class: stateClass(s), Count: n,
				Href: "/?" + url.Values{"array": {strconv.FormatInt(j.ID, 10)}, "state": {string(s)}}.Encode()})
			counted += n
		}
	}
	total := max(counted, j.ArraySize)
	x := 0.0
	var parts []string
	for _, c := range a.Counts {
		w := 100 * float64(c.Count) / float64(total)
		a.Segments = append(a.Segments, segment{
			X: strconv.FormatFloat(x, 'f', 2, 64), W: strconv.FormatFloat(w, 'f', 2, 64),
			Class: c.Class, Title: fmt.Sprintf("%d %s", c.Count, strings.ToLower(string(c.State))),
		})
		parts = append(parts, fmt.Sprintf("%d %s", c.Count, strings.ToLower(string(c.State))))
		x += w
	}
	a.Summary = strings.Join(parts, ", ")
	return a
}

// ---- jobs page ----

type option struct {
	Value, Label string
	Selected     bool
}

type jobsPageView struct {
	States      []option
	Queues      []option
	Array       string // the array parent whose tasks are listed
	ArrayParent *jobRow
	Limit       string
	Filtered    bool
	FragmentURL string
	Fragment    jobsFragmentView
}

// jobsFragmentView is the part of the jobs page that refreshes live.
type jobsFragmentView struct {
	Summary []stateCount
	Total   int
	Rows    []jobRow
	Limited bool
	Limit   int
	Empty   string
}

type jobsQuery struct {
	filter JobFilter
	array  string
	limit  string
}

func parseJobsQuery(r *http.Request) (jobsQuery, error) {
	q := r.URL.Query()
	jq := jobsQuery{filter: JobFilter{Limit: defaultLimit}}
	if s := strings.ToUpper(strings.TrimSpace(q.Get("state"))); s != "" {
		if !job.State(s).Valid() {
			return jq, badRequest(fmt.Sprintf("%q is not a job state.", q.Get("state")))
		}
		jq.filter.State = job.State(s)
	}
	if name := strings.TrimSpace(q.Get("queue")); name != "" {
		if !job.ValidName(name) {
			return jq, notFound(fmt.Sprintf("There is no queue %q.", name))
		}
		jq.filter.Queue = name
	}
	if a := strings.TrimSpace(q.Get("array")); a != "" {
		id, _, isTask, err := job.ParseID(a)
		if err != nil || isTask {
			return jq, notFound(fmt.Sprintf("%q is not an array job id.", a))
		}
		jq.filter.Parent = id
		jq.array = strconv.FormatInt(id, 10)
	}
	if l := strings.TrimSpace(q.Get("limit")); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return jq, badRequest(fmt.Sprintf("limit %q must be a positive number.", l))
		}
		jq.filter.Limit = min(n, maxLimit)
		jq.limit = strconv.Itoa(jq.filter.Limit)
	}
	return jq, nil
}

// values is the query string that reproduces the filter.
func (jq jobsQuery) values() url.Values {
	v := url.Values{}
	if jq.filter.State != "" {
		v.Set("state", string(jq.filter.State))
	}
	if jq.filter.Queue != "" {
		v.Set("queue", jq.filter.Queue)
	}
	if jq.array != "" {
		v.Set("array", jq.array)
	}
	if jq.limit != "" {
		v.Set("limit", jq.limit)
	}
	return v
}

func (h *handler) jobsPage(r *http.Request) (*pageResult, error) {
	jq, err := parseJobsQuery(r)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	queues, err := h.src.ListQueues(ctx)
	if err != nil {
		return nil, sourceErr("queues", err)
	}
	frag, parent, err := h.jobsData(ctx, jq, queues)
	if err != nil {
		return nil, err
	}
	v := &jobsPageView{
		Array:       jq.array,
		Limit:       jq.limit,
		Filtered:    jq.filter.State != "" || jq.filter.Queue != "",
		FragmentURL: "/ui/jobs",
		Fragment:    *frag,
	}
	if enc := jq.values().Encode(); enc != "" {
		v.FragmentURL += "?" + enc
	}
	if parent != nil {
		row := h.rowOf(parent, h.now())
		v.ArrayParent = &row
	}
	v.States = append(v.States, option{Value: "", Label: "All states", Selected: jq.filter.State == ""})
	for _, s := range job.States {
		v.States = append(v.States, option{Value: string(s), Label: string(s), Selected: s == jq.filter.State})
	}
	v.Queues = append(v.Queues, option{Value: "", Label: "All queues", Selected: jq.filter.Queue == ""})
	names := make([]string, 0, len(queues)+1)
	for _, q := range queues {
		names = append(names, q.Name)
	}
	if jq.filter.Queue != "" && !slices.Contains(names, jq.filter.Queue) {
		names = append(names, jq.filter.Queue)
	}
	slices.Sort(names)
	for _, n := range names {
		v.Queues = append(v.Queues, option{Value: n, Label: n, Selected: n == jq.filter.Queue})
	}
	return &pageResult{Template: "jobs", Nav: "jobs", Content: v}, nil
}

func (h *handler) jobsFragment(r *http.Request) (string, any, error) {
	jq, err := parseJobsQuery(r)
	if err != nil {
		return "", nil, err
	}
	queues, err := h.src.ListQueues(r.Context())
	if err != nil {
		return "", nil, sourceErr("queues", err)
	}
	frag, _, err := h.jobsData(r.Context(), jq, queues)
	if err != nil {
		return "", nil, err
	}
	return "jobs_fragment", frag, nil
}

// jobsData reads the jobs the query selects, and the counts by state of
// the whole selection (not only of the rows shown).
func (h *handler) jobsData(ctx context.Context, jq jobsQuery, queues []*job.Queue) (*jobsFragmentView, *job.Job, error) {
	var parent *job.Job
	counts := map[job.State]int{}
	if jq.filter.Parent != 0 {
		p, err := h.src.GetJob(ctx, jq.array)
		if err != nil {
			return nil, nil, sourceErr("array job", err)
		}
		if !p.IsArrayParent() {
			return nil, nil, notFound(fmt.Sprintf("Job %s is not an array job.", jq.array))
		}
		parent = p
		counts = p.ArrayCounts
	} else {
		for _, q := range queues {
			if jq.filter.Queue == "" || q.Name == jq.filter.Queue {
				for s, n := range q.Counts {
					counts[s] += n
				}
			}
		}
	}
	jobs, err := h.src.ListJobs(ctx, jq.filter)
	if err != nil {
		return nil, nil, sourceErr("job list", err)
	}
	now := h.now()
	v := &jobsFragmentView{Limit: jq.filter.Limit, Limited: len(jobs) >= jq.filter.Limit}
	lookups := 0
	for _, j := range jobs {
		if jq.filter.Parent == 0 && j.ParentID != 0 {
			continue
		}
		if j.IsArrayParent() && j.ArrayCounts == nil && lookups < maxCountLookups {
			lookups++
			if full, err := h.src.GetJob(ctx, j.DisplayID()); err == nil {
				j = full
			} else {
				h.log.Warn("dashboard: counting array tasks", "job", j.ID, "err", err)
			}
		}
		v.Rows = append(v.Rows, h.rowOf(j, now))
	}
	base := jobsQuery{filter: JobFilter{Queue: jq.filter.Queue}, array: jq.array}.values()
	for _, s := range job.States {
		n := counts[s]
		v.Total += n
		if n == 0 {
			continue
		}
		link := url.Values{}
		for k, vs := range base {
			link[k] = vs
		}
		link.Set("state", string(s))
		v.Summary = append(v.Summary, stateCount{State: s, Class: stateClass(s), Count: n, Href: "/?" + link.Encode()})
	}
	if len(v.Rows) == 0 {
		switch {
		case jq.filter.State != "" || jq.filter.Queue != "":
			v.Empty = "No jobs match this filter."
		case parent != nil:
			v.Empty = "This array has no tasks yet."
		default:
			v.Empty = "No jobs yet. Submit one with: hpcml job submit -- echo hello"
		}
	}
	return v, parent, nil
}

// ---- job page ----

type field struct {
	Label string
	Value string
	Href  string
	Mono  bool
	Title string
}

type attemptRow struct {
	Number   int
	State    job.State
	Class    string
	Reason   string
	Started  string
	Ended    string
	Duration string
	Exit     string
	ExitBad  bool
	CPU      string
	MaxRSS   string
	Cost     string
	LogsHref string
	Shown    bool // its log is the one on the page
	// Where it ran: the backend's id for it ("slurm:1234"), and whether a
	// node failure or preemption took it away.
	BackendID   string
	Interrupted bool
}

type jobView struct {
	Row      jobRow
	Terminal bool
	LiveURL  string
	Fields   []field
	Command  string
	SpecJSON string
	Attempts []attemptRow
	Timeline *timelineView
	// Progress is what the running job reports of its progress.
	Progress *progressView
	Array    *arrayView
	Tasks    []jobRow
	// TasksLimited: there are more tasks than listed.
	TasksLimited bool
	TasksHref    string
	Logs         logsView
}

type logsView struct {
	Attempt    int  // 0: no attempt yet
	Pinned     bool // the user chose the attempt
	LatestHref string
	Live       bool
	Panes      []logPane
}

type logPane struct {
	Stream string
	Text   string
	URL    string // live refresh
	Href   string // the tab without script
	Active bool
}

// canonicalID validates an id from a URL and writes it as the Source
// expects it ("42", "41_3").
func canonicalID(s string) (string, error) {
	id, idx, isTask, err := job.ParseID(s)
	if err != nil {
		return "", notFound(fmt.Sprintf("%q is not a job id.", s))
	}
	if isTask {
		return fmt.Sprintf("%d_%d", id, idx), nil
	}
	return strconv.FormatInt(id, 10), nil
}

func (h *handler) jobPage(r *http.Request) (*pageResult, error) {
	v, err := h.jobData(r, true)
	if err != nil {
		return nil, err
	}
	return &pageResult{Template: "job", Title: "job " + v.Row.ID, Nav: "jobs", Content: v}, nil
}

func (h *handler) jobFragment(r *http.Request) (string, any, error) {
	v, err := h.jobData(r, false)
	if err != nil {
		return "", nil, err
	}
	return "job_live", v, nil
}

func (h *handler) jobData(r *http.Request, withLogs bool) (*jobView, error) {
	ctx := r.Context()
	id, err := canonicalID(r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	j, err := h.src.GetJob(ctx, id)
	if err != nil {
		return nil, sourceErr("job", err)
	}
	var queue *job.Queue
	if queues, err := h.src.ListQueues(ctx); err == nil {
		for _, q := range queues {
			if q.Name == j.Queue {
				queue = q
			}
		}
	} else {
		h.log.Warn("dashboard: reading queues for attempt costs", "err", err)
	}
	now := h.now()
	v := &jobView{
		Row:      h.rowOf(j, now),
		Terminal: j.State.Terminal(),
		LiveURL:  "/ui/jobs/" + j.DisplayID(),
		Command:  shellQuote(j.Spec.Command),
		Fields:   jobFields(j, now),
		Timeline: timelineOf(j, now),
	}
	if !v.Terminal {
		v.Progress = progressOf(j.Progress, now)
	}
	if spec, err := json.MarshalIndent(j.Spec, "", "  "); err == nil {
		v.SpecJSON = string(spec)
	}

	shown, pinned, err := attemptParam(r, j)
	if err != nil {
		return nil, err
	}
	for _, a := range j.Attempts {
		row := attemptRow{
			Number: a.Number, State: a.State, Class: stateClass(a.State), Reason: a.Reason,
			Started: absTimePtr(a.StartedAt), Ended: absTimePtr(a.EndedAt), Duration: dash,
			Exit: exitString(a.ExitCode, a.Signal), ExitBad: exitBad(a.ExitCode, a.Signal),
			CPU: dash, MaxRSS: dash, Cost: dash,
			LogsHref:  fmt.Sprintf("/jobs/%s?attempt=%d#logs", j.DisplayID(), a.Number),
			Shown:     a.Number == shown,
			BackendID: a.BackendID, Interrupted: a.Interrupted,
		}
		if a.StartedAt != nil {
			end := now
			if a.EndedAt != nil {
				end = *a.EndedAt
			}
			d := end.Sub(*a.StartedAt)
			row.Duration = humanDuration(d)
			if queue != nil {
				row.Cost = formatCost(queue.Cost(j.Spec.Resources, d))
			}
		}
		if a.CPUSeconds > 0 {
			row.CPU = humanDuration(time.Duration(a.CPUSeconds * float64(time.Second)))
		}
		if a.MaxRSSBytes > 0 {
			row.MaxRSS = humanBytes(a.MaxRSSBytes)
		}
		v.Attempts = append(v.Attempts, row)
	}

	if j.IsArrayParent() {
		v.Array = arrayOf(j)
		v.TasksHref = v.Array.Href
		tasks, err := h.src.ListJobs(ctx, JobFilter{Parent: j.ID, Limit: arrayTaskLimit})
		if err != nil {
			return nil, sourceErr("array tasks", err)
		}
		v.TasksLimited = len(tasks) >= arrayTaskLimit
		for _, t := range tasks {
			v.Tasks = append(v.Tasks, h.rowOf(t, now))
		}
	}

	v.Logs = logsView{Attempt: shown, Pinned: pinned, Live: !v.Terminal,
		LatestHref: "/jobs/" + j.DisplayID() + "#logs"}
	if withLogs && !j.IsArrayParent() {
		active := r.URL.Query().Get("stream")
		if active != "stderr" {
			active = "stdout"
		}
		for _, stream := range []string{"stdout", "stderr"} {
			p := logPane{Stream: stream, Active: stream == active}
			lq := url.Values{"stream": {stream}}
			hq := url.Values{"stream": {stream}}
			if pinned {
				lq.Set("attempt", strconv.Itoa(shown))
				hq.Set("attempt", strconv.Itoa(shown))
			}
			p.URL = "/ui/jobs/" + j.DisplayID() + "/log?" + lq.Encode()
			p.Href = "/jobs/" + j.DisplayID() + "?" + hq.Encode() + "#logs"
			text, err := h.readLog(ctx, j.DisplayID(), shown, stream)
			if err != nil {
				h.log.Error("dashboard: reading a log", "job", j.DisplayID(), "attempt", shown,
					"stream", stream, "err", err)
				text = "(the log could not be read)"
			}
			p.Text = text
			v.Logs.Panes = append(v.Logs.Panes, p)
		}
	}
	return v, nil
}

// progressView is a running job's report of its progress: a bar when
// the total is known, and the numbers.
type progressView struct {
	Known   bool   // the total is known: a bar
	Pct     string // SVG width of the done part, of 100
	Percent int    // for the label and aria-valuenow (rounded down: 100 only when done)
	Text    string // "1.2 GiB of 2.6 GiB · 3 of 10 files · 120 MiB/s · ETA 12s"
	Message string
	// Stale: the report is old ("3m ago"); Updated is when it was written.
	Stale   string
	Updated string
}

// progressStale: a report older than this says when it was written.
const progressStale = 30 * time.Second

func progressOf(p *job.Progress, now time.Time) *progressView {
	if p == nil {
		return nil
	}
	v := &progressView{Message: p.Message, Updated: absTime(p.UpdatedAt)}
	if f, ok := p.Fraction(); ok {
		v.Known, v.Pct, v.Percent = true, pct(f, 1), int(math.Floor(f*100))
	}
	parts := p.Amounts(humanBytes, humanDuration)
	v.Text = strings.Join(parts, " · ")
	if !p.UpdatedAt.IsZero() && now.Sub(p.UpdatedAt) > progressStale {
		v.Stale = relTime(now, p.UpdatedAt)
	}
	return v
}

// attemptParam is the attempt whose log is shown: ?attempt=N, or else the
// job's current one.
func attemptParam(r *http.Request, j *job.Job) (n int, pinned bool, err error) {
	s := r.URL.Query().Get("attempt")
	if s == "" {
		return j.Attempt, false, nil
	}
	n, err = strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, false, badRequest(fmt.Sprintf("attempt %q must be a positive number.", s))
	}
	return n, true, nil
}

func jobFields(j *job.Job, now time.Time) []field {
	var fs []field
	add := func(label, value string) { fs = append(fs, field{Label: label, Value: value}) }
	if j.Reason != "" {
		add("Reason", j.Reason)
	}
	fs = append(fs, field{Label: "Queue", Value: j.Queue, Href: "/?" + url.Values{"queue": {j.Queue}}.Encode()})
	switch {
	case j.IsArrayParent():
		fs = append(fs, field{Label: "Array", Value: fmt.Sprintf("%d tasks (%s)", j.ArraySize, j.Spec.Array),
			Href: "/?array=" + strconv.FormatInt(j.ID, 10)})
	case j.ParentID != 0 && j.ArrayIndex != nil:
		fs = append(fs, field{Label: "Array task", Value: fmt.Sprintf("index %d of job %d", *j.ArrayIndex, j.ParentID),
			Href: "/jobs/" + strconv.FormatInt(j.ParentID, 10)})
	}
	attempt := dash
	if j.Attempt > 0 {
		attempt = strconv.Itoa(j.Attempt)
	}
	if j.Spec.Retry.Attempts > 0 {
		attempt += fmt.Sprintf(" of at most %d", j.Spec.Retry.Attempts)
	}
	add("Attempt", attempt)
	fs = append(fs, field{Label: "Submitted", Value: absTime(j.SubmittedAt), Title: relTime(now, j.SubmittedAt)})
	add("Started", absTimePtr(j.StartedAt))
	add("Ended", absTimePtr(j.EndedAt))
	if j.StartedAt != nil {
		add("Waited", humanDuration(j.StartedAt.Sub(j.SubmittedAt)))
		end := now
		if j.EndedAt != nil {
			end = *j.EndedAt
		}
		add("Ran", humanDuration(end.Sub(*j.StartedAt)))
	}
	add("Exit", exitString(j.ExitCode, j.Signal))
	cpu := dash // not known until an attempt reports
	if j.CPUSeconds > 0 {
		cpu = humanDuration(time.Duration(j.CPUSeconds * float64(time.Second)))
	}
	add("CPU time", cpu)
	maxRSS := dash
	if j.MaxRSSBytes > 0 {
		maxRSS = humanBytes(j.MaxRSSBytes)
	}
	add("Max RSS", maxRSS)
	add("Cost", formatCost(j.Cost))
	res := j.Spec.Resources
	resources := formatCPUs(res.CPUs) + " CPU · " + humanMB(res.MemoryMB) + " memory"
	if res.GPUs > 0 {
		resources += fmt.Sprintf(" · %d GPU", res.GPUs)
	}
	add("Resources", resources)
	if j.Spec.TimeLimit > 0 {
		add("Time limit", humanDuration(time.Duration(j.Spec.TimeLimit)))
	}
	if rp := j.Spec.Retry; rp.Attempts > 1 {
		var on []string
		for _, c := range rp.OnExitCodes {
			on = append(on, "exit "+strconv.Itoa(c))
		}
		on = append(on, rp.OnSignals...)
		if rp.OnNodeLoss {
			on = append(on, "node loss")
		}
		cond := "any failure"
		if len(on) > 0 {
			cond = strings.Join(on, ", ")
		}
		add("Retry", fmt.Sprintf("up to %d attempts on %s", rp.Attempts, cond))
	}
	for _, d := range j.Spec.DependsOn {
		fs = append(fs, field{Label: "Depends on", Value: fmt.Sprintf("%s %d", d.Type, d.JobID),
			Href: "/jobs/" + strconv.FormatInt(d.JobID, 10)})
	}
	if j.Spec.WorkDir != "" {
		fs = append(fs, field{Label: "Work dir", Value: j.Spec.WorkDir, Mono: true})
	}
	keys := make([]string, 0, len(j.Spec.Tags))
	for k := range j.Spec.Tags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fs = append(fs, field{Label: "Tag " + k, Value: j.Spec.Tags[k]})
	}
	if j.CancelRequested && !j.State.Terminal() {
		add("Cancel", "requested")
	}
	return fs
}

// readLog reads the tail of a log for display. A log that does not exist
// (yet) is empty.
func (h *handler) readLog(ctx context.Context, id string, attempt int, stream string) (string, error) {
	if attempt < 1 {
		return "", nil
	}
	b, err := h.src.Log(ctx, id, attempt, stream, logTail)
	if err != nil {
		if isNotFound(err) {
			return "", nil
		}
		return "", err
	}
	s := string(b)
	if len(b) >= logTail {
		// The cut may fall inside a line, or a UTF-8 sequence: start at
		// the next whole line.
		if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
			s = s[i+1:]
		}
		s = "[… earlier output not shown: this is the last 64 KiB …]\n" + s
	}
	return strings.ToValidUTF8(s, "\uFFFD"), nil
}

// logText serves a log tail as plain text, for the live log panes.
func (h *handler) logText(w http.ResponseWriter, r *http.Request) {
	fail := func(err error) {
		he := asHTTPError(err)
		h.logFailure(r, he)
		http.Error(w, he.Msg, he.Status)
	}
	id, err := canonicalID(r.PathValue("id"))
	if err != nil {
		fail(err)
		return
	}
	q := r.URL.Query()
	stream := q.Get("stream")
	if stream == "" {
		stream = "stdout"
	}
	if stream != "stdout" && stream != "stderr" {
		fail(badRequest("stream must be stdout or stderr"))
		return
	}
	var attempt int
	if s := q.Get("attempt"); s != "" {
		if attempt, err = strconv.Atoi(s); err != nil || attempt < 1 {
			fail(badRequest("attempt must be a positive number"))
			return
		}
	} else {
		j, err := h.src.GetJob(r.Context(), id)
		if err != nil {
			fail(sourceErr("job", err))
			return
		}
		attempt = j.Attempt
	}
	text, err := h.readLog(r.Context(), id, attempt, stream)
	if err != nil {
		fail(&httpError{Status: http.StatusInternalServerError, Msg: "Could not read the log.", Err: err})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(text))
}

// ---- timeline ----

// timelineView is an SVG Gantt chart of a job's life: the wait in the
// queue, then each attempt, on one time axis.
type timelineView struct {
	Width, Height int
	PlotX, PlotW  int
	AxisY, LabelY int
	Rows          []tlRow
	Ticks         []tlTick
}

type tlRow struct {
	Label       string
	Y, H, TextY int
	X, W        string
	Class       string
	Title       string
	Open        bool // still going on
}

type tlTick struct {
	X      string
	Label  string
	Anchor string
}

func timelineOf(j *job.Job, now time.Time) *timelineView {
	const (
		width, plotX, plotW = 800, 96, 680
		rowH, gap, top      = 16, 10, 8
	)
	t0 := j.SubmittedAt
	if t0.IsZero() {
		return nil
	}
	end := now
	if j.EndedAt != nil && j.State.Terminal() {
		end = *j.EndedAt
	}
	type span struct {
		label    string
		from, to time.Time
		open     bool
		class    string
		title    string
	}
	var spans []span
	firstStart := j.StartedAt
	for _, a := range j.Attempts {
		if a.StartedAt != nil && (firstStart == nil || a.StartedAt.Before(*firstStart)) {
			firstStart = a.StartedAt
		}
	}
	queued := span{label: "queued", from: t0, class: "st-pending"}
	if firstStart != nil {
		queued.to = *firstStart
	} else {
		queued.to, queued.open = end, !j.State.Terminal()
	}
	queued.title = "queued " + humanDuration(queued.to.Sub(queued.from))
	spans = append(spans, queued)
	for _, a := range j.Attempts {
		if a.StartedAt == nil {
			continue
		}
		s := span{label: fmt.Sprintf("attempt %d", a.Number), from: *a.StartedAt, class: stateClass(a.State)}
		if a.EndedAt != nil {
			s.to = *a.EndedAt
		} else {
			s.to, s.open = now, true
		}
		s.title = fmt.Sprintf("attempt %d: %s, %s", a.Number, a.State, humanDuration(s.to.Sub(s.from)))
		spans = append(spans, s)
	}
	if len(spans) == 1 && j.StartedAt != nil {
		// No attempt records: draw the run from the job's own times.
		s := span{label: "run", from: *j.StartedAt, class: stateClass(j.State)}
		if j.EndedAt != nil {
			s.to = *j.EndedAt
		} else {
			s.to, s.open = now, true
		}
		s.title = fmt.Sprintf("%s, %s", j.State, humanDuration(s.to.Sub(s.from)))
		spans = append(spans, s)
	}
	for _, s := range spans {
		if s.to.After(end) {
			end = s.to
		}
	}
	total := end.Sub(t0)
	if total < time.Second {
		total = time.Second
	}
	xOf := func(t time.Time) float64 {
		return float64(plotX) + float64(plotW)*float64(t.Sub(t0))/float64(total)
	}
	v := &timelineView{Width: width, PlotX: plotX, PlotW: plotW}
	for i, s := range spans {
		x0, x1 := xOf(s.from), xOf(s.to)
		w := max(x1-x0, 2)
		y := top + i*(rowH+gap)
		v.Rows = append(v.Rows, tlRow{
			Label: s.label, Y: y, H: rowH, TextY: y + rowH - 4,
			X: strconv.FormatFloat(x0, 'f', 1, 64), W: strconv.FormatFloat(w, 'f', 1, 64),
			Class: s.class, Title: s.title, Open: s.open,
		})
	}
	v.AxisY = top + len(spans)*(rowH+gap)
	v.LabelY = v.AxisY + 14
	v.Height = v.AxisY + 20
	for i := 0; i <= 4; i++ {
		t := tlTick{X: strconv.FormatFloat(float64(plotX)+float64(plotW)*float64(i)/4, 'f', 1, 64), Anchor: "middle"}
		switch i {
		case 0:
			t.Label, t.Anchor = "submitted", "start"
		case 4:
			t.Label, t.Anchor = "+"+humanDuration(total), "end"
		default:
			t.Label = "+" + humanDuration(total*time.Duration(i)/4)
		}
		v.Ticks = append(v.Ticks, t)
	}
	return v
}

// ---- queues page ----

type queueRow struct {
	Name       string
	Href       string
	Backend    string
	Priority   int
	MaxRunning string
	PriceCPU   string
	PriceGB    string
	Counts     []stateCount
	Total      int
	Created    string
	CreatedAbs string
}

type queuesView struct {
	Rows []queueRow
}

func (h *handler) queuesData(ctx context.Context) (*queuesView, error) {
	queues, err := h.src.ListQueues(ctx)
	if err != nil {
		return nil, sourceErr("queues", err)
	}
	queues = slices.Clone(queues)
	slices.SortFunc(queues, func(a, b *job.Queue) int {
		if a.Priority != b.Priority {
			return b.Priority - a.Priority
		}
		return strings.Compare(a.Name, b.Name)
	})
	now := h.now()
	v := &queuesView{}
	for _, q := range queues {
		row := queueRow{
			Name: q.Name, Href: "/?" + url.Values{"queue": {q.Name}}.Encode(),
			Backend: q.Backend, Priority: q.Priority, MaxRunning: "no limit",
			PriceCPU: formatPrice(q.PriceCPUHour), PriceGB: formatPrice(q.PriceGBHour),
			Created: relTime(now, q.CreatedAt), CreatedAbs: absTime(q.CreatedAt),
		}
		if q.MaxRunning > 0 {
			row.MaxRunning = strconv.Itoa(q.MaxRunning)
		}
		for _, s := range job.States {
			if n := q.Counts[s]; n > 0 {
				row.Total += n
				row.Counts = append(row.Counts, stateCount{State: s, Class: stateClass(s), Count: n,
					Href: "/?" + url.Values{"queue": {q.Name}, "state": {string(s)}}.Encode()})
			}
		}
		v.Rows = append(v.Rows, row)
	}
	return v, nil
}

func (h *handler) queuesPage(r *http.Request) (*pageResult, error) {
	v, err := h.queuesData(r.Context())
	if err != nil {
		return nil, err
	}
	return &pageResult{Template: "queues", Title: "queues", Nav: "queues", Content: v}, nil
}

func (h *handler) queuesFragment(r *http.Request) (string, any, error) {
	v, err := h.queuesData(r.Context())
	if err != nil {
		return "", nil, err
	}
	return "queues_table", v, nil
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
