package store

import (
	"errors"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/deploy/endpoint"
)

func testEndpoint(name string) *endpoint.Endpoint {
	return &endpoint.Endpoint{Name: name, State: endpoint.Creating, Token: "tok-" + name, Spec: endpoint.Spec{
		Variants: []endpoint.Variant{{Name: "primary", Model: "mlp", Version: 1, Replicas: 2, Weight: 1, CPUs: 1}}}}
}

// Endpoints round-trip with their spec and token; names are unique.
func TestEndpointsCRUD(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	if err := s.CreateEndpoint(ctx, testEndpoint("a")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateEndpoint(ctx, testEndpoint("a")); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	e, err := s.GetEndpoint(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if e.Token != "tok-a" || e.Spec.Variants[0].Replicas != 2 || e.State != endpoint.Creating {
		t.Fatalf("read back %+v", e)
	}
	e.State, e.Spec.Variants[0].Replicas = endpoint.InService, 3
	if err := s.UpdateEndpoint(ctx, e); err != nil {
		t.Fatal(err)
	}
	e, _ = s.GetEndpoint(ctx, "a")
	if e.State != endpoint.InService || e.Spec.Variants[0].Replicas != 3 {
		t.Fatalf("after update %+v", e)
	}
	if _, err := s.GetEndpoint(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get unknown: %v", err)
	}
	if err := s.UpdateEndpoint(ctx, testEndpoint("nope")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update unknown: %v", err)
	}
	s.CreateEndpoint(ctx, testEndpoint("b"))
	list, err := s.ListEndpoints(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "a" || list[1].Name != "b" {
		t.Fatalf("list: %v %v", list, err)
	}
}

// At most one deployment runs per endpoint; ending one (with the
// endpoint's new spec in the same transaction) allows the next; history
// lists them newest first with their events; delete takes it all.
func TestDeployments(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	e := testEndpoint("ep")
	s.CreateEndpoint(ctx, e)
	from := e.Spec.Variants[0]
	to := from
	to.Version, to.Revision = 2, 1
	d := &endpoint.Deployment{Endpoint: "ep", Variant: "primary", From: from, To: to, Strategy: "canary:10%:5m",
		Alarms: endpoint.Alarms{MaxErrorRate: 0.05}, Phase: "starting-green", State: []byte(`{"phase":"starting-green"}`)}
	if err := s.StartDeployment(ctx, d, []endpoint.Event{{At: time.Now(), Message: "started"}}); err != nil {
		t.Fatal(err)
	}
	if d.ID == 0 || d.To.Revision != d.ID {
		t.Fatalf("id %d, green revision %d", d.ID, d.To.Revision)
	}
	if e, _ := s.GetEndpoint(ctx, "ep"); e.State != endpoint.Updating {
		t.Fatalf("endpoint state %s during a deployment", e.State)
	}
	second := *d
	second.ID = 0
	if err := s.StartDeployment(ctx, &second, nil); !errors.Is(err, ErrDeploymentRunning) || !errors.Is(err, ErrExists) {
		t.Fatalf("second deployment: %v, want ErrDeploymentRunning", err)
	}
	if err := s.StartDeployment(ctx, &endpoint.Deployment{Endpoint: "nope"}, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deployment on unknown endpoint: %v", err)
	}
	running, err := s.RunningDeployments(ctx)
	if err != nil || len(running) != 1 || running[0].ID != d.ID || string(running[0].State) != `{"phase":"starting-green"}` {
		t.Fatalf("running: %v %v", running, err)
	}
	d.Phase, d.Outcome, d.Reason, d.EndedAt = "rolled-back", endpoint.RolledBack, "green error rate 50% > 5%", time.Now()
	e.State = endpoint.InService
	if err := s.UpdateDeployment(ctx, d, []endpoint.Event{{At: time.Now(), Message: "rolled back"}}, e); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.GetEndpoint(ctx, "ep"); e.State != endpoint.InService {
		t.Fatalf("endpoint state %s after the deployment", e.State)
	}
	second.ID = 0
	if err := s.StartDeployment(ctx, &second, nil); err != nil {
		t.Fatalf("deployment after the first ended: %v", err)
	}
	hist, err := s.ListDeployments(ctx, "ep", 0)
	if err != nil || len(hist) != 2 || hist[0].ID != second.ID || hist[1].Outcome != endpoint.RolledBack ||
		len(hist[1].Events) != 2 || hist[1].Events[1].Message != "rolled back" || hist[1].EndedAt.IsZero() ||
		hist[1].To.Version != 2 || hist[1].To.Revision != d.ID {
		t.Fatalf("history: %+v %v", hist, err)
	}
	got, err := s.GetDeployment(ctx, d.ID)
	if err != nil || got.Reason != d.Reason {
		t.Fatalf("get: %+v %v", got, err)
	}
	if err := s.AddScaleEvent(ctx, &endpoint.ScaleEvent{Endpoint: "ep", Variant: "primary", From: 1, To: 3, Reason: "in-flight 6 > 2"}, nil); err != nil {
		t.Fatal(err)
	}
	evs, err := s.ListScaleEvents(ctx, "ep", 0)
	if err != nil || len(evs) != 1 || evs[0].To != 3 {
		t.Fatalf("scale events: %v %v", evs, err)
	}
	if err := s.DeleteEndpoint(ctx, "ep"); err != nil {
		t.Fatal(err)
	}
	if hist, _ := s.ListDeployments(ctx, "ep", 0); len(hist) != 0 {
		t.Fatalf("history after delete: %v", hist)
	}
	if evs, _ := s.ListScaleEvents(ctx, "ep", 0); len(evs) != 0 {
		t.Fatalf("scale events after delete: %v", evs)
	}
	if err := s.DeleteEndpoint(ctx, "ep"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}
