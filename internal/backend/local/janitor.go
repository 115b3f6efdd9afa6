package local

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/hpcml/hpcml/internal/task"
)

// janitorEvery is how often ended attempt dirs are looked at.
const janitorEvery = 10 * time.Minute

// RunJanitor removes the dirs of attempts that ended more than keep ago,
// until ctx ends. Their logs were shipped to object storage when they
// ended, so only the job's scratch files go. keep <= 0 keeps everything.
func (b *Backend) RunJanitor(ctx context.Context, keep time.Duration) {
	if keep <= 0 {
		return
	}
	t := time.NewTicker(janitorEvery)
	defer t.Stop()
	for {
		b.sweep(time.Now().Add(-keep))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweep removes attempt dirs whose journal says they were done before cutoff.
func (b *Backend) sweep(cutoff time.Time) (removed int) {
	entries, err := os.ReadDir(b.cfg.JobsDir)
	if err != nil {
		b.log.Warn("sweep job dirs", "err", err)
		return 0
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(b.cfg.JobsDir, e.Name())
		st, err := task.ReadStatus(dir)
		if err != nil || st.Done == nil || st.Done.At.After(cutoff) {
			continue // running, unknown, or recent: keep
		}
		if err := os.RemoveAll(dir); err != nil {
			b.log.Warn("remove old job dir", "dir", dir, "err", err)
			continue
		}
		removed++
	}
	if removed > 0 {
		b.log.Info("removed old job dirs", "count", removed)
	}
	return removed
}
