package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/hpcml/hpcml/internal/client/clienttest"
	"github.com/hpcml/hpcml/internal/job"
)

type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs the hpcml command line in-process with the given
// environment, as a user's shell would.
func runCLI(t *testing.T, vars map[string]string, args ...string) result {
	t.Helper()
	e := env{
		getenv:    func(k string) string { return vars[k] },
		lookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		now:       time.Now,
	}
	server := &cobra.Command{Use: "server", RunE: func(*cobra.Command, []string) error { return nil }}
	root := newRoot(server, e)
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(strings.NewReader(""))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	code := execute(ctx, root)
	return result{out.String(), errOut.String(), code}
}

// serverEnv points the CLI at srv with the right token.
func serverEnv(srv *clienttest.Server) map[string]string {
	return map[string]string{"HPCML_SERVER": srv.URL, "HPCML_TOKEN": clienttest.Token}
}

func TestSubmitPrintsIDAndSendsSpec(t *testing.T) {
	srv := clienttest.NewServer(t)
	r := runCLI(t, serverEnv(srv), "job", "submit", "--cpus", "2", "--memory", "1G", "--", "echo", "hi")
	if r.code != 0 || r.stdout != "Submitted job 1\n" || r.stderr != "" {
		t.Fatalf("got %+v", r)
	}
	j := srv.Job(1)
	if j.Spec.Resources.CPUs != 2 || j.Spec.Resources.MemoryMB != 1024 || strings.Join(j.Spec.Command, " ") != "echo hi" {
		t.Errorf("server got spec %+v", j.Spec)
	}

	r = runCLI(t, serverEnv(srv), "job", "submit", "--array", "0-9%2", "-o", "json", "--", "x")
	var got job.Job
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 {
		t.Fatalf("-o json printed %q (%v)", r.stdout, err)
	}
	if got.ArraySize != 10 || got.Spec.Array != "0-9%2" {
		t.Errorf("array job = %+v", got)
	}
}

func TestSubmitCommandKeepsItsFlags(t *testing.T) {
	srv := clienttest.NewServer(t)
	// The global -o may come before the command group, and the job's
	// own flags (even ones hpcml also has) stay with the job.
	r := runCLI(t, serverEnv(srv), "-o", "json", "job", "submit", "--cpus", "2", "python", "train.py", "--cpus", "8", "-o", "x")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "{") {
		t.Fatalf("got %+v", r)
	}
	j := srv.Job(1)
	if got := strings.Join(j.Spec.Command, " "); got != "python train.py --cpus 8 -o x" || j.Spec.Resources.CPUs != 2 {
		t.Errorf("command %q, cpus %g", got, j.Spec.Resources.CPUs)
	}
}

func TestSubmitWaitExitCode(t *testing.T) {
	tests := []struct {
		final job.State
		code  int
		out   string
	}{
		{job.Succeeded, 0, "Submitted job 1\nJob 1 SUCCEEDED\n"},
		{job.Failed, 1, "Submitted job 1\nJob 1 FAILED: exit code 3\n"},
	}
	for _, tt := range tests {
		t.Run(string(tt.final), func(t *testing.T) {
			srv := clienttest.NewServer(t)
			go func() {
				// Finish the job once the CLI has submitted it.
				for srv.Job(1) == nil {
					time.Sleep(5 * time.Millisecond)
				}
				srv.SetState(1, job.Running)
				srv.Update(1, func(j *job.Job) {
					if tt.final == job.Failed {
						code := 3
						j.ExitCode, j.Reason = &code, "exit code 3"
					}
				})
				srv.SetState(1, tt.final)
			}()
			r := runCLI(t, serverEnv(srv), "job", "submit", "--wait", "--", "false")
			if r.code != tt.code || r.stdout != tt.out || r.stderr != "" {
				t.Errorf("got %+v", r)
			}
		})
	}
}

func TestJobListTableAndJSON(t *testing.T) {
	srv := clienttest.NewServer(t)
	c := srv.Client()
	for _, name := range []string{"prep", "train"} {
		if _, err := c.SubmitJob(t.Context(), &job.Spec{Name: name, Command: []string{"x"}, Retry: job.RetryPolicy{Attempts: 3}}); err != nil {
			t.Fatal(err)
		}
	}
	srv.SetState(2, job.Running)
	srv.SetState(1, job.Running)
	srv.Update(1, func(j *job.Job) {
		j.Signal, j.Reason = "SIGKILL", "killed by SIGKILL after using far more memory than it asked for"
	})
	srv.SetState(1, job.Failed)

	r := runCLI(t, serverEnv(srv), "job", "list")
	if r.code != 0 {
		t.Fatalf("got %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("table:\n%s", r.stdout)
	}
	want := []*regexp.Regexp{
		regexp.MustCompile(`^ID\s+NAME\s+QUEUE\s+STATE\s+REASON\s+ATTEMPT\s+SUBMITTED\s+ELAPSED\s+EXIT$`),
		regexp.MustCompile(`^2\s+train\s+default\s+RUNNING\s+-\s+1/3\s+\d+s\s+0:0\d\s+-$`),
		regexp.MustCompile(`^1\s+prep\s+default\s+FAILED\s+killed by SIGKILL after using far more…\s+1/3\s+\d+s\s+0:00\s+SIGKILL$`),
	}
	for i, re := range want {
		if !re.MatchString(lines[i]) {
			t.Errorf("line %d = %q, want %s", i, lines[i], re)
		}
	}

	r = runCLI(t, serverEnv(srv), "job", "list", "--state", "running", "--limit", "5", "-o", "json")
	var jobs []job.Job
	if err := json.Unmarshal([]byte(r.stdout), &jobs); err != nil || len(jobs) != 1 || jobs[0].ID != 2 {
		t.Fatalf("json = %q (%v)", r.stdout, err)
	}
	reqs := srv.Requests()
	if q := reqs[len(reqs)-1].RawQuery; q != "limit=5&state=RUNNING" {
		t.Errorf("query = %q", q)
	}

	r = runCLI(t, serverEnv(srv), "job", "list", "--state", "DONE")
	if r.code != 1 || !strings.Contains(r.stderr, "error: --state DONE: not one of PENDING") {
		t.Errorf("bad state: %+v", r)
	}
	r = runCLI(t, serverEnv(srv), "job", "list", "--queue", "none", "-o", "json")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("empty list as json: %+v", r)
	}
}

func TestJobGet(t *testing.T) {
	srv := clienttest.NewServer(t)
	r := runCLI(t, serverEnv(srv), "job", "submit", "--env", "B=2", "--env", "A=1", "--time", "1h",
		"--dependency", "afterok:7", "--attempts", "2", "--retry-signals", "KILL", "--", "sh", "-c", "echo 'hi there'")
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	srv.SetState(1, job.Running)
	srv.Update(1, func(j *job.Job) {
		j.Attempts = []job.Attempt{{Number: 1, State: job.Running, StartedAt: j.StartedAt, MaxRSSBytes: 3 << 20}}
	})

	r = runCLI(t, serverEnv(srv), "job", "get", "1")
	for _, want := range []string{
		"ID:          1\n", "State:       RUNNING\n", "Command:     sh -c 'echo '\\''hi there'\\'''\n",
		"Env:         A=1\n             B=2\n", "Time limit:  1h0m0s\n", "Depends on:  afterok:7\n",
		"Retry:       attempts=2, on signals SIGKILL\n", "Attempt:     1/2\n",
		"Attempts:\nATTEMPT  STATE    STARTED", "3.0 MiB",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("job get lacks %q:\n%s", want, r.stdout)
		}
	}

	if strings.Contains(r.stdout, "Ranks:") {
		t.Errorf("a plain job shows ranks:\n%s", r.stdout)
	}

	r = runCLI(t, serverEnv(srv), "job", "get", "1", "-o", "yaml")
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 0 {
		t.Fatalf("yaml %q: %v", r.stdout, err)
	}
	spec := doc["spec"].(map[string]any)
	if doc["state"] != "RUNNING" || spec["time_limit"] != "1h0m0s" || spec["command"].([]any)[1] != "-c" {
		t.Errorf("yaml doc = %v", doc)
	}
	if strings.Contains(r.stdout, "{") {
		t.Errorf("yaml is not block style:\n%s", r.stdout)
	}

	r = runCLI(t, serverEnv(srv), "job", "get", "9")
	if r.code != 1 || r.stderr != "error: get job 9: job 9 does not exist\n" {
		t.Errorf("missing job: %+v", r)
	}
}

func TestJobGetTasks(t *testing.T) {
	srv := clienttest.NewServer(t)
	r := runCLI(t, serverEnv(srv), "job", "submit", "--mpi", "--nodes", "2", "--tasks-per-node", "2", "--cpus", "0.5",
		"--memory", "1G", "--", "./solver")
	if r.code != 0 {
		t.Fatalf("%+v", r)
	}
	r = runCLI(t, serverEnv(srv), "job", "get", "1")
	for _, want := range []string{
		"Resources:  cpus=0.5 memory=1.0 GiB\n",
		"Ranks:      4 (2 nodes × 2 per node), mpi; in total cpus=2 memory=2.0 GiB\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("job get lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runCLI(t, serverEnv(srv), "job", "get", "1", "-o", "json")
	for _, want := range []string{`"nodes": 2`, `"tasks_per_node": 2`, `"type": "mpi"`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("job get -o json lacks %s:\n%s", want, r.stdout)
		}
	}
}

func TestJobLogsCancelWait(t *testing.T) {
	srv := clienttest.NewServer(t)
	for range 2 {
		if r := runCLI(t, serverEnv(srv), "job", "submit", "--", "x"); r.code != 0 {
			t.Fatal(r)
		}
	}
	srv.AppendLog("1", "stderr", "warning: x\n")
	srv.AppendLog("1", "stdout", "result 42\n")
	r := runCLI(t, serverEnv(srv), "job", "logs", "--stderr", "1")
	if r.code != 0 || r.stdout != "warning: x\n" {
		t.Errorf("logs: %+v", r)
	}

	// One known job and one unknown: the known one is cancelled, the
	// unknown one reported, and the exit status says not all went well.
	r = runCLI(t, serverEnv(srv), "job", "cancel", "1", "99")
	if r.code != 1 || r.stdout != "Job 1 CANCELLED\n" || !strings.Contains(r.stderr, "error: cancel job 99: job 99 does not exist") {
		t.Errorf("cancel: %+v", r)
	}

	srv.SetState(2, job.Succeeded)
	r = runCLI(t, serverEnv(srv), "job", "wait", "2")
	if r.code != 0 || r.stdout != "Job 2 SUCCEEDED\n" {
		t.Errorf("wait 2: %+v", r)
	}
	r = runCLI(t, serverEnv(srv), "job", "wait", "2", "1", "-o", "json")
	var jobs []job.Job
	if err := json.Unmarshal([]byte(r.stdout), &jobs); err != nil || len(jobs) != 2 || r.code != 1 {
		t.Errorf("wait 2 1: %+v (%v)", r, err)
	}

	// Many jobs are waited for with one long poll for all (?ids=); an id
	// that names no job is then waited for one by one, which names it.
	before := len(srv.Requests())
	r = runCLI(t, serverEnv(srv), "job", "wait", "1", "2")
	if r.code != 1 || r.stdout != "Job 1 CANCELLED: cancelled by user\nJob 2 SUCCEEDED\n" {
		t.Errorf("wait 1 2: %+v", r)
	}
	if got := srv.Requests()[before:]; len(got) != 1 || got[0].Path != "/api/v1/jobs" || !strings.Contains(got[0].RawQuery, "ids=1%2C2") {
		t.Errorf("wait 1 2 sent %+v, want one GET /api/v1/jobs?ids=1,2", got)
	}
	r = runCLI(t, serverEnv(srv), "job", "wait", "2", "99")
	if r.code != 1 || r.stdout != "Job 2 SUCCEEDED\n" || !strings.Contains(r.stderr, "job 99 does not exist") {
		t.Errorf("wait 2 99: %+v", r)
	}
}

func TestQueueAndCapacity(t *testing.T) {
	srv := clienttest.NewServer(t)
	r := runCLI(t, serverEnv(srv), "queue", "create", "gpu", "--priority", "5", "--max-running", "2", "--price-cpu-hour", "0.04")
	if r.code != 0 || r.stdout != "Created queue gpu\n" {
		t.Fatalf("create: %+v", r)
	}
	r = runCLI(t, serverEnv(srv), "queue", "create", "gpu")
	if r.code != 1 || r.stderr != "error: create queue gpu: name: queue \"gpu\" already exists\n" {
		t.Errorf("duplicate: %+v", r)
	}
	r = runCLI(t, serverEnv(srv), "queue", "list")
	if !regexp.MustCompile(`(?m)^gpu\s+5\s+2\s+0.04\s+0\s+local\s+\d+s$`).MatchString(r.stdout) {
		t.Errorf("queue list:\n%s", r.stdout)
	}
	runCLI(t, serverEnv(srv), "job", "submit", "-q", "gpu", "--", "x")
	r = runCLI(t, serverEnv(srv), "queue", "get", "gpu")
	if !strings.Contains(r.stdout, "Max running:  2\n") || !regexp.MustCompile(`(?m)^RUNNABLE\s+1$`).MatchString(r.stdout) {
		t.Errorf("queue get:\n%s", r.stdout)
	}
	r = runCLI(t, serverEnv(srv), "queue", "get", "gpu", "-o", "json")
	var q job.Queue
	if err := json.Unmarshal([]byte(r.stdout), &q); err != nil || q.Counts[job.Runnable] != 1 {
		t.Errorf("queue get json: %q %v", r.stdout, err)
	}

	srv.SetCapacity(job.Capacity{Total: job.Resources{CPUs: 2, MemoryMB: 4096}, Used: job.Resources{CPUs: 1.5, MemoryMB: 512}, Running: 2})
	r = runCLI(t, serverEnv(srv), "capacity")
	for _, re := range []string{`(?m)^cpus\s+1.5\s+2\s+0.5$`, `(?m)^memory\s+512.0 MiB\s+4.0 GiB\s+3.5 GiB$`, `Running jobs: 2`} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("capacity lacks %s:\n%s", re, r.stdout)
		}
	}
}

func TestErrorsTellWhatToDo(t *testing.T) {
	srv := clienttest.NewServer(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close()
	noToken := t.TempDir()

	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string // lines of stderr, in order
	}{
		{
			name: "server down",
			env:  map[string]string{"HPCML_SERVER": down},
			args: []string{"job", "list"},
			want: []string{"error: list jobs: the server at " + down + " is not reachable: connection refused", "hint: start it with `hpcml server` (or `make run`)"},
		},
		{
			name: "--server wins over HPCML_SERVER",
			env:  map[string]string{"HPCML_SERVER": srv.URL, "HPCML_TOKEN": clienttest.Token},
			args: []string{"--server", down, "capacity"},
			want: []string{"error: capacity: the server at " + down + " is not reachable", "hint: start it"},
		},
		{
			name: "no token",
			env:  map[string]string{"HPCML_SERVER": srv.URL, "HPCML_DATA_DIR": noToken},
			args: []string{"job", "list"},
			want: []string{"error: list jobs: missing or wrong bearer token", "hint: no token was found in " + filepath.Join(noToken, "token")},
		},
		{
			name: "invalid spec names the field",
			env:  serverEnv(srv),
			args: []string{"job", "submit", "--name", "a b", "--", "x"},
			want: []string{`error: submit job: name: "a b" is not a valid name`},
		},
		{
			name: "unknown flag",
			env:  serverEnv(srv),
			args: []string{"job", "list", "--nope"},
			want: []string{"error: unknown flag: --nope", "hint: run 'hpcml job list --help' for usage"},
		},
		{
			name: "unsupported format",
			env:  serverEnv(srv),
			args: []string{"capacity", "-o", "xml"},
			want: []string{"error: -o xml: this command prints table, json, yaml"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.env, tt.args...)
			if r.code != 1 || r.stdout != "" {
				t.Errorf("code %d, stdout %q", r.code, r.stdout)
			}
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("stderr = %q", r.stderr)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("stderr line %d = %q, want prefix %q", i, lines[i], w)
				}
			}
		})
	}
}

func TestTokenFileFromDataDir(t *testing.T) {
	srv := clienttest.NewServer(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(clienttest.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, map[string]string{"HPCML_SERVER": srv.URL, "HPCML_DATA_DIR": dir}, "job", "list")
	if r.code != 0 || r.stderr != "No jobs found.\n" {
		t.Errorf("got %+v", r)
	}
}

func TestInterruptedWaitExits130(t *testing.T) {
	srv := clienttest.NewServer(t)
	if _, err := srv.Client().SubmitJob(t.Context(), &job.Spec{Command: []string{"sleep"}}); err != nil {
		t.Fatal(err)
	}
	vars := serverEnv(srv)
	e := env{getenv: func(k string) string { return vars[k] }, now: time.Now}
	root := newRoot(nil, e)
	var out, errOut bytes.Buffer
	root.SetArgs([]string{"job", "wait", "1"})
	root.SetOut(&out)
	root.SetErr(&errOut)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel) // as Ctrl-C would
	if code := execute(ctx, root); code != 130 || errOut.String() != "error: interrupted\n" {
		t.Errorf("code %d, stderr %q", code, errOut.String())
	}
}

func TestServerCommandIsAdded(t *testing.T) {
	root := NewRoot(&cobra.Command{Use: "server"})
	names := map[string]bool{}
	for _, c := range root.Commands() {
		names[c.Name()] = true
	}
	for _, n := range []string{"server", "job", "queue", "capacity"} {
		if !names[n] {
			t.Errorf("hpcml has no %q command", n)
		}
	}
}

// TestTrainMemoryIsASize: `train --memory` reads a size as `job submit
// --memory` does, and a bad one submits nothing.
func TestTrainMemoryIsASize(t *testing.T) {
	srv := clienttest.NewServer(t)
	if r := runCLI(t, serverEnv(srv), "train", "-a", "mlp", "--data", "s3://b/x.csv", "--memory", "lots"); r.code != 1 ||
		!strings.Contains(r.stderr, `--memory: invalid size "lots"`) {
		t.Fatalf("--memory lots: %+v", r)
	}
	if j := srv.Job(1); j != nil {
		t.Fatalf("a bad --memory submitted %+v", j)
	}
	for i, c := range []struct {
		memory string
		want   int64
	}{{"4G", 4096}, {"512", 512}, {"1.5GiB", 1536}} {
		if r := runCLI(t, serverEnv(srv), "train", "-a", "mlp", "--data", "s3://b/x.csv", "--memory", c.memory); r.code != 0 {
			t.Fatalf("--memory %s: %+v", c.memory, r)
		}
		if got := srv.Job(int64(i + 1)).Spec.Resources.MemoryMB; got != c.want {
			t.Errorf("--memory %s: %d MB, want %d", c.memory, got, c.want)
		}
	}
}

// TestDatasetCreateRefusesHTTP: an http(s) source is refused before it is
// listed, with the reason the server would give.
func TestDatasetCreateRefusesHTTP(t *testing.T) {
	srv := clienttest.NewServer(t)
	for _, src := range []string{"http://127.0.0.1:1/data/", "HTTPS://example.com/x"} {
		r := runCLI(t, serverEnv(srv), "dataset", "create", "demo", src)
		if r.code != 1 || !strings.Contains(r.stderr, "cannot hold a dataset") || !strings.Contains(r.stderr, src) {
			t.Errorf("%s: %+v", src, r)
		}
	}
}
