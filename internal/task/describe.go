package task

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hpcml/hpcml/internal/job"
)

// StorageEnv names the variable that tells a job the storage URL bare
// keys resolve against.
const StorageEnv = "HPCML_STORAGE"

// Site is what a backend adds to a job to make a Launch of it.
type Site struct {
	// Storage is the bucket URL for logs, outputs and bare input keys.
	Storage   string
	KillGrace job.Duration
	// BaseEnv is the environment the job starts from (HPCML_* removed).
	BaseEnv []string
	// Launcher starts the tasks of a job of several (LauncherLocal, ...).
	Launcher string
}

// Describe is the Launch of attempt j.Attempt of j in attempt dir dir:
// the same on every backend, so that a job behaves the same wherever it
// runs.
func Describe(j *job.Job, dir string, site Site) Launch {
	s := &j.Spec
	argv := s.Command
	if s.Shell {
		argv = []string{"/bin/sh", "-c", strings.Join(s.Command, " ")}
	}
	workDir := filepath.Join(dir, WorkDir)
	cwd := workDir
	if s.WorkDir != "" {
		if filepath.IsAbs(s.WorkDir) {
			cwd = s.WorkDir
		} else {
			cwd = filepath.Join(workDir, s.WorkDir)
		}
	}
	env := JobEnv(site.BaseEnv, j, dir)
	if site.Storage != "" {
		// Jobs that write results as they go (training checkpoints) reach
		// the same storage their outputs are staged to.
		env = append(env, StorageEnv+"="+site.Storage)
	}
	l := Launch{
		JobID:     j.ID,
		Attempt:   j.Attempt,
		Argv:      argv,
		Env:       env,
		WorkDir:   cwd,
		TimeLimit: s.TimeLimit,
		KillGrace: site.KillGrace,
		Inputs:    s.Inputs,
		Outputs:   s.Outputs,
		Storage:   site.Storage,
		LogPrefix: fmt.Sprintf("jobs/%d/%d/", j.ID, j.Attempt),
	}
	if s.Tasks() > 1 || s.Type == job.TypeMPI {
		l.Ranks = Ranks{Nodes: max(s.Nodes, 1), TasksPerNode: max(s.TasksPerNode, 1), MPI: s.Type == job.TypeMPI, Launcher: site.Launcher}
	}
	return l
}
