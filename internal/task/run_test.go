package task

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hpcml/hpcml/internal/blob"
)

func TestRunEventsAndClaim(t *testing.T) {
	dir := t.TempDir()
	work := filepath.Join(dir, WorkDir)
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	env := Env{Buckets: blob.NewCache(), Log: slog.New(slog.DiscardHandler)}
	defer env.Buckets.Close()
	l := &Launch{Argv: []string{"true"}, Env: []string{"PATH=/usr/bin:/bin"}, WorkDir: work}
	journal, ok, err := Claim(dir, OwnerExecutor)
	if err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	var events []string
	if err := Run(env, journal, dir, l, make(chan struct{}), func(ev string) { events = append(events, ev) }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(events, []string{EventStarted}) {
		t.Fatalf("events %v", events)
	}
	st, err := ReadStatus(dir)
	if err != nil || st.Owner != OwnerExecutor || st.Done == nil || st.Done.Result.ExitCode == nil || *st.Done.Result.ExitCode != 0 {
		t.Fatalf("status %+v %v", st, err)
	}
	// Claimed already: a second claim fails, whoever makes it.
	if _, ok, err := Claim(dir, OwnerAbandoned); ok || err != nil {
		t.Fatalf("second claim: %v %v", ok, err)
	}
}
