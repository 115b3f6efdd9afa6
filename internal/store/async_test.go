package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/deploy/asyncq"
)

func asyncReq(ep string, i int) *asyncq.Request {
	return &asyncq.Request{ID: fmt.Sprintf("req-%03d", i), Endpoint: ep, Input: "async/in/" + fmt.Sprint(i), InputBytes: 10,
		Inline: true, ContentType: "application/json", Output: "async/out/" + fmt.Sprint(i), Failure: "async/fail/" + fmt.Sprint(i),
		Timeout: time.Minute, MaxAttempts: 3}
}

// The queue is first in, first out; a lease takes each request once; a
// finish or retry applies only under the lease that holds the request.
func TestAsyncQueueLeaseFinish(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	if err := s.CreateEndpoint(ctx, testEndpoint("a")); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertAsync(ctx, asyncReq("nope", 0)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("request of an unknown endpoint: %v", err)
	}
	for i := range 5 {
		if err := s.InsertAsync(ctx, asyncReq("a", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.InsertAsync(ctx, asyncReq("a", 0)); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate id: %v", err)
	}
	// An id is unique across endpoints: taken on a, it is taken on b too.
	if err := s.CreateEndpoint(ctx, testEndpoint("b")); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertAsync(ctx, asyncReq("b", 0)); !errors.Is(err, ErrExists) {
		t.Fatalf("an id taken on another endpoint: %v, want ErrExists", err)
	}
	now := time.Now()
	got, err := s.LeaseAsync(ctx, "a", "d1", 3, now)
	if err != nil || len(got) != 3 {
		t.Fatalf("lease 3: %d %v", len(got), err)
	}
	var ids []string
	for _, r := range got {
		if r.State != asyncq.Running || r.Owner != "d1" || r.Attempts != 1 || r.StartedAt.IsZero() {
			t.Fatalf("leased %+v", r)
		}
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"req-000", "req-001", "req-002"}) {
		t.Fatalf("leased %v, want the oldest three", ids)
	}
	if more, _ := s.LeaseAsync(ctx, "a", "d2", 10, now); len(more) != 2 {
		t.Fatalf("second lease took %d, want the 2 left", len(more))
	}
	if c, _ := s.AsyncBacklog(ctx); c["a"] != (AsyncCounts{Running: 5}) {
		t.Fatalf("backlog %+v", c)
	}
	// Only the holder finishes, and only once.
	if ok, err := s.FinishAsync(ctx, "req-000", "d2", asyncq.Succeeded, "", now); ok || err != nil {
		t.Fatalf("finish by another owner: %v %v", ok, err)
	}
	if ok, err := s.FinishAsync(ctx, "req-000", "d1", asyncq.Succeeded, "", now); !ok || err != nil {
		t.Fatalf("finish: %v %v", ok, err)
	}
	if ok, _ := s.FinishAsync(ctx, "req-000", "d1", asyncq.Failed, "late", now); ok {
		t.Fatal("a finished request finished again")
	}
	if _, err := s.FinishAsync(ctx, "req-001", "d1", asyncq.Running, "", now); err == nil {
		t.Fatal("finish to a non-final state")
	}
	r, _ := s.GetAsync(ctx, "a", "req-000")
	if r.State != asyncq.Succeeded || r.EndedAt.IsZero() || r.Owner != "" || r.WebhookState != asyncq.WebhookNone {
		t.Fatalf("finished %+v", r)
	}
	// A retry goes back to the queue, due later, with the failure counted.
	if ok, _ := s.RetryAsync(ctx, "req-001", "d1", true, "replica answered 503", now.Add(time.Hour)); !ok {
		t.Fatal("retry")
	}
	r, _ = s.GetAsync(ctx, "a", "req-001")
	if r.State != asyncq.Queued || r.Failures != 1 || r.Error == "" {
		t.Fatalf("retried %+v", r)
	}
	if l, _ := s.LeaseAsync(ctx, "a", "d1", 10, now); len(l) != 0 {
		t.Fatalf("a request leased before it is due: %+v", l[0])
	}
	if l, _ := s.LeaseAsync(ctx, "a", "d1", 10, now.Add(2*time.Hour)); len(l) != 1 || l[0].Attempts != 2 {
		t.Fatalf("lease when due: %+v", l)
	}
	// Another dispatcher's running requests are orphans to this one.
	orph, err := s.OrphanedAsync(ctx, "d3")
	if err != nil || len(orph) != 4 {
		t.Fatalf("orphans: %d %v", len(orph), err)
	}
	if ok, _ := s.AdoptAsync(ctx, orph[0].ID, orph[0].Owner, "d3"); !ok {
		t.Fatal("adopt")
	}
	if ok, _ := s.AdoptAsync(ctx, orph[0].ID, orph[0].Owner, "d4"); ok {
		t.Fatal("adopted twice")
	}
	if orph, _ = s.OrphanedAsync(ctx, "d3"); len(orph) != 3 {
		t.Fatalf("orphans after adoption: %d", len(orph))
	}
	list, _ := s.ListAsync(ctx, "a", asyncq.Succeeded, 0)
	if len(list) != 1 || list[0].ID != "req-000" {
		t.Fatalf("list succeeded: %+v", list)
	}
	if list, _ = s.ListAsync(ctx, "a", "", 2); len(list) != 2 || list[0].ID != "req-004" {
		t.Fatalf("list newest first: %+v", list)
	}
	if _, err := s.GetAsync(ctx, "b", "req-000"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a request read through another endpoint: %v", err)
	}
	// Deleting the endpoint takes its queue along.
	if err := s.DeleteEndpoint(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.AsyncBacklog(ctx); len(c) != 0 {
		t.Fatalf("backlog of a deleted endpoint: %+v", c)
	}
}

// A webhook waits for the request's end, is claimed with a lease, and
// records its attempts.
func TestAsyncWebhookClaims(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	s.CreateEndpoint(ctx, testEndpoint("a"))
	r := asyncReq("a", 1)
	r.Webhook = "http://127.0.0.1:1/hook"
	if err := s.InsertAsync(ctx, r); err != nil {
		t.Fatal(err)
	}
	s.InsertAsync(ctx, asyncReq("a", 2)) // no webhook
	now := time.Now()
	if c, _ := s.ClaimWebhooks(ctx, 10, now.Add(time.Hour), now.Add(time.Hour)); len(c) != 0 {
		t.Fatalf("a webhook claimed before its request ended: %+v", c)
	}
	s.LeaseAsync(ctx, "a", "d", 10, now)
	s.FinishAsync(ctx, r.ID, "d", asyncq.Failed, "boom", now)
	s.FinishAsync(ctx, "req-002", "d", asyncq.Succeeded, "", now)
	c, err := s.ClaimWebhooks(ctx, 10, now, now.Add(time.Minute))
	if err != nil || len(c) != 1 || c[0].ID != r.ID || c[0].WebhookState != asyncq.WebhookPending || c[0].Error != "boom" {
		t.Fatalf("claim: %+v %v", c, err)
	}
	if again, _ := s.ClaimWebhooks(ctx, 10, now.Add(time.Second), now.Add(time.Minute)); len(again) != 0 {
		t.Fatal("a claimed webhook was claimed again within its lease")
	}
	// The claim runs out (a crash mid-delivery): it is due again.
	if again, _ := s.ClaimWebhooks(ctx, 10, now.Add(2*time.Minute), now.Add(3*time.Minute)); len(again) != 1 {
		t.Fatal("a webhook whose claim ran out is not due again")
	}
	if err := s.WebhookResult(ctx, r.ID, asyncq.WebhookDelivered, 2, "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetAsync(ctx, "a", r.ID)
	if got.WebhookState != asyncq.WebhookDelivered || got.WebhookAttempts != 2 {
		t.Fatalf("after delivery %+v", got)
	}
	if again, _ := s.ClaimWebhooks(ctx, 10, now.Add(time.Hour), now.Add(2*time.Hour)); len(again) != 0 {
		t.Fatal("a delivered webhook is claimed")
	}
}

// A lease given back leaves the request as before it (queued, its attempt
// uncounted) and only under its owner; expired requests are the ended
// ones past the cutoff with no webhook left, and deleting takes only
// ended rows.
func TestAsyncUnleaseExpireDelete(t *testing.T) {
	s, _ := openTemp(t)
	ctx := t.Context()
	if err := s.CreateEndpoint(ctx, testEndpoint("a")); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r := asyncReq("a", i)
		if i == 2 {
			r.Webhook = "http://127.0.0.1:1/hook"
		}
		if err := s.InsertAsync(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	if got, err := s.LeaseAsync(ctx, "a", "d1", 3, now); err != nil || len(got) != 3 {
		t.Fatalf("lease: %d %v", len(got), err)
	}
	if ok, err := s.UnleaseAsync(ctx, "req-000", "someone-else"); err != nil || ok {
		t.Fatalf("unlease by another owner: %v %v", ok, err)
	}
	if ok, err := s.UnleaseAsync(ctx, "req-000", "d1"); err != nil || !ok {
		t.Fatalf("unlease: %v %v", ok, err)
	}
	if r, _ := s.GetAsync(ctx, "a", "req-000"); r.State != asyncq.Queued || r.Attempts != 0 || r.Owner != "" {
		t.Fatalf("given back: %+v", r)
	}
	for _, id := range []string{"req-001", "req-002"} {
		if ok, err := s.FinishAsync(ctx, id, "d1", asyncq.Succeeded, "", now); err != nil || !ok {
			t.Fatalf("finish %s: %v %v", id, ok, err)
		}
	}
	exp, err := s.ExpiredAsync(ctx, now.Add(time.Second), 10)
	if err != nil || len(exp) != 1 || exp[0].ID != "req-001" {
		t.Fatalf("expired: %+v %v; want req-001 only (req-002's webhook is pending, req-000 queued)", exp, err)
	}
	if exp, _ := s.ExpiredAsync(ctx, now.Add(-time.Second), 10); len(exp) != 0 {
		t.Fatalf("expired before the cutoff: %+v", exp)
	}
	// The sweep reads the ended rows through their index, not the table.
	var plan strings.Builder
	rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+expiredAsyncQuery, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(detail + "; ")
	}
	rows.Close()
	if !strings.Contains(plan.String(), "USING INDEX async_ended") {
		t.Fatalf("expired scan plan %q does not use async_ended", plan.String())
	}
	if err := s.DeleteEndedAsync(ctx, []string{"req-000", "req-001"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAsync(ctx, "a", "req-001"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("req-001 after delete: %v", err)
	}
	if r, err := s.GetAsync(ctx, "a", "req-000"); err != nil || r.State != asyncq.Queued {
		t.Fatalf("a queued request was deleted: %+v %v", r, err)
	}
}
