package slurm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/backend"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/task"
)

// Files of the Slurm side of an attempt dir (beside internal/task's).
const (
	launchFile  = "launch.json" // the task.Launch the wrapper runs
	slurmIDFile = "slurm_id"    // the Slurm job id, once sbatch answered
	slurmOut    = "slurm.out"   // the batch script's own output (the wrapper's errors)
	arraysDir   = "arrays"      // one dir per array submission: its task map
	tasksFile   = "tasks.json"  // array index -> attempt dir name
)

// Launch submits one attempt.
func (b *Backend) Launch(ctx context.Context, j *job.Job, q *job.Queue) error {
	return b.LaunchBatch(ctx, []*job.Job{j}, q)[0]
}

// LaunchBatch submits attempts of queue q: the tasks of one array job on
// the same attempt number go as one Slurm array (`--array=...%N`), every
// other attempt as a job of its own.
func (b *Backend) LaunchBatch(ctx context.Context, jobs []*job.Job, q *job.Queue) []error {
	errs := make([]error, len(jobs))
	type arrayKey struct {
		parent  int64
		attempt int
	}
	groups := map[arrayKey][]int{}
	var order []arrayKey
	for i, j := range jobs {
		if j.ParentID == 0 || j.ArrayIndex == nil {
			errs[i] = b.submitOne(ctx, j, q)
			continue
		}
		k := arrayKey{j.ParentID, j.Attempt}
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	for _, k := range order {
		idx := groups[k]
		tasks := make([]*job.Job, len(idx))
		for n, i := range idx {
			tasks[n] = jobs[i]
		}
		err := b.submitArray(ctx, tasks, q)
		for _, i := range idx {
			errs[i] = err
		}
	}
	return errs
}

// submitOne submits a plain job (or a lone array task, as an array of
// one, so that SLURM_ARRAY_TASK_ID is what the user expects).
func (b *Backend) submitOne(ctx context.Context, j *job.Job, q *job.Queue) error {
	if j.ArrayIndex != nil {
		return b.submitArray(ctx, []*job.Job{j}, q)
	}
	attemptKey := fmt.Sprintf("%d.%d", j.ID, j.Attempt)
	dir := b.AttemptDir(j.ID, j.Attempt)
	if id, found, err := b.alreadySubmitted(ctx, dir, attemptKey); err != nil || found {
		if found {
			b.track(j.ID, j.Attempt, dir, attemptKey, id)
		}
		return err
	}
	if err := b.prepare(j, dir); err != nil {
		return err
	}
	deps, err := b.dependencies(j.Spec.DependsOn)
	if err != nil {
		return err
	}
	script := batchScript(b.cfg.Executable, dir, false)
	args := b.sbatchArgs(j, q, attemptKey, "", filepath.Join(dir, slurmOut), deps)
	id, err := b.sbatch(ctx, script, args)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, slurmIDFile), []byte(id+"\n")); err != nil {
		b.log.Warn("record slurm job id", "job", j.ID, "slurm_id", id, "err", err)
	}
	b.track(j.ID, j.Attempt, dir, attemptKey, id)
	return nil
}

// submitArray submits tasks (of one parent, one attempt number) as one
// Slurm array whose task ids are the hpcml array indices.
func (b *Backend) submitArray(ctx context.Context, tasks []*job.Job, q *job.Queue) error {
	first := tasks[0]
	sort.Slice(tasks, func(a, c int) bool { return *tasks[a].ArrayIndex < *tasks[c].ArrayIndex })
	subKey := fmt.Sprintf("a%d.%d.%d", first.ParentID, tasks[0].ID, first.Attempt)
	sub := filepath.Join(b.cfg.Dir, arraysDir, subKey)
	if id, found, err := b.alreadySubmitted(ctx, sub, subKey); err != nil || found {
		if found {
			for _, t := range tasks {
				b.track(t.ID, t.Attempt, b.AttemptDir(t.ID, t.Attempt), subKey, fmt.Sprintf("%s_%d", id, *t.ArrayIndex))
			}
		}
		return err
	}
	deps, err := b.dependencies(first.Spec.DependsOn)
	if err != nil {
		return err
	}
	manifest := map[string]string{}
	indices := make([]int, len(tasks))
	for i, t := range tasks {
		dir := b.AttemptDir(t.ID, t.Attempt)
		if err := b.prepare(t, dir); err != nil {
			return err
		}
		manifest[strconv.Itoa(*t.ArrayIndex)] = filepath.Base(dir)
		indices[i] = *t.ArrayIndex
	}
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return fmt.Errorf("create array dir: %w", err)
	}
	data, _ := json.Marshal(manifest)
	if err := writeFileAtomic(filepath.Join(sub, tasksFile), data); err != nil {
		return fmt.Errorf("write array task map: %w", err)
	}
	_, throttle, _ := job.ParseArray(first.Spec.Array)
	spec := compactRanges(indices)
	if throttle > 0 {
		spec += "%" + strconv.Itoa(throttle)
	}
	script := batchScript(b.cfg.Executable, sub, true)
	args := b.sbatchArgs(first, q, subKey, spec, filepath.Join(sub, "slurm-%a.out"), deps)
	id, err := b.sbatch(ctx, script, args)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(sub, slurmIDFile), []byte(id+"\n")); err != nil {
		b.log.Warn("record slurm job id", "array", subKey, "slurm_id", id, "err", err)
	}
	for _, t := range tasks {
		taskID := fmt.Sprintf("%s_%d", id, *t.ArrayIndex)
		dir := b.AttemptDir(t.ID, t.Attempt)
		if err := writeFileAtomic(filepath.Join(dir, slurmIDFile), []byte(taskID+"\n")); err != nil {
			b.log.Warn("record slurm job id", "job", t.ID, "slurm_id", taskID, "err", err)
		}
		b.track(t.ID, t.Attempt, dir, subKey, taskID)
	}
	return nil
}

// alreadySubmitted makes a submission idempotent: a submission dir that
// exists is a launch tried before (by this server, or one that died
// between sbatch and recording its answer); if Slurm has a job with its
// key, that job is the attempt's.
func (b *Backend) alreadySubmitted(ctx context.Context, dir, attemptKey string) (string, bool, error) {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if id, err := os.ReadFile(filepath.Join(dir, slurmIDFile)); err == nil {
		if s := strings.TrimSpace(string(id)); s != "" {
			// An array task's file holds "<array>_<index>": the array is what was submitted.
			s, _, _ = strings.Cut(s, "_")
			return s, true, nil
		}
	}
	byKey, err := b.submittedJobs(ctx)
	if err != nil {
		return "", false, err
	}
	id, ok := byKey[attemptKey]
	return id, ok, nil
}

// prepare makes a fresh attempt dir holding the launch for the wrapper.
func (b *Backend) prepare(j *job.Job, dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear attempt dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, task.WorkDir), 0o755); err != nil {
		return fmt.Errorf("create attempt dir: %w", err)
	}
	// The environment is the node's (the wrapper adds its own, with
	// Slurm's variables): the launch carries only hpcml's and the job's.
	l := task.Describe(j, dir, task.Site{Storage: b.cfg.Storage, KillGrace: job.Duration(b.cfg.KillGrace), Launcher: task.LauncherSlurm})
	data, err := json.Marshal(l)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, launchFile), data); err != nil {
		return fmt.Errorf("write launch: %w", err)
	}
	return nil
}

func (b *Backend) sbatch(ctx context.Context, script []byte, args []string) (string, error) {
	select {
	case b.submit <- struct{}{}:
		defer func() { <-b.submit }()
	case <-ctx.Done():
		return "", ctx.Err()
	}
	out, err := b.cmd.run(ctx, script, "sbatch", args...)
	if err != nil {
		return "", err
	}
	// --parsable prints "id" or "id;cluster".
	id, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
	if _, err := strconv.ParseInt(id, 10, 64); err != nil {
		return "", fmt.Errorf("sbatch answered %q, not a job id", strings.TrimSpace(string(out)))
	}
	return id, nil
}

// HoldsDependencies: Slurm holds a job until the jobs it depends on end
// (--dependency), so a chain of Slurm jobs moves on without the server.
func (b *Backend) HoldsDependencies() bool { return true }

// dependencies maps hpcml dependencies on attempts this backend runs to
// Slurm's --dependency value ("afterok:12:13_4,afterany:15").
func (b *Backend) dependencies(deps []job.Dependency) (string, error) {
	if len(deps) == 0 {
		return "", nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	byType := map[job.DependencyType][]string{}
	var types []job.DependencyType
	for _, d := range deps {
		id := ""
		for k, a := range b.inflight {
			if k.id == d.JobID && a.slurmID != "" {
				id = a.slurmID
			}
		}
		if id == "" {
			return "", fmt.Errorf("job %d: %w", d.JobID, backend.ErrDependencyGone)
		}
		if byType[d.Type] == nil {
			types = append(types, d.Type)
		}
		byType[d.Type] = append(byType[d.Type], id)
	}
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = string(t) + ":" + strings.Join(byType[t], ":")
	}
	return strings.Join(parts, ","), nil
}

// sbatchArgs maps a job's spec and its queue to sbatch options; deps is
// the --dependency value, if any.
func (b *Backend) sbatchArgs(j *job.Job, q *job.Queue, attemptKey, array, output, deps string) []string {
	s := &j.Spec
	args := []string{
		"--parsable",
		"--job-name=" + j.Name,
		"--comment=" + comment(b.instance, attemptKey),
		"--output=" + output,
		"--chdir=" + b.cfg.Dir,
		// hpcml retries by the job's policy; a requeue by Slurm would run
		// the attempt again behind hpcml's back (its wrapper would find
		// the attempt claimed and do nothing).
		"--no-requeue",
		"--nodes=" + strconv.Itoa(max(s.Nodes, 1)),
		"--ntasks-per-node=" + strconv.Itoa(max(s.TasksPerNode, 1)),
		// Slurm counts whole CPUs: a fractional request is rounded up.
		"--cpus-per-task=" + strconv.Itoa(max(1, int(math.Ceil(s.Resources.CPUs)))),
	}
	if q.Partition != "" {
		args = append(args, "--partition="+q.Partition)
	}
	if q.Account != "" {
		args = append(args, "--account="+q.Account)
	}
	if q.QOS != "" {
		args = append(args, "--qos="+q.QOS)
	}
	if s.Resources.MemoryMB > 0 {
		args = append(args, fmt.Sprintf("--mem=%dM", s.Resources.MemoryMB))
	}
	if s.Resources.GPUs > 0 {
		args = append(args, fmt.Sprintf("--gres=gpu:%d", s.Resources.GPUs))
	}
	if s.TimeLimit > 0 {
		args = append(args, "--time="+slurmTime(time.Duration(s.TimeLimit)+b.cfg.KillGrace+timeMargin))
	}
	if array != "" {
		args = append(args, "--array="+array)
	}
	if deps != "" {
		args = append(args, "--dependency="+deps)
	}
	return args
}

// timeMargin: the wrapper enforces the job's time limit to the second
// and records TIMEOUT itself; Slurm's --time, checked only every so
// often, is the backstop, a little later.
const timeMargin = time.Minute

// slurmTime formats d as Slurm's [days-]hours:minutes:seconds, rounded up
// to whole seconds.
func slurmTime(d time.Duration) string {
	secs := int64(math.Ceil(d.Seconds()))
	days, rest := secs/86400, secs%86400
	hms := fmt.Sprintf("%02d:%02d:%02d", rest/3600, rest%3600/60, rest%60)
	if days > 0 {
		return fmt.Sprintf("%d-%s", days, hms)
	}
	return hms
}

// comment tags a Slurm job with the attempt it runs.
func comment(instance, attemptKey string) string { return "hpcml:" + instance + ":" + attemptKey }

// batchScript is the whole batch script: it execs the wrapper on the
// attempt (or, for an array, the array's) dir. Nothing of the user's
// reaches it; the paths are the server's own, checked in New.
func batchScript(exe, dir string, array bool) []byte {
	flag := ""
	if array {
		flag = " --array"
	}
	return []byte("#!/bin/sh\nexec " + shellQuote(exe) + " __slurm-task" + flag + " " + shellQuote(dir) + "\n")
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// compactRanges writes sorted indices as Slurm's "1-5,7,9-10".
func compactRanges(idx []int) string {
	var b strings.Builder
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j > i {
			fmt.Fprintf(&b, "%d-%d", idx[i], idx[j])
		} else {
			b.WriteString(strconv.Itoa(idx[i]))
		}
		i = j + 1
	}
	return b.String()
}
