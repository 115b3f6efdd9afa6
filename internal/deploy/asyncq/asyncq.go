// Package asyncq is the model of asynchronous inference requests, with
// no I/O: a request's states and what the dispatcher does with the
// outcome of one attempt (succeed, retry later, fail for good), and when
// a webhook is tried again. The store persists Request; internal/deploy
// acts on these decisions.
//
// A request's life:
//
//	queued ──lease──▶ running ──result object written──▶ succeeded
//	   ▲                 │  └──failure object written──▶ failed
//	   └──retry / restart┘
//
// The row becomes succeeded or failed only after its object is in
// storage, in one conditional update (state = running and this lease), so
// a killed server finds either a finished row or a running one whose
// object may exist: then it is finished without running it again.
package asyncq

import (
	"fmt"
	"net/http"
	"time"
)

// State is a request's state.
type State string

const (
	Queued    State = "queued"
	Running   State = "running"
	Succeeded State = "succeeded"
	Failed    State = "failed"
)

// Valid reports whether s is a state.
func (s State) Valid() bool {
	return s == Queued || s == Running || s == Succeeded || s == Failed
}

// Terminal reports whether s is final.
func (s State) Terminal() bool { return s == Succeeded || s == Failed }

// WebhookState is where a request's notification stands.
type WebhookState string

const (
	WebhookNone      WebhookState = ""          // no webhook
	WebhookWaiting   WebhookState = "waiting"   // the request has not ended
	WebhookPending   WebhookState = "pending"   // to be delivered (again)
	WebhookDelivered WebhookState = "delivered" // a 2xx answer
	WebhookFailed    WebhookState = "failed"    // gave up after MaxWebhookAttempts
)

// Webhook delivery: bounded, with backoff, never on the queue's path.
const (
	MaxWebhookAttempts = 6
	WebhookTimeout     = 10 * time.Second
)

// Request is one asynchronous inference request.
type Request struct {
	ID       string `json:"inference_id"`
	Endpoint string `json:"endpoint"`
	State    State  `json:"status"`
	// Input is the object the payload is read from: the caller's input
	// location, or where the server stored an inline body.
	Input       string `json:"input_location"`
	InputBytes  int64  `json:"input_bytes"`
	Inline      bool   `json:"inline"`
	ContentType string `json:"content_type,omitempty"`
	Accept      string `json:"accept,omitempty"`
	Output      string `json:"output_location"`
	Failure     string `json:"failure_location"`
	// Timeout bounds one attempt's processing.
	Timeout time.Duration `json:"-"`
	// Attempts counts every send to a replica (restarts included);
	// Failures those that failed on the replica's side (5xx, connection
	// lost), which MaxAttempts bounds.
	Attempts    int    `json:"attempts"`
	Failures    int    `json:"failures"`
	MaxAttempts int    `json:"max_attempts"`
	Error       string `json:"error,omitempty"`
	// Owner is the dispatcher holding a running request (its lease).
	Owner string `json:"-"`

	Webhook         string       `json:"webhook,omitempty"`
	WebhookState    WebhookState `json:"webhook_state,omitempty"`
	WebhookAttempts int          `json:"webhook_attempts,omitempty"`
	WebhookError    string       `json:"webhook_error,omitempty"`
	WebhookNextAt   time.Time    `json:"-"`

	SubmittedAt time.Time `json:"submitted_at"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	EndedAt     time.Time `json:"ended_at,omitzero"`
	// NextAt: not leased before (a retry's backoff).
	NextAt time.Time `json:"-"`
}

// Action is what to do with a request after an attempt.
type Action int

const (
	Succeed Action = iota
	Retry
	Fail
)

func (a Action) String() string {
	return [...]string{"succeed", "retry", "fail"}[a]
}

// Outcome is what one attempt came to.
type Outcome struct {
	// Status is the replica's answer (0: none).
	Status int
	// Err: the exchange failed (connection refused or lost, a read).
	Err error
	// TimedOut: the request's own processing limit passed.
	TimedOut bool
	// InputMissing: the input object is gone.
	InputMissing bool
}

// Decide turns an attempt's outcome into an action and, unless it
// succeeded, the reason. failures counts the replica-side failures
// before this attempt. A caller's mistake (4xx, a missing input) or a
// timeout fails at once: sending it again would end the same way.
func Decide(o Outcome, failures, maxAttempts int) (Action, string) {
	var why string
	switch {
	case o.InputMissing:
		return Fail, "the input location does not exist (any more)"
	case o.TimedOut:
		return Fail, "invocation timed out"
	case o.Err != nil:
		why = fmt.Sprintf("replica failed: %v", o.Err)
	case o.Status >= 200 && o.Status < 300:
		return Succeed, ""
	case o.Status == http.StatusTooManyRequests || o.Status >= 500:
		why = fmt.Sprintf("replica answered %d %s", o.Status, http.StatusText(o.Status))
	default:
		return Fail, fmt.Sprintf("replica answered %d %s", o.Status, http.StatusText(o.Status))
	}
	if failures+1 >= maxAttempts {
		return Fail, fmt.Sprintf("%s (attempt %d of %d)", why, failures+1, maxAttempts)
	}
	return Retry, why
}

// RetryDelay is how long a request waits after its n-th failure (n ≥ 1):
// 1 s, 2 s, 4 s ... at most a minute.
func RetryDelay(n int) time.Duration {
	return min(time.Duration(1<<min(max(n-1, 0), 6))*time.Second, time.Minute)
}

// WebhookDelay is how long a webhook waits after its n-th failed delivery
// (n ≥ 1): 2 s, 4 s, 8 s ... at most 5 minutes.
func WebhookDelay(n int) time.Duration {
	return min(time.Duration(1<<min(max(n, 1), 8))*time.Second, 5*time.Minute)
}
