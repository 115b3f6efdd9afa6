package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/deploy"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
)

// The Endpoints pages: real-time endpoints (/serving; /endpoints/ is the
// gateway's, SageMaker's path) with each variant's traffic, latency and
// errors over the last minute, and one endpoint (/serving/{name}) with
// its replicas, its running deployment step by step, its deployment
// history and its scale events. Both refresh every 2 s.

// Endpoints is what the Endpoints pages read. The server's Source
// implements it beside Source; a Source without it gets pages that say so.
type Endpoints interface {
	ListEndpoints(ctx context.Context) ([]*deploy.Status, error)
	// GetEndpoint reads an endpoint's live status; an unknown endpoint
	// wraps ErrNotFound.
	GetEndpoint(ctx context.Context, name string) (*deploy.Status, error)
	EndpointHistory(ctx context.Context, name string) ([]*endpoint.Deployment, error)
}

func (h *handler) endpoints() Endpoints {
	e, _ := h.src.(Endpoints)
	return e
}

func servingHref(name string) string { return "/serving/" + name }

type endpointsView struct {
	NoEndpoints bool // the server has no endpoint controller
	Rows        []endpointRow
}

type endpointRow struct {
	Name, Href, State, Class, Reason string
	Variants                         []variantView
	Created, CreatedTitle            string
	Deploying                        string
}

// variantView is a variant's line: configuration, fleet and traffic.
type variantView struct {
	Name, Model, Share       string
	Weight, Ready, Replicas  int
	Requests, Errors         int
	RPS, ErrorRate, P50, P99 string
	InFlight                 int64
	SharePct                 float64
	Green                    *fleetView
	ErrorClass               string
}

type fleetView struct {
	Model, RPS, ErrorRate, P50, P99 string
	Requests, Errors                int
}

func endpointStateClass(s endpoint.State) string {
	switch s {
	case endpoint.InService:
		return "st-succeeded"
	case endpoint.Updating, endpoint.Creating:
		return "st-running"
	case endpoint.Degraded:
		return "st-failed"
	}
	return "st-cancelled"
}

func msView(ms float64) string {
	switch {
	case ms == 0:
		return dash
	case ms < 1:
		return fmt.Sprintf("%.0f µs", ms*1000)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

func rateView(f float64) string {
	if f == 0 {
		return "0"
	}
	return strconv.FormatFloat(f, 'f', 1, 64)
}

func pctView(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" }

func variantsView(st *deploy.Status) []variantView {
	var out []variantView
	for _, v := range st.Variants {
		t := v.Traffic
		vv := variantView{Name: v.Name, Model: st.Spec.ModelText(v.Variant), Weight: v.Weight,
			Share: pctView(v.TrafficShare), SharePct: 100 * v.TrafficShare, Ready: v.Ready, Replicas: v.Replicas,
			Requests: t.Requests, Errors: t.Errors, RPS: rateView(t.RPS), ErrorRate: pctView(t.ErrorRate),
			P50: msView(t.P50Ms), P99: msView(t.P99Ms), InFlight: t.InFlight}
		if t.Errors > 0 {
			vv.ErrorClass = "bad"
		}
		if g := v.Green; g != nil && st.Deployment != nil {
			vv.Green = &fleetView{Model: fmt.Sprintf("%s:%d", st.Deployment.To.Model, st.Deployment.To.Version),
				RPS: rateView(g.RPS), ErrorRate: pctView(g.ErrorRate), P50: msView(g.P50Ms), P99: msView(g.P99Ms),
				Requests: g.Requests, Errors: g.Errors}
		}
		out = append(out, vv)
	}
	return out
}

func (h *handler) endpointsData(ctx context.Context) (*endpointsView, error) {
	src := h.endpoints()
	if src == nil {
		return &endpointsView{NoEndpoints: true}, nil
	}
	list, err := src.ListEndpoints(ctx)
	if err != nil {
		return nil, sourceErr("endpoints", err)
	}
	now := h.now()
	v := &endpointsView{}
	for _, st := range list {
		row := endpointRow{Name: st.Name, Href: servingHref(st.Name), State: string(st.State), Class: endpointStateClass(st.State),
			Reason: st.Reason, Variants: variantsView(st), Created: relTime(now, st.CreatedAt), CreatedTitle: absTime(st.CreatedAt)}
		if d := st.Deployment; d != nil {
			row.Deploying = fmt.Sprintf("%s:%d → %s:%d, %s (%s)", d.From.Model, d.From.Version, d.To.Model, d.To.Version, d.Strategy, d.Phase)
		}
		v.Rows = append(v.Rows, row)
	}
	return v, nil
}

func (h *handler) endpointsPage(r *http.Request) (*pageResult, error) {
	v, err := h.endpointsData(r.Context())
	if err != nil {
		return nil, err
	}
	return &pageResult{Template: "endpoints", Title: "Endpoints", Nav: "endpoints", Content: v}, nil
}

func (h *handler) endpointsFragment(r *http.Request) (string, any, error) {
	v, err := h.endpointsData(r.Context())
	return "endpoints_table", v, err
}

// ---- /serving/{name} ----

type endpointView struct {
	Name, State, Class, Reason, URL, Autoscale string
	Variants                                   []variantView
	Replicas                                   []replicaView
	Deployment                                 *deploymentView
	History                                    []deploymentView
	ScaleEvents                                []scaleEventView
	LiveURL                                    string
	// Async is an asynchronous endpoint's queue and settings ("": none).
	Async string
}

type replicaView struct {
	Job, JobHref, Variant, Fleet, State, Class, JobState, Addr, Since, SinceTitle, Reason string
	Outstanding                                                                           int64
}

type deploymentView struct {
	ID                                          int64
	Variant, From, To, Strategy, Phase, Outcome string
	Class, Reason, Started, StartedTitle, Took  string
	Events                                      []eventView
}

type eventView struct{ At, Title, Message string }

type scaleEventView struct {
	At, Title, Variant, Reason string
	From, To                   int
	Up                         bool
}

func replicaClass(s deploy.ReplicaState) string {
	switch s {
	case deploy.ReplicaReady:
		return "st-succeeded"
	case deploy.ReplicaStarting:
		return "st-running"
	case deploy.ReplicaUnhealthy:
		return "st-failed"
	}
	return "st-cancelled"
}

func deploymentViewOf(now time.Time, d *endpoint.Deployment) deploymentView {
	dv := deploymentView{ID: d.ID, Variant: d.Variant, From: fmt.Sprintf("%s:%d", d.From.Model, d.From.Version),
		To: fmt.Sprintf("%s:%d", d.To.Model, d.To.Version), Strategy: d.Strategy, Phase: d.Phase,
		Outcome: string(d.Outcome), Reason: d.Reason, Started: relTime(now, d.CreatedAt), StartedTitle: absTime(d.CreatedAt)}
	end := now
	switch d.Outcome {
	case endpoint.Running:
		dv.Outcome, dv.Class = "running", "st-running"
	case endpoint.Succeeded:
		dv.Class = "st-succeeded"
	case endpoint.RolledBack, endpoint.Failed:
		dv.Class = "st-failed"
	default:
		dv.Class = "st-cancelled"
	}
	if !d.EndedAt.IsZero() {
		end = d.EndedAt
	}
	dv.Took = end.Sub(d.CreatedAt).Round(time.Second).String()
	for _, ev := range d.Events {
		msg, _, _ := strings.Cut(ev.Message, "\n")
		dv.Events = append(dv.Events, eventView{At: ev.At.Local().Format("15:04:05"), Title: absTime(ev.At), Message: msg})
	}
	return dv
}

func (h *handler) endpointData(r *http.Request) (*endpointView, error) {
	src := h.endpoints()
	if src == nil {
		return nil, notFound("This server has no endpoints.")
	}
	name := r.PathValue("name")
	if !endpoint.ValidName(name) {
		return nil, badRequest(fmt.Sprintf("%q is not an endpoint name.", name))
	}
	ctx := r.Context()
	st, err := src.GetEndpoint(ctx, name)
	if isNotFound(err) {
		return nil, &httpError{Status: http.StatusNotFound, Msg: fmt.Sprintf("There is no endpoint %s.", name), Err: err}
	}
	if err != nil {
		return nil, sourceErr("endpoint", err) // not ErrNotFound: that is above
	}
	hist, err := src.EndpointHistory(ctx, name)
	if err != nil && !isNotFound(err) {
		return nil, &httpError{Status: http.StatusInternalServerError, Msg: "Could not read the endpoint's deployments.", Err: err}
	}
	now := h.now()
	v := &endpointView{Name: st.Name, State: string(st.State), Class: endpointStateClass(st.State), Reason: st.Reason,
		URL: st.URL, Variants: variantsView(st), LiveURL: "/ui/serving/" + st.Name}
	if st.Spec.Autoscale != nil {
		v.Autoscale = st.Spec.Autoscale.String()
	}
	v.Async = asyncSummary(st)
	for _, rp := range st.Replicas {
		id := strconv.FormatInt(rp.Job, 10)
		v.Replicas = append(v.Replicas, replicaView{Job: id, JobHref: "/jobs/" + id, Variant: rp.Variant, Fleet: rp.Fleet,
			State: string(rp.State), Class: replicaClass(rp.State), JobState: string(rp.JobState), Addr: rp.Addr,
			Since: relTime(now, rp.Since), SinceTitle: absTime(rp.Since), Reason: rp.Reason, Outstanding: rp.Outstanding})
	}
	if st.Deployment != nil {
		dv := deploymentViewOf(now, st.Deployment)
		v.Deployment = &dv
	}
	for _, d := range hist {
		v.History = append(v.History, deploymentViewOf(now, d))
	}
	for _, ev := range st.ScaleEvents {
		v.ScaleEvents = append(v.ScaleEvents, scaleEventView{At: relTime(now, ev.At), Title: absTime(ev.At), Variant: ev.Variant,
			From: ev.From, To: ev.To, Up: ev.To > ev.From, Reason: ev.Reason})
	}
	return v, nil
}

func (h *handler) endpointPage(r *http.Request) (*pageResult, error) {
	v, err := h.endpointData(r)
	if err != nil {
		return nil, err
	}
	return &pageResult{Template: "endpoint", Title: v.Name, Nav: "endpoints", Content: v}, nil
}

func (h *handler) endpointFragment(r *http.Request) (string, any, error) {
	v, err := h.endpointData(r)
	return "endpoint_live", v, err
}
