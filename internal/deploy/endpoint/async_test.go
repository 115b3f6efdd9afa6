package endpoint

import (
	"errors"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

func TestAsyncSpec(t *testing.T) {
	one := func() []Variant { return []Variant{{Name: "a", Model: "m", Version: 1}} }
	s := Spec{Variants: one(), Async: &Async{}}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	a := s.Async
	if a.MaxInlineBytes != DefaultAsyncInlineBytes || a.MaxAttempts != DefaultAsyncAttempts ||
		time.Duration(a.InvocationTimeout) != DefaultAsyncTimeout || a.MaxConcurrency != DefaultAsyncConcurrency {
		t.Fatalf("defaults %+v", *a)
	}
	zero := &Autoscale{Min: 0, Max: 2, Target: 4, Metric: MetricBacklog}
	s = Spec{Variants: one(), Async: &Async{OutputPath: "s3://b/out/", Webhook: "https://example.com/h"}, Autoscale: zero}
	if err := s.Check(); err != nil || s.Variants[0].Replicas != 1 {
		t.Fatalf("scale to zero on an async endpoint: %v %+v", err, s.Variants[0])
	}
	for _, c := range []struct {
		spec  Spec
		field string
	}{
		{Spec{Variants: one(), Autoscale: &Autoscale{Min: 0, Max: 2, Target: 1, Metric: MetricInflight}}, "autoscale"},
		{Spec{Variants: one(), Autoscale: &Autoscale{Min: 1, Max: 2, Target: 1, Metric: MetricBacklog}}, "autoscale"},
		{Spec{Variants: one(), Async: &Async{}, Autoscale: &Autoscale{Min: 1, Max: 2, Target: 1, Metric: MetricRPS}}, "autoscale.metric"},
		{Spec{Variants: []Variant{{Name: "a", Model: "m", Version: 1}, {Name: "b", Model: "m", Version: 1}}, Async: &Async{}}, "variants"},
		{Spec{Variants: one(), Async: &Async{Webhook: "ftp://x/y"}}, "async.webhook"},
		{Spec{Variants: one(), Async: &Async{Webhook: "http://"}}, "async.webhook"},
		{Spec{Variants: one(), Async: &Async{OutputPath: "../up/"}}, "async.output_path"},
		{Spec{Variants: one(), Async: &Async{OutputPath: "/abs/"}}, "async.output_path"},
		{Spec{Variants: one(), Async: &Async{FailurePath: "gs://x/"}}, "async.failure_path"},
		{Spec{Variants: one(), Async: &Async{MaxAttempts: 21}}, "async.max_attempts"},
		{Spec{Variants: one(), Async: &Async{InvocationTimeout: job.Duration(2 * time.Hour)}}, "async.invocation_timeout"},
		{Spec{Variants: one(), Async: &Async{MaxInlineBytes: -1}}, "async.max_inline_bytes"},
		{Spec{Variants: one(), Async: &Async{MaxConcurrency: 1000}}, "async.max_concurrency"},
	} {
		err := c.spec.Check()
		var fe *job.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v: %v, want a problem with %s", c.spec, err, c.field)
		}
	}
}
