// Command hpcml is the whole platform in one binary: the control plane
// (`hpcml server`), the CLI, the node executor that runs jobs
// (`hpcml __executor`, started by the server), and each task of a job of
// several tasks (`hpcml __rank`, started by the job's wrapper).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/hpcml/hpcml/internal/backend/local"
	"github.com/hpcml/hpcml/internal/backend/slurm"
	"github.com/hpcml/hpcml/internal/task"
)

func main() {
	if (len(os.Args) == 3 || len(os.Args) == 4) && os.Args[1] == "__executor" {
		cacheBytes := int64(defaultCacheBytes)
		if len(os.Args) == 4 {
			if n, err := strconv.ParseInt(os.Args[3], 10, 64); err == nil {
				cacheBytes = n
			}
		}
		os.Exit(runExecutor(os.Args[2], cacheBytes))
	}
	// Before cobra: everything after "--" is the job's command, and the
	// CLI's start-up (config, flags) is no business of a task's.
	if len(os.Args) >= 2 && os.Args[1] == "__slurm-task" {
		os.Exit(slurm.RunWrapper(os.Args[2:], slog.New(slog.NewTextHandler(os.Stderr, nil))))
	}
	if len(os.Args) >= 2 && os.Args[1] == task.RankCommand {
		os.Exit(task.RankMain(os.Args[2:]))
	}
	os.Exit(runCLI())
}

// defaultCacheBytes bounds a node's dataset cache when nobody said.
const defaultCacheBytes = 10 << 30

func runExecutor(jobsDir string, cacheBytes int64) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	// SIGTERM/SIGINT end the executor, and with it (Pdeathsig) its jobs:
	// that is a node going down. The server never sends them.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := local.ServeExecutor(ctx, jobsDir, cacheBytes, log)
	if errors.Is(err, local.ErrExecutorRunning) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "executor:", err)
		return 1
	}
	return 0
}
