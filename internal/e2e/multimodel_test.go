package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hpcml/hpcml/internal/deploy"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/serve"
	"github.com/hpcml/hpcml/internal/serve/servetest"
)

// mmModel writes a small MLP (2 features → 2 outputs) with its own
// weights as ONNX and returns the file and its model for reference.
func mmModel(t *testing.T, dir string, seed uint64) (string, *serve.ONNXModel) {
	t.Helper()
	data, err := servetest.MLP(seed, 1, "", 2, 16, 2)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("m%d.onnx", seed))
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ref, err := serve.LoadONNX(data, "ref", "1")
	if err != nil {
		t.Fatal(err)
	}
	return path, ref
}

// gatewayPost posts to the gateway with the server's token.
func gatewayPost(t *testing.T, s *server, path, body string, hdr ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL+path, bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestMultiModelEndpoint: a multi-model endpoint of two replicas (real
// hpcml serve --multi-model jobs) over six registered models, with a
// model cache that holds two per replica: requests go round the models
// through the gateway (OIP and /invocations with the target header, an
// alias too) for several rounds, and every answer is the model's own
// direct inference although models are evicted and reloaded all along;
// each model is served by one replica; the repository index shows the
// cache's bound; unknown, unnamed and filtered-out models are refused
// with the reason; a new filter applies without a replica restart.
func TestMultiModelEndpoint(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "2")
	dir := t.TempDir()
	names := []string{"mm-a", "mm-b", "mm-c", "mm-d", "mm-e", "mm-f"}
	refs := map[string]*serve.ONNXModel{}
	for i, name := range names {
		path, ref := mmModel(t, dir, uint64(i+1))
		s.cli("model", "register", name, "--artifact", path)
		refs[name+":1"] = ref
	}
	// A second version of mm-a, with an alias on the first; and a model
	// outside the endpoint's filter.
	path, ref := mmModel(t, dir, 100)
	s.cli("model", "register", "mm-a", "--artifact", path)
	refs["mm-a:2"] = ref
	s.cli("model", "alias", "mm-a", "prod", "1")
	path, _ = mmModel(t, dir, 200)
	s.cli("model", "register", "other", "--artifact", path)

	// One model's tensors (its weights, the layers' copy and their packed
	// copy; every model here is the same size): the cache holds two (and
	// not three) per replica.
	cache := refs["mm-a:1"].Graph().TensorBytes() * 5 / 2
	out := s.cli("endpoint", "create", "mm", "--multi-model", "--models", "mm-*", "--model-cache-bytes", strconv.FormatInt(cache, 10),
		"--replicas", "2", "--cpus", "0.5", "--wait")
	if !strings.Contains(out, "in-service") || !strings.Contains(out, "models mm-*") || !strings.Contains(out, deploy.HeaderTargetModel) {
		t.Fatalf("create --multi-model: %s", out)
	}
	st := getEndpoint(t, s, "mm")
	jobs := []int64{}
	for _, r := range readyReplicas(st) {
		jobs = append(jobs, r.Job)
	}
	if len(jobs) != 2 || st.Spec.MultiModel == nil || st.Spec.MultiModel.CacheBytes != cache {
		t.Fatalf("endpoint %+v", st)
	}

	x := []float32{0.3, -1.2}
	want := func(ref string) []float32 {
		outs, err := refs[ref].Infer(t.Context(), map[string]*nn.Tensor{"input": {Shape: []int{1, 2}, Data: x}})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range outs {
			return o.Data
		}
		return nil
	}
	oip := `{"inputs":[{"name":"input","shape":[1,2],"datatype":"FP32","data":[0.3,-1.2]}]}`
	for round := range 3 {
		for i, name := range names {
			var got []float32
			if (i+round)%2 == 0 {
				code, b := gatewayPost(t, s, "/endpoints/mm/v2/models/"+name+"/versions/1/infer", oip)
				var ans struct {
					ModelName    string `json:"model_name"`
					ModelVersion string `json:"model_version"`
					Outputs      []struct {
						Data []float32 `json:"data"`
					} `json:"outputs"`
				}
				if code != 200 || json.Unmarshal(b, &ans) != nil || len(ans.Outputs) != 1 || ans.ModelName != name || ans.ModelVersion != "1" {
					t.Fatalf("round %d, %s (OIP): %d %s", round, name, code, b)
				}
				got = ans.Outputs[0].Data
			} else {
				code, b := gatewayPost(t, s, "/endpoints/mm/invocations", `{"instances":[[0.3,-1.2]]}`, "X-Amzn-SageMaker-Target-Model", name+":1")
				var ans struct {
					Predictions [][]float32 `json:"predictions"`
				}
				if code != 200 || json.Unmarshal(b, &ans) != nil || len(ans.Predictions) != 1 {
					t.Fatalf("round %d, %s (invocations): %d %s", round, name, code, b)
				}
				got = ans.Predictions[0]
			}
			if !slices.Equal(got, want(name+":1")) {
				t.Fatalf("round %d, %s: %v, want the model's own %v", round, name, got, want(name+":1"))
			}
		}
	}
	// Versions: NAME is the latest, NAME:ALIAS the alias's, through the
	// CLI's --target-model.
	for target, ref := range map[string]string{"mm-a": "mm-a:2", "mm-a:prod": "mm-a:1", "mm-a:1": "mm-a:1"} {
		out := s.cli("endpoint", "invoke", "mm", "--target-model", target, "--data", `{"instances":[[0.3,-1.2]]}`)
		var ans struct {
			Predictions [][]float32 `json:"predictions"`
		}
		if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &ans); err != nil || len(ans.Predictions) != 1 ||
			!slices.Equal(ans.Predictions[0], want(ref)) {
			t.Fatalf("invoke --target-model %s: %v\n%s", target, err, out)
		}
	}

	// The index: the cache's bound held (at most two loaded per replica),
	// so models were evicted to serve the six; each loaded model is on
	// one replica; "other" is not listed.
	code, b := gatewayPost(t, s, "/endpoints/mm/v2/repository/index", "")
	var rows []struct {
		Name, Version, State string
		Replicas             int
	}
	if code != 200 || json.Unmarshal(b, &rows) != nil {
		t.Fatalf("index: %d %s", code, b)
	}
	loaded := 0
	for _, r := range rows {
		if r.Name == "other" {
			t.Fatalf("the index lists a model outside the filter: %s", b)
		}
		if r.State == "READY" {
			loaded++
			if r.Replicas != 1 {
				t.Errorf("%s:%s is loaded on %d replicas, want 1 (requests one at a time go to the model's replica)", r.Name, r.Version, r.Replicas)
			}
		}
	}
	if len(rows) != 7 || loaded == 0 || loaded > 4 {
		t.Fatalf("index of %d rows with %d loaded; want 7 versions, at most 2 loaded per replica: %s", len(rows), loaded, b)
	}

	// Refusals, with the reason.
	for _, c := range []struct {
		path string
		hdr  []string
		code int
		want string
	}{
		{"/endpoints/mm/invocations", nil, 400, "X-Hpcml-Target-Model"},
		{"/endpoints/mm/invocations", []string{deploy.HeaderTargetModel, "ghost"}, 404, "unknown target model"},
		{"/endpoints/mm/invocations", []string{deploy.HeaderTargetModel, "other"}, 404, "not served by endpoint mm"},
		{"/endpoints/mm/invocations", []string{deploy.HeaderTargetModel, "mm-b:7"}, 404, "no version 7"},
	} {
		code, b := gatewayPost(t, s, c.path, `{"instances":[[0.3,-1.2]]}`, c.hdr...)
		if code != c.code || !strings.Contains(string(b), c.want) {
			t.Errorf("%s %v: %d %s; want %d with %q", c.path, c.hdr, code, b, c.code, c.want)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"endpoint", "create", "mm2", "--multi-model"}, "needs --models"},
		{[]string{"endpoint", "create", "mm2", "--multi-model", "--models", "mm-a:prod"}, "aliases"},
		{[]string{"endpoint", "create", "mm2", "--multi-model", "--models", "mm-*", "--model", "mm-a"}, "no --model"},
		{[]string{"endpoint", "update", "mm", "--model", "mm-a:1"}, "multi-model"},
		{[]string{"endpoint", "update", "mm", "--models", "Bad*"}, "prefix"},
	} {
		_, stderr, err := hpcml(s, c.args...)
		if err == nil || !strings.Contains(stderr, c.want) {
			t.Errorf("hpcml %v: err %v, stderr %q; want an error with %q", c.args, err, stderr, c.want)
		}
	}

	// The CLI's view of the repository: load a model on its replica,
	// unload it everywhere.
	type row struct {
		Name, Version, State string
		Replicas             int
	}
	loadedModels := func() map[string]int {
		var rows []row
		if err := json.Unmarshal([]byte(s.cli("endpoint", "models", "mm", "--ready", "-o", "json")), &rows); err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, r := range rows {
			if r.State != "READY" {
				t.Fatalf("models --ready lists %+v", r)
			}
			out[r.Name+":"+r.Version] = r.Replicas
		}
		return out
	}
	s.cli("endpoint", "models", "mm", "--load", "mm-a") // the latest, 2
	if n := loadedModels()["mm-a:2"]; n != 1 {
		t.Fatalf("after --load mm-a, mm-a:2 is loaded on %d replicas, want 1", n)
	}
	s.cli("endpoint", "models", "mm", "--unload", "mm-a:2")
	if n, ok := loadedModels()["mm-a:2"]; ok {
		t.Fatalf("after --unload mm-a:2 it is still loaded on %d replicas", n)
	}
	if out := s.cli("endpoint", "models", "mm"); !strings.Contains(out, "UNAVAILABLE") || !strings.Contains(out, "MODEL") {
		t.Fatalf("models:\n%s", out)
	}
	// The API refuses a multi-model endpoint that is also async, or
	// whose variant names a model; nothing is created.
	for _, c := range []struct {
		req  deploy.CreateRequest
		want string
	}{
		{deploy.CreateRequest{Name: "mm3", MultiModel: &endpoint.MultiModel{Models: "mm-*"}, Async: &endpoint.Async{}}, "either async or multi-model"},
		{deploy.CreateRequest{Name: "mm3", MultiModel: &endpoint.MultiModel{Models: "mm-*"}, Variants: []deploy.VariantRequest{{Model: "mm-a"}}}, "takes no model"},
		{deploy.CreateRequest{Name: "mm3", MultiModel: &endpoint.MultiModel{Models: "mm-*", CacheBytes: -5}}, "cache_bytes"},
	} {
		if _, err := s.Client.CreateEndpoint(t.Context(), c.req); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("create %+v: %v, want an error with %q", c.req.MultiModel, err, c.want)
		}
	}
	if list, _ := s.Client.ListEndpoints(t.Context()); len(list) != 1 {
		t.Fatalf("refused creates changed the endpoints: %d", len(list))
	}

	// A new filter: applied at once, no replica restarted.
	s.cli("endpoint", "update", "mm", "--models", "mm-a,other")
	if code, b := gatewayPost(t, s, "/endpoints/mm/invocations", `{"instances":[[0.3,-1.2]]}`, deploy.HeaderTargetModel, "mm-b"); code != 404 {
		t.Fatalf("mm-b after the filter left it out: %d %s", code, b)
	}
	if code, b := gatewayPost(t, s, "/endpoints/mm/invocations", `{"instances":[[0.3,-1.2]]}`, deploy.HeaderTargetModel, "other"); code != 200 {
		t.Fatalf("other after the filter took it in: %d %s", code, b)
	}
	after := []int64{}
	for _, r := range readyReplicas(getEndpoint(t, s, "mm")) {
		after = append(after, r.Job)
	}
	slices.Sort(jobs)
	slices.Sort(after)
	if !slices.Equal(jobs, after) {
		t.Fatalf("replicas %v became %v: the filter change restarted them", jobs, after)
	}
	s.cli("endpoint", "delete", "mm", "--wait")
}
