package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/hpcml/hpcml/internal/backend"
	"github.com/hpcml/hpcml/internal/backend/slurm"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/store"
)

// newSlurmBackend starts the Slurm backend when Slurm's client commands
// are installed; nil when they are not (and the default queue does not
// need them).
func newSlurmBackend(cfg Config, dataDir, exe string, rep backend.Reporter, log *slog.Logger) (*slurm.Backend, error) {
	sbatch := "sbatch"
	if cfg.Slurm.Bin != "" {
		sbatch = filepath.Join(cfg.Slurm.Bin, "sbatch")
	}
	if _, err := exec.LookPath(sbatch); err != nil {
		if cfg.Backend == job.BackendSlurm {
			return nil, fmt.Errorf("--backend slurm: sbatch not found (install Slurm's client commands or set --slurm-bin): %w", err)
		}
		return nil, nil
	}
	dir := cfg.Slurm.Dir
	if dir == "" {
		dir = filepath.Join(dataDir, "slurm")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return slurm.New(slurm.Config{
		Dir:        dir,
		Executable: exe,
		Storage:    cfg.Storage,
		KillGrace:  cfg.KillGrace,
		Bin:        cfg.Slurm.Bin,
		Env:        slurmEnv(os.Environ()),
		Poll:       cfg.Slurm.Poll,
		QueuePoll:  cfg.Slurm.QueuePoll,
	}, rep, log.With("backend", "slurm"))
}

// slurmEnv is the server's environment minus hpcml's own variables (the
// token among them): sbatch exports it into every job.
func slurmEnv(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "HPCML_") {
			out = append(out, kv)
		}
	}
	return out
}

// ensureDefaultQueue creates the default queue on first start and points
// it at the chosen backend. Its backend changes only while it holds no
// active job, whose attempts the old backend would have to finish.
func ensureDefaultQueue(ctx context.Context, st store.Store, backendName string) error {
	if backendName == "" {
		backendName = job.BackendLocal
	}
	err := st.CreateQueue(ctx, &job.Queue{Name: job.DefaultQueue, Backend: backendName})
	if err == nil || !errors.Is(err, store.ErrExists) {
		return err
	}
	q, err := st.GetQueue(ctx, job.DefaultQueue)
	if err != nil || q.Backend == backendName {
		return err
	}
	counts, err := st.QueueCounts(ctx)
	if err != nil {
		return err
	}
	active := 0
	for s, n := range counts[job.DefaultQueue] {
		if !s.Terminal() {
			active += n
		}
	}
	if active > 0 {
		return fmt.Errorf("--backend %s: the default queue still has %d active jobs on backend %s; let them finish (or cancel them) first",
			backendName, active, q.Backend)
	}
	q.Backend = backendName
	if backendName == job.BackendLocal {
		q.Partition, q.Account, q.QOS = "", "", ""
	}
	return st.UpdateQueue(ctx, q)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
