// Command hpcml is the whole platform in one binary: the control plane
// (`hpcml server`), the CLI, and the node executor that runs jobs
// (`hpcml __executor`, started by the server).
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
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "__executor" {
		os.Exit(runExecutor(os.Args[2]))
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
