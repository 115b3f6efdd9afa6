package task

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RankCommand is the hidden subcommand every task of a job of several
// tasks runs as (`hpcml __rank [--fanout K] -- ARGV...`): it sets the
// task's HPCML_RANK variables, then becomes the job's command.
const RankCommand = "__rank"

// host is what starting the tasks needs from the wrapper's node; tests
// replace it.
type host struct {
	// self is the hpcml binary, which every task starts as.
	self func() (string, error)
	// environ is the wrapper's own environment: under Slurm it holds the
	// allocation (SLURM_JOB_ID, SLURM_JOB_NODELIST, ...) srun runs in.
	environ func() []string
	// output runs a program with the wrapper's environment.
	output func(ctx context.Context, name string, args ...string) ([]byte, error)
	euid   int
}

func osHost() host {
	return host{
		self:    os.Executable,
		environ: os.Environ,
		output: func(ctx context.Context, name string, args ...string) ([]byte, error) {
			return exec.CommandContext(ctx, name, args...).Output()
		},
		euid: os.Geteuid(),
	}
}

// rankCommand returns the argv that starts every task of l and the
// environment it runs in: l.Env, without or with the Slurm allocation's
// variables, plus the job-wide HPCML_* variables of a job of several
// tasks. Each task adds its own rank (see RankMain).
func rankCommand(ctx context.Context, l *Launch, h host) (argv, env []string, err error) {
	rk := l.Ranks
	nodes, perNode, tasks := max(rk.Nodes, 1), max(rk.TasksPerNode, 1), rk.Tasks()
	self, err := h.self()
	if err != nil {
		return nil, nil, fmt.Errorf("find the hpcml binary: %w", err)
	}
	var hosts []string
	var master string
	switch rk.Launcher {
	case LauncherLocal:
		// A server started inside a Slurm job hands its SLURM_* variables
		// on; mpirun would then launch through srun into that job, and
		// the tasks would read their ranks from it.
		env = slices.DeleteFunc(slices.Clone(l.Env), func(kv string) bool { return strings.HasPrefix(kv, "SLURM_") })
		// Every task runs here: the nodes asked for are one machine.
		hosts = slices.Repeat([]string{"localhost"}, nodes)
		master = "127.0.0.1"
	case LauncherSlurm:
		env = withSlurmEnv(l.Env, h.environ())
		if hosts, master, err = slurmHosts(ctx, h); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, fmt.Errorf("unknown task launcher %q", rk.Launcher)
	}
	port, err := freePort()
	if err != nil {
		return nil, nil, fmt.Errorf("pick a port for the tasks' rendezvous: %w", err)
	}
	env = append(env,
		"HPCML_WORLD_SIZE="+strconv.Itoa(tasks),
		"HPCML_NNODES="+strconv.Itoa(nodes),
		"HPCML_TASKS_PER_NODE="+strconv.Itoa(perNode),
		"HPCML_MASTER_ADDR="+master,
		"HPCML_MASTER_PORT="+strconv.Itoa(port),
		"HPCML_HOSTS="+strings.Join(hosts, ","),
	)
	task := append([]string{self, RankCommand, "--"}, l.Argv...)
	switch {
	case rk.Launcher == LauncherSlurm:
		srun, err := lookPath("srun", env)
		if err != nil {
			return nil, nil, errors.New("a job of several tasks under Slurm needs srun on the node")
		}
		argv = []string{srun}
		if rk.MPI {
			// Debian's Open MPI is built with PMIx only: pmi2 does not work.
			argv = append(argv, "--mpi=pmix")
		}
		argv = append(argv, "--kill-on-bad-exit=1", "--nodes="+strconv.Itoa(nodes),
			"--ntasks="+strconv.Itoa(tasks), "--ntasks-per-node="+strconv.Itoa(perNode))
		// Since Slurm 22.05 srun no longer takes --cpus-per-task from the
		// batch job's: without it each task would get one CPU.
		if c := envValue(env, "SLURM_CPUS_PER_TASK"); c != "" {
			argv = append(argv, "--cpus-per-task="+c)
		}
		argv = append(argv, task...)
	case rk.MPI:
		mpirun, err := lookPath("mpirun", env)
		if err != nil {
			return nil, nil, errors.New("type mpi needs mpirun (Open MPI) on the node")
		}
		argv = []string{mpirun}
		if h.euid == 0 {
			argv = append(argv, "--allow-run-as-root") // Open MPI refuses root without it
		}
		// The tasks share this machine, whatever its core count: no
		// refusal for more tasks than cores, no pinning of several tasks
		// to one core.
		argv = append(argv, "--oversubscribe", "--bind-to", "none", "-np", strconv.Itoa(tasks))
		argv = append(argv, task...)
	default:
		argv = append([]string{self, RankCommand, "--fanout", strconv.Itoa(tasks), "--"}, l.Argv...)
	}
	return argv, env, nil
}

// withSlurmEnv adds to env the wrapper's SLURM_* variables it lacks:
// srun must run inside the allocation the wrapper runs in.
func withSlurmEnv(env, wrapper []string) []string {
	out := slices.Clone(env)
	for _, kv := range wrapper {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "SLURM_") && envValue(env, k) == "" {
			out = append(out, kv)
		}
	}
	return out
}

// slurmHosts lists the allocation's nodes, one per line of `scontrol show
// hostnames`, and the address of the first (the one the wrapper runs on,
// where task 0 runs): its NodeAddr, else its name.
func slurmHosts(ctx context.Context, h host) (hosts []string, master string, err error) {
	nodelist := envValue(h.environ(), "SLURM_JOB_NODELIST")
	if nodelist == "" {
		return nil, "", errors.New("SLURM_JOB_NODELIST is not set: the Slurm task launcher runs only inside a Slurm job")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := h.output(ctx, "scontrol", "show", "hostnames", nodelist)
	if err != nil {
		return nil, "", fmt.Errorf("scontrol show hostnames %s: %w", nodelist, commandError(err))
	}
	hosts = strings.Fields(string(out))
	if len(hosts) == 0 {
		return nil, "", fmt.Errorf("scontrol show hostnames %s: no nodes", nodelist)
	}
	master = hosts[0]
	if out, err := h.output(ctx, "scontrol", "show", "node", "-o", hosts[0]); err == nil {
		if addr := nodeAddr(out); addr != "" {
			master = addr
		}
	}
	return hosts, master, nil
}

// nodeAddr reads NodeAddr= from a line of `scontrol show node -o`.
func nodeAddr(line []byte) string {
	for _, f := range bytes.Fields(line) {
		if v, ok := bytes.CutPrefix(f, []byte("NodeAddr=")); ok {
			return string(v)
		}
	}
	return ""
}

// commandError adds a failed command's stderr to its error.
func commandError(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(bytes.TrimSpace(ee.Stderr)) > 0 {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(ee.Stderr))
	}
	return err
}

// freePort picks a TCP port free on this node for task 0 to listen on.
// Another process may take it before task 0 does; the window is short.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// envValue is the value of k in env, the last one winning as in the
// environment exec builds; "" if absent.
func envValue(env []string, k string) string {
	v := ""
	for _, kv := range env {
		if val, ok := strings.CutPrefix(kv, k+"="); ok {
			v = val
		}
	}
	return v
}
