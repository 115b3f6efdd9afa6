package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hpcml/hpcml/internal/api"
	"github.com/hpcml/hpcml/internal/backend/attemptdir"
	"github.com/hpcml/hpcml/internal/backend/local"
	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/deploy"
	"github.com/hpcml/hpcml/internal/httpauth"
	"github.com/hpcml/hpcml/internal/joblog"
	"github.com/hpcml/hpcml/internal/registry"
	"github.com/hpcml/hpcml/internal/sched"
	"github.com/hpcml/hpcml/internal/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Defaults of the user contract (ARCHITECTURE.md §3).
const (
	DefaultListen    = "127.0.0.1:8080"
	DefaultDataDir   = ".hpcml"
	DefaultKillGrace = 10 * time.Second
)

// Run starts the control plane and serves until ctx ends. Running jobs
// keep running when it returns: the node executor outlives the server.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = DefaultKillGrace
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	unlock, err := lockDataDir(dataDir)
	if err != nil {
		return err
	}
	defer unlock()
	if cfg.Storage == "" {
		cfg.Storage = "file://" + filepath.Join(dataDir, "objects") + "?metadata=skip"
	}
	cfg.Storage = blob.WithCreateDir(cfg.Storage) // the server's own storage is made if missing
	scratchDir := filepath.Join(dataDir, "jobs")
	if cfg.ScratchDir != "" {
		if scratchDir, err = filepath.Abs(cfg.ScratchDir); err != nil {
			return err
		}
	}
	if err := claimScratchDir(dataDir, scratchDir); err != nil {
		return err
	}
	token, err := loadOrCreateToken(dataDir)
	if err != nil {
		return err
	}
	bucket, err := blob.Open(ctx, cfg.Storage)
	if err != nil {
		return err
	}
	defer bucket.Close()
	if _, err := bucket.IsAccessible(ctx); err != nil {
		return fmt.Errorf("storage %s is not reachable: %w", blob.Redact(cfg.Storage), err)
	}

	st, err := store.Open(ctx, filepath.Join(dataDir, "hpcml.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	if err := ensureDefaultQueue(ctx, st, cfg.Backend); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var sch *sched.Scheduler
	sch = sched.New(st, log, sched.NewMetrics(reg, func() *sched.Snapshot { return sch.Snapshot() }))
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the hpcml binary: %w", err)
	}
	be, err := local.New(local.Config{
		JobsDir:    scratchDir,
		Executable: exe,
		Storage:    cfg.Storage,
		Capacity:   detectCapacity(cfg),
		KillGrace:  cfg.KillGrace,
		CacheBytes: cfg.CacheBytes,
		BaseEnv:    os.Environ(),
	}, sch, log)
	if err != nil {
		return err
	}
	sch.AddBackend(be)
	slurmBackend, err := newSlurmBackend(cfg, dataDir, exe, sch, log)
	if err != nil {
		return err
	}
	logPath := be.LogPath
	if slurmBackend != nil {
		sch.AddBackend(slurmBackend)
		logPath = func(jobID int64, attempt int, stream string) string {
			// Job ids are unique across backends: a Slurm attempt's dir
			// exists, a local one's does not.
			if p := slurmBackend.LogPath(jobID, attempt, stream); fileExists(p) {
				return p
			}
			return be.LogPath(jobID, attempt, stream)
		}
	}

	logs := &joblog.Source{LocalPath: logPath, Bucket: bucket}
	models := registry.New(st, bucket, log)
	defer models.Close()
	// The gateway (/endpoints/{name}/...) takes the server's token, like
	// the API; replicas take their endpoint's own, which it adds.
	gateway := deploy.NewGateway(deploy.GatewayConfig{Log: log, Registry: reg,
		Authorized: func(tok string) bool { return httpauth.SameToken(tok, token) }})
	defer gateway.Close()
	endpoints := deploy.New(deploy.Config{Store: st, Scheduler: sch, Storage: bucket, Registry: models, Gateway: gateway, Log: log})
	// Asynchronous inference: the durable queue's dispatcher, which the
	// gateway's /endpoints/{name}/async-invocations routes feed.
	async := deploy.NewDispatcher(deploy.AsyncConfig{Store: st, Storage: bucket, StorageURL: cfg.Storage, Gateway: gateway,
		Controller: endpoints, Log: log, Registry: reg, Retention: cfg.AsyncRetention})
	defer async.Close()
	apiHandler := api.New(api.Config{
		Store: st, Scheduler: sch, Token: token, Registry: reg, Log: log,
		Logs: logs, Storage: bucket, Models: models, Endpoints: endpoints, Async: async,
	})
	mux := http.NewServeMux()
	mux.Handle("/api/", apiHandler)
	mux.Handle("/healthz", apiHandler)
	mux.Handle("/metrics", apiHandler)
	mux.Handle("/endpoints/", gateway)
	mux.Handle("/", newDashboard(st, sch, logs, bucket, apiHandler, token, models, endpoints, log))

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		log.Warn("listening beyond loopback: the bearer token is the only protection and travels in clear text; put a TLS proxy in front",
			"listen", cfg.Listen)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ended := func(ctx context.Context, id int64, attempt int) bool {
		j, err := st.GetJob(ctx, id)
		return err == nil && (j.Attempt > attempt || j.State.Terminal())
	}
	go (&attemptdir.Janitor{Root: scratchDir, Keep: cfg.KeepJobDirs, Ended: ended, Log: log}).Run(ctx)
	if slurmBackend != nil {
		go slurmBackend.Janitor(cfg.KeepJobDirs, ended).Run(ctx)
	}
	if slurmBackend != nil {
		go slurmBackend.Run(ctx)
	}
	schedDone := make(chan error, 1)
	go func() { schedDone <- sch.Run(ctx) }()
	go func() {
		if err := endpoints.Run(ctx); err != nil {
			log.Error("endpoint controller stopped", "err", err)
		}
	}()
	go func() {
		if err := async.Run(ctx); err != nil {
			log.Error("async dispatcher stopped", "err", err)
		}
	}()
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()

	base := "http://" + ln.Addr().String()
	log.Info("hpcml server ready", "url", base, "data_dir", dataDir, "storage", blob.Redact(cfg.Storage),
		"cpus", be.Capacity().CPUs, "memory_mb", be.Capacity().MemoryMB)
	if cfg.Ready != nil {
		cfg.Ready(base)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-schedDone:
		if runErr == nil {
			runErr = errors.New("scheduler stopped")
		}
	case runErr = <-serveDone:
	}
	cancel()
	shutCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	srv.Shutdown(shutCtx)
	be.Close() // the executor exits once its jobs are done; they are not stopped
	return runErr
}

// lockDataDir makes sure one server at a time uses a data dir: two
// schedulers on one database would run jobs twice.
func lockDataDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "server.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s is in use by another hpcml server", dir)
	}
	return func() { f.Close() }, nil
}
