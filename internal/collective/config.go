package collective

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Defaults for a zero Config.Timeout. Joining is bounded by how long a
// scheduler may take to start the last task; an operation by how long a
// peer may stay silent, which for a large message on a slow network or a
// pipeline stage waiting on a slow neighbour can be long.
const (
	DefaultJoinTimeout      = 60 * time.Second
	DefaultOperationTimeout = 5 * time.Minute
	// DefaultSegmentBytes is the pipelining unit of the ring operations:
	// a segment is forwarded as soon as it has been received (and
	// reduced), so sends and receives overlap. Between two processes on
	// this machine (docs/benchmarks.md) 2 MiB did best: each segment
	// costs a wake-up of the receiving goroutine, which smaller segments
	// pay too often; larger ones start the pipeline late.
	DefaultSegmentBytes = 2 << 20
)

// Config says who this process is in its group and how to find the others.
type Config struct {
	// Rank is this process's index in the group, 0 ≤ Rank < WorldSize.
	Rank int
	// WorldSize is the number of processes in the group. 1 makes every
	// operation a local no-op and needs no network.
	WorldSize int
	// MasterAddr and MasterPort are where rank 0 listens for the others
	// (HPCML_MASTER_ADDR, HPCML_MASTER_PORT in an hpcml job); the others
	// connect to it. Rank 0 listens on exactly this address when it is an
	// IP address or localhost, on every interface when it is another
	// host name (which may resolve to a loopback address on its own host).
	MasterAddr string
	MasterPort int
	// Timeout bounds the rendezvous (how long the group waits for its
	// last rank) and, during an operation, how long any one peer may make
	// no progress before it is declared lost. Zero means
	// DefaultJoinTimeout for the rendezvous and DefaultOperationTimeout
	// for operations.
	Timeout time.Duration
	// Fingerprint is what every rank must agree on before exchanging
	// data, e.g. a hash of the model's parameter shapes. Join fails on
	// every rank, naming the ranks that differ, when it is not the same
	// everywhere. Empty is a valid value (all ranks must have it empty).
	Fingerprint string
	// SegmentBytes is the pipelining unit of the ring operations; zero
	// means DefaultSegmentBytes. It must be the same on every rank (it
	// decides how messages are cut); a tuning knob, not needed normally.
	SegmentBytes int
	// NoSharedMemory makes ring neighbours on the same host exchange data
	// over TCP too, as between hosts. By default they use shared memory
	// (/dev/shm), which is faster; set it to compare, or where /dev/shm
	// is too small (each rank creates one mapping of 4 segments, at most
	// 8 MiB).
	NoSharedMemory bool
}

// The environment variables an hpcml job of several tasks sets for every
// task (docs/jobs.md).
const (
	EnvRank       = "HPCML_RANK"
	EnvWorldSize  = "HPCML_WORLD_SIZE"
	EnvMasterAddr = "HPCML_MASTER_ADDR"
	EnvMasterPort = "HPCML_MASTER_PORT"
)

// maxFingerprint keeps a registration message small; a hash is far shorter.
const maxFingerprint = 4096

// ConfigFromEnv reads a Config from the HPCML_* variables an hpcml job of
// several tasks sets (HPCML_RANK, HPCML_WORLD_SIZE, HPCML_MASTER_ADDR,
// HPCML_MASTER_PORT); pass os.Getenv. Timeout and Fingerprint are left
// for the caller to set. Errors name the variable that is missing or bad.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	var cfg Config
	num := func(name string) (int, error) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return 0, fmt.Errorf("collective: %s is not set (it is set for every task of an hpcml job of several tasks)", name)
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("collective: %s=%q is not an integer", name, getenv(name))
		}
		return n, nil
	}
	var err error
	if cfg.WorldSize, err = num(EnvWorldSize); err != nil {
		return Config{}, err
	}
	if cfg.WorldSize < 1 {
		return Config{}, fmt.Errorf("collective: %s=%d: must be at least 1", EnvWorldSize, cfg.WorldSize)
	}
	if cfg.Rank, err = num(EnvRank); err != nil {
		return Config{}, err
	}
	if cfg.Rank < 0 || cfg.Rank >= cfg.WorldSize {
		return Config{}, fmt.Errorf("collective: %s=%d is out of range for %s=%d (0 to %d)",
			EnvRank, cfg.Rank, EnvWorldSize, cfg.WorldSize, cfg.WorldSize-1)
	}
	if cfg.WorldSize == 1 {
		// A group of one never talks to anyone: the master need not exist.
		cfg.MasterAddr = strings.TrimSpace(getenv(EnvMasterAddr))
		cfg.MasterPort, _ = strconv.Atoi(strings.TrimSpace(getenv(EnvMasterPort)))
		return cfg, nil
	}
	if cfg.MasterAddr = strings.TrimSpace(getenv(EnvMasterAddr)); cfg.MasterAddr == "" {
		return Config{}, fmt.Errorf("collective: %s is not set (rank 0's address)", EnvMasterAddr)
	}
	if cfg.MasterPort, err = num(EnvMasterPort); err != nil {
		return Config{}, err
	}
	if cfg.MasterPort < 1 || cfg.MasterPort > 65535 {
		return Config{}, fmt.Errorf("collective: %s=%d is not a TCP port (1 to 65535)", EnvMasterPort, cfg.MasterPort)
	}
	return cfg, nil
}

// check validates c and reports the first problem, naming the field.
func (c Config) check() error {
	switch {
	case c.WorldSize < 1:
		return fmt.Errorf("WorldSize %d: must be at least 1", c.WorldSize)
	case c.Rank < 0 || c.Rank >= c.WorldSize:
		return fmt.Errorf("Rank %d is out of range for WorldSize %d (0 to %d)", c.Rank, c.WorldSize, c.WorldSize-1)
	case c.Timeout < 0:
		return fmt.Errorf("Timeout %v: must not be negative", c.Timeout)
	case c.SegmentBytes < 0 || c.SegmentBytes%4 != 0:
		return fmt.Errorf("SegmentBytes %d: must be a non-negative multiple of 4", c.SegmentBytes)
	case len(c.Fingerprint) > maxFingerprint:
		return fmt.Errorf("Fingerprint is %d bytes long; at most %d", len(c.Fingerprint), maxFingerprint)
	case c.WorldSize == 1:
		return nil
	case c.MasterAddr == "":
		return errors.New("MasterAddr is empty")
	case c.MasterPort < 1 || c.MasterPort > 65535:
		return fmt.Errorf("MasterPort %d is not a TCP port (1 to 65535)", c.MasterPort)
	}
	return nil
}

func (c Config) joinTimeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultJoinTimeout
}

func (c Config) opTimeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultOperationTimeout
}

func (c Config) segmentElems() int {
	if c.SegmentBytes > 0 {
		return c.SegmentBytes / 4
	}
	return DefaultSegmentBytes / 4
}

// seconds prints a duration the way people say it: "60s", "1.5s",
// "250ms", "5m0s".
func seconds(d time.Duration) string {
	if d >= time.Second && d <= 2*time.Minute && d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}
