// Package server wires the control plane together: store, object storage,
// backend, scheduler, API, dashboard and metrics.
package server

import "time"

// Config is everything `hpcml server` can be told.
type Config struct {
	// DataDir holds the database, the token, job dirs and (by default) objects.
	DataDir string
	// Listen is the address to serve on; loopback by default.
	Listen string
	// ScratchDir holds the job dirs and the node executor's socket;
	// default <DataDir>/jobs. Node-local fast storage (tmpfs, NVMe) is
	// the usual choice on clusters, as Slurm's TmpFS.
	ScratchDir string
	// Storage is the object store URL; default file://<DataDir>/objects.
	Storage string
	// CPUs and MemoryMB declare the local executor's capacity; zero means
	// this machine's cores and memory.
	CPUs     float64
	MemoryMB int64
	// KillGrace is how long a cancelled or timed-out job gets between
	// SIGTERM and SIGKILL.
	KillGrace time.Duration
	// CacheBytes bounds the node's dataset object cache (<scratch>/cache).
	CacheBytes int64
	// KeepJobDirs is how long an ended attempt's dir (its scratch files
	// and local logs) is kept; its logs live on in object storage. Zero
	// keeps them forever.
	KeepJobDirs time.Duration
	// AsyncRetention is how long an ended asynchronous inference request
	// is kept: its row, its inline payload, and the result and error
	// objects the server placed. Zero keeps them forever.
	AsyncRetention time.Duration
	// Backend is the default queue's backend (job.BackendLocal by default).
	Backend string
	// Slurm configures the Slurm backend, which runs when Slurm's client
	// commands are installed (and must, with Backend "slurm").
	Slurm SlurmConfig
	// Ready, if set, is called with the base URL once the server listens.
	Ready func(baseURL string)
}

// SlurmConfig is where the Slurm backend keeps attempts and finds Slurm.
type SlurmConfig struct {
	// Dir holds Slurm attempts' dirs; the nodes must see it at the same
	// path (a shared file system). Default <DataDir>/slurm.
	Dir string
	// Bin is the directory of sbatch, squeue, scontrol and scancel
	// (default: found on PATH).
	Bin string
	// Poll is how often attempts' journals are read, QueuePoll how often
	// squeue is asked (defaults 250ms and 2s).
	Poll, QueuePoll time.Duration
}
