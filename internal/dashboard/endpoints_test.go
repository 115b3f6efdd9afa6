package dashboard

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/deploy"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
	"github.com/hpcml/hpcml/internal/store"
)

// endpointsSource serves the Endpoints pages from a real endpoint
// controller on a real store (not running: no replicas are started),
// with traffic recorded in its real gateway's stats.
type endpointsSource struct {
	*fakeSource
	c  *deploy.Controller
	st store.Store
	gw *deploy.Gateway
}

func (s *endpointsSource) ListEndpoints(ctx context.Context) ([]*deploy.Status, error) {
	return s.c.List(ctx)
}

func (s *endpointsSource) GetEndpoint(ctx context.Context, name string) (*deploy.Status, error) {
	st, err := s.c.Status(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return st, nil
}

func (s *endpointsSource) EndpointHistory(ctx context.Context, name string) ([]*endpoint.Deployment, error) {
	return s.c.History(ctx, name, 50)
}

// newEndpointsSource holds two endpoints: "digits" with two variants and
// traffic (some errors on b), a rolled-back deployment and a running
// canary; "iris", autoscaled, with scale events.
func newEndpointsSource(t *testing.T) *endpointsSource {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "hpcml.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	gw := deploy.NewGateway(deploy.GatewayConfig{})
	c := deploy.New(deploy.Config{Store: st, Gateway: gw})
	v := func(name, model string, version, weight int) endpoint.Variant {
		return endpoint.Variant{Name: name, Model: model, Version: version, Replicas: 2, Weight: weight, CPUs: 1}
	}
	digits := &endpoint.Endpoint{Name: "digits", State: endpoint.InService, Token: "x", Spec: endpoint.Spec{
		Variants: []endpoint.Variant{v("a", "digits-mlp", 1, 3), v("b", "digits-cnn", 4, 1)}}}
	auto := &endpoint.Autoscale{Min: 1, Max: 4, Metric: "inflight", Target: 2}
	iris := &endpoint.Endpoint{Name: "iris", State: endpoint.InService, Token: "y", Spec: endpoint.Spec{
		Variants: []endpoint.Variant{v("primary", "iris", 2, 1)}, Autoscale: auto}}
	for _, e := range []*endpoint.Endpoint{digits, iris} {
		if err := st.CreateEndpoint(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	old := &endpoint.Deployment{Endpoint: "digits", Variant: "a", From: v("a", "digits-mlp", 1, 3), To: v("a", "digits-mlp", 2, 3),
		Strategy: "canary:10%:5m", Phase: "starting-green"}
	if err := st.StartDeployment(ctx, old, []endpoint.Event{{At: now, Message: "update of variant a requested"}}); err != nil {
		t.Fatal(err)
	}
	old.Phase, old.Outcome, old.Reason, old.EndedAt = "rolled-back", endpoint.RolledBack,
		"green error rate 50% (10 of 20 requests) above 1%", now
	if err := st.UpdateDeployment(ctx, old, []endpoint.Event{{At: now, Message: "rolling back: green error rate 50%"}}, nil); err != nil {
		t.Fatal(err)
	}
	run := &endpoint.Deployment{Endpoint: "digits", Variant: "a", From: v("a", "digits-mlp", 1, 3), To: v("a", "digits-mlp", 3, 3),
		Strategy: "linear:25%:2m", Phase: "shifting", Step: 1}
	if err := st.StartDeployment(ctx, run, []endpoint.Event{{At: now, Message: "step 2: 50% of traffic to green"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		gw.Stats("digits", "a", 0).Record(now, time.Duration(400+i)*time.Microsecond, false)
		gw.Stats("digits", "a", run.ID).Record(now, time.Duration(900+i)*time.Microsecond, false)
		gw.Stats("digits", "b", 0).Record(now, 2*time.Millisecond, i%10 == 0)
	}
	for _, ev := range []*endpoint.ScaleEvent{
		{Endpoint: "iris", Variant: "primary", From: 1, To: 3, Reason: "in-flight 6.0 per replica above target 2", At: now.Add(-time.Minute)},
		{Endpoint: "iris", Variant: "primary", From: 3, To: 2, Reason: "in-flight 0.4 below 90% of target 2", At: now},
	} {
		if err := st.AddScaleEvent(ctx, ev, nil); err != nil {
			t.Fatal(err)
		}
	}
	return &endpointsSource{fakeSource: newFakeSource(), c: c, st: st, gw: gw}
}

func TestEndpointsPages(t *testing.T) {
	src := newEndpointsSource(t)
	h, logs := newTestHandler(t, src)

	res := do(t, h, "GET", "/serving", true, nil)
	if res.Code != 200 {
		t.Fatalf("/serving: %d", res.Code)
	}
	mustContain(t, "/serving", res.Body, `aria-current="page">Endpoints</a>`, `data-endpoint="digits" data-variant="a"`,
		`data-endpoint="digits" data-variant="b"`, `data-endpoint="iris" data-variant="primary"`, "digits-mlp:1", "digits-cnn:4",
		"75.0%", "25.0%", `class="num errors bad">4<`, "digits-mlp:1 → digits-mlp:3, linear:25%:2m (shifting)")

	res = do(t, h, "GET", "/serving/digits", true, nil)
	if res.Code != 200 {
		t.Fatalf("/serving/digits: %d", res.Code)
	}
	mustContain(t, "/serving/digits", res.Body, `data-variant="a"`, `data-fleet="green"`, "digits-mlp:3",
		"Deployment 2", "step 2: 50% of traffic to green", `data-deployment="1" data-outcome="rolled-back"`,
		"green error rate 50% (10 of 20 requests) above 1%", `data-refresh="/ui/serving/digits"`, "No replicas.",
		"autoscaling is off", `class="num requests">80<`)
	res = do(t, h, "GET", "/ui/serving/iris", true, nil)
	mustContain(t, "/ui/serving/iris", res.Body, `data-scale="out"`, `data-scale="in"`, "1 → 3", "3 → 2",
		"in-flight 6.0 per replica above target 2", "min=1,max=4,target=2,metric=inflight")
	mustNotContain(t, "/ui/serving/iris", res.Body, "<html")

	for target, code := range map[string]int{"/serving/nope": 404, "/serving/Bad_Name": 400, "/ui/serving/nope": 404} {
		if res := do(t, h, "GET", target, true, nil); res.Code != code {
			t.Errorf("%s: %d, want %d", target, res.Code, code)
		}
	}
	if res := do(t, h, "GET", "/serving", false, nil); res.Code == 200 {
		t.Error("/serving without a session")
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", logs)
	}
	// A Source without endpoints: the tab says so.
	h2, _ := newTestHandler(t, newFakeSource())
	mustContain(t, "no controller", do(t, h2, "GET", "/serving", true, nil).Body, `id="no-controller"`)
}
