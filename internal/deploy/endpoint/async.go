package endpoint

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

// Limits of asynchronous inference (SageMaker's: 1 GB by reference to
// storage, 6 MB inline, one hour of processing).
const (
	DefaultAsyncInlineBytes = 6 << 20
	MaxAsyncInlineBytes     = 100 << 20
	MaxAsyncInputBytes      = 1 << 30
	DefaultAsyncAttempts    = 3
	MaxAsyncAttempts        = 20
	DefaultAsyncTimeout     = 15 * time.Minute
	MaxAsyncTimeout         = time.Hour
	DefaultAsyncConcurrency = 4
	MaxAsyncConcurrency     = 256
	maxURLLen               = 2048
)

// MetricBacklog is the async autoscaling metric: requests queued or
// running, per replica.
const MetricBacklog = "backlog"

// Async makes an endpoint asynchronous: requests are queued durably
// (POST /endpoints/NAME/async-invocations), sent to a ready replica by
// the server's dispatcher, and their results written to storage.
type Async struct {
	// OutputPath is where results go: a URL prefix (s3://b/p/, file:///d/)
	// or a key prefix in the server's storage; "" is async/NAME/output/.
	// A result is <OutputPath><inference id>.out.
	OutputPath string `json:"output_path,omitempty"`
	// FailurePath is where error objects go (<FailurePath><id>.error.json);
	// "" is async/NAME/failure/ (or <OutputPath>failures/ when it is set).
	FailurePath string `json:"failure_path,omitempty"`
	// Webhook is POSTed a JSON notice when a request ends, unless the
	// request names its own (http or https only).
	Webhook string `json:"webhook,omitempty"`
	// MaxInlineBytes bounds a request body sent inline (default 6 MB);
	// larger inputs go by reference (X-Hpcml-Input-Location, ≤ 1 GB).
	MaxInlineBytes int64 `json:"max_inline_bytes,omitempty"`
	// MaxAttempts bounds the sends of a request whose replica failed
	// (5xx, connection lost) before it fails for good (default 3).
	MaxAttempts int `json:"max_attempts,omitempty"`
	// InvocationTimeout is a request's processing limit unless the
	// request asks for another (default 15 min, at most 1 h).
	InvocationTimeout job.Duration `json:"invocation_timeout,omitempty"`
	// MaxConcurrency is how many requests the dispatcher sends to one
	// replica at once (SageMaker's MaxConcurrentInvocationsPerInstance;
	// default 4).
	MaxConcurrency int `json:"max_concurrency,omitempty"`
}

// CheckWebhookURL validates a webhook URL: absolute http or https with a
// host, no longer than 2 KB. Nothing else is ever called back.
func CheckWebhookURL(s string) error {
	if len(s) > maxURLLen {
		return fmt.Errorf("webhook URL is longer than %d bytes", maxURLLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("webhook URL %q: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("webhook URL %q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return fmt.Errorf("webhook URL %q has no host", s)
	}
	return nil
}

// checkLocation validates an output or failure prefix.
func checkLocation(field, s string) error {
	if s == "" {
		return nil
	}
	if len(s) > maxURLLen {
		return fieldErr(field, "longer than %d bytes", maxURLLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fieldErr(field, "%q: %v", s, err)
	}
	switch u.Scheme {
	case "s3", "file":
	case "":
		if strings.HasPrefix(s, "/") || strings.Contains("/"+s+"/", "/../") {
			return fieldErr(field, "%q: a key prefix in the server's storage must be relative and stay inside it", s)
		}
	default:
		return fieldErr(field, "%q: want s3://, file:// or a key prefix in the server's storage", s)
	}
	return nil
}

// Check validates the block, filling defaults.
func (a *Async) Check() error {
	if a.MaxInlineBytes == 0 {
		a.MaxInlineBytes = DefaultAsyncInlineBytes
	}
	if a.MaxAttempts == 0 {
		a.MaxAttempts = DefaultAsyncAttempts
	}
	if a.InvocationTimeout == 0 {
		a.InvocationTimeout = job.Duration(DefaultAsyncTimeout)
	}
	if a.MaxConcurrency == 0 {
		a.MaxConcurrency = DefaultAsyncConcurrency
	}
	switch {
	case a.MaxInlineBytes < 1 || a.MaxInlineBytes > MaxAsyncInlineBytes:
		return fieldErr("async.max_inline_bytes", "want 1..%d bytes (larger inputs go by reference)", MaxAsyncInlineBytes)
	case a.MaxAttempts < 1 || a.MaxAttempts > MaxAsyncAttempts:
		return fieldErr("async.max_attempts", "want 1..%d", MaxAsyncAttempts)
	case a.InvocationTimeout < job.Duration(time.Second) || time.Duration(a.InvocationTimeout) > MaxAsyncTimeout:
		return fieldErr("async.invocation_timeout", "want 1s..1h")
	case a.MaxConcurrency < 1 || a.MaxConcurrency > MaxAsyncConcurrency:
		return fieldErr("async.max_concurrency", "want 1..%d", MaxAsyncConcurrency)
	}
	if err := checkLocation("async.output_path", a.OutputPath); err != nil {
		return err
	}
	if err := checkLocation("async.failure_path", a.FailurePath); err != nil {
		return err
	}
	if a.Webhook != "" {
		if err := CheckWebhookURL(a.Webhook); err != nil {
			return fieldErr("async.webhook", "%v", err)
		}
	}
	return nil
}

// checkAsync is Spec.Check's part for asynchronous endpoints and for the
// autoscaling that only they may have (backlog, scale to zero).
func (s *Spec) checkAsync() error {
	a := s.Autoscale
	if s.Async == nil {
		if a != nil && (a.Min == 0 || a.Metric == MetricBacklog) {
			return fieldErr("autoscale", "min=0 and metric=backlog are for asynchronous endpoints (--async) only")
		}
		return nil
	}
	if err := s.Async.Check(); err != nil {
		return err
	}
	if len(s.Variants) != 1 {
		return fieldErr("variants", "an asynchronous endpoint has exactly one variant")
	}
	if a != nil && a.Metric != MetricBacklog {
		return fieldErr("autoscale.metric", "an asynchronous endpoint scales on its queue: metric=backlog")
	}
	return nil
}
