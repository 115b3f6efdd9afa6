package task

import (
	"bytes"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain lets this test binary be the hpcml binary that tasks start as
// (`<self> __rank ...`), since os.Executable is the test binary here.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == RankCommand {
		os.Exit(RankMain(os.Args[2:]))
	}
	if len(os.Args) > 2 && os.Args[1] == touchCommand {
		touchMiB(os.Args[2])
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestRankVars(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    []string
		wantErr string
	}{
		{"srun", map[string]string{"SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NODEID": "2",
			"OMPI_COMM_WORLD_RANK": "9", "PMIX_RANK": "9"},
			[]string{"HPCML_RANK=5", "HPCML_LOCAL_RANK=1", "HPCML_NODE_RANK=2"}, ""},
		{"mpirun on one machine", map[string]string{"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_LOCAL_RANK": "3",
			"OMPI_COMM_WORLD_NODE_RANK": "3", "OMPI_COMM_WORLD_LOCAL_SIZE": "4", "PMIX_RANK": "3"},
			[]string{"HPCML_RANK=3", "HPCML_LOCAL_RANK=3", "HPCML_NODE_RANK=0"}, ""},
		{"mpirun over two machines", map[string]string{"OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
			"OMPI_COMM_WORLD_NODE_RANK": "1", "OMPI_COMM_WORLD_LOCAL_SIZE": "4"},
			[]string{"HPCML_RANK=5", "HPCML_LOCAL_RANK=1", "HPCML_NODE_RANK=1"}, ""},
		{"pmix only", map[string]string{"PMIX_RANK": "7"}, []string{"HPCML_RANK=7"}, ""},
		{"nothing", map[string]string{}, nil, "no rank in the environment"},
		{"srun without a local id", map[string]string{"SLURM_PROCID": "1", "SLURM_NODEID": "0"}, nil, "SLURM_LOCALID"},
		{"garbage", map[string]string{"OMPI_COMM_WORLD_RANK": "x"}, nil, "is not a rank"},
		{"negative", map[string]string{"PMIX_RANK": "-1"}, nil, "is not a rank"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rankVars(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("rankVars = %v, %v; want an error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("rankVars = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestParseRankArgs(t *testing.T) {
	tests := []struct {
		args   []string
		fanout int
		argv   []string
		ok     bool
	}{
		{[]string{"--", "a", "-x"}, 0, []string{"a", "-x"}, true},
		{[]string{"--fanout", "3", "--", "a", "--", "b"}, 3, []string{"a", "--", "b"}, true},
		{[]string{"--fanout", "0", "--", "a"}, 0, nil, false},
		{[]string{"--fanout", "x", "--", "a"}, 0, nil, false},
		{[]string{"--fanout", "2"}, 0, nil, false},
		{[]string{"a"}, 0, nil, false},
		{[]string{"--"}, 0, nil, false},
		{[]string{"--", ""}, 0, nil, false},
	}
	for _, tt := range tests {
		fanout, argv, err := parseRankArgs(tt.args)
		if (err == nil) != tt.ok || fanout != tt.fanout || !slices.Equal(argv, tt.argv) {
			t.Errorf("parseRankArgs(%q) = %d, %q, %v", tt.args, fanout, argv, err)
		}
	}
}

// syncBuffer collects the output of several processes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var testEnv = []string{"PATH=/usr/bin:/bin", "HPCML_RANK=stale"}

func TestFanoutRanks(t *testing.T) {
	var out syncBuffer
	code := runFanout(4, []string{"/bin/sh", "-c", `echo "$HPCML_RANK/$HPCML_LOCAL_RANK/$HPCML_NODE_RANK"`}, testEnv, &out, &out, nil)
	if code != 0 {
		t.Fatalf("exit %d, output %q", code, out.String())
	}
	lines := strings.Fields(out.String())
	sort.Strings(lines)
	if want := []string{"0/0/0", "1/1/0", "2/2/0", "3/3/0"}; !slices.Equal(lines, want) {
		t.Fatalf("ranks %q, want %q", lines, want)
	}
}

func TestFanoutFirstFailureStopsTheOthers(t *testing.T) {
	var out syncBuffer
	start := time.Now()
	// Rank 1 fails at once; the others would sleep a minute.
	code := runFanout(3, []string{"/bin/sh", "-c", `[ "$HPCML_RANK" = 1 ] && exit 3; exec sleep 60`}, testEnv, &out, &out, nil)
	if code != 3 {
		t.Fatalf("exit %d, want 3 (the failed rank's), output %q", code, out.String())
	}
	if d := time.Since(start); d > fanoutKillGrace/2 {
		t.Fatalf("took %s: the other ranks were not stopped by SIGTERM", d)
	}
}

func TestFanoutSignal(t *testing.T) {
	tests := []struct {
		name   string
		script string
		send   os.Signal // forwarded to the ranks
		want   int
	}{
		{"killed rank", `[ "$HPCML_RANK" = 0 ] && kill -9 $$; exec sleep 60`, nil, 128 + 9},
		{"forwarded SIGTERM", `exec sleep 60`, syscall.SIGTERM, 128 + 15},
		// The shell runs its trap once the short foreground sleep is over.
		{"forwarded SIGINT", `trap 'exit 42' INT; while :; do sleep 0.1; done`, syscall.SIGINT, 42},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig := make(chan os.Signal, 1)
			if tt.send != nil {
				go func() {
					time.Sleep(300 * time.Millisecond) // the ranks have started (and set their traps)
					sig <- tt.send
				}()
			}
			var out syncBuffer
			if code := runFanout(2, []string{"/bin/sh", "-c", tt.script}, testEnv, &out, &out, sig); code != tt.want {
				t.Fatalf("exit %d, want %d; output %q", code, tt.want, out.String())
			}
		})
	}
}

func TestFanoutMissingProgram(t *testing.T) {
	var out syncBuffer
	if code := runFanout(2, []string{"no-such-program-hpcml"}, testEnv, &out, &out, nil); code != exitNotFound {
		t.Fatalf("exit %d, want %d", code, exitNotFound)
	}
	if !strings.Contains(out.String(), "cannot run no-such-program-hpcml") {
		t.Fatalf("output %q", out.String())
	}
}

func TestSetEnv(t *testing.T) {
	got := setEnv([]string{"A=1", "B=2", "A=3", "AB=4"}, "A", "5")
	if want := []string{"B=2", "AB=4", "A=5"}; !slices.Equal(got, want) {
		t.Fatalf("setEnv = %q, want %q", got, want)
	}
}
