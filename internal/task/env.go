package task

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hpcml/hpcml/internal/job"
)

// JobEnv is the environment of a job's command in attempt dir dir: base
// (minus hpcml's own secrets), then the HPCML_* variables, then the
// spec's env.
func JobEnv(base []string, j *job.Job, dir string) []string {
	env := make([]string, 0, len(base)+16)
	for _, kv := range base {
		if k, _, _ := strings.Cut(kv, "="); k == "HPCML_TOKEN" || strings.HasPrefix(k, "HPCML_") {
			continue
		}
		env = append(env, kv)
	}
	add := func(k, v string) { env = append(env, k+"="+v) }
	add("HPCML_JOB_ID", j.DisplayID())
	add("HPCML_JOB_NAME", j.Name)
	add("HPCML_QUEUE", j.Queue)
	add("HPCML_ATTEMPT", strconv.Itoa(j.Attempt))
	add("HPCML_JOB_DIR", filepath.Join(dir, WorkDir))
	add(job.ProgressFileEnv, filepath.Join(dir, ProgressFile))
	add("HPCML_CPUS", strconv.FormatFloat(j.Spec.Resources.CPUs, 'g', -1, 64))
	add("HPCML_MEMORY_MB", strconv.FormatInt(j.Spec.Resources.MemoryMB, 10))
	if j.ArrayIndex != nil {
		add("HPCML_ARRAY_JOB_ID", fmt.Sprint(j.ParentID))
		add("HPCML_ARRAY_INDEX", strconv.Itoa(*j.ArrayIndex))
	}
	keys := make([]string, 0, len(j.Spec.Env))
	for k := range j.Spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		add(k, j.Spec.Env[k])
	}
	return env
}
