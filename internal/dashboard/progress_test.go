package dashboard

import (
	"net/http"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

func TestProgressOf(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		p    *job.Progress
		want progressView
	}{
		{"transfer", &job.Progress{Done: 1.2 * (1 << 30), Total: 2.6 * (1 << 30), Unit: job.UnitBytes, FilesDone: 3, FilesTotal: 10,
			Rate: 120 << 20, ETASeconds: 11.6, UpdatedAt: now},
			progressView{Known: true, Pct: "46.15", Percent: 46, Text: "1.2 GiB of 2.6 GiB · 3 of 10 files · 120 MiB/s · ETA 12s"}},
		{"no total: no bar", &job.Progress{Done: 2.5, Unit: "epochs", Message: "warming up", UpdatedAt: now},
			progressView{Text: "2.5 epochs", Message: "warming up"}},
		{"past the total", &job.Progress{Done: 11, Total: 10, UpdatedAt: now},
			progressView{Known: true, Pct: "100.00", Percent: 100, Text: "11 of 10"}},
		{"almost done is not 100", &job.Progress{Done: 999, Total: 1000, UpdatedAt: now},
			progressView{Known: true, Pct: "99.90", Percent: 99, Text: "999 of 1000"}},
		{"stale", &job.Progress{Done: 1, Total: 4, UpdatedAt: now.Add(-5 * time.Minute)},
			progressView{Known: true, Pct: "25.00", Percent: 25, Text: "1 of 4", Stale: "5m ago"}},
	}
	for _, tt := range tests {
		got := progressOf(tt.p, now)
		got.Updated = ""
		if *got != tt.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.name, *got, tt.want)
		}
	}
	if progressOf(nil, now) != nil {
		t.Error("no report, yet a view")
	}
}

// TestProgressFragment: the live fragment carries the bar, so it moves
// while the page is open, and drops it when the job ends.
func TestProgressFragment(t *testing.T) {
	src := newFakeSource()
	h, _ := newTestHandler(t, src)
	src.setProgress("1", &job.Progress{Done: 3, Total: 4})
	res := do(t, h, "GET", "/ui/jobs/1", true, nil)
	if res.Code != http.StatusOK {
		t.Fatalf("GET /ui/jobs/1: %d", res.Code)
	}
	mustContain(t, "the fragment", res.Body, `aria-valuenow="75"`, "3 of 4")
	src.setState("1", job.Succeeded)
	res = do(t, h, "GET", "/ui/jobs/1", true, nil)
	mustNotContain(t, "the fragment of the ended job", res.Body, `id="progress"`)
}
