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
	"syscall"

	"github.com/hpcml/hpcml/internal/backend/local"
	"github.com/hpcml/hpcml/internal/backend/slurm"
	"github.com/hpcml/hpcml/internal/task"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "__executor" {
		os.Exit(runExecutor(os.Args[2]))
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

func runExecutor(jobsDir string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	// SIGTERM/SIGINT end the executor, and with it (Pdeathsig) its jobs:
	// that is a node going down. The server never sends them.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := local.ServeExecutor(ctx, jobsDir, log)
	if errors.Is(err, local.ErrExecutorRunning) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "executor:", err)
		return 1
	}
	return 0
}
