package cli

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/hpcml/hpcml/internal/job"
)

// submitFlags are the flags of `job submit` that describe the job.
type submitFlags struct {
	file  string
	wait  bool
	name  string
	queue string

	cpus   float64
	memory string
	gpus   int
	time   string

	nodes        int
	tasksPerNode int
	mpi          bool

	attempts       int
	retryExitCodes []int
	retrySignals   []string
	retryNodeLoss  bool

	array      string
	dependency string
	env        []string
	workdir    string
	shell      bool
	inputs     []string
	lazyInputs []string
	tags       []string
	// outputs are collected by the -o/--output flag, which also takes the
	// output format (see outputFlag).
	outputs []string
}

// register defines the flags on fs. Submit's -o/--output also sets the
// global output format in o (see outputFlag).
func (f *submitFlags) register(fs *pflag.FlagSet, o *rootOptions) {
	fs.StringVarP(&f.file, "file", "f", "", "read the job spec from a YAML or JSON file ('-' for stdin); flags override its fields")
	fs.BoolVar(&f.wait, "wait", false, "wait for the job to end; exit 1 unless it SUCCEEDED")
	fs.StringVar(&f.name, "name", "", "job name (default: the program's name)")
	fs.StringVarP(&f.queue, "queue", "q", "", "queue (default: default)")
	fs.Float64Var(&f.cpus, "cpus", 0, "CPU cores, may be fractional (default 1)")
	fs.StringVar(&f.memory, "memory", "", "memory: 512M, 4G, 1.5GiB, or a number of MB")
	fs.IntVar(&f.gpus, "gpus", 0, "GPUs")
	fs.StringVar(&f.time, "time", "", "time limit: 90s, 1h30m, or a number of seconds")
	fs.IntVar(&f.nodes, "nodes", 0, "nodes the job's tasks run on (default 1; on the local backend every node is this machine)")
	fs.IntVar(&f.tasksPerNode, "tasks-per-node", 0, "tasks (ranks) per node (default 1); --cpus is per task, --memory and --gpus per node")
	fs.BoolVar(&f.mpi, "mpi", false, "start the tasks as one MPI world (mpirun here, srun --mpi=pmix under Slurm)")
	fs.IntVar(&f.attempts, "attempts", 0, "total attempts, including the first (1 = no retry)")
	fs.IntSliceVar(&f.retryExitCodes, "retry-exit-codes", nil, "retry only on these exit codes (e.g. 1,2)")
	fs.StringSliceVar(&f.retrySignals, "retry-signals", nil, "retry only when killed by these signals (e.g. SIGKILL)")
	fs.BoolVar(&f.retryNodeLoss, "retry-node-loss", false, "retry when the node running the job is lost")
	fs.StringVar(&f.array, "array", "", "array job, Slurm syntax: 0-99%10, 1,3,5, 0-15:4")
	fs.StringVar(&f.dependency, "dependency", "", "wait for other jobs: afterok:12:13,afterany:14")
	// StringArray, not StringSlice: values may contain commas.
	fs.StringArrayVar(&f.env, "env", nil, "environment variable NAME=VALUE, or NAME to pass this shell's value (repeatable)")
	fs.StringVar(&f.workdir, "workdir", "", "working directory: absolute, or relative to the job dir")
	fs.BoolVar(&f.shell, "shell", false, "run the command with /bin/sh -c (joined by spaces)")
	fs.StringArrayVar(&f.inputs, "input", nil, "copy URL to PATH in the job dir before the command starts: URL=PATH (repeatable)")
	fs.StringArrayVar(&f.lazyInputs, "lazy-input", nil, "mount dataset://NAME[@VERSION] read-only at PATH, each file fetched on its first read: URL=PATH (repeatable)")
	fs.StringArrayVar(&f.tags, "tag", nil, "tag KEY=VALUE (repeatable)")
	fs.VarP(&outputFlag{format: &o.output, outputs: &f.outputs}, "output", "o",
		"output format (table, json, yaml), or PATH=URL: copy PATH in the job dir to URL after the job succeeds (repeatable)")
	// Flags end where the command starts: its own flags belong to it.
	fs.SetInterspersed(false)
}

// spec builds the job spec: the -f file if given, then every flag that was
// set explicitly on top of it, then the command after "--". Maps (env,
// tags) merge key by key; lists (inputs, outputs, retry conditions)
// replace the file's, so that what a flag says is what the job gets.
func (f *submitFlags) spec(fs *pflag.FlagSet, command []string, stdin io.Reader, lookupEnv func(string) (string, bool)) (*job.Spec, error) {
	spec := &job.Spec{}
	if f.file != "" {
		var err error
		if spec, err = readSpecFile(f.file, stdin); err != nil {
			return nil, err
		}
	}
	set := fs.Changed
	if set("name") {
		spec.Name = f.name
	}
	if set("queue") {
		spec.Queue = f.queue
	}
	if set("cpus") {
		if f.cpus <= 0 {
			return nil, fmt.Errorf("--cpus %g: must be positive", f.cpus)
		}
		spec.Resources.CPUs = f.cpus
	}
	if set("memory") {
		mb, err := parseMemoryMB(f.memory)
		if err != nil {
			return nil, fmt.Errorf("--memory: %w", err)
		}
		spec.Resources.MemoryMB = mb
	}
	if set("gpus") {
		if f.gpus < 0 {
			return nil, fmt.Errorf("--gpus %d: must not be negative", f.gpus)
		}
		spec.Resources.GPUs = f.gpus
	}
	if set("time") {
		d, err := parseTimeLimit(f.time)
		if err != nil {
			return nil, fmt.Errorf("--time: %w", err)
		}
		spec.TimeLimit = d
	}
	if err := f.applyTasks(fs, spec); err != nil {
		return nil, err
	}
	if err := f.applyRetry(fs, &spec.Retry); err != nil {
		return nil, err
	}
	if set("array") {
		if _, _, err := job.ParseArray(f.array); err != nil {
			return nil, fmt.Errorf("--array: %w", err)
		}
		spec.Array = f.array
	}
	if set("dependency") {
		deps, err := job.ParseDependencies(f.dependency)
		if err != nil {
			return nil, fmt.Errorf("--dependency: %w", err)
		}
		spec.DependsOn = deps
	}
	if set("env") {
		env, err := parseEnv(f.env, lookupEnv)
		if err != nil {
			return nil, err
		}
		spec.Env = merge(spec.Env, env)
	}
	if set("tag") {
		tags, err := parseTags(f.tags)
		if err != nil {
			return nil, err
		}
		spec.Tags = merge(spec.Tags, tags)
	}
	if set("workdir") {
		spec.WorkDir = f.workdir
	}
	if set("shell") {
		spec.Shell = f.shell
	}
	if set("input") || set("lazy-input") {
		in, err := parseInputs(f.inputs, "")
		if err != nil {
			return nil, err
		}
		lazy, err := parseInputs(f.lazyInputs, job.InputLazy)
		if err != nil {
			return nil, err
		}
		spec.Inputs = append(in, lazy...)
	}
	if len(f.outputs) > 0 {
		out, err := parseOutputs(f.outputs)
		if err != nil {
			return nil, err
		}
		spec.Outputs = out
	}
	if len(command) > 0 {
		spec.Command = command
	}
	if len(spec.Command) == 0 {
		return nil, errors.New("no command: give it after -- (hpcml job submit [flags] -- CMD ARGS...) or in a spec file (-f)")
	}
	return spec, nil
}

func (f *submitFlags) applyTasks(fs *pflag.FlagSet, spec *job.Spec) error {
	if fs.Changed("nodes") {
		if f.nodes < 1 || f.nodes > job.MaxJobNodes {
			return fmt.Errorf("--nodes %d: must be between 1 and %d", f.nodes, job.MaxJobNodes)
		}
		spec.Nodes = f.nodes
	}
	if fs.Changed("tasks-per-node") {
		if f.tasksPerNode < 1 || f.tasksPerNode > job.MaxTasksPerNode {
			return fmt.Errorf("--tasks-per-node %d: must be between 1 and %d", f.tasksPerNode, job.MaxTasksPerNode)
		}
		spec.TasksPerNode = f.tasksPerNode
	}
	if fs.Changed("mpi") {
		spec.Type = ""
		if f.mpi {
			spec.Type = job.TypeMPI
		}
	}
	return nil
}

func (f *submitFlags) applyRetry(fs *pflag.FlagSet, r *job.RetryPolicy) error {
	if fs.Changed("attempts") {
		if f.attempts < 1 || f.attempts > job.MaxAttempts {
			return fmt.Errorf("--attempts %d: must be between 1 and %d", f.attempts, job.MaxAttempts)
		}
		r.Attempts = f.attempts
	}
	if fs.Changed("retry-exit-codes") {
		r.OnExitCodes = f.retryExitCodes
	}
	if fs.Changed("retry-signals") {
		sigs, err := parseSignals(f.retrySignals)
		if err != nil {
			return err
		}
		r.OnSignals = sigs
	}
	if fs.Changed("retry-node-loss") {
		r.OnNodeLoss = f.retryNodeLoss
	}
	return nil
}

// readSpecFile reads a spec from a file or, for "-", from stdin.
func readSpecFile(name string, stdin io.Reader) (*job.Spec, error) {
	var data []byte
	var err error
	if name == "-" {
		data, err = io.ReadAll(io.LimitReader(stdin, job.MaxBodyBytes+1))
		name = "stdin"
	} else {
		data, err = readLimited(name, job.MaxBodyBytes+1)
	}
	if err != nil {
		return nil, fmt.Errorf("read job spec: %w", err)
	}
	if len(data) > job.MaxBodyBytes {
		return nil, fmt.Errorf("job spec %s: larger than %d bytes", name, job.MaxBodyBytes)
	}
	spec, err := job.ParseSpec(data)
	if err != nil {
		return nil, fmt.Errorf("job spec %s: %w", name, err)
	}
	return spec, nil
}

func readLimited(name string, n int64) ([]byte, error) {
	fh, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return io.ReadAll(io.LimitReader(fh, n))
}

// merge returns base with over's keys set on it, without changing base.
func merge(base, over map[string]string) map[string]string {
	out := maps.Clone(base)
	if out == nil {
		out = make(map[string]string, len(over))
	}
	maps.Copy(out, over)
	return out
}

// outputFlag is submit's -o/--output. hpcml's contract gives -o/--output
// to the output format on every command, and `--output PATH=URL` to
// submit's stage-out files, so on submit one flag takes both: a value
// with '=' is a stage-out (formats never contain '='), anything else is
// the format.
type outputFlag struct {
	format  *string
	outputs *[]string
}

func (v *outputFlag) String() string { return "" }
func (v *outputFlag) Type() string   { return "string" }

func (v *outputFlag) Set(s string) error {
	if strings.Contains(s, "=") {
		*v.outputs = append(*v.outputs, s)
		return nil
	}
	*v.format = s
	return nil
}
