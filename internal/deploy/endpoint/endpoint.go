// Package endpoint is the model of real-time endpoints, with no I/O: an
// endpoint's spec (variants, autoscaling), its states, its deployments
// (blue/green updates) and scale events, their validation, and the
// parsing of the command line's compact forms. The store persists these
// types; internal/deploy acts on them.
package endpoint

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/deploy/autoscale"
	"github.com/hpcml/hpcml/internal/job"
)

// State is an endpoint's lifecycle state.
type State string

const (
	// Creating: replicas are starting; no variant has a ready replica yet.
	Creating State = "creating"
	// InService: every variant has at least one ready replica.
	InService State = "in-service"
	// Updating: a deployment is running.
	Updating State = "updating"
	// Degraded: a variant has no ready replica (crashed, not yet replaced).
	Degraded State = "degraded"
	// Deleting: replicas are draining; the row goes when they are gone.
	Deleting State = "deleting"
)

// Limits of one endpoint, so that one request cannot exhaust the machine.
const (
	MaxVariants        = 10
	MaxReplicas        = 64
	MaxWeight          = 1000
	DefaultVariantName = "primary"
)

var (
	nameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	modelRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
)

// ValidName reports whether s can name an endpoint or a variant: it is
// part of URLs (/endpoints/NAME/...) and of storage keys.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// Batching is a replica's dynamic batching (hpcml serve's flags).
type Batching struct {
	MaxBatch       int          `json:"max_batch,omitempty"`
	MaxQueueDelay  job.Duration `json:"max_queue_delay,omitempty"`
	PreferredBatch []int        `json:"preferred_batch,omitempty"`
	Concurrency    int          `json:"concurrency,omitempty"`
}

// Args are the hpcml serve flags for b.
func (b Batching) Args() []string {
	var a []string
	if b.MaxBatch > 0 {
		a = append(a, "--max-batch", strconv.Itoa(b.MaxBatch))
	}
	if b.MaxQueueDelay > 0 {
		a = append(a, "--max-queue-delay", time.Duration(b.MaxQueueDelay).String())
	}
	if len(b.PreferredBatch) > 0 {
		s := make([]string, len(b.PreferredBatch))
		for i, n := range b.PreferredBatch {
			s[i] = strconv.Itoa(n)
		}
		a = append(a, "--preferred-batch", strings.Join(s, ","))
	}
	if b.Concurrency > 0 {
		a = append(a, "--concurrency", strconv.Itoa(b.Concurrency))
	}
	return a
}

// Variant is one production variant: a model version behind its own
// fleet of replicas, taking Weight/ΣWeight of the endpoint's traffic.
type Variant struct {
	Name string `json:"name"`
	// Ref is the model reference as the user gave it (NAME, NAME:ALIAS,
	// NAME:VERSION); Model and Version are what it resolved to when the
	// variant was created, and never change afterwards.
	Ref      string   `json:"ref,omitempty"`
	Model    string   `json:"model"`
	Version  int      `json:"version"`
	Replicas int      `json:"replicas"`
	Weight   int      `json:"weight"`
	CPUs     float64  `json:"cpus"`
	Batching Batching `json:"batching"`
	// Revision tells this variant's fleets apart: replicas of another
	// revision are of an older (or an abandoned) configuration. A
	// deployment's green fleet has the deployment's id as its revision.
	Revision int64 `json:"revision"`
}

// ModelURL is the replica's --model argument.
func (v Variant) ModelURL() string { return fmt.Sprintf("model://%s/%d", v.Model, v.Version) }

// Check validates v, naming the field under prefix.
func (v *Variant) Check(prefix string) error {
	if v.Replicas == 0 {
		v.Replicas = 1
	}
	if v.Weight == 0 {
		v.Weight = 1
	}
	if v.CPUs == 0 {
		v.CPUs = 1
	}
	switch {
	case !ValidName(v.Name):
		return fieldErr(prefix+".name", "%q is not a valid variant name (lower-case letters, digits, '-'; at most 63)", v.Name)
	case !modelRE.MatchString(v.Model):
		return fieldErr(prefix+".model", "%q is not a valid model name", v.Model)
	case v.Version < 1:
		return fieldErr(prefix+".version", "a model version is at least 1")
	case v.Replicas < 1 || v.Replicas > MaxReplicas:
		return fieldErr(prefix+".replicas", "want 1..%d replicas", MaxReplicas)
	case v.Weight < 0 || v.Weight > MaxWeight:
		return fieldErr(prefix+".weight", "want a weight of 0..%d", MaxWeight)
	case v.CPUs < 0.1 || v.CPUs > 1024:
		return fieldErr(prefix+".cpus", "want 0.1..1024 CPUs")
	case v.Batching.MaxBatch < 0 || v.Batching.MaxBatch > 4096:
		return fieldErr(prefix+".batching.max_batch", "want 0..4096")
	case v.Batching.MaxQueueDelay < 0 || time.Duration(v.Batching.MaxQueueDelay) > 10*time.Second:
		return fieldErr(prefix+".batching.max_queue_delay", "want 0..10s")
	case v.Batching.Concurrency < 0 || v.Batching.Concurrency > 4096:
		return fieldErr(prefix+".batching.concurrency", "want 0..4096")
	}
	maxBatch := max(v.Batching.MaxBatch, 1)
	for _, n := range v.Batching.PreferredBatch {
		if n < 1 || n > maxBatch {
			// What hpcml serve refuses: the replicas would fail to start.
			return fieldErr(prefix+".batching.preferred_batch", "preferred batch size %d is not between 1 and the max batch size %d", n, maxBatch)
		}
	}
	return nil
}

// Autoscale is a target-tracking policy applied to each variant's fleet:
// Metric (in-flight requests or requests/s) per replica is kept near
// Target, within Min..Max replicas.
type Autoscale struct {
	Min              int          `json:"min"`
	Max              int          `json:"max"`
	Metric           string       `json:"metric"`
	Target           float64      `json:"target"`
	ScaleOutCooldown job.Duration `json:"scale_out_cooldown"`
	ScaleInCooldown  job.Duration `json:"scale_in_cooldown"`
	// Window is what a scale-out averages the metric over, ScaleInWindow
	// what a scale-in does (0: the autoscaler's defaults, 30 s and 150 s).
	Window        job.Duration `json:"window,omitempty"`
	ScaleInWindow job.Duration `json:"scale_in_window,omitempty"`
}

// Autoscale metrics: the autoscaler's own.
const (
	MetricInflight = autoscale.MetricInFlight
	MetricRPS      = autoscale.MetricRPS
)

// ParseAutoscale reads "min=1,max=4,target=2[,metric=inflight|rps]
// [,scale-out-cooldown=30s][,scale-in-cooldown=60s]".
func ParseAutoscale(s string) (*Autoscale, error) {
	a := &Autoscale{Metric: MetricInflight, ScaleOutCooldown: job.Duration(30 * time.Second),
		ScaleInCooldown: job.Duration(60 * time.Second)}
	seen := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, fmt.Errorf("autoscale %q: want KEY=VALUE, not %q", s, kv)
		}
		var err error
		switch k {
		case "min":
			a.Min, err = strconv.Atoi(v)
		case "max":
			a.Max, err = strconv.Atoi(v)
		case "target":
			a.Target, err = strconv.ParseFloat(v, 64)
		case "metric":
			a.Metric = v
		case "scale-out-cooldown", "scale-in-cooldown", "window", "scale-in-window":
			var d time.Duration
			d, err = time.ParseDuration(v)
			*map[string]*job.Duration{"scale-out-cooldown": &a.ScaleOutCooldown, "scale-in-cooldown": &a.ScaleInCooldown,
				"window": &a.Window, "scale-in-window": &a.ScaleInWindow}[k] = job.Duration(d)
		default:
			return nil, fmt.Errorf("autoscale: unknown key %q (min, max, target, metric, scale-out-cooldown, scale-in-cooldown, window, scale-in-window)", k)
		}
		if err != nil {
			return nil, fmt.Errorf("autoscale %s=%q: %w", k, v, err)
		}
		seen[k] = true
	}
	for _, k := range []string{"min", "max", "target"} {
		if !seen[k] {
			return nil, fmt.Errorf("autoscale %q: %s is required", s, k)
		}
	}
	return a, a.Check()
}

// String is the compact form ParseAutoscale reads.
func (a *Autoscale) String() string {
	if a == nil {
		return ""
	}
	s := fmt.Sprintf("min=%d,max=%d,target=%g,metric=%s,scale-out-cooldown=%s,scale-in-cooldown=%s",
		a.Min, a.Max, a.Target, a.Metric, time.Duration(a.ScaleOutCooldown), time.Duration(a.ScaleInCooldown))
	if a.Window > 0 {
		s += ",window=" + time.Duration(a.Window).String()
	}
	if a.ScaleInWindow > 0 {
		s += ",scale-in-window=" + time.Duration(a.ScaleInWindow).String()
	}
	return s
}

// Check validates a policy.
func (a *Autoscale) Check() error {
	if a.Metric == "" {
		a.Metric = MetricInflight
	}
	switch {
	case a.Min < 0 || a.Min > MaxReplicas:
		// 0 (scale to zero) is for asynchronous endpoints: Spec.Check.
		return fieldErr("autoscale.min", "want 0..%d", MaxReplicas)
	case a.Max < max(a.Min, 1) || a.Max > MaxReplicas:
		return fieldErr("autoscale.max", "want max(min,1)..%d", MaxReplicas)
	case a.Metric != MetricInflight && a.Metric != MetricRPS && a.Metric != MetricBacklog:
		return fieldErr("autoscale.metric", "%q is not inflight, rps or backlog", a.Metric)
	case !(a.Target > 0) || a.Target > 1e6:
		return fieldErr("autoscale.target", "want a target above 0")
	case a.ScaleOutCooldown < 0 || a.ScaleInCooldown < 0 || a.Window < 0 || a.ScaleInWindow < 0:
		return fieldErr("autoscale", "cooldowns and windows must not be negative")
	}
	return nil
}

// Spec is what the user asks an endpoint to be.
type Spec struct {
	Variants  []Variant  `json:"variants"`
	Autoscale *Autoscale `json:"autoscale,omitempty"`
	// Queue is where replica jobs go (local or Slurm, by the queue).
	Queue string `json:"queue,omitempty"`
	// Async makes the endpoint asynchronous (see async.go).
	Async *Async `json:"async,omitempty"`
	// MultiModel makes the endpoint serve many models (see multimodel.go).
	MultiModel *MultiModel `json:"multi_model,omitempty"`
}

// Check validates a spec, filling defaults.
func (s *Spec) Check() error {
	if len(s.Variants) == 0 {
		return fieldErr("variants", "at least one variant is required")
	}
	if len(s.Variants) > MaxVariants {
		return fieldErr("variants", "at most %d variants", MaxVariants)
	}
	seen := map[string]bool{}
	total := 0
	for i := range s.Variants {
		v := &s.Variants[i]
		if err := s.checkVariant(v, fmt.Sprintf("variants[%d]", i)); err != nil {
			return err
		}
		if seen[v.Name] {
			return fieldErr(fmt.Sprintf("variants[%d].name", i), "variant %q appears twice", v.Name)
		}
		seen[v.Name] = true
		total += v.Weight
	}
	if total == 0 {
		return fieldErr("variants", "at least one variant needs a weight above 0")
	}
	if err := s.checkAsync(); err != nil {
		return err
	}
	if err := s.checkMultiModel(); err != nil {
		return err
	}
	if s.Autoscale != nil {
		if err := s.Autoscale.Check(); err != nil {
			return err
		}
		for i := range s.Variants {
			s.Variants[i].Replicas = min(max(s.Variants[i].Replicas, s.Autoscale.Min), s.Autoscale.Max)
		}
	}
	if s.Queue != "" && !job.ValidName(s.Queue) {
		return fieldErr("queue", "%q is not a valid queue name", s.Queue)
	}
	return nil
}

// Variant returns the variant named name.
func (s *Spec) Variant(name string) (*Variant, bool) {
	for i := range s.Variants {
		if s.Variants[i].Name == name {
			return &s.Variants[i], true
		}
	}
	return nil, false
}

// Endpoint is a stored endpoint.
type Endpoint struct {
	Name   string `json:"name"`
	Spec   Spec   `json:"spec"`
	State  State  `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Token is what replicas require of callers (the gateway adds it);
	// random per endpoint, never shown.
	Token     string    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Outcome is how a deployment ended ("" while it runs).
type Outcome string

const (
	Running    Outcome = ""
	Succeeded  Outcome = "succeeded"
	RolledBack Outcome = "rolled-back"
	Failed     Outcome = "failed"
	// Superseded: the endpoint was deleted while the deployment ran.
	Superseded Outcome = "superseded"
)

// Alarms roll a deployment back: the green fleet's error rate (5xx over
// requests) or p99 latency above these, over the alarm window.
type Alarms struct {
	MaxErrorRate float64      `json:"max_error_rate"`
	MaxP99       job.Duration `json:"max_p99,omitempty"`
	MinRequests  int          `json:"min_requests"`
	// ReadyTimeout bounds how long green may take to become ready.
	ReadyTimeout job.Duration `json:"ready_timeout,omitempty"`
}

// Deployment is one update of one variant from a blue configuration to a
// green one, driven step by step by the controller.
type Deployment struct {
	ID       int64   `json:"id"`
	Endpoint string  `json:"endpoint"`
	Variant  string  `json:"variant"`
	From     Variant `json:"from"`
	To       Variant `json:"to"`
	Strategy string  `json:"strategy"`
	Alarms   Alarms  `json:"alarms"`
	// Phase and Step mirror the rollout state for display; State is the
	// rollout driver's whole state, persisted so a restarted server
	// resumes where it stopped.
	Phase     string    `json:"phase"`
	Step      int       `json:"step"`
	State     []byte    `json:"-"`
	Outcome   Outcome   `json:"outcome,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	Events    []Event   `json:"events,omitempty"`
}

// Event is one line of a deployment's story.
type Event struct {
	At      time.Time `json:"at"`
	Message string    `json:"message"`
}

// ScaleEvent is one autoscaling decision that changed a fleet's size.
type ScaleEvent struct {
	ID       int64     `json:"id"`
	Endpoint string    `json:"endpoint"`
	Variant  string    `json:"variant"`
	From     int       `json:"from"`
	To       int       `json:"to"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

func fieldErr(field, format string, args ...any) error {
	return &job.FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}
