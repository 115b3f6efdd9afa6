package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/bytesize"
	"github.com/hpcml/hpcml/internal/cli"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/server"
)

func runCLI() int {
	return cli.Execute(cli.NewRoot(newServerCmd()))
}

func newServerCmd() *cobra.Command {
	var cfg server.Config
	var logLevel, backendName, cacheSize string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the hpcml control plane (API, dashboard, scheduler, local executor)",
		Long: `Run the hpcml control plane on this machine.

Metadata lives in <data-dir>/hpcml.db (SQLite), objects in --storage
(default file://<data-dir>/objects), and the API token in <data-dir>/token.
Jobs run in the node executor, a process that outlives the server: stopping or
killing the server does not stop running jobs, and a restart picks them up.

Queues with backend slurm submit their jobs to a Slurm cluster through
sbatch (available when Slurm's client commands are installed here);
--backend slurm makes the default queue one of them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.KillGrace <= 0 {
				return fmt.Errorf("--kill-grace must be positive (got %s)", cfg.KillGrace)
			}
			if cfg.KeepJobDirs < 0 {
				return fmt.Errorf("--keep-job-dirs must not be negative (0 keeps job dirs forever)")
			}
			if cfg.AsyncRetention < 0 {
				return fmt.Errorf("--async-retention must not be negative (0 keeps ended requests forever)")
			}
			if backendName != job.BackendLocal && backendName != job.BackendSlurm {
				return fmt.Errorf("--backend %q: want local or slurm", backendName)
			}
			cfg.Backend = backendName
			var err error
			if cfg.CacheBytes, err = bytesize.Parse(cacheSize, bytesize.Byte); err != nil {
				return fmt.Errorf("--cache-size: %w", err)
			}
			if cfg.CacheBytes <= 0 {
				return fmt.Errorf("--cache-size %s: must be more than 0", cacheSize)
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg.Ready = func(base string) {
				tokenPath := filepath.Join(cfg.DataDir, server.TokenFile)
				fmt.Fprintf(cmd.OutOrStdout(), "hpcml server listening on %s\n", base)
				if tok, err := os.ReadFile(tokenPath); err == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "Dashboard: %s/?token=%s\n", base, string(trimNL(tok)))
				}
				fmt.Fprintf(cmd.OutOrStdout(), "API token: %s (export HPCML_TOKEN=$(cat %s))\n", tokenPath, tokenPath)
			}
			return server.Run(ctx, cfg, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", envOr("HPCML_DATA_DIR", server.DefaultDataDir), "where hpcml keeps its database, token, job dirs and default storage")
	f.StringVar(&cfg.Listen, "listen", envOr("HPCML_LISTEN", server.DefaultListen), "address to serve the API and dashboard on (loopback by default)")
	f.StringVar(&cfg.ScratchDir, "scratch-dir", os.Getenv("HPCML_SCRATCH_DIR"), "where job dirs live (default <data-dir>/jobs); node-local fast storage such as tmpfs speeds up short jobs")
	f.StringVar(&cfg.Storage, "storage", os.Getenv("HPCML_STORAGE"), "object storage URL (default file://<data-dir>/objects; or s3://bucket?endpoint=...&use_path_style=true&region=...)")
	f.Float64Var(&cfg.CPUs, "cpus", 0, "CPUs the local executor may hand out (default: this machine's)")
	f.Int64Var(&cfg.MemoryMB, "memory-mb", 0, "memory in MB the local executor may hand out (default: this machine's)")
	f.DurationVar(&cfg.KillGrace, "kill-grace", server.DefaultKillGrace, "time between SIGTERM and SIGKILL when a job is cancelled or times out")
	f.DurationVar(&cfg.KeepJobDirs, "keep-job-dirs", 7*24*time.Hour, "how long to keep an ended job's dir (scratch files, local logs); logs stay in storage; 0 keeps them forever")
	f.DurationVar(&cfg.AsyncRetention, "async-retention", 0, "how long an ended asynchronous inference request is kept (its record, inline payload and the result and error objects the server placed); 0 keeps them forever")
	f.StringVar(&backendName, "backend", job.BackendLocal, "backend of the default queue: local or slurm")
	f.StringVar(&cfg.Slurm.Dir, "slurm-dir", "", "where Slurm jobs' attempt dirs live (default <data-dir>/slurm); must be shared with the nodes at the same path")
	f.StringVar(&cfg.Slurm.Bin, "slurm-bin", "", "directory of sbatch, squeue, scontrol and scancel (default: from PATH)")
	f.StringVar(&cacheSize, "cache-size", "10G", "size of the node's dataset object cache (<scratch-dir>/cache); least recently used objects go first")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
