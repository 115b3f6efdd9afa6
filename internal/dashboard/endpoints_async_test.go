package dashboard

import (
	"strings"
	"testing"

	"github.com/hpcml/hpcml/internal/deploy/asyncq"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
)

// An asynchronous endpoint's page shows its route, queue and settings;
// a real-time one's shows none.
func TestEndpointPageAsync(t *testing.T) {
	src := newEndpointsSource(t)
	ctx := t.Context()
	spec := endpoint.Spec{Variants: []endpoint.Variant{{Name: "primary", Model: "iris", Version: 2}},
		Async: &endpoint.Async{Webhook: "https://hooks.example.com/h"}}
	if err := spec.Check(); err != nil {
		t.Fatal(err)
	}
	if err := src.st.CreateEndpoint(ctx, &endpoint.Endpoint{Name: "queue", State: endpoint.InService, Token: "z", Spec: spec}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		r := &asyncq.Request{ID: id, Endpoint: "queue", Input: "in/" + id, InputBytes: 1, Output: "out/" + id, Failure: "f/" + id, MaxAttempts: 3}
		if err := src.st.InsertAsync(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	h, _ := newTestHandler(t, src)
	res := do(t, h, "GET", "/serving/queue", true, nil)
	if res.Code != 200 {
		t.Fatalf("/serving/queue: %d", res.Code)
	}
	mustContain(t, "/serving/queue", res.Body, `id="endpoint-async"`, "/endpoints/queue/async-invocations",
		"3 queued, 0 running", "results to async/queue/output/", "up to 3 attempts, 15m0s each", "webhook https://hooks.example.com/h")
	res = do(t, h, "GET", "/serving/iris", true, nil)
	if res.Code != 200 || strings.Contains(res.Body, `id="endpoint-async"`) {
		t.Fatalf("a real-time endpoint's page shows an async queue (%d)", res.Code)
	}
}
