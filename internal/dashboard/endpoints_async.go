package dashboard

import (
	"fmt"
	"time"

	"github.com/hpcml/hpcml/internal/deploy"
)

// asyncSummary is an asynchronous endpoint's queue and main settings in
// one line, "" for a real-time endpoint.
func asyncSummary(st *deploy.Status) string {
	a := st.Spec.Async
	if a == nil {
		return ""
	}
	s := ""
	if q := st.AsyncQueue; q != nil {
		s = fmt.Sprintf("%d queued, %d running; ", q.Queued, q.Running)
	}
	out := a.OutputPath
	if out == "" {
		out = "async/" + st.Name + "/output/"
	}
	s += fmt.Sprintf("results to %s; up to %d attempts, %s each", out, a.MaxAttempts, time.Duration(a.InvocationTimeout))
	if a.Webhook != "" {
		s += "; webhook " + a.Webhook
	}
	return s
}
