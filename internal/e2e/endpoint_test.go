package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/deploy"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
	"github.com/hpcml/hpcml/internal/job"
)

// TestEndpointLifecycle: a model trained by the engine and registered
// is served behind an endpoint of two replicas (real hpcml serve jobs),
// answers OIP and /invocations through the gateway; bad input is refused
// with the reason and changes nothing; kill -9 of a replica under load
// fails at most the requests it held and the replica is replaced; a
// second update while one runs is refused; delete drains and stops all.
func TestEndpointLifecycle(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "2")
	trainModel(t, s, "moons")
	trainModel(t, s, "moons")

	out := s.cli("endpoint", "create", "ep", "--model", "moons:1", "--replicas", "2", "--cpus", "0.5", "--wait")
	if !strings.Contains(out, "in-service") {
		t.Fatalf("create --wait: %s", out)
	}
	st := getEndpoint(t, s, "ep")
	if len(readyReplicas(st)) != 2 || st.Spec.Variants[0].Model != "moons" || st.Spec.Variants[0].Version != 1 {
		t.Fatalf("endpoint %+v", st)
	}

	// OIP through the gateway, on the model the engine trained: health,
	// metadata and readiness routes answer as the protocol says, a bad
	// shape is a 400 naming the input.
	for path, want := range map[string]string{
		"/endpoints/ep/v2/health/ready":       "",
		"/endpoints/ep/v2/health/live":        "",
		"/endpoints/ep/v2/models/ep":          `"datatype":"FP32","shape":[-1,2]`,
		"/endpoints/ep/v2/models/moons/ready": `"ready":true`,
	} {
		if code, _, body := s.raw("GET", path, s.Token, nil); code != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("GET %s: %d %s; want 200 with %s", path, code, body, want)
		}
	}
	code, _, body := s.raw("POST", "/endpoints/ep/v2/models/ep/infer", s.Token,
		[]byte(`{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}`))
	if code != 400 {
		t.Fatalf("a wrong shape: %d %s", code, body)
	}
	if !strings.Contains(string(body), `"error"`) || !strings.Contains(string(body), "input") {
		t.Fatalf("a wrong shape's error: %s", body)
	}

	// Inference: the endpoint's name (or its model's) in the path reaches
	// the variant's model; the answer is the model's.
	req, _ := http.NewRequest("POST", s.URL+"/endpoints/ep/v2/models/ep/infer", bytes.NewReader(oipBody(3)))
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ans struct {
		Model   string `json:"model_name"`
		Version string `json:"model_version"`
		Outputs []struct {
			Shape []int     `json:"shape"`
			Data  []float64 `json:"data"`
		} `json:"outputs"`
	}
	json.NewDecoder(resp.Body).Decode(&ans)
	resp.Body.Close()
	if resp.StatusCode != 200 || ans.Model != "moons" || ans.Version != "1" || len(ans.Outputs) != 1 ||
		len(ans.Outputs[0].Data) != 3 || ans.Outputs[0].Shape[0] != 3 || resp.Header.Get(deploy.HeaderInvokedVariant) != "primary" {
		t.Fatalf("OIP infer: %d %+v", resp.StatusCode, ans)
	}
	// Without the server's token: 401, the replica never sees it.
	req, _ = http.NewRequest("POST", s.URL+"/endpoints/ep/invocations", strings.NewReader(`{"instances":[[0,1]]}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("no token: %v %v", resp, err)
	}
	// SageMaker style, JSON and CSV, through the CLI.
	for _, args := range [][]string{
		{"--data", `{"instances":[[0.1,0.5],[1.0,-0.3]]}`},
		{"--content-type", "text/csv", "--data", "0.1,0.5\n1.0,-0.3"},
	} {
		out := s.cli(append([]string{"endpoint", "invoke", "ep"}, args...)...)
		var inv struct {
			Predictions [][]float64 `json:"predictions"`
		}
		if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &inv); err != nil || len(inv.Predictions) != 2 {
			t.Fatalf("invoke %v: %v\n%s", args, err, out)
		}
	}

	// Bad input: a clear error, nothing changed.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"endpoint", "create", "ep2", "--model", "nope:1"}, "model nope"},
		{[]string{"endpoint", "create", "ep2", "--model", "moons:99"}, "no version 99"},
		{[]string{"endpoint", "create", "ep", "--model", "moons:1"}, "already exists"},
		{[]string{"endpoint", "create", "Bad_Name", "--model", "moons:1"}, "not a valid endpoint name"},
		{[]string{"endpoint", "update", "ep", "--model", "moons:2", "--strategy", "canary:150%:1m"}, "150"},
		{[]string{"endpoint", "update", "ep", "--model", "moons:2", "--strategy", "sideways"}, "sideways"},
		{[]string{"endpoint", "update", "ep", "--model", "moons:7"}, "no version 7"},
		{[]string{"endpoint", "update", "ep", "--model", "moons:1"}, "nothing to deploy"},
		{[]string{"endpoint", "update", "nope", "--model", "moons:2"}, "endpoint nope does not exist"},
		{[]string{"endpoint", "get", "nope"}, "endpoint nope does not exist"},
		{[]string{"endpoint", "create", "ep2", "--model", "moons:1", "--autoscale", "min=3,max=2,target=1"}, "autoscale.max"},
		{[]string{"endpoint", "create", "ep2", "--model", "moons:1", "--replicas", "0"}, "at least 1 replica"},
		{[]string{"endpoint", "create", "ep2", "--model", "moons:1", "--max-batch", "2", "--preferred-batch", "4"}, "preferred batch size 4"},
	} {
		_, stderr, err := hpcml(s, c.args...)
		if err == nil || !strings.Contains(stderr, c.want) {
			t.Errorf("hpcml %v: err %v, stderr %q; want an error with %q", c.args, err, stderr, c.want)
		}
	}
	if list, _ := s.Client.ListEndpoints(t.Context()); len(list) != 1 {
		t.Fatalf("bad input changed the endpoints: %d", len(list))
	}
	if h := history(t, s, "ep"); len(h) != 0 {
		t.Fatalf("bad input made deployments: %+v", h)
	}
	if inv, _ := s.Client.InvokeEndpoint(t.Context(), "nope", "invocations", "application/json", []byte("{}"), ""); inv.Status != 404 {
		t.Fatalf("invoke unknown endpoint: %d %s", inv.Status, inv.Body)
	}

	// kill -9 of a replica under load.
	victim := readyReplicas(st)[0]
	l := startLoad(s, "ep", 4, 1, 1<<30, 0)
	waitFor(t, 10*time.Second, "load to start", func() bool { return l.count() > 50 })
	if err := syscall.Kill(replicaPID(t, s, "ep", victim.Job), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	before := l.count()
	waitFor(t, 10*time.Second, "more load after the kill", func() bool { return l.count() > before+200 })
	rs := l.finish()
	failed := 0
	for _, r := range rs {
		if r.err != nil || r.status != 200 {
			failed++
		}
	}
	// At most the requests the replica held: 4 workers, so at most 4.
	if failed > 4 {
		t.Fatalf("kill -9 of a replica failed %d of %d requests: %s", failed, len(rs), summarize(rs))
	}
	t.Logf("kill -9 of replica %d: %d of %d requests failed", victim.Job, failed, len(rs))
	waitFor(t, 60*time.Second, "the killed replica to be replaced", func() bool {
		st := getEndpoint(t, s, "ep")
		ready := readyReplicas(st)
		for _, r := range ready {
			if r.Job == victim.Job {
				return false
			}
		}
		return len(ready) == 2
	})
	if j, err := s.Client.GetJob(t.Context(), strconv.FormatInt(victim.Job, 10)); err != nil || j.State != job.Failed {
		t.Fatalf("killed replica's job: %+v %v", j, err)
	}

	// One update at a time: the second is refused while the first runs.
	out = s.cli("endpoint", "update", "ep", "--model", "moons:2", "--strategy", "canary:50%:10m", "-o", "json")
	var upd deploy.UpdateResult
	if err := json.Unmarshal([]byte(out), &upd); err != nil || upd.Deployment == nil || upd.Deployment.ID == 0 {
		t.Fatalf("update: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"endpoint", "update", "ep", "--model", "moons:2"},
		{"endpoint", "update", "ep", "--replicas", "3"},
	} {
		_, stderr, err := hpcml(s, args...)
		if err == nil || !strings.Contains(stderr, "one update at a time") {
			t.Fatalf("second update %v: %v %q", args, err, stderr)
		}
	}
	h := history(t, s, "ep")
	if len(h) != 1 || h[0].Outcome != endpoint.Running || getEndpoint(t, s, "ep").Spec.Variants[0].Replicas != 2 {
		t.Fatalf("history after a refused update: %+v", h)
	}
	var hist []*endpoint.Deployment
	if err := json.Unmarshal([]byte(s.cli("endpoint", "history", "ep", "-o", "json")), &hist); err != nil || len(hist) != 1 {
		t.Fatalf("history -o json: %v", err)
	}

	// Delete: the deployment is superseded, every replica stops.
	s.cli("endpoint", "delete", "ep", "--wait")
	jobs, err := s.Client.ListJobs(t.Context(), client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if j.Spec.Tags[deploy.TagEndpoint] != "" && !j.State.Terminal() {
			t.Fatalf("replica job %d is %s after delete", j.ID, j.State)
		}
	}
	if _, err := os.Stat(filepath.Join(s.DataDir, "objects", "endpoints", "ep", "replicas", fmt.Sprintf("%d.json", victim.Job))); err == nil {
		t.Fatalf("the killed replica's announcement is still there")
	}
}

// TestEndpointCanaryRollback: a canary of a broken version (it fails
// every batch of more than one row) rolls back by itself while a load
// runs; every failed request was green's, none blue's, and after the
// rollback nothing fails.
func TestEndpointCanaryRollback(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "2")
	trainModel(t, s, "moons")
	broken := filepath.Join(t.TempDir(), "broken.onnx")
	os.WriteFile(broken, fixedBatchONNX(2), 0o644)
	s.cli("model", "register", "moons", "--artifact", broken)
	s.cli("endpoint", "create", "ep", "--model", "moons:1", "--replicas", "1", "--cpus", "0.5", "--wait")

	l := startLoad(s, "ep", 3, 2, 1<<30, 2*time.Millisecond)
	out, stderr, err := hpcml(s, "endpoint", "update", "ep", "--model", "moons:2", "--strategy", "canary:30%:1m",
		"--min-requests", "10", "--wait", "-o", "json")
	var d endpoint.Deployment
	if err == nil || json.Unmarshal([]byte(out), &d) != nil || d.Outcome != endpoint.RolledBack ||
		!strings.Contains(d.Reason, "error rate") {
		t.Fatalf("canary of a broken version: err %v, deployment %+v\n%s%s", err, d, out, stderr)
	}
	during := l.finish()
	greenFailed, blueOK := 0, 0
	for _, r := range during {
		switch {
		case r.err != nil:
			t.Fatalf("request failed without an answer: %v", r.err)
		case r.status == 200 && r.version == "1":
			blueOK++
		case r.status == 500 && strings.Contains(r.body, "inference failed"):
			greenFailed++ // only green runs moons:2
		default:
			t.Fatalf("unexpected answer during the canary: %d %s (version %q)", r.status, r.body, r.version)
		}
	}
	if greenFailed == 0 || blueOK < 10 {
		t.Fatalf("during the canary: %d green failures, %d blue answers", greenFailed, blueOK)
	}
	t.Logf("canary rolled back (%s): %d requests failed on green, %d answered by blue", d.Reason, greenFailed, blueOK)

	// After the rollback: blue only, green gone, no failure.
	waitFor(t, 30*time.Second, "green to be gone", func() bool {
		st := getEndpoint(t, s, "ep")
		for _, r := range st.Replicas {
			if r.Revision != 0 {
				return false
			}
		}
		return len(readyReplicas(st)) == 1 && st.State == endpoint.InService
	})
	after := startLoad(s, "ep", 2, 2, 100, 0)
	<-after.done
	for _, r := range after.finish() {
		if r.err != nil || r.status != 200 || r.version != "1" {
			t.Fatalf("after the rollback: %s", summarize(after.results))
		}
	}
	h := history(t, s, "ep")
	if len(h) != 1 || h[0].Outcome != endpoint.RolledBack || h[0].Reason == "" || len(h[0].Events) < 3 {
		t.Fatalf("history %+v", h)
	}
	if out := s.cli("endpoint", "history", "ep"); !strings.Contains(out, "rolled-back") || !strings.Contains(out, "error rate") {
		t.Fatalf("history table:\n%s", out)
	}
}

// TestEndpointResumeAfterServerKill: kill -9 of the server in the middle
// of a canary; the restarted server finds the replicas (blue and green
// alike, same jobs) and the deployment carries on to success.
func TestEndpointResumeAfterServerKill(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "2")
	trainModel(t, s, "moons")
	trainModel(t, s, "moons")
	s.cli("endpoint", "create", "ep", "--model", "moons:1", "--replicas", "1", "--cpus", "0.5", "--wait")
	s.cli("endpoint", "update", "ep", "--model", "moons:2", "--strategy", "canary:50%:6s", "--min-requests", "1000")
	waitFor(t, 60*time.Second, "the canary step", func() bool {
		h := history(t, s, "ep")
		return len(h) == 1 && h[0].Phase == "shifting"
	})
	before := getEndpoint(t, s, "ep")
	jobsBefore := map[int64]bool{}
	for _, r := range before.Replicas {
		jobsBefore[r.Job] = true
	}
	if len(jobsBefore) != 2 {
		t.Fatalf("replicas before the kill: %+v", before.Replicas)
	}
	s.Kill9()
	time.Sleep(2 * time.Second)
	s.Restart()
	waitFor(t, 90*time.Second, "the deployment to end", func() bool {
		h := history(t, s, "ep")
		return len(h) == 1 && h[0].Outcome != endpoint.Running
	})
	h := history(t, s, "ep")
	if h[0].Outcome != endpoint.Succeeded {
		t.Fatalf("deployment after the restart: %+v", h[0])
	}
	st := getEndpoint(t, s, "ep")
	if st.Spec.Variants[0].Version != 2 || st.Spec.Variants[0].Revision != h[0].ID {
		t.Fatalf("variant after the deployment: %+v", st.Spec.Variants[0])
	}
	waitFor(t, 30*time.Second, "blue to stop", func() bool {
		st = getEndpoint(t, s, "ep")
		return len(st.Replicas) == 1 && st.Replicas[0].State == deploy.ReplicaReady
	})
	if !jobsBefore[st.Replicas[0].Job] {
		t.Fatalf("green replica %d was started after the restart; before it there were %v", st.Replicas[0].Job, jobsBefore)
	}
	inv, err := s.Client.InvokeEndpoint(t.Context(), "ep", "v2/models/moons/infer", "application/json", oipBody(1), "")
	if err != nil || inv.Status != 200 || !strings.Contains(string(inv.Body), `"model_version":"2"`) {
		t.Fatalf("after the deployment: %v %+v", err, inv)
	}
}

// TestEndpointAutoscale: under load the variant scales out (scale
// events recorded, replicas started), and back in after it.
func TestEndpointAutoscale(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "2")
	trainModel(t, s, "moons")
	s.cli("endpoint", "create", "ep", "--model", "moons:1", "--cpus", "0.25", "--wait",
		"--autoscale", "min=1,max=3,target=10,metric=rps,window=2s,scale-in-window=4s,scale-out-cooldown=1s,scale-in-cooldown=2s")
	l := startLoad(s, "ep", 2, 1, 1<<30, 10*time.Millisecond) // ~100-200 req/s: wants the max
	waitFor(t, 60*time.Second, "scale-out to 3 ready replicas", func() bool {
		return len(readyReplicas(getEndpoint(t, s, "ep"))) == 3
	})
	rs := l.finish()
	for _, r := range rs {
		if r.err != nil || r.status != 200 {
			t.Fatalf("a request failed during scale-out: %s", summarize(rs))
		}
	}
	waitFor(t, 60*time.Second, "scale-in to 1 replica", func() bool {
		st := getEndpoint(t, s, "ep")
		return st.Spec.Variants[0].Replicas == 1 && len(st.Replicas) == 1
	})
	st := getEndpoint(t, s, "ep")
	up, down := false, false
	for _, ev := range st.ScaleEvents {
		up = up || ev.To > ev.From && ev.Reason != ""
		down = down || ev.To < ev.From && ev.Reason != ""
	}
	if !up || !down {
		t.Fatalf("scale events %+v", st.ScaleEvents)
	}
	if out := s.cli("endpoint", "get", "ep"); !strings.Contains(out, "Scale events:") {
		t.Fatalf("endpoint get:\n%s", out)
	}
	// The dashboard's Endpoints tab shows the same, from the real server.
	code, _, page := s.raw("GET", "/ui/serving/ep", s.Token, nil)
	for _, want := range []string{`data-variant="primary"`, `data-scale="out"`, `data-scale="in"`, `data-state="ready"`, "moons:1"} {
		if code != 200 || !strings.Contains(string(page), want) {
			t.Fatalf("dashboard /ui/serving/ep: %d, no %q in\n%s", code, want, page)
		}
	}
}

// TestEndpointRolloutUnderLoad: a linear deployment of a good version
// while a load runs fails no request — blue replicas leave the routing
// and finish what they hold before their jobs are stopped — and traffic
// ends on the new version.
func TestEndpointRolloutUnderLoad(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "2")
	trainModel(t, s, "moons")
	trainModel(t, s, "moons")
	s.cli("endpoint", "create", "ep", "--model", "moons:1", "--replicas", "2", "--cpus", "0.25", "--wait")
	l := startLoad(s, "ep", 3, 2, 1<<30, time.Millisecond)
	out, stderr, err := hpcml(s, "endpoint", "update", "ep", "--model", "moons:2", "--strategy", "linear:50%:2s", "--wait")
	if err != nil {
		t.Fatalf("deployment: %v\n%s%s", err, out, stderr)
	}
	waitFor(t, 30*time.Second, "blue to stop", func() bool {
		st := getEndpoint(t, s, "ep")
		return len(st.Replicas) == 2 && len(readyReplicas(st)) == 2
	})
	n := l.count()
	waitFor(t, 10*time.Second, "traffic on green alone", func() bool { return l.count() > n+100 })
	rs := l.finish()
	versions := map[string]int{}
	for _, r := range rs {
		if r.err != nil || r.status != 200 {
			t.Fatalf("a request failed during the deployment: %s", summarize(rs))
		}
		versions[r.version]++
	}
	if last := rs[len(rs)-1]; versions["1"] == 0 || versions["2"] == 0 || last.version != "2" {
		t.Fatalf("versions answered %v, the last %q", versions, last.version)
	}
	t.Logf("linear deployment under load: %d requests, none failed (%v)", len(rs), versions)
}
