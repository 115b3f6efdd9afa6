package autoscale

import (
	"strings"
	"testing"
	"time"
)

// TestScaleToZeroAndBack: a backlog policy with min 0 scales in to zero
// once the queue has been empty over the scale-in window, and out of zero
// on the first sample with work queued, without waiting for history.
func TestScaleToZeroAndBack(t *testing.T) {
	p := Policy{Min: 0, Max: 4, Metric: MetricBacklog, Target: 2, Window: 2 * time.Second, ScaleInWindow: 4 * time.Second}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	var empty []Sample
	for i := 6; i >= 0; i-- {
		empty = append(empty, Sample{At: now.Add(-time.Duration(i) * time.Second), Value: 0})
	}
	got, why := Desired(p, 1, empty, time.Time{}, time.Time{}, now)
	if got != 0 {
		t.Fatalf("an empty queue over the window: %d (%s), want 0", got, why)
	}
	// At zero with nothing queued: stay.
	if got, why := Desired(p, 0, empty, time.Time{}, now, now); got != 0 {
		t.Fatalf("at zero, nothing queued: %d (%s)", got, why)
	}
	// One sample with work, no history at all: out at once.
	one := []Sample{{At: now, Value: 1}}
	if got, why := Desired(p, 0, one, time.Time{}, now, now); got != 1 || !strings.Contains(why, "scale from zero") {
		t.Fatalf("work queued at zero: %d (%s), want 1", got, why)
	}
	// A deep queue at zero goes straight to its size (backlog / target).
	deep := append(empty, Sample{At: now.Add(time.Second), Value: 7})
	if got, _ := Desired(p, 0, deep, time.Time{}, now, now.Add(time.Second)); got != 4 {
		t.Fatalf("backlog 7 at target 2 from zero: %d, want 4", got)
	}
	// Cooldowns do not hold a scale from zero back.
	p.ScaleOutCooldown = time.Hour
	if got, _ := Desired(p, 0, one, now, now, now); got != 1 {
		t.Fatalf("scale from zero under a cooldown: %d, want 1", got)
	}
	// Work in the queue keeps a replica: no scale-in to zero.
	var busy []Sample
	for i := 6; i >= 0; i-- {
		busy = append(busy, Sample{At: now.Add(-time.Duration(i) * time.Second), Value: 1})
	}
	if got, why := Desired(p, 1, busy, time.Time{}, time.Time{}, now); got != 1 {
		t.Fatalf("a busy queue: %d (%s), want 1", got, why)
	}
}
