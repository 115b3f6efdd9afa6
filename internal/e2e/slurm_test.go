package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/batchtransform"
	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/deploy"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/serve"
	"github.com/hpcml/hpcml/internal/train"
)

// slurmCluster is a Slurm of two emulated nodes that the test started
// (scripts/slurm-dev-cluster.sh) on its own state dir and ports, and
// stops by PID at its end.
type slurmCluster struct {
	t      *testing.T
	script string
	dir    string
	env    []string // SLURM_CONF and the script's settings
}

func startSlurm(t *testing.T) *slurmCluster {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "scripts", "slurm-dev-cluster.sh")
	// Short: slurmd's sockets live under it.
	dir, err := os.MkdirTemp("", "hpcml-slurm-")
	if err != nil {
		t.Fatal(err)
	}
	base := freePortRun(t, 2)
	c := &slurmCluster{t: t, script: script, dir: dir, env: []string{
		"HPCML_SLURM_DIR=" + dir,
		"HPCML_SLURMCTLD_PORT=" + strconv.Itoa(freePortRun(t, 1)),
		"HPCML_SLURMD_PORT=" + strconv.Itoa(base),
		"HPCML_SLURMRESTD_PORT=" + strconv.Itoa(freePortRun(t, 1)),
		"SLURM_CONF=" + filepath.Join(dir, "slurm.conf"),
	}}
	t.Cleanup(c.stop)
	if out, err := c.command(c.script, "up", "2").CombinedOutput(); err != nil {
		t.Fatalf("start the slurm dev cluster: %v\n%s", err, out)
	}
	return c
}

// freePortRun finds n consecutive free loopback ports and returns the first.
func freePortRun(t *testing.T, n int) int {
	t.Helper()
	for try := 0; try < 100; try++ {
		first := 20000 + int(time.Now().UnixNano()%20000)
		ok := true
		for p := first; p < first+n && ok; p++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				continue
			}
			ln.Close()
		}
		if ok {
			return first
		}
	}
	t.Fatal("no free ports")
	return 0
}

// use makes the cluster's helpers report to t (a subtest) until the
// returned func is called.
func (c *slurmCluster) use(t *testing.T) func() {
	prev := c.t
	c.t = t
	return func() { c.t = prev }
}

func (c *slurmCluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), c.env...)
	return cmd
}

// run runs a Slurm command on this cluster and returns its output.
func (c *slurmCluster) run(name string, args ...string) string {
	c.t.Helper()
	out, err := c.command(name, args...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func (c *slurmCluster) stop() {
	c.command("scancel", "--user=root").Run()
	if out, err := c.command(c.script, "down").CombinedOutput(); err != nil {
		c.t.Errorf("stop the slurm dev cluster: %v\n%s", err, out)
	}
	if c.t.Failed() {
		if b, err := os.ReadFile(filepath.Join(c.dir, "slurmctld.log")); err == nil {
			c.t.Logf("slurmctld log:\n%s", tail(b, 30))
		}
	}
	os.RemoveAll(c.dir)
}

// stopController kills slurmctld (by the PID it recorded): the cluster's
// controller is down, its nodes and jobs are not.
func (c *slurmCluster) stopController() {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.dir, "slurmctld.pid"))
	if err != nil {
		c.t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	syscall.Kill(pid, syscall.SIGTERM)
	waitUntil(c.t, 15*time.Second, "slurmctld stopped", func() bool { return syscall.Kill(pid, 0) != nil })
}

func (c *slurmCluster) startController() {
	c.t.Helper()
	c.run("slurmctld", "-f", filepath.Join(c.dir, "slurm.conf"))
}

// slurmJobs lists the Slurm jobs whose comment names an hpcml attempt
// ("<id>.<attempt>") of job id, by Slurm job id.
func (c *slurmCluster) slurmJobs(jobID int64) []string {
	c.t.Helper()
	out := c.run("squeue", "--noheader", "--states=all", "--format=%F|%k")
	seen := map[string]bool{}
	var ids []string
	suffix := fmt.Sprintf(":%d.", jobID)
	for _, line := range strings.Split(out, "\n") {
		id, comment, ok := strings.Cut(line, "|")
		if ok && strings.HasPrefix(comment, "hpcml:") && strings.Contains(comment, suffix) && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// TestSlurm runs jobs through hpcml on a real two-node Slurm cluster: the
// server submits with sbatch, the hpcml binary wraps each job on the
// node, squeue and the attempt journals report back.
func TestSlurm(t *testing.T) {
	c := startSlurm(t)
	s := startServerEnv(t, c.env, "--backend", "slurm")
	ctx := ctxFor(t, 10*time.Minute)
	shared := t.TempDir() // the nodes are this host: a shared file system

	t.Run("plain", func(t *testing.T) {
		defer s.use(t)()
		defer c.use(t)()
		j := s.wait(s.submit(sh("echo hello from $SLURM_JOB_ID; echo to stderr >&2")), time.Minute)
		expectState(t, j, job.Succeeded)
		a := j.Attempts[0]
		if !strings.HasPrefix(a.BackendID, "slurm:") {
			t.Fatalf("attempt backend id %q, want slurm:<id>", a.BackendID)
		}
		slurmID := strings.TrimPrefix(a.BackendID, "slurm:")
		if got := s.logs(id(j), client.LogOptions{}); got != "hello from "+slurmID+"\n" {
			t.Fatalf("stdout %q, want the Slurm job id %s", got, slurmID)
		}
		if ids := c.slurmJobs(j.ID); len(ids) != 1 || ids[0] != slurmID {
			t.Fatalf("slurm jobs tagged with job %d: %v, want [%s]", j.ID, ids, slurmID)
		}
		if a.StdoutURL == "" || a.StderrURL == "" {
			t.Fatalf("logs not shipped to storage: %+v", a)
		}
	})

	t.Run("progress", func(t *testing.T) {
		defer s.use(t)()
		defer c.use(t)()
		// The wrapper on the node writes into the shared attempt dir,
		// where the server reads it.
		j := s.submit(sh(`printf '{"done":7,"total":8,"unit":"steps"}' > "$HPCML_PROGRESS_FILE.tmp" && mv "$HPCML_PROGRESS_FILE.tmp" "$HPCML_PROGRESS_FILE"; exec sleep 60`))
		got := s.waitFor(id(j), time.Minute, "RUNNING and reporting progress", func(j *job.Job) bool {
			return j.State == job.Running && j.Progress != nil
		})
		if p := got.Progress; p.Done != 7 || p.Total != 8 || p.Unit != "steps" {
			t.Fatalf("%s with progress %+v", got.State, *p)
		}
		if _, err := s.Client.CancelJob(ctx, id(j)); err != nil {
			t.Fatal(err)
		}
		if end := s.wait(j, time.Minute); end.Progress != nil {
			t.Fatalf("ended %s with progress %+v", end.State, end.Progress)
		}
	})

	t.Run("array with throttle", func(t *testing.T) {
		defer s.use(t)()
		defer c.use(t)()
		spec := sh(`echo $HPCML_ARRAY_INDEX $SLURM_ARRAY_TASK_ID; sleep 1`)
		spec.Array = "0-9%2"
		p := s.wait(s.submit(spec), 2*time.Minute)
		expectState(t, p, job.Succeeded)
		var tasks []*job.Job
		for i := 0; i < 10; i++ {
			tj, err := s.Client.GetJob(ctx, fmt.Sprintf("%d_%d", p.ID, i))
			if err != nil {
				t.Fatal(err)
			}
			expectState(t, tj, job.Succeeded)
			if got, want := s.logs(id(tj), client.LogOptions{}), fmt.Sprintf("%d %d\n", i, i); got != want {
				t.Fatalf("task %d printed %q, want %q (hpcml index and Slurm task id)", i, got, want)
			}
			tasks = append(tasks, tj)
		}
		if n := maxOverlap(attemptIntervals(t, tasks...)); n > 2 {
			t.Fatalf("%d tasks ran at once, throttle is 2", n)
		}
		// One Slurm array for the ten tasks, not ten jobs.
		arrays := map[string]bool{}
		for _, tj := range tasks {
			base, _, _ := strings.Cut(strings.TrimPrefix(tj.Attempts[0].BackendID, "slurm:"), "_")
			arrays[base] = true
		}
		if len(arrays) != 1 {
			t.Fatalf("tasks ran as Slurm jobs %v, want one array", arrays)
		}
	})

	t.Run("afterok chain whose first job fails", func(t *testing.T) {
		defer s.use(t)()
		defer c.use(t)()
		// The second job is submitted while the first runs on Slurm: it is
		// handed to Slurm at once, held there with --dependency=afterok,
		// and dropped when the first fails.
		marker := filepath.Join(shared, "second-ran")
		gate := filepath.Join(shared, "fail-gate") // opened once the second is seen held
		first := s.waitRunning(s.submit(sh("while [ ! -e " + gate + " ]; do sleep 0.1; done; exit 3")))
		second := sh("touch " + marker)
		second.DependsOn = []job.Dependency{{Type: job.AfterOK, JobID: first.ID}}
		sj := s.submit(second)
		held := s.waitFor(id(sj), 30*time.Second, "held by Slurm", func(j *job.Job) bool {
			return j.State == job.Starting && len(j.Attempts) == 1 && j.Attempts[0].BackendID != ""
		})
		firstSlurm := strings.TrimPrefix(first.Attempts[0].BackendID, "slurm:")
		if first.Attempts[0].BackendID == "" {
			firstSlurm = strings.TrimPrefix(s.waitID(id(first), time.Minute).Attempts[0].BackendID, "slurm:")
		}
		heldSlurm := strings.TrimPrefix(held.Attempts[0].BackendID, "slurm:")
		if dep := c.run("squeue", "--noheader", "--states=all", "--jobs="+heldSlurm, "--format=%E"); !strings.Contains(dep, "afterok:"+firstSlurm) {
			t.Fatalf("held job's Slurm dependency %q, want afterok:%s", dep, firstSlurm)
		}
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		f := s.wait(first, time.Minute)
		expectState(t, f, job.Failed)
		if f.ExitCode == nil || *f.ExitCode != 3 {
			t.Fatalf("first job exit code %v, want 3", f.ExitCode)
		}
		got := s.wait(sj, time.Minute)
		expectState(t, got, job.Failed)
		if !strings.Contains(got.Reason, "never be satisfied") {
			t.Fatalf("second job reason %q", got.Reason)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatal("the dependent job ran")
		}
		waitUntil(t, 30*time.Second, "held Slurm job cancelled", func() bool {
			return strings.Contains(c.run("squeue", "--noheader", "--states=all", "--jobs="+heldSlurm, "--format=%T"), "CANCELLED")
		})

		// A dependency that has ended already is decided by hpcml: the
		// dependent is never submitted.
		third := sh("touch " + marker)
		third.DependsOn = []job.Dependency{{Type: job.AfterOK, JobID: first.ID}}
		tj := s.wait(s.submit(third), time.Minute)
		expectState(t, tj, job.Failed)
		if ids := c.slurmJobs(tj.ID); len(ids) != 0 {
			t.Fatalf("a job whose dependency had failed was submitted to Slurm as %v", ids)
		}
	})

	t.Run("afterok chain held by Slurm", func(t *testing.T) {
		defer s.use(t)()
		defer c.use(t)()
		out := filepath.Join(shared, "chain")
		// The first job runs until the test has seen the second held
		// (a gate file, not a sleep: under load the hold may be seen late).
		gate := filepath.Join(shared, "chain-gate")
		first := s.waitRunning(s.submit(sh("while [ ! -e " + gate + " ]; do sleep 0.1; done; echo first >> " + out)))
		second := sh("echo second >> " + out)
		second.DependsOn = []job.Dependency{{Type: job.AfterOK, JobID: first.ID}}
		sj := s.submit(second)
		s.waitFor(id(sj), 30*time.Second, "held by Slurm", func(j *job.Job) bool {
			// Slurm's own reason reads "PD (Dependency)"; hpcml's, "dependency".
			return j.State == job.Starting && strings.Contains(strings.ToLower(j.Reason), "dependenc")
		})
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		expectState(t, s.wait(first, time.Minute), job.Succeeded)
		expectState(t, s.wait(sj, time.Minute), job.Succeeded)
		if b, _ := os.ReadFile(out); string(b) != "first\nsecond\n" {
			t.Fatalf("chain ran %q, want first then second", b)
		}
	})

	t.Run("MPI over two nodes", func(t *testing.T) {
		defer s.use(t)()
		defer c.use(t)()
		prog := buildMPIProgram(t)
		j := s.wait(s.submit(allreduceSpec(prog)), 3*time.Minute)
		s.logRetriedMPI(j)
		if j.State != job.Succeeded {
			t.Fatalf("MPI job %s (%s); stderr:\n%s", j.State, j.Reason, s.logs(id(j), client.LogOptions{Stream: "stderr"}))
		}
		if got := s.logs(id(j), client.LogOptions{}); got != "6\n" {
			t.Fatalf("MPI all-reduce of the ranks printed %q, want 6", got)
		}
	})

	t.Run("rank variables without MPI", func(t *testing.T) {
		defer s.use(t)()
		defer c.use(t)()
		spec := sh(`echo "$HPCML_RANK $HPCML_LOCAL_RANK $HPCML_NODE_RANK $HPCML_WORLD_SIZE $HPCML_MASTER_ADDR $HPCML_MASTER_PORT $HPCML_HOSTS"`)
		spec.Nodes, spec.TasksPerNode = 2, 2
		j := s.wait(s.submit(spec), time.Minute)
		expectState(t, j, job.Succeeded)
		lines := strings.Split(strings.TrimSpace(s.logs(id(j), client.LogOptions{})), "\n")
		if len(lines) != 4 {
			t.Fatalf("want 4 ranks' lines, got %q", lines)
		}
		ranks := map[string]bool{}
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) != 7 {
				t.Fatalf("rank line %q lacks variables", l)
			}
			ranks[f[0]] = true
			if f[3] != "4" || f[4] == "" || f[5] == "0" || f[6] != "n1,n2" {
				t.Fatalf("rank line %q: want world 4, a master address and port, hosts n1,n2", l)
			}
			if f[1] != "0" && f[1] != "1" || f[2] != "0" && f[2] != "1" {
				t.Fatalf("rank line %q: local and node ranks must be 0 or 1", l)
			}
		}
		if len(ranks) != 4 || !ranks["0"] || !ranks["3"] {
			t.Fatalf("ranks %v, want 0..3", ranks)
		}
	})

	t.Run("data profile as Slurm jobs", func(t *testing.T) {
		defer s.use(t)()
		defer c.use(t)()
		const n = 5000
		path, sumX, _ := profileTable(t, n)
		rep := runProfile(t, s, path, "--partitions", "3", "--submit")
		if rep.Partitions != 3 || len(rep.Jobs) != 3 || rep.Profile.Table.Rows != n || *column(t, rep, "x").Numeric.Sum != sumX {
			t.Fatalf("profile through Slurm: %d partitions, jobs %v, %d rows", rep.Partitions, rep.Jobs, rep.Profile.Table.Rows)
		}
		for _, jid := range rep.Jobs {
			j, err := s.Client.GetJob(ctx, strconv.FormatInt(jid, 10))
			if err != nil || len(j.Attempts) == 0 || !strings.HasPrefix(j.Attempts[0].BackendID, "slurm:") {
				t.Fatalf("partition job %d did not run on Slurm: %+v %v", jid, j, err)
			}
		}
	})

	t.Run("train as a Slurm job", func(t *testing.T) {
		defer s.use(t)()
		defer c.use(t)()
		data := moonsTable(t, 1000)
		out, stderr, err := trainCLI(s, "-a", "linear", "--data", data, "--label", "y", "--epochs", "3", "--wait", "-o", "json")
		if err != nil {
			t.Fatalf("train: %v\n%s", err, stderr)
		}
		var res struct {
			ID    int64               `json:"id"`
			Model train.ModelMetadata `json:"model"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.Model.Evaluation == nil || res.Model.Evaluation.Rows == 0 {
			t.Fatalf("train -o json: %v\n%s", err, out)
		}
		j, err := s.Client.GetJob(ctx, strconv.FormatInt(res.ID, 10))
		if err != nil || len(j.Attempts) == 0 || !strings.HasPrefix(j.Attempts[0].BackendID, "slurm:") {
			t.Fatalf("the training job did not run on Slurm: %+v %v", j, err)
		}
		if _, err := s.Client.GetTrainingFile(ctx, res.ID, "onnx"); err != nil {
			t.Fatalf("the model of a Slurm run: %v", err)
		}
	})

	t.Run("batch transform as Slurm jobs", func(t *testing.T) {
		defer s.use(t)()
		defer c.use(t)()
		model := scoringModel(t, 8)
		registerScoring(t, s, "slurm-scorer", model)
		in, rows := scoringRows(t, 2, 2_000, nil)
		out := filepath.Join(shared, "scored")
		stdout, stderr, err := hpcml(s, "transform", "--model", "slurm-scorer", "--input", in, "--output", out,
			"--workers", "2", "--id-column", "id", "--join", "id", "--part-size", "16KB", "-o", "json")
		if err != nil {
			t.Fatalf("transform on Slurm: %v\n%s", err, stderr)
		}
		var rep batchtransform.Report
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil || rep.Records != 4_000 || rep.Failures != 0 || len(rep.Workers) != 2 {
			t.Fatalf("report: %v\n%s", err, stdout)
		}
		checkScored(t, model, out, rows)
		for _, w := range rep.Workers {
			j, err := s.Client.GetJob(ctx, w.Job)
			if err != nil || len(j.Attempts) == 0 || !strings.HasPrefix(j.Attempts[0].BackendID, "slurm:") {
				t.Fatalf("worker job %s did not run on Slurm: %+v %v", w.Job, j, err)
			}
		}
	})

	t.Run("endpoint with replicas as Slurm jobs, a replica killed", func(t *testing.T) {
		defer s.use(t)()
		defer c.use(t)()
		model := scoringModel(t, 8)
		registerScoring(t, s, "slurm-ep-model", model)
		if out := s.cli("endpoint", "create", "slurm-ep", "--model", "slurm-ep-model:1", "--replicas", "2", "--cpus", "0.5", "--wait"); !strings.Contains(out, "in-service") {
			t.Fatalf("create --wait: %s", out)
		}
		defer hpcml(s, "endpoint", "delete", "slurm-ep")
		// In service means one replica of each variant serves; the second
		// Slurm job may still be starting.
		var ready []deploy.ReplicaStatus
		waitFor(t, 2*time.Minute, "both replicas ready", func() bool {
			ready = readyReplicas(getEndpoint(t, s, "slurm-ep"))
			return len(ready) == 2
		})
		for _, r := range ready {
			j, err := s.Client.GetJob(ctx, strconv.FormatInt(r.Job, 10))
			if err != nil || len(j.Attempts) == 0 || !strings.HasPrefix(j.Attempts[0].BackendID, "slurm:") {
				t.Fatalf("replica job %d did not run on Slurm: %+v %v", r.Job, j, err)
			}
			// A Slurm replica may run on another node: it announces the
			// node's address, not loopback (and the gateway reaches it
			// there, below).
			if host, _, err := net.SplitHostPort(r.Addr); err != nil || net.ParseIP(host) == nil || net.ParseIP(host).IsLoopback() {
				t.Fatalf("Slurm replica %d announced %q, want this node's address", r.Job, r.Addr)
			}
		}
		// The gateway's answer is the model's own.
		m, err := serve.LoadONNX(model, "slurm-ep-model", "1")
		if err != nil {
			t.Fatal(err)
		}
		x := []float32{0.1, -0.2, 0.3, 0.4}
		want, err := m.Infer(ctx, map[string]*nn.Tensor{m.Info().Inputs[0].Name: {Shape: []int{1, 4}, Data: x}})
		if err != nil {
			t.Fatal(err)
		}
		check := func() {
			t.Helper()
			out := s.cli("endpoint", "invoke", "slurm-ep", "--content-type", "text/csv", "--data", "0.1,-0.2,0.3,0.4")
			var inv struct {
				Predictions [][]float64 `json:"predictions"`
			}
			if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &inv); err != nil || len(inv.Predictions) != 1 {
				t.Fatalf("invoke: %v\n%s", err, out)
			}
			for i, v := range want[m.Info().Outputs[0].Name].Data {
				if float32(inv.Predictions[0][i]) != v {
					t.Fatalf("prediction %d: %v, the model says %v", i, inv.Predictions[0][i], v)
				}
			}
		}
		check()
		// A replica killed on its node is replaced by a new Slurm job.
		killed := ready[0].Job
		if err := syscall.Kill(replicaPID(t, s, "slurm-ep", killed), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 2*time.Minute, "a replacement replica", func() bool {
			r := readyReplicas(getEndpoint(t, s, "slurm-ep"))
			return len(r) == 2 && r[0].Job != killed && r[1].Job != killed
		})
		check()
		s.cli("endpoint", "delete", "slurm-ep")
		waitFor(t, 2*time.Minute, "the endpoint's replica jobs to end", func() bool {
			for _, r := range ready {
				if j, err := s.Client.GetJob(ctx, strconv.FormatInt(r.Job, 10)); err != nil || !j.State.Terminal() {
					return false
				}
			}
			_, err := s.Client.GetEndpoint(ctx, "slurm-ep")
			return err != nil
		})
	})

	t.Run("data-parallel training over two Slurm nodes, a worker killed", func(t *testing.T) {
		defer s.use(t)()
		defer c.use(t)()
		data := moonsTable(t, 20000)
		args := []string{"-a", "mlp", "--data", data, "--label", "y", "--epochs", "2", "--workers", "2", "--nodes", "2",
			"--hp", "hidden=256,256", "--hp", "batch_size=16", "--hp", "checkpoint_every=40"}
		out, stderr, err := trainCLI(s, append(args, "-o", "json")...)
		if err != nil {
			t.Fatalf("train: %v\n%s", err, stderr)
		}
		var sub struct {
			ID int64 `json:"id"`
		}
		json.Unmarshal([]byte(out), &sub)
		ckpts := filepath.Join(s.DataDir, "objects", train.RunDir(sub.ID), "checkpoints")
		waitUntil(t, 2*time.Minute, "a checkpoint", func() bool {
			entries, _ := os.ReadDir(ckpts)
			return len(entries) > 0
		})
		// Rank 1 of this server's run: srun started it on the second node.
		storage := []byte("HPCML_STORAGE=file://" + s.DataDir)
		pids := findProcs(func(pid int) bool {
			environ, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			return strings.Contains(string(cmdline), "__run") && bytes.Contains(environ, []byte("\x00HPCML_RANK=1\x00")) && bytes.Contains(environ, storage)
		})
		if len(pids) != 1 {
			t.Fatalf("%d rank-1 training processes, want 1", len(pids))
		}
		syscall.Kill(pids[0], syscall.SIGKILL)
		j := s.waitID(strconv.FormatInt(sub.ID, 10), 5*time.Minute)
		if j.State != job.Succeeded || j.Attempt < 2 || !strings.HasPrefix(j.Attempts[0].BackendID, "slurm:") {
			t.Fatalf("job %s after the kill: state %s, attempt %d (%s), attempts %+v", j.DisplayID(), j.State, j.Attempt, j.Reason, j.Attempts)
		}
		if logs := s.logs(j.DisplayID(), client.LogOptions{Stream: "stderr", Attempt: j.Attempt}); !strings.Contains(logs, "resumed from checkpoint") {
			t.Fatalf("the last attempt did not resume:\n%s", logs)
		}
		if _, err := s.Client.GetTrainingFile(ctx, sub.ID, "onnx"); err != nil {
			t.Fatalf("the model: %v", err)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		defer s.use(t)()
		defer c.use(t)()
		j := s.waitRunning(s.submit(sh("sleep 300")))
		if _, err := s.Client.CancelJob(ctx, id(j)); err != nil {
			t.Fatal(err)
		}
		got := s.wait(j, time.Minute)
		expectState(t, got, job.Cancelled)
		slurmID := strings.TrimPrefix(got.Attempts[0].BackendID, "slurm:")
		waitUntil(t, 30*time.Second, "slurm job cancelled", func() bool {
			return strings.Contains(c.run("squeue", "--noheader", "--states=all", "--jobs="+slurmID, "--format=%T"), "CANCELLED")
		})
	})

	t.Run("time limit", func(t *testing.T) {
		defer s.use(t)()
		defer c.use(t)()
		spec := sh("sleep 300")
		spec.TimeLimit = job.Duration(2 * time.Second)
		got := s.wait(s.submit(spec), time.Minute)
		expectState(t, got, job.Timeout)
	})

	t.Run("server killed while a job runs", func(t *testing.T) {
		defer s.use(t)()
		defer c.use(t)()
		runs := filepath.Join(shared, "runs")
		j := s.waitRunning(s.submit(sh("echo start >> " + runs + "; sleep 4; echo end >> " + runs)))
		s.Kill9()
		s.Restart()
		got := s.wait(j, time.Minute)
		expectState(t, got, job.Succeeded)
		b, _ := os.ReadFile(runs)
		if string(b) != "start\nend\n" {
			t.Fatalf("the job ran %q, want once, to its end", b)
		}
		if ids := c.slurmJobs(j.ID); len(ids) != 1 {
			t.Fatalf("job %d was submitted to Slurm as %v, want exactly once", j.ID, ids)
		}
	})

	t.Run("node failure is an interruption, retried", func(t *testing.T) {
		defer s.use(t)()
		defer c.use(t)()
		spec := sh("echo attempt $HPCML_ATTEMPT; sleep 30")
		spec.Retry = job.RetryPolicy{Attempts: 2, OnNodeLoss: true}
		j := s.waitRunning(s.submit(spec))
		slurmID := strings.TrimPrefix(j.Attempts[0].BackendID, "slurm:")
		node := strings.TrimSpace(c.run("squeue", "--noheader", "--jobs="+slurmID, "--format=%N"))
		c.run("scontrol", "update", "nodename="+node, "state=down", "reason=hpcml-e2e")
		t.Cleanup(func() {
			c.command("scontrol", "update", "nodename="+node, "state=resume").Run()
		})
		got := s.waitFor(id(j), time.Minute, "on its second attempt", func(j *job.Job) bool {
			return j.Attempt == 2 && j.State.Active()
		})
		a := got.Attempts[0]
		if !a.Interrupted || got.Interruptions != 1 || !strings.Contains(a.Reason, "node fail") {
			t.Fatalf("first attempt %+v, job interruptions %d: want an interruption by node failure", a, got.Interruptions)
		}
		if _, err := s.Client.CancelJob(ctx, id(j)); err != nil {
			t.Fatal(err)
		}
		expectState(t, s.wait(j, time.Minute), job.Cancelled)
	})

	t.Run("bad input", func(t *testing.T) {
		defer s.use(t)()
		defer c.use(t)()
		_, err := s.Client.CreateQueue(ctx, &job.Queue{Name: "nopart", Backend: job.BackendSlurm, Partition: "nope"})
		if ae := apiError(t, err, 400); ae.Field != "partition" {
			t.Fatalf("queue with a missing partition: field %q", ae.Field)
		}
		if _, err := s.Client.GetQueue(ctx, "nopart"); err == nil {
			t.Fatal("the queue was created anyway")
		}
		before := s.jobCount()
		for _, tt := range []struct {
			spec  job.Spec
			field string
		}{
			{job.Spec{Command: []string{"true"}, Resources: job.Resources{CPUs: 64}}, "resources.cpus"},
			{job.Spec{Command: []string{"true"}, Nodes: 3}, "nodes"},
			{job.Spec{Command: []string{"true"}, Resources: job.Resources{MemoryMB: 1 << 30}}, "resources.memory_mb"},
			{job.Spec{Command: []string{"true"}, DependsOn: []job.Dependency{{Type: job.AfterOK, JobID: 999999}}}, "depends_on[0].job_id"},
			{job.Spec{Command: []string{"true"}, DependsOn: []job.Dependency{{Type: "after-lunch", JobID: 1}}}, "depends_on[0].type"},
		} {
			_, err := s.Client.SubmitJob(ctx, &tt.spec)
			if ae := apiError(t, err, 400); ae.Field != tt.field {
				t.Fatalf("spec %+v: field %q (%s), want %s", tt.spec, ae.Field, ae.Message, tt.field)
			}
		}
		if after := s.jobCount(); after != before {
			t.Fatalf("bad submissions stored jobs: %d -> %d", before, after)
		}
	})

	t.Run("controller down", func(t *testing.T) {
		defer s.use(t)()
		defer c.use(t)()
		c.stopController()
		j := s.submit(sh("echo back"))
		s.waitFor(id(j), time.Minute, "waiting for the controller", func(j *job.Job) bool {
			return (j.State == job.Runnable || j.State == job.Starting) && strings.Contains(j.Reason, "unreachable")
		})
		c.startController()
		got := s.wait(j, 2*time.Minute)
		expectState(t, got, job.Succeeded)
		if ids := c.slurmJobs(j.ID); len(ids) != 1 {
			t.Fatalf("job %d was submitted to Slurm as %v, want exactly once", j.ID, ids)
		}
	})
}
