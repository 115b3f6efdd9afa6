package slurm

import (
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/backend"
	"github.com/hpcml/hpcml/internal/job"
)

func TestCompactRanges(t *testing.T) {
	tests := []struct {
		in   []int
		want string
	}{
		{nil, ""},
		{[]int{}, ""},
		{[]int{3}, "3"},
		{[]int{0}, "0"},
		{[]int{0, 1}, "0-1"},
		{[]int{1, 3, 5}, "1,3,5"},
		{[]int{1, 2, 3, 5, 7, 8}, "1-3,5,7-8"},
		{[]int{10, 11, 12, 13}, "10-13"},
		{[]int{0, 2, 3, 4, 9}, "0,2-4,9"},
	}
	for _, tt := range tests {
		if got := compactRanges(tt.in); got != tt.want {
			t.Errorf("compactRanges(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSlurmTime(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{59 * time.Second, "00:00:59"},
		{60 * time.Second, "00:01:00"},
		{61*time.Second + 200*time.Millisecond, "00:01:02"},
		{61*time.Second + time.Nanosecond, "00:01:02"},
		{time.Millisecond, "00:00:01"},
		{time.Hour, "01:00:00"},
		{time.Hour + time.Minute + time.Second, "01:01:01"},
		{23*time.Hour + 59*time.Minute + 59*time.Second, "23:59:59"},
		{24 * time.Hour, "1-00:00:00"},
		{25 * time.Hour, "1-01:00:00"},
		{48*time.Hour + 59*time.Minute + 59*time.Second + time.Millisecond, "2-01:00:00"},
		{99 * time.Hour, "4-03:00:00"},
	}
	for _, tt := range tests {
		if got := slurmTime(tt.d); got != tt.want {
			t.Errorf("slurmTime(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestComment(t *testing.T) {
	if got, want := comment("0a1b2c", "42.1"), "hpcml:0a1b2c:42.1"; got != want {
		t.Errorf("comment = %q, want %q", got, want)
	}
	// submittedJobs finds a key by the empty key's prefix.
	if !strings.HasPrefix(comment("i", "a7.8.1"), comment("i", "")) {
		t.Error("a comment does not start with its instance's prefix")
	}
}

// shellQuote keeps any string one word, taken literally by the shell.
func TestShellQuote(t *testing.T) {
	for _, s := range []string{
		"",
		"plain",
		"/shared/jobs/42.1",
		"it's",
		"''",
		"'",
		"a b  c",
		"$HOME",
		"${PATH}",
		"`id`",
		"$(id)",
		`back\slash`,
		`a"b`,
		"semi;colon && true",
		"x'; echo pwned; '",
		"glob*?[a]",
		"~root",
		"tab\there",
	} {
		out, err := exec.Command("/bin/sh", "-c", "printf '%s|' "+shellQuote(s)).CombinedOutput()
		if err != nil {
			t.Errorf("sh on shellQuote(%q) = %q: %v (%s)", s, shellQuote(s), err, out)
			continue
		}
		if got := string(out); got != s+"|" {
			t.Errorf("sh read shellQuote(%q) = %s as %q, want one word %q", s, shellQuote(s), got, s+"|")
		}
	}
}

// The batch script runs the wrapper with exactly its two or three
// arguments, however odd the paths (quotes included, which New refuses
// but the quoting must survive anyway).
func TestBatchScript(t *testing.T) {
	root := t.TempDir()
	exeDir := filepath.Join(root, "it's a $bin `dir`")
	if err := os.MkdirAll(exeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(exeDir, "hpcml")
	// The fake wrapper prints its arguments, one a line.
	if err := os.WriteFile(exe, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	dirs := []string{
		"/shared/jobs/42.1",
		"/shared/it's/42.1",
		"/shared/a b;c/$HOME/`id`/\"q\"/42.1",
	}
	for _, dir := range dirs {
		for _, array := range []bool{false, true} {
			script := batchScript(exe, dir, array)
			if !strings.HasPrefix(string(script), "#!/bin/sh\n") {
				t.Errorf("script does not start with #!/bin/sh: %q", script)
			}
			if !strings.HasSuffix(string(script), "\n") {
				t.Errorf("script does not end with a newline: %q", script)
			}
			path := filepath.Join(root, "script.sh")
			if err := os.WriteFile(path, script, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("/bin/sh", "-n", path).CombinedOutput(); err != nil {
				t.Errorf("sh -n on %q: %v (%s)", script, err, out)
				continue
			}
			out, err := exec.Command("/bin/sh", path).Output()
			if err != nil {
				t.Errorf("running %q: %v", script, err)
				continue
			}
			want := []string{"__slurm-task", dir}
			if array {
				want = []string{"__slurm-task", "--array", dir}
			}
			if got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"); !reflect.DeepEqual(got, want) {
				t.Errorf("script %q ran the wrapper with %q, want %q", script, got, want)
			}
		}
	}
}

// argsOf collects sbatch options by flag ("--mem" -> ["2048M"]).
func argsOf(args []string) map[string][]string {
	m := map[string][]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		m[k] = append(m[k], v)
	}
	return m
}

func TestSbatchArgs(t *testing.T) {
	dir := t.TempDir()
	b := newTestBackend(t, Config{Dir: dir, KillGrace: 30 * time.Second})
	type want map[string]string // flag -> its one value
	tests := []struct {
		name   string
		spec   job.Spec
		queue  job.Queue
		array  string
		want   want
		absent []string
	}{
		{"defaults", job.Spec{}, job.Queue{}, "",
			want{"--cpus-per-task": "1", "--nodes": "1", "--ntasks-per-node": "1"},
			[]string{"--mem", "--gres", "--time", "--partition", "--account", "--qos", "--array"}},
		{"half a cpu", job.Spec{Resources: job.Resources{CPUs: 0.5}}, job.Queue{}, "",
			want{"--cpus-per-task": "1"}, nil},
		{"one cpu", job.Spec{Resources: job.Resources{CPUs: 1}}, job.Queue{}, "",
			want{"--cpus-per-task": "1"}, nil},
		{"2.5 cpus", job.Spec{Resources: job.Resources{CPUs: 2.5}}, job.Queue{}, "",
			want{"--cpus-per-task": "3"}, nil},
		{"2.001 cpus", job.Spec{Resources: job.Resources{CPUs: 2.001}}, job.Queue{}, "",
			want{"--cpus-per-task": "3"}, nil},
		{"16 cpus", job.Spec{Resources: job.Resources{CPUs: 16}}, job.Queue{}, "",
			want{"--cpus-per-task": "16"}, nil},
		{"memory", job.Spec{Resources: job.Resources{MemoryMB: 2048}}, job.Queue{}, "",
			want{"--mem": "2048M"}, []string{"--gres"}},
		{"gpus", job.Spec{Resources: job.Resources{GPUs: 2}}, job.Queue{}, "",
			want{"--gres": "gpu:2"}, []string{"--mem"}},
		{"time limit with kill grace and margin", job.Spec{TimeLimit: job.Duration(time.Hour)}, job.Queue{}, "",
			want{"--time": "01:01:30"}, nil},
		{"short time limit", job.Spec{TimeLimit: job.Duration(90 * time.Second)}, job.Queue{}, "",
			want{"--time": "00:03:00"}, nil},
		{"day-long time limit", job.Spec{TimeLimit: job.Duration(24 * time.Hour)}, job.Queue{}, "",
			want{"--time": "1-00:01:30"}, nil},
		{"layout", job.Spec{Nodes: 2, TasksPerNode: 4, Resources: job.Resources{CPUs: 2, MemoryMB: 1000, GPUs: 1}}, job.Queue{}, "",
			want{"--nodes": "2", "--ntasks-per-node": "4", "--cpus-per-task": "2", "--mem": "1000M", "--gres": "gpu:1"}, nil},
		{"partition only", job.Spec{}, job.Queue{Partition: "gpu"}, "",
			want{"--partition": "gpu"}, []string{"--account", "--qos"}},
		{"account only", job.Spec{}, job.Queue{Account: "proj1"}, "",
			want{"--account": "proj1"}, []string{"--partition", "--qos"}},
		{"qos only", job.Spec{}, job.Queue{QOS: "high"}, "",
			want{"--qos": "high"}, []string{"--partition", "--account"}},
		{"whole queue", job.Spec{}, job.Queue{Name: "q", Partition: "batch", Account: "a", QOS: "normal"}, "",
			want{"--partition": "batch", "--account": "a", "--qos": "normal"}, nil},
		{"array", job.Spec{}, job.Queue{}, "1-3,5%2",
			want{"--array": "1-3,5%2"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &job.Job{ID: 42, Name: "train-model", Attempt: 1, Spec: tt.spec}
			q := tt.queue
			out := filepath.Join(dir, "42.1", slurmOut)
			args := b.sbatchArgs(j, &q, "42.1", tt.array, out, "")
			m := argsOf(args)
			for k, vs := range m {
				if len(vs) > 1 {
					t.Errorf("%s given %d times: %q", k, len(vs), args)
				}
				if !strings.HasPrefix(k, "--") {
					t.Errorf("argument %q is not an option", k)
				}
			}
			common := want{
				"--job-name": "train-model",
				"--comment":  "hpcml:" + b.instance + ":42.1",
				"--output":   out,
				"--chdir":    dir,
			}
			for k, v := range common {
				if got := m[k]; len(got) != 1 || got[0] != v {
					t.Errorf("%s = %q, want %q (args %q)", k, got, v, args)
				}
			}
			for _, flag := range []string{"--parsable", "--no-requeue"} {
				if got, ok := m[flag]; !ok || got[0] != "" {
					t.Errorf("%s missing or given a value: %q", flag, args)
				}
			}
			for k, v := range tt.want {
				if got := m[k]; len(got) != 1 || got[0] != v {
					t.Errorf("%s = %q, want %q (args %q)", k, got, v, args)
				}
			}
			for _, k := range tt.absent {
				if got, ok := m[k]; ok {
					t.Errorf("%s = %q, want it absent (args %q)", k, got, args)
				}
			}
		})
	}
}

// The backstop --time always leaves the wrapper its kill grace and a
// margin past the job's own limit.
func TestSbatchTimeBackstop(t *testing.T) {
	for _, grace := range []time.Duration{0, 10 * time.Second, 2 * time.Minute} {
		b := newTestBackend(t, Config{KillGrace: grace})
		for _, limit := range []time.Duration{time.Second, 59 * time.Minute, 36 * time.Hour} {
			j := &job.Job{ID: 1, Attempt: 1, Spec: job.Spec{TimeLimit: job.Duration(limit)}}
			m := argsOf(b.sbatchArgs(j, &job.Queue{}, "1.1", "", "/x/slurm.out", ""))
			got := m["--time"]
			if len(got) != 1 {
				t.Fatalf("--time = %q", got)
			}
			if want := slurmTime(limit + grace + timeMargin); got[0] != want {
				t.Errorf("grace %v, limit %v: --time=%s, want %s", grace, limit, got[0], want)
			}
		}
	}
}

// TestDependencies maps hpcml dependencies on attempts the backend runs to
// Slurm's --dependency, and refuses one it does not run.
func TestDependencies(t *testing.T) {
	b, err := New(Config{Dir: t.TempDir(), Executable: "/usr/bin/true"}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	b.inflight[key{7, 1}] = &attempt{key: key{7, 1}, slurmID: "100"}
	b.inflight[key{8, 2}] = &attempt{key: key{8, 2}, slurmID: "101_3"}
	b.inflight[key{9, 1}] = &attempt{key: key{9, 1}, slurmID: "102"}
	got, err := b.dependencies([]job.Dependency{{Type: job.AfterOK, JobID: 7}, {Type: job.AfterAny, JobID: 9}, {Type: job.AfterOK, JobID: 8}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "afterok:100:101_3,afterany:102"; got != want {
		t.Fatalf("--dependency=%s, want %s", got, want)
	}
	if got, err := b.dependencies(nil); got != "" || err != nil {
		t.Fatalf("no dependencies: %q, %v", got, err)
	}
	if _, err := b.dependencies([]job.Dependency{{Type: job.AfterOK, JobID: 99}}); !errors.Is(err, backend.ErrDependencyGone) {
		t.Fatalf("dependency on a job the backend does not run: %v, want ErrDependencyGone", err)
	}
	j := &job.Job{ID: 10, Name: "n", Attempt: 1}
	args := b.sbatchArgs(j, &job.Queue{}, "10.1", "", "/x", "afterok:100")
	if !slices.Contains(args, "--dependency=afterok:100") {
		t.Fatalf("args %q lack --dependency", args)
	}
}
