package local

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/hpcml/hpcml/internal/task"
)

// killStrays kills what is left of an attempt whose executor died while
// the command ran. Pdeathsig ends only the command's own process; its
// children (a shell's commands, a launcher's workers) would otherwise run
// on, unseen, beside a retry of the same job. They are found by the
// HPCML_JOB_DIR in their environment, which names this attempt and no
// other, so a recycled pid or process group is never hit. It returns how
// many processes it signalled.
func killStrays(attemptDir string) int {
	marker := []byte("\x00HPCML_JOB_DIR=" + filepath.Join(attemptDir, task.WorkDir) + "\x00")
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue // gone, or not ours to read
		}
		// Framed by NULs on both sides so that a longer dir with this one
		// as a prefix does not match.
		env = append(append([]byte{0}, env...), 0)
		if bytes.Contains(env, marker) && syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}
