// Package attemptdir is what the backends share about attempt dirs: one
// directory per attempt, named "<job id>.<attempt>", holding the
// attempt's journal (see internal/task), and the janitor that removes
// them once their attempts have long ended.
package attemptdir

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/lazyfs"
	"github.com/hpcml/hpcml/internal/task"
)

// Path is the dir of attempt attempt of job id under root: flat, so that
// making one is one mkdir.
func Path(root string, id int64, attempt int) string {
	return filepath.Join(root, strconv.FormatInt(id, 10)+"."+strconv.Itoa(attempt))
}

// Parse reads a name Path gives.
func Parse(name string) (id int64, attempt int, ok bool) {
	a, b, found := strings.Cut(name, ".")
	if !found {
		return 0, 0, false
	}
	id, err1 := strconv.ParseInt(a, 10, 64)
	attempt, err2 := strconv.Atoi(b)
	return id, attempt, err1 == nil && err2 == nil && id > 0 && attempt > 0
}

// janitorEvery is how often attempt dirs are looked at.
const janitorEvery = 10 * time.Minute

// EndedFunc reports whether the metadata store has recorded the end of an
// attempt. Only the store may say so: a journal that reads "done" may
// belong to an attempt whose end a restarting server has not read yet,
// and deleting its dir then would make the attempt look never started.
type EndedFunc func(ctx context.Context, jobID int64, attempt int) bool

// Janitor removes the dirs under Root of attempts that the store has
// recorded as ended and that have not changed for Keep. Their logs were
// shipped to object storage when they ended, so only scratch files go.
type Janitor struct {
	Root  string
	Keep  time.Duration // <= 0 keeps everything
	Ended EndedFunc
	Log   *slog.Logger
	// Also, if set, is run on every sweep with the same cutoff (for a
	// backend's own files beside the attempt dirs).
	Also func(cutoff time.Time)
}

// Run sweeps until ctx ends.
func (j *Janitor) Run(ctx context.Context) {
	if j.Keep <= 0 {
		return
	}
	t := time.NewTicker(janitorEvery)
	defer t.Stop()
	for {
		cutoff := time.Now().Add(-j.Keep)
		j.Sweep(ctx, cutoff)
		if j.Also != nil {
			j.Also(cutoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep removes the dirs of ended attempts last touched before cutoff.
func (j *Janitor) Sweep(ctx context.Context, cutoff time.Time) (removed int) {
	entries, err := os.ReadDir(j.Root)
	if err != nil {
		j.Log.Warn("sweep job dirs", "err", err)
		return 0
	}
	// Lazy inputs' mounts that outlived their server (an executor killed
	// with -9): their dirs cannot be removed until they are detached.
	mounts, err := lazyfs.MountsUnder(j.Root)
	if err != nil {
		j.Log.Warn("list mounts under job dirs", "err", err)
	}
	for _, e := range entries {
		id, attempt, ok := Parse(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		dir := filepath.Join(j.Root, e.Name())
		if LastTouched(dir).After(cutoff) || !j.Ended(ctx, id, attempt) {
			continue
		}
		if abs, _ := filepath.Abs(dir); hasMountUnder(mounts, abs) {
			if err := lazyfs.DetachUnder(dir); err != nil {
				j.Log.Warn("detach lazy input of old job dir", "dir", dir, "err", err)
				continue
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			j.Log.Warn("remove old job dir", "dir", dir, "err", err)
			continue
		}
		removed++
	}
	if removed > 0 {
		j.Log.Info("removed old job dirs", "count", removed, "root", j.Root)
	}
	return removed
}

func hasMountUnder(mounts []string, dir string) bool {
	for _, m := range mounts {
		if strings.HasPrefix(m, dir+"/") {
			return true
		}
	}
	return false
}

// LastTouched is when the attempt last wrote its journal (or, without
// one, when its dir changed).
func LastTouched(dir string) time.Time {
	if info, err := os.Stat(filepath.Join(dir, task.StatusFile)); err == nil {
		return info.ModTime()
	}
	if info, err := os.Stat(dir); err == nil {
		return info.ModTime()
	}
	return time.Now()
}
