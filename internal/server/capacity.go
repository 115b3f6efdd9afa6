package server

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/hpcml/hpcml/internal/job"
)

// detectCapacity is this machine's CPUs and memory, overridden by the
// configured values where set.
func detectCapacity(cfg Config) job.Resources {
	r := job.Resources{CPUs: float64(runtime.NumCPU()), MemoryMB: memTotalMB()}
	if cfg.CPUs > 0 {
		r.CPUs = cfg.CPUs
	}
	if cfg.MemoryMB > 0 {
		r.MemoryMB = cfg.MemoryMB
	}
	return r
}

func memTotalMB() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 1024
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return 1024
}
