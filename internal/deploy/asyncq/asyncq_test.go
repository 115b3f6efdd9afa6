package asyncq

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	lost := errors.New("connection reset by peer")
	for _, c := range []struct {
		name     string
		o        Outcome
		failures int
		want     Action
		why      string
	}{
		{"ok", Outcome{Status: 200}, 0, Succeed, ""},
		{"created", Outcome{Status: 201}, 2, Succeed, ""},
		{"bad input", Outcome{Status: 400}, 0, Fail, "400 Bad Request"},
		{"too large", Outcome{Status: 413}, 0, Fail, "413"},
		{"missing input", Outcome{InputMissing: true}, 0, Fail, "does not exist"},
		{"timeout", Outcome{TimedOut: true, Err: lost}, 0, Fail, "timed out"},
		{"5xx first", Outcome{Status: 500}, 0, Retry, "500"},
		{"503", Outcome{Status: 503}, 1, Retry, "503"},
		{"429", Outcome{Status: 429}, 0, Retry, "429"},
		{"connection", Outcome{Err: lost}, 0, Retry, "connection reset"},
		{"5xx last", Outcome{Status: 502}, 2, Fail, "attempt 3 of 3"},
		{"connection last", Outcome{Err: lost}, 2, Fail, "attempt 3 of 3"},
	} {
		got, why := Decide(c.o, c.failures, 3)
		if got != c.want || !strings.Contains(why, c.why) {
			t.Errorf("%s: %v %q, want %v %q", c.name, got, why, c.want, c.why)
		}
	}
	if got, _ := Decide(Outcome{Status: 500}, 0, 1); got != Fail {
		t.Errorf("max 1 attempt: a failure is final, got %v", got)
	}
}

func TestDelays(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 20: time.Minute} {
		if got := RetryDelay(n); got != want {
			t.Errorf("RetryDelay(%d) = %s, want %s", n, got, want)
		}
	}
	prev := time.Duration(0)
	for n := 1; n <= MaxWebhookAttempts+5; n++ {
		d := WebhookDelay(n)
		if d < prev || d > 5*time.Minute || d <= 0 {
			t.Errorf("WebhookDelay(%d) = %s after %s", n, d, prev)
		}
		prev = d
	}
}

func TestStates(t *testing.T) {
	for _, s := range []State{Queued, Running, Succeeded, Failed} {
		if !s.Valid() {
			t.Errorf("%s not valid", s)
		}
	}
	if State("done").Valid() || !Failed.Terminal() || Running.Terminal() {
		t.Error("state predicates")
	}
}
