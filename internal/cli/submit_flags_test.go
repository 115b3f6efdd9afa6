package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/hpcml/hpcml/internal/job"
)

func TestParseMemoryMB(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{in: "512M", want: 512},
		{in: "512", want: 512},
		{in: "4G", want: 4096},
		{in: "4gb", want: 4096},
		{in: "4 GiB", want: 4096},
		{in: "1.5GiB", want: 1536},
		{in: "2T", want: 2 << 20},
		{in: "100K", want: 1}, // rounds up to a whole MB
		{in: "1.5", want: 2},
		{in: "0", want: 0},
		{in: "", err: true},
		{in: "G", err: true},
		{in: "-1G", err: true},
		{in: "4X", err: true},
		{in: "1e3", err: true},
		{in: "4.5.1G", err: true},
	}
	for _, tt := range tests {
		got, err := parseMemoryMB(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseMemoryMB(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParseEnv(t *testing.T) {
	lookup := func(k string) (string, bool) {
		if k == "HOME" {
			return "/home/me", true
		}
		return "", false
	}
	tests := []struct {
		in   []string
		want map[string]string
		err  string
	}{
		{in: []string{"A=1", "B=x=y", "C="}, want: map[string]string{"A": "1", "B": "x=y", "C": ""}},
		{in: []string{"HOME"}, want: map[string]string{"HOME": "/home/me"}},
		{in: []string{"A=1", "A=2"}, want: map[string]string{"A": "2"}}, // the last one wins
		{in: []string{"MISSING"}, err: "MISSING is not set"},
		{in: []string{"=v"}, err: "want NAME=VALUE"},
	}
	for _, tt := range tests {
		got, err := parseEnv(tt.in, lookup)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseEnv(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseEnv(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

// buildSpec parses args as `job submit` does and builds the spec.
func buildSpec(args []string, stdin string) (*job.Spec, *rootOptions, error) {
	o := &rootOptions{output: formatTable, env: env{lookupEnv: func(k string) (string, bool) {
		return map[string]string{"TOKEN": "s3cr3t"}[k], k == "TOKEN"
	}}}
	f := &submitFlags{}
	fs := pflag.NewFlagSet("submit", pflag.ContinueOnError)
	f.register(fs, o)
	if err := fs.Parse(args); err != nil {
		return nil, o, err
	}
	spec, err := f.spec(fs, fs.Args(), strings.NewReader(stdin), o.lookupEnv)
	return spec, o, err
}

func TestSubmitFlagsToSpec(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want job.Spec
	}{
		{
			name: "command after --",
			args: []string{"--", "echo", "hello world"},
			want: job.Spec{Command: []string{"echo", "hello world"}},
		},
		{
			name: "flags stop at the command, which keeps its own flags",
			args: []string{"--cpus", "2", "python", "train.py", "--lr", "0.1", "--cpus", "8"},
			want: job.Spec{Command: []string{"python", "train.py", "--lr", "0.1", "--cpus", "8"}, Resources: job.Resources{CPUs: 2}},
		},
		{
			name: "every field",
			args: []string{
				"--name", "train", "-q", "gpu", "--cpus", "0.5", "--memory", "1.5GiB", "--gpus", "1",
				"--time", "1h30m", "--attempts", "3", "--retry-exit-codes", "1,2", "--retry-signals", "KILL,SIGTERM",
				"--retry-node-loss", "--array", "0-99%10", "--dependency", "afterok:12:13,afterany:14",
				"--env", "A=1,2", "--env", "TOKEN", "--workdir", "out", "--shell",
				"--input", "s3://b/k?region=x=data/in.csv", "--input", "file:///d/=d",
				"--output", "results/=s3://b/run1/", "-o", "model.onnx=s3://b/m.onnx",
				"--tag", "team=ml", "--tag", "run=7",
				"--", "echo $A > out",
			},
			want: job.Spec{
				Name: "train", Queue: "gpu", Command: []string{"echo $A > out"}, Shell: true,
				Env:       map[string]string{"A": "1,2", "TOKEN": "s3cr3t"},
				WorkDir:   "out",
				Resources: job.Resources{CPUs: 0.5, MemoryMB: 1536, GPUs: 1},
				TimeLimit: job.Duration(90 * time.Minute),
				Retry:     job.RetryPolicy{Attempts: 3, OnExitCodes: []int{1, 2}, OnSignals: []string{"SIGKILL", "SIGTERM"}, OnNodeLoss: true},
				Array:     "0-99%10",
				DependsOn: []job.Dependency{{Type: job.AfterOK, JobID: 12}, {Type: job.AfterOK, JobID: 13}, {Type: job.AfterAny, JobID: 14}},
				Inputs:    []job.Input{{URL: "s3://b/k?region=x", Path: "data/in.csv"}, {URL: "file:///d/", Path: "d"}},
				Outputs:   []job.Output{{Path: "results/", URL: "s3://b/run1/"}, {Path: "model.onnx", URL: "s3://b/m.onnx"}},
				Tags:      map[string]string{"team": "ml", "run": "7"},
			},
		},
		{
			name: "tasks",
			args: []string{"--mpi", "--nodes", "2", "--tasks-per-node", "3", "--cpus", "0.5", "--", "./solver"},
			want: job.Spec{Command: []string{"./solver"}, Nodes: 2, TasksPerNode: 3, Type: job.TypeMPI, Resources: job.Resources{CPUs: 0.5}},
		},
		{
			name: "time limit in seconds",
			args: []string{"--time", "90", "--", "x"},
			want: job.Spec{Command: []string{"x"}, TimeLimit: job.Duration(90 * time.Second)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := buildSpec(tt.args, "")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("spec =\n%+v\nwant\n%+v", *got, tt.want)
			}
		})
	}
}

func TestSubmitFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		err  string
	}{
		{[]string{}, "no command"},
		{[]string{"--memory", "lots", "--", "x"}, "--memory"},
		{[]string{"--time", "soon", "--", "x"}, "invalid duration"},
		{[]string{"--time", "-5s", "--", "x"}, "negative"},
		{[]string{"--cpus", "0", "--", "x"}, "--cpus"},
		{[]string{"--attempts", "0", "--", "x"}, "--attempts"},
		{[]string{"--nodes", "0", "--", "x"}, "--nodes 0: must be between 1 and 1024"},
		{[]string{"--nodes", "1025", "--", "x"}, "--nodes"},
		{[]string{"--tasks-per-node", "-1", "--", "x"}, "--tasks-per-node -1: must be between 1 and 1024"},
		{[]string{"--mpi=maybe", "--", "x"}, "invalid argument"},
		{[]string{"--array", "5-1", "--", "x"}, "--array"},
		{[]string{"--array", "0-9%0", "--", "x"}, "throttle"},
		{[]string{"--dependency", "after:1", "--", "x"}, "afterok, afterany or afternotok"},
		{[]string{"--dependency", "afterok:x", "--", "x"}, "not a job id"},
		{[]string{"--retry-signals", "SIGNOPE", "--", "x"}, "not a signal"},
		{[]string{"--retry-exit-codes", "a", "--", "x"}, "invalid argument"},
		{[]string{"--input", "nopath", "--", "x"}, "URL=PATH"},
		{[]string{"--input", "s3://b/k=", "--", "x"}, "URL=PATH"},
		{[]string{"--output", "=s3://b", "--", "x"}, "PATH=URL"},
		{[]string{"--tag", "novalue", "--", "x"}, "KEY=VALUE"},
		{[]string{"--env", "UNSET_VAR", "--", "x"}, "not set in this shell"},
	}
	for _, tt := range tests {
		_, _, err := buildSpec(tt.args, "")
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%q: error %v, want one containing %q", tt.args, err, tt.err)
		}
	}
}

func TestOutputFlagIsFormatOrStageOut(t *testing.T) {
	spec, o, err := buildSpec([]string{"-o", "json", "--output", "out=s3://b/o", "--", "x"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if o.output != "json" {
		t.Errorf("format = %q", o.output)
	}
	if want := []job.Output{{Path: "out", URL: "s3://b/o"}}; !reflect.DeepEqual(spec.Outputs, want) {
		t.Errorf("outputs = %+v", spec.Outputs)
	}
}

const specYAML = `
name: from-file
queue: cpu
command: [python, a.py]
env: {A: "1", B: "2"}
resources: {cpus: 2, memory_mb: 1024}
time_limit: 10m
retry: {attempts: 2, on_exit_codes: [3]}
inputs: [{url: "s3://b/in", path: in}]
outputs: [{path: out, url: "s3://b/out"}]
tags: {team: ml}
`

func TestFlagsOverrideSpecFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(file, []byte(specYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	fromFile := job.Spec{
		Name: "from-file", Queue: "cpu", Command: []string{"python", "a.py"},
		Env:       map[string]string{"A": "1", "B": "2"},
		Resources: job.Resources{CPUs: 2, MemoryMB: 1024},
		TimeLimit: job.Duration(10 * time.Minute),
		Retry:     job.RetryPolicy{Attempts: 2, OnExitCodes: []int{3}},
		Inputs:    []job.Input{{URL: "s3://b/in", Path: "in"}},
		Outputs:   []job.Output{{Path: "out", URL: "s3://b/out"}},
		Tags:      map[string]string{"team": "ml"},
	}
	tests := []struct {
		name  string
		args  []string
		stdin string
		edit  func(s *job.Spec)
	}{
		{name: "file alone", args: []string{"-f", file}},
		{name: "stdin", args: []string{"-f", "-"}, stdin: specYAML},
		{name: "JSON on stdin", args: []string{"-f", "-"}, stdin: `{"command":["python","a.py"],"name":"from-file","queue":"cpu",
			"env":{"A":"1","B":"2"},"resources":{"cpus":2,"memory_mb":1024},"time_limit":"10m","retry":{"attempts":2,"on_exit_codes":[3]},
			"inputs":[{"url":"s3://b/in","path":"in"}],"outputs":[{"path":"out","url":"s3://b/out"}],"tags":{"team":"ml"}}`},
		{
			name: "explicit flags and command win",
			args: []string{"-f", file, "-q", "gpu", "--cpus", "4", "--env", "B=3", "--env", "C=4", "--tag", "run=1",
				"--attempts", "5", "--input", "s3://b/other=in2", "--", "python", "b.py"},
			edit: func(s *job.Spec) {
				s.Queue = "gpu"
				s.Resources.CPUs = 4
				s.Env = map[string]string{"A": "1", "B": "3", "C": "4"}
				s.Tags = map[string]string{"team": "ml", "run": "1"}
				s.Retry.Attempts = 5
				s.Inputs = []job.Input{{URL: "s3://b/other", Path: "in2"}}
				s.Command = []string{"python", "b.py"}
			},
		},
		{
			name: "a flag set to its zero value still overrides",
			args: []string{"-f", file, "--memory", "0", "--name", ""},
			edit: func(s *job.Spec) {
				s.Resources.MemoryMB = 0
				s.Name = ""
			},
		},
		{
			name: "task flags",
			args: []string{"-f", file, "--nodes", "3", "--tasks-per-node", "2", "--mpi"},
			edit: func(s *job.Spec) { s.Nodes, s.TasksPerNode, s.Type = 3, 2, job.TypeMPI },
		},
		{
			name: "-o json leaves the file's outputs alone",
			args: []string{"-f", file, "-o", "json"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := buildSpec(tt.args, tt.stdin)
			if err != nil {
				t.Fatal(err)
			}
			want := fromFile
			want.Env = merge(nil, fromFile.Env)
			want.Tags = merge(nil, fromFile.Tags)
			if tt.edit != nil {
				tt.edit(&want)
			}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("spec =\n%+v\nwant\n%+v", *got, want)
			}
		})
	}
}

func TestSpecFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("command: [x]\ncpus: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		err  string
	}{
		{[]string{"-f", filepath.Join(dir, "missing.yaml")}, "no such file"},
		{[]string{"-f", bad}, "field cpus not found"}, // misspelt fields are refused
	} {
		_, _, err := buildSpec(tt.args, "")
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%q: error %v, want %q", tt.args, err, tt.err)
		}
	}
}
