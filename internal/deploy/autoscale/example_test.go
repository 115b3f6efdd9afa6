package autoscale_test

import (
	"fmt"
	"time"

	"github.com/hpcml/hpcml/internal/deploy/autoscale"
)

func ExampleDesired() {
	p := autoscale.Policy{Min: 1, Max: 8, Metric: autoscale.MetricInFlight, Target: 2,
		ScaleOutCooldown: 30 * time.Second, ScaleInCooldown: time.Minute}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	// The controller's samples: one a second, 15 requests in flight.
	var samples []autoscale.Sample
	for d := p.History(); d >= 0; d -= time.Second {
		samples = append(samples, autoscale.Sample{At: now.Add(-d), Value: 15})
	}
	desired, reason := autoscale.Desired(p, 2, samples, time.Time{}, time.Time{}, now)
	fmt.Println(desired, reason)
	// Output:
	// 8 in-flight 7.5 per replica over 30s > target 2 → 8 replicas
}
