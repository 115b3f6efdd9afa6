package task

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fakeHost is a node with the programs of dir on its PATH and scripted
// scontrol answers.
func fakeHost(t *testing.T, euid int, wrapperEnv []string, scontrol map[string]string) host {
	t.Helper()
	return host{
		self:    func() (string, error) { return "/opt/hpcml", nil },
		environ: func() []string { return wrapperEnv },
		output: func(_ context.Context, name string, args ...string) ([]byte, error) {
			key := strings.Join(append([]string{name}, args...), " ")
			if out, ok := scontrol[key]; ok {
				return []byte(out), nil
			}
			return nil, errors.New("unexpected command: " + key)
		},
		euid: euid,
	}
}

// binDir makes a dir holding executable files of the given names.
func binDir(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestRankCommand(t *testing.T) {
	mpiBin := binDir(t, "mpirun")
	slurmBin := binDir(t, "srun")
	slurmEnv := []string{"SLURM_JOB_ID=77", "SLURM_JOB_NODELIST=n[1-2]", "SLURM_CPUS_PER_TASK=2", "HOME=/root"}
	scontrol := map[string]string{
		"scontrol show hostnames n[1-2]": "n1\nn2\n",
		"scontrol show node -o n1":       "NodeName=n1 Arch=x86_64 CoresPerSocket=1 NodeAddr=10.0.0.7 NodeHostName=localhost OS=Linux 6.1.0 RealMemory=1000\n",
	}
	tests := []struct {
		name     string
		ranks    Ranks
		env      []string
		host     host
		argv     []string // the launcher's, before "<self> __rank"
		hosts    string
		master   string
		dropped  string // a variable of the job's env that must be gone
		kept     string // one that must be there
		wantErr  string
		perTasks []string // what follows "--": the job's argv
	}{
		{
			name:  "local fan-out",
			ranks: Ranks{Nodes: 1, TasksPerNode: 3, Launcher: LauncherLocal},
			env:   []string{"PATH=/usr/bin:/bin", "SLURM_PROCID=0", "SLURM_JOB_ID=5", "KEEP=1"},
			host:  fakeHost(t, 1000, nil, nil),
			argv:  []string{"/opt/hpcml", "__rank", "--fanout", "3", "--"},
			hosts: "localhost", master: "127.0.0.1", dropped: "SLURM_PROCID", kept: "KEEP=1",
		},
		{
			name:  "local MPI as root",
			ranks: Ranks{Nodes: 2, TasksPerNode: 2, MPI: true, Launcher: LauncherLocal},
			env:   []string{"PATH=" + mpiBin, "SLURM_JOB_ID=5"},
			host:  fakeHost(t, 0, nil, nil),
			argv: []string{filepath.Join(mpiBin, "mpirun"), "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", "4",
				"/opt/hpcml", "__rank", "--"},
			hosts: "localhost,localhost", master: "127.0.0.1", dropped: "SLURM_JOB_ID",
		},
		{
			name:  "local MPI of one task, not root",
			ranks: Ranks{MPI: true, Launcher: LauncherLocal},
			env:   []string{"PATH=" + mpiBin},
			host:  fakeHost(t, 1000, nil, nil),
			argv:  []string{filepath.Join(mpiBin, "mpirun"), "--oversubscribe", "--bind-to", "none", "-np", "1", "/opt/hpcml", "__rank", "--"},
			hosts: "localhost", master: "127.0.0.1",
		},
		{
			name:    "local MPI without mpirun",
			ranks:   Ranks{Nodes: 2, MPI: true, Launcher: LauncherLocal},
			env:     []string{"PATH=" + slurmBin},
			host:    fakeHost(t, 0, nil, nil),
			wantErr: "type mpi needs mpirun (Open MPI) on the node",
		},
		{
			name:  "slurm MPI",
			ranks: Ranks{Nodes: 2, TasksPerNode: 2, MPI: true, Launcher: LauncherSlurm},
			env:   []string{"PATH=" + slurmBin, "HOME=/home/u"},
			host:  fakeHost(t, 0, slurmEnv, scontrol),
			argv: []string{filepath.Join(slurmBin, "srun"), "--mpi=pmix", "--kill-on-bad-exit=1", "--nodes=2", "--ntasks=4",
				"--ntasks-per-node=2", "--cpus-per-task=2", "/opt/hpcml", "__rank", "--"},
			hosts: "n1,n2", master: "10.0.0.7", kept: "SLURM_JOB_ID=77",
		},
		{
			name:  "slurm plain tasks, NodeAddr unknown",
			ranks: Ranks{Nodes: 2, TasksPerNode: 1, Launcher: LauncherSlurm},
			env:   []string{"PATH=" + slurmBin},
			host: fakeHost(t, 0, []string{"SLURM_JOB_NODELIST=n[1-2]"},
				map[string]string{"scontrol show hostnames n[1-2]": "n1\nn2\n"}),
			argv:  []string{filepath.Join(slurmBin, "srun"), "--kill-on-bad-exit=1", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "/opt/hpcml", "__rank", "--"},
			hosts: "n1,n2", master: "n1", kept: "SLURM_JOB_NODELIST=n[1-2]",
		},
		{
			name:    "slurm outside a Slurm job",
			ranks:   Ranks{Nodes: 2, Launcher: LauncherSlurm},
			env:     []string{"PATH=" + slurmBin},
			host:    fakeHost(t, 0, nil, nil),
			wantErr: "SLURM_JOB_NODELIST is not set",
		},
		{
			name:    "slurm without srun",
			ranks:   Ranks{Nodes: 2, Launcher: LauncherSlurm},
			env:     []string{"PATH=" + mpiBin},
			host:    fakeHost(t, 0, slurmEnv, scontrol),
			wantErr: "needs srun on the node",
		},
		{
			name:    "unknown launcher",
			ranks:   Ranks{Nodes: 2, Launcher: "k8s"},
			host:    fakeHost(t, 0, nil, nil),
			wantErr: `unknown task launcher "k8s"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &Launch{Argv: []string{"./solver", "-n", "5"}, Env: tt.env, Ranks: tt.ranks}
			argv, env, err := rankCommand(context.Background(), l, tt.host)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("rankCommand = %q, %v; want an error with %q", argv, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := append(slices.Clone(tt.argv), l.Argv...); !slices.Equal(argv, want) {
				t.Fatalf("argv\n %q\nwant\n %q", argv, want)
			}
			nodes, perNode := max(tt.ranks.Nodes, 1), max(tt.ranks.TasksPerNode, 1)
			for k, v := range map[string]string{
				"HPCML_WORLD_SIZE": strconv.Itoa(nodes * perNode), "HPCML_NNODES": strconv.Itoa(nodes),
				"HPCML_TASKS_PER_NODE": strconv.Itoa(perNode), "HPCML_HOSTS": tt.hosts, "HPCML_MASTER_ADDR": tt.master,
			} {
				if got := envValue(env, k); got != v {
					t.Errorf("%s=%q, want %q", k, got, v)
				}
			}
			if port, err := strconv.Atoi(envValue(env, "HPCML_MASTER_PORT")); err != nil || port <= 0 || port > 65535 {
				t.Errorf("HPCML_MASTER_PORT=%q", envValue(env, "HPCML_MASTER_PORT"))
			}
			if tt.dropped != "" && envValue(env, tt.dropped) != "" {
				t.Errorf("%s is still in the tasks' env", tt.dropped)
			}
			if tt.kept != "" && !slices.Contains(env, tt.kept) {
				t.Errorf("%s is not in the tasks' env %q", tt.kept, env)
			}
		})
	}
}

func TestNodeAddr(t *testing.T) {
	for in, want := range map[string]string{
		"NodeName=n1 NodeAddr=127.0.0.1 NodeHostName=localhost": "127.0.0.1",
		"NodeName=n1 NodeHostName=localhost":                    "",
		"":                                                      "",
	} {
		if got := nodeAddr([]byte(in)); got != want {
			t.Errorf("nodeAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
