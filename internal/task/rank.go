package task

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Exit codes of `hpcml __rank` when it cannot become the command, as a
// shell's.
const (
	exitUsage    = 2
	exitCannot   = 126 // found but not runnable
	exitNotFound = 127
)

// fanoutSettle is how long the other tasks of a fan-out may go on after
// one of them failed before they are sent SIGTERM: long enough for tasks
// that talk to each other to notice the loss and say which peer it was
// (a collective operation fails within milliseconds of its peer's death),
// short enough not to hold a failed job.
const fanoutSettle = 2 * time.Second

// fanoutKillGrace is how long the tasks of a fan-out have, after the
// others were sent SIGTERM, before SIGKILL (as Slurm's KillWait).
const fanoutKillGrace = 10 * time.Second

// RankMain is `hpcml __rank [--fanout K] -- ARGV...`, which each task of a
// job of several tasks runs as. Started by srun or mpirun, it reads its
// rank from their variables, sets HPCML_RANK, HPCML_LOCAL_RANK and
// HPCML_NODE_RANK and execs ARGV in its place (same PID, so the launcher's
// PMIx and MPI state stays the task's). With --fanout K it is the local
// launcher of a job that is not MPI: it runs K copies of ARGV, ranks 0 to
// K-1, and exits as the first one that failed. It returns the exit code.
func RankMain(args []string) int {
	fanout, argv, err := parseRankArgs(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hpcml __rank:", err)
		return exitUsage
	}
	if fanout > 0 {
		sig := make(chan os.Signal, 4)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		return runFanout(fanout, argv, os.Environ(), os.Stdout, os.Stderr, sig)
	}
	vars, err := rankVars(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hpcml __rank:", err)
		return exitNotFound
	}
	env := os.Environ()
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		env = setEnv(env, k, v)
	}
	prog, err := lookPath(argv[0], env)
	if err != nil {
		fmt.Fprintf(os.Stderr, "hpcml __rank: cannot run %s: %v\n", argv[0], err)
		return exitNotFound
	}
	// The launcher may die by SIGKILL (mpirun killed after the grace
	// period): its tasks, in process groups of their own, must not live
	// on. The setting is the thread's and survives exec, so both happen
	// on this thread.
	runtime.LockOSThread()
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0); e != 0 {
		fmt.Fprintln(os.Stderr, "hpcml __rank: set parent-death signal:", e)
	}
	err = syscall.Exec(prog, argv, env)
	fmt.Fprintf(os.Stderr, "hpcml __rank: cannot run %s: %v\n", argv[0], err)
	if errors.Is(err, syscall.ENOENT) {
		return exitNotFound
	}
	return exitCannot
}

// parseRankArgs reads [--fanout K] -- ARGV...; fanout is 0 without it.
func parseRankArgs(args []string) (fanout int, argv []string, err error) {
	if len(args) >= 2 && args[0] == "--fanout" {
		fanout, err = strconv.Atoi(args[1])
		if err != nil || fanout < 1 {
			return 0, nil, fmt.Errorf("--fanout %q: want a number of tasks", args[1])
		}
		args = args[2:]
	}
	if len(args) < 2 || args[0] != "--" || args[1] == "" {
		return 0, nil, errors.New("usage: hpcml __rank [--fanout K] -- CMD ARGS...")
	}
	return fanout, args[1:], nil
}

// rankVars maps the launcher's variables to hpcml's: srun's SLURM_PROCID,
// SLURM_LOCALID and SLURM_NODEID, else mpirun's OMPI_COMM_WORLD_*, else
// PMIx's PMIX_RANK alone.
func rankVars(getenv func(string) string) ([]string, error) {
	num := func(k string) (int, error) {
		n, err := strconv.Atoi(getenv(k))
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s=%q is not a rank", k, getenv(k))
		}
		return n, nil
	}
	out := func(vals map[string]string) []string {
		var kv []string
		for _, k := range []string{"HPCML_RANK", "HPCML_LOCAL_RANK", "HPCML_NODE_RANK"} {
			if v, ok := vals[k]; ok {
				kv = append(kv, k+"="+v)
			}
		}
		return kv
	}
	switch {
	case getenv("SLURM_PROCID") != "":
		vals := map[string]string{}
		for k, from := range map[string]string{"HPCML_RANK": "SLURM_PROCID", "HPCML_LOCAL_RANK": "SLURM_LOCALID", "HPCML_NODE_RANK": "SLURM_NODEID"} {
			n, err := num(from)
			if err != nil {
				return nil, err
			}
			vals[k] = strconv.Itoa(n)
		}
		return out(vals), nil
	case getenv("OMPI_COMM_WORLD_RANK") != "":
		rank, err := num("OMPI_COMM_WORLD_RANK")
		if err != nil {
			return nil, err
		}
		local, err := num("OMPI_COMM_WORLD_LOCAL_RANK")
		if err != nil {
			return nil, err
		}
		// Not OMPI_COMM_WORLD_NODE_RANK: that is the task's rank among all
		// processes on its node, not the node's index. mpirun places
		// tasks by slot, filling a node before the next, so the node is
		// rank / tasks per node (0 when all run here, as hpcml's do).
		perNode, err := num("OMPI_COMM_WORLD_LOCAL_SIZE")
		if err != nil || perNode == 0 {
			perNode = rank + 1
		}
		return out(map[string]string{"HPCML_RANK": strconv.Itoa(rank), "HPCML_LOCAL_RANK": strconv.Itoa(local),
			"HPCML_NODE_RANK": strconv.Itoa(rank / perNode)}), nil
	case getenv("PMIX_RANK") != "":
		rank, err := num("PMIX_RANK")
		if err != nil {
			return nil, err
		}
		return out(map[string]string{"HPCML_RANK": strconv.Itoa(rank)}), nil
	}
	return nil, errors.New("no rank in the environment (SLURM_PROCID, OMPI_COMM_WORLD_RANK or PMIX_RANK): run under srun or mpirun, or with --fanout")
}

// runFanout runs k copies of argv with ranks 0..k-1 and waits for all.
// SIGTERM and SIGINT from sig are passed on to them; when one fails the
// others get SIGTERM, and SIGKILL after fanoutKillGrace. It returns the
// exit code of the first that failed (128+N for one killed by signal N),
// else 0.
func runFanout(k int, argv, env []string, stdout, stderr io.Writer, sig <-chan os.Signal) int {
	prog, err := lookPath(argv[0], env)
	if err != nil {
		fmt.Fprintf(stderr, "hpcml __rank: cannot run %s: %v\n", argv[0], err)
		return exitNotFound
	}
	type exit struct{ rank, code int }
	done := make(chan exit, k)
	var procs []*os.Process
	running := map[int]bool{}
	first := 0
	var settle, kill <-chan time.Time
	fail := func(code int) {
		if first != 0 {
			return
		}
		first = code
		settle = time.After(fanoutSettle)
	}
	for rank := range k {
		cmd := exec.Command(prog, argv[1:]...)
		cmd.Args[0] = argv[0]
		// os/exec keeps the last of duplicate keys: these win.
		cmd.Env = append(slices.Clip(env), "HPCML_RANK="+strconv.Itoa(rank), "HPCML_LOCAL_RANK="+strconv.Itoa(rank), "HPCML_NODE_RANK=0")
		cmd.Stdout, cmd.Stderr = stdout, stderr
		// In the wrapper's process group (its cancel reaches them), and
		// gone if this process is killed.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(stderr, "hpcml __rank: cannot run %s: %v\n", argv[0], err)
			fail(exitCannot)
			break
		}
		procs = append(procs, cmd.Process)
		running[rank] = true
		go func() {
			cmd.Wait()
			done <- exit{rank, exitCode(cmd.ProcessState)}
		}()
	}
	for len(running) > 0 {
		select {
		case e := <-done:
			delete(running, e.rank)
			if e.code != 0 {
				fail(e.code)
			}
		case s := <-sig:
			for r := range running {
				procs[r].Signal(s)
			}
		case <-settle:
			for r := range running {
				procs[r].Signal(syscall.SIGTERM)
			}
			settle, kill = nil, time.After(fanoutKillGrace)
		case <-kill:
			for r := range running {
				procs[r].Kill()
			}
			kill = nil
		}
	}
	return first
}

// exitCode is a shell's view of how a process ended: its code, or 128+N
// when signal N killed it.
func exitCode(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// setEnv sets k=v in env, replacing every earlier k: a C program's
// getenv returns the first of duplicates, not the last.
func setEnv(env []string, k, v string) []string {
	env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, k+"=") })
	return append(env, k+"="+v)
}
