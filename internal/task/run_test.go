package task

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/job"
)

func TestRunEventsAndClaim(t *testing.T) {
	dir := t.TempDir()
	work := filepath.Join(dir, WorkDir)
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	env := Env{Buckets: blob.NewCache(), Log: slog.New(slog.DiscardHandler)}
	defer env.Buckets.Close()
	l := &Launch{Argv: []string{"true"}, Env: []string{"PATH=/usr/bin:/bin"}, WorkDir: work}
	journal, ok, err := Claim(dir, OwnerExecutor)
	if err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	var events []string
	res, err := Run(env, journal, dir, l, make(chan struct{}), func(ev string) { events = append(events, ev) })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(events, []string{EventStarted}) {
		t.Fatalf("events %v", events)
	}
	st, err := ReadStatus(dir)
	if err != nil || st.Owner != OwnerExecutor || st.Done == nil || st.Done.Result.ExitCode == nil || *st.Done.Result.ExitCode != 0 {
		t.Fatalf("status %+v %v", st, err)
	}
	// What Run returns is what it recorded.
	if *res.ExitCode != 0 || !res.EndedAt.Equal(st.Done.Result.EndedAt) || !res.EndedAt.Equal(st.Done.At) {
		t.Fatalf("Run returned %+v, the journal holds %+v", res, st.Done.Result)
	}
	// Claimed already: a second claim fails, whoever makes it.
	if _, ok, err := Claim(dir, OwnerAbandoned); ok || err != nil {
		t.Fatalf("second claim: %v %v", ok, err)
	}
}

// runAttempt runs l to its end in a fresh attempt dir and returns its
// result and stdout.
func runAttempt(t *testing.T, l *Launch) (*job.Result, string) {
	t.Helper()
	return runAttemptNotify(t, l, func(string) {})
}

// runAttemptNotify is runAttempt with Run's notify.
func runAttemptNotify(t *testing.T, l *Launch, notify func(string)) (*job.Result, string) {
	t.Helper()
	dir := t.TempDir()
	l.WorkDir = filepath.Join(dir, WorkDir)
	if err := os.MkdirAll(l.WorkDir, 0o755); err != nil {
		t.Fatal(err)
	}
	env := Env{Buckets: blob.NewCache(), Log: slog.New(slog.DiscardHandler)}
	defer env.Buckets.Close()
	journal, ok, err := Claim(dir, OwnerExecutor)
	if err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if _, err := Run(env, journal, dir, l, make(chan struct{}), notify); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStatus(dir)
	if err != nil || st.Done == nil || st.Done.Result == nil {
		t.Fatalf("status %+v %v", st, err)
	}
	return st.Done.Result, readFile(t, filepath.Join(dir, StdoutFile))
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

// "hpcml" as a job's program is the binary running the job (here the
// test binary, which answers __rank like hpcml), even off the job's PATH.
func TestSelfProgram(t *testing.T) {
	res, out := runAttempt(t, &Launch{
		Argv: []string{SelfProgram, RankCommand, "--fanout", "1", "--", "/bin/sh", "-c", `echo "self rank $HPCML_RANK"`},
		Env:  []string{"PATH=/nonexistent"},
	})
	if res.ExitCode == nil || *res.ExitCode != 0 || out != "self rank 0\n" {
		t.Fatalf("exit %v, error %q, stdout %q", derefInt(res.ExitCode), res.Error, out)
	}
}

func derefInt(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}
