package local

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/task"
)

// janitorEvery is how often attempt dirs are looked at.
const janitorEvery = 10 * time.Minute

// EndedFunc reports whether the metadata store has recorded the end of an
// attempt. Only the store may say so: a journal that reads "done" may
// belong to an attempt whose end a restarting server has not read yet,
// and deleting its dir then would make the attempt look never started.
type EndedFunc func(ctx context.Context, jobID int64, attempt int) bool

// RunJanitor removes, until ctx ends, the dirs of attempts that the store
// has recorded as ended and that have not changed for keep. Their logs
// were shipped to object storage when they ended, so only scratch files
// go. keep <= 0 keeps everything.
func (b *Backend) RunJanitor(ctx context.Context, keep time.Duration, ended EndedFunc) {
	if keep <= 0 {
		return
	}
	t := time.NewTicker(janitorEvery)
	defer t.Stop()
	for {
		b.sweep(ctx, time.Now().Add(-keep), ended)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweep removes the dirs of ended attempts last touched before cutoff.
func (b *Backend) sweep(ctx context.Context, cutoff time.Time, ended EndedFunc) (removed int) {
	entries, err := os.ReadDir(b.cfg.JobsDir)
	if err != nil {
		b.log.Warn("sweep job dirs", "err", err)
		return 0
	}
	for _, e := range entries {
		id, attempt, ok := parseAttemptDir(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		dir := filepath.Join(b.cfg.JobsDir, e.Name())
		if lastTouched(dir).After(cutoff) || !ended(ctx, id, attempt) {
			continue
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

// parseAttemptDir reads "<id>.<attempt>", the name attemptDir gives.
func parseAttemptDir(name string) (id int64, attempt int, ok bool) {
	a, b, found := strings.Cut(name, ".")
	if !found {
		return 0, 0, false
	}
	id, err1 := strconv.ParseInt(a, 10, 64)
	attempt, err2 := strconv.Atoi(b)
	return id, attempt, err1 == nil && err2 == nil && id > 0 && attempt > 0
}

// lastTouched is when the attempt last wrote its journal (or, without
// one, when its dir changed).
func lastTouched(dir string) time.Time {
	if info, err := os.Stat(filepath.Join(dir, task.StatusFile)); err == nil {
		return info.ModTime()
	}
	if info, err := os.Stat(dir); err == nil {
		return info.ModTime()
	}
	return time.Now()
}
