package collective

import (
	"bufio"
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// The tests below run ranks as separate processes: this test binary,
// started again with childEnv set, becomes a rank (see TestMain) that
// reads its place from the same HPCML_* variables an hpcml job sets.
const (
	childEnv = "COLLECTIVE_TEST_CHILD"
	childTCP = "COLLECTIVE_TEST_TCP" // set: NoSharedMemory
)

func TestMain(m *testing.M) {
	if scenario := os.Getenv(childEnv); scenario != "" {
		os.Exit(child(scenario))
	}
	os.Exit(m.Run())
}

// processLength is awkward on purpose: not divisible by 3, many segments.
const processLength = 1<<20 + 7

// child runs one rank of a scenario, reporting on stdout.
func child(scenario string) int {
	ctx := context.Background()
	cfg, err := ConfigFromEnv(os.Getenv)
	if err != nil {
		fmt.Println("error:", err)
		return 2
	}
	cfg.Fingerprint = "process-test"
	cfg.NoSharedMemory = os.Getenv(childTCP) != ""
	g, err := Join(ctx, cfg)
	if err != nil {
		fmt.Println("error:", err)
		return 2
	}
	defer g.Close()
	switch scenario {
	case "ops":
		buf := inputs(99, cfg.WorldSize, processLength)[cfg.Rank]
		if err := g.AllReduce(ctx, buf, Mean); err != nil {
			fmt.Println("error:", err)
			return 3
		}
		h := fnv.New64a()
		h.Write(bytesOf(buf))
		fmt.Printf("hash %x\n", h.Sum64())
		b := make([]float32, 1000)
		if cfg.Rank == 1 {
			for i := range b {
				b[i] = float32(i)
			}
		}
		if err := g.Broadcast(ctx, b, 1); err != nil || b[999] != 999 {
			fmt.Println("error: broadcast:", err, b[999])
			return 3
		}
		if err := g.Barrier(ctx); err != nil {
			fmt.Println("error:", err)
			return 3
		}
	case "loop":
		// All-reduce until something fails; the parent kills a rank.
		buf := make([]float32, 8<<20)
		for i := 0; ; i++ {
			if err := g.AllReduce(ctx, buf, Sum); err != nil {
				fmt.Println("error:", err)
				return 3
			}
			if i == 1 {
				fmt.Println("running")
			}
		}
	}
	fmt.Println("ok")
	return 0
}

type proc struct {
	cmd   *exec.Cmd
	lines chan string
}

// spawn starts n ranks of scenario as processes, over TCP only if tcp.
func spawn(t *testing.T, n int, scenario string, tcp bool) []*proc {
	t.Helper()
	port := freePort(t)
	ps := make([]*proc, n)
	for r := range n {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), childEnv+"="+scenario)
		if tcp {
			cmd.Env = append(cmd.Env, childTCP+"=1")
		}
		cmd.Env = append(cmd.Env,
			"HPCML_RANK="+strconv.Itoa(r), "HPCML_WORLD_SIZE="+strconv.Itoa(n),
			"HPCML_MASTER_ADDR=127.0.0.1", "HPCML_MASTER_PORT="+strconv.Itoa(port))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := &proc{cmd: cmd, lines: make(chan string, 16)}
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				p.lines <- sc.Text()
			}
			close(p.lines)
		}()
		ps[r] = p
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	return ps
}

func TestProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, tcp := range []bool{false, true} {
		t.Run(fmt.Sprintf("tcp=%v", tcp), func(t *testing.T) { processes(t, tcp) })
	}
}

func processes(t *testing.T, tcp bool) {
	const n = 3
	ps := spawn(t, n, "ops", tcp)
	xs := inputs(99, n, processLength)
	want := ringReduce(xs, Mean)
	h := fnv.New64a()
	h.Write(bytesOf(want))
	wantHash := fmt.Sprintf("hash %x", h.Sum64())
	for r, p := range ps {
		var got []string
		for line := range p.lines {
			got = append(got, line)
		}
		if err := p.cmd.Wait(); err != nil || len(got) != 2 || got[0] != wantHash || got[1] != "ok" {
			t.Errorf("rank %d: %v, output %q; want %q", r, err, got, wantHash)
		}
	}
}

func TestProcessKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	// Rank 1, and rank 0, which decides for the others.
	for _, tcp := range []bool{false, true} {
		for _, victim := range []int{1, 0} {
			t.Run(fmt.Sprintf("tcp=%v/rank %d", tcp, victim), func(t *testing.T) { killed(t, 3, victim, tcp) })
		}
	}
}

// killed runs n ranks in a loop of all-reduces and kills victim with
// SIGKILL: the others must fail, naming it.
func killed(t *testing.T, n, victim int, tcp bool) {
	ps := spawn(t, n, "loop", tcp)
	for r, p := range ps {
		if line := <-p.lines; line != "running" {
			t.Fatalf("rank %d: %q", r, line)
		}
	}
	if err := ps[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for r, p := range ps {
		if r == victim {
			continue
		}
		wg.Go(func() {
			var last string
			for line := range p.lines {
				last = line
			}
			p.cmd.Wait()
			t.Logf("rank %d: %s", r, last)
			// Found by the connection's end, not by the 60 s timeout:
			// "lost: EOF" or "lost: connection reset by peer".
			want := fmt.Sprintf("error: collective: all-reduce: rank %d (127.0.0.1:", victim)
			if !strings.HasPrefix(last, want) || !strings.Contains(last, "lost: ") || strings.Contains(last, "no progress") {
				t.Errorf("rank %d: %q, want %q… lost: EOF", r, last, want)
			}
			if code := p.cmd.ProcessState.ExitCode(); code != 3 {
				t.Errorf("rank %d: exit code %d", r, code)
			}
		})
	}
	wg.Wait()
}
