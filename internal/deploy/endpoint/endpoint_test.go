package endpoint

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

func TestParseAutoscale(t *testing.T) {
	a, err := ParseAutoscale("min=1,max=4,target=2.5,metric=rps,scale-out-cooldown=10s,scale-in-cooldown=1m,window=5s,scale-in-window=20s")
	if err != nil {
		t.Fatal(err)
	}
	want := Autoscale{Min: 1, Max: 4, Target: 2.5, Metric: MetricRPS, ScaleOutCooldown: job.Duration(10 * time.Second),
		ScaleInCooldown: job.Duration(time.Minute), Window: job.Duration(5 * time.Second), ScaleInWindow: job.Duration(20 * time.Second)}
	if *a != want {
		t.Fatalf("got %+v", *a)
	}
	if b, err := ParseAutoscale(a.String()); err != nil || *b != *a {
		t.Fatalf("String does not read back: %q → %+v %v", a.String(), b, err)
	}
	d, _ := ParseAutoscale("min=2,max=3,target=1")
	if d.Metric != MetricInflight || d.ScaleOutCooldown != job.Duration(30*time.Second) || d.ScaleInCooldown != job.Duration(60*time.Second) {
		t.Fatalf("defaults %+v", d)
	}
	for s, want := range map[string]string{
		"min=1,max=4":                     "target is required",
		"min=1,max=4,target=0":            "autoscale.target",
		"min=-1,max=4,target=1":           "autoscale.min",
		"min=0,max=0,target=1":            "autoscale.max",
		"min=3,max=2,target=1":            "autoscale.max",
		"min=1,max=100,target=1":          "autoscale.max",
		"min=1,max=2,target=1,metric=x":   "autoscale.metric",
		"min=1,max=2,target=1,speed=3":    "unknown key",
		"min=1,max=2,target=1,window=-1s": "negative",
		"min=1,max=2,target=x":            "target",
		"min=1,max":                       "KEY=VALUE",
	} {
		if _, err := ParseAutoscale(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", s, err, want)
		}
	}
}

func TestSpecCheck(t *testing.T) {
	v := func(name string, weight int) Variant {
		return Variant{Name: name, Model: "m", Version: 1, Weight: weight}
	}
	s := Spec{Variants: []Variant{{Name: "a", Model: "m", Version: 1}}}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if got := s.Variants[0]; got.Replicas != 1 || got.Weight != 1 || got.CPUs != 1 {
		t.Fatalf("defaults %+v", got)
	}
	s = Spec{Variants: []Variant{{Name: "a", Model: "m", Version: 1, Replicas: 9}}, Autoscale: &Autoscale{Min: 1, Max: 4, Target: 1}}
	if err := s.Check(); err != nil || s.Variants[0].Replicas != 4 {
		t.Fatalf("replicas clamped to the policy: %+v %v", s.Variants[0], err)
	}
	for _, c := range []struct {
		spec  Spec
		field string
	}{
		{Spec{}, "variants"},
		{Spec{Variants: []Variant{v("a", 1), v("a", 1)}}, "variants[1].name"},
		{Spec{Variants: []Variant{v("A", 1)}}, "variants[0].name"},
		{Spec{Variants: []Variant{{Name: "a", Model: "m", Version: 0}}}, "variants[0].version"},
		{Spec{Variants: []Variant{{Name: "a", Model: "M!", Version: 1}}}, "variants[0].model"},
		{Spec{Variants: []Variant{{Name: "a", Model: "m", Version: 1, Replicas: 65}}}, "variants[0].replicas"},
		{Spec{Variants: []Variant{{Name: "a", Model: "m", Version: 1, CPUs: 0.01}}}, "variants[0].cpus"},
		{Spec{Variants: []Variant{{Name: "a", Model: "m", Version: 1, Batching: Batching{PreferredBatch: []int{0}}}}}, "variants[0].batching.preferred_batch"},
		{Spec{Variants: []Variant{v("a", -1)}}, "variants[0].weight"},
		{Spec{Variants: []Variant{v("a", 1)}, Queue: "bad queue"}, "queue"},
	} {
		err := c.spec.Check()
		var fe *job.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%+v: %v, want a problem with %s", c.spec, err, c.field)
		}
	}
}

func TestBatchingArgs(t *testing.T) {
	b := Batching{MaxBatch: 8, MaxQueueDelay: job.Duration(500 * time.Microsecond), PreferredBatch: []int{4, 8}, Concurrency: 2}
	if got := strings.Join(b.Args(), " "); got != "--max-batch 8 --max-queue-delay 500µs --preferred-batch 4,8 --concurrency 2" {
		t.Fatalf("args %q", got)
	}
	if len((Batching{}).Args()) != 0 {
		t.Fatal("no batching, no flags")
	}
}
