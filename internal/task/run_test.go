package task

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/job"
)

func TestRunEventsAndClaim(t *testing.T) {
	files := Flat(filepath.Join(t.TempDir(), "7.1"))
	if err := os.MkdirAll(files.Work, 0o755); err != nil {
		t.Fatal(err)
	}
	env := Env{Buckets: blob.NewCache(), Log: slog.New(slog.DiscardHandler)}
	defer env.Buckets.Close()
	l := &Launch{Argv: []string{"true"}, Env: []string{"PATH=/usr/bin:/bin"}, WorkDir: files.Work}
	journal, ok, err := Claim(files.Status, OwnerExecutor)
	if err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	var events []string
	if err := Run(env, journal, files, l, make(chan struct{}), func(ev string) { events = append(events, ev) }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(events, []string{EventStarted}) {
		t.Fatalf("events %v", events)
	}
	st, err := ReadStatus(files.Status)
	if err != nil || st.Owner != OwnerExecutor || st.Done == nil || st.Done.Result.ExitCode == nil || *st.Done.Result.ExitCode != 0 {
		t.Fatalf("status %+v %v", st, err)
	}
	// Claimed already: a second claim fails, whoever makes it.
	if _, ok, err := Claim(files.Status, OwnerAbandoned); ok || err != nil {
		t.Fatalf("second claim: %v %v", ok, err)
	}
	// A silent job leaves no log files.
	for _, p := range []string{files.Stdout, files.Stderr} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s exists after a silent job (%v)", p, err)
		}
	}
}

// Output reaches the log files whole, each stream its own, however much
// there is; a process that escaped the job's group and keeps the pipe
// open does not hold the attempt for more than the drain grace.
func TestRunLogs(t *testing.T) {
	res, out := runAttempt(t, &Launch{
		Argv: []string{"/bin/sh", "-c", `i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); done; echo oops >&2`},
		Env:  []string{"PATH=/usr/bin:/bin"},
	})
	if res.ExitCode == nil || *res.ExitCode != 0 {
		t.Fatalf("result %+v", res)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 20000 || lines[0] != "line 0" || lines[19999] != "line 19999" {
		t.Fatalf("stdout has %d lines (%q ... %q), want 20000", len(lines), lines[0], lines[len(lines)-1])
	}

	start := time.Now()
	res, out = runAttempt(t, &Launch{
		Argv: []string{"/bin/sh", "-c", `echo before; setsid sleep 30 & echo after`},
		Env:  []string{"PATH=/usr/bin:/bin"},
	})
	if res.ExitCode == nil || *res.ExitCode != 0 || out != "before\nafter\n" {
		t.Fatalf("result %+v, stdout %q", res, out)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the attempt waited %s for an escaped process's pipe", d)
	}
}

// runAttempt runs l to its end in a fresh attempt dir and returns its
// result and stdout.
func runAttempt(t *testing.T, l *Launch) (*job.Result, string) {
	t.Helper()
	files := Nested(t.TempDir())
	l.WorkDir = files.Work
	if err := os.MkdirAll(l.WorkDir, 0o755); err != nil {
		t.Fatal(err)
	}
	env := Env{Buckets: blob.NewCache(), Log: slog.New(slog.DiscardHandler)}
	defer env.Buckets.Close()
	journal, ok, err := Claim(files.Status, OwnerExecutor)
	if err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if err := Run(env, journal, files, l, make(chan struct{}), func(string) {}); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStatus(files.Status)
	if err != nil || st.Done == nil || st.Done.Result == nil {
		t.Fatalf("status %+v %v", st, err)
	}
	return st.Done.Result, readFile(t, files.Stdout)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// A job of several tasks goes through the fan-out of this (test) binary:
// every rank runs, sees the job-wide variables, and the first failure is
// the attempt's exit code.
func TestRunFanout(t *testing.T) {
	res, out := runAttempt(t, &Launch{
		Argv:  []string{"/bin/sh", "-c", `echo "rank=$HPCML_RANK size=$HPCML_WORLD_SIZE hosts=$HPCML_HOSTS"`},
		Env:   []string{"PATH=/usr/bin:/bin"},
		Ranks: Ranks{Nodes: 2, TasksPerNode: 1, Launcher: LauncherLocal},
	})
	if res.ExitCode == nil || *res.ExitCode != 0 || res.Error != "" {
		t.Fatalf("result %+v", res)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	slices.Sort(lines)
	if want := []string{"rank=0 size=2 hosts=localhost,localhost", "rank=1 size=2 hosts=localhost,localhost"}; !slices.Equal(lines, want) {
		t.Fatalf("output %q, want %q", lines, want)
	}

	res, _ = runAttempt(t, &Launch{
		Argv:  []string{"/bin/sh", "-c", `[ "$HPCML_RANK" = 2 ] && exit 3; sleep 30`},
		Env:   []string{"PATH=/usr/bin:/bin"},
		Ranks: Ranks{TasksPerNode: 3, Launcher: LauncherLocal},
	})
	if res.ExitCode == nil || *res.ExitCode != 3 {
		t.Fatalf("result %+v, want exit code 3", res)
	}
}

func TestRunRanksErrors(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data.txt")
	if err := os.WriteFile(data, []byte("not a program"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		l    Launch
		want string
	}{
		{"no mpirun", Launch{Argv: []string{"/bin/true"}, Env: []string{"PATH=/nonexistent"},
			Ranks: Ranks{Nodes: 2, MPI: true, Launcher: LauncherLocal}}, "start tasks: type mpi needs mpirun (Open MPI) on the node"},
		// Found before any launcher starts, with the plain job's message.
		{"no program", Launch{Argv: []string{"no-such-program-hpcml"}, Env: []string{"PATH=/usr/bin:/bin"},
			Ranks: Ranks{Nodes: 2, Launcher: LauncherLocal}}, "cannot run no-such-program-hpcml"},
		{"no program in the job dir", Launch{Argv: []string{"./solver"}, Env: []string{"PATH=/usr/bin:/bin"},
			Ranks: Ranks{Nodes: 2, MPI: true, Launcher: LauncherLocal}}, "cannot run ./solver: exec ./solver: no such file or directory"},
		{"not executable", Launch{Argv: []string{data}, Env: []string{"PATH=/usr/bin:/bin"},
			Ranks: Ranks{Nodes: 2, Launcher: LauncherLocal}}, "cannot run " + data + ": exec " + data + ": permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _ := runAttempt(t, &tt.l)
			if !strings.Contains(res.Error, tt.want) || res.ExitCode != nil {
				t.Fatalf("result %+v, want error %q", res, tt.want)
			}
		})
	}
}
