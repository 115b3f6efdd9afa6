package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/registry"
	"github.com/hpcml/hpcml/internal/serve"
	"github.com/hpcml/hpcml/internal/serve/servetest"
)

// repoRegistry resolves references over the versions written to a test
// repository, with aliases: the registry's answers, without its store.
type repoRegistry struct {
	versions map[string][]int
	aliases  map[string]int // "name:alias"
}

func (r *repoRegistry) Resolve(_ context.Context, ref registry.Ref) (*registry.Version, error) {
	vs := r.versions[ref.Name]
	if len(vs) == 0 {
		return nil, fmt.Errorf("model %s: %w", ref.Name, registry.ErrNotFound)
	}
	v := ref.Version
	switch {
	case ref.Alias != "":
		if v = r.aliases[ref.Name+":"+ref.Alias]; v == 0 {
			return nil, fmt.Errorf("model %s has no alias %s: %w", ref.Name, ref.Alias, registry.ErrNotFound)
		}
	case v == 0:
		v = slices.Max(vs)
	case !slices.Contains(vs, v):
		return nil, fmt.Errorf("model %s has no version %d: %w", ref.Name, v, registry.ErrNotFound)
	}
	return &registry.Version{Name: ref.Name, Version: v}, nil
}

// multiModelRepo writes one small MLP per model version (each its own
// weights) in the registry's layout, and returns the storage directory
// and each version's reference model.
func multiModelRepo(t *testing.T, versions map[string][]int) (string, map[string]*serve.ONNXModel) {
	t.Helper()
	dir := t.TempDir()
	refs := map[string]*serve.ONNXModel{}
	seed := uint64(0)
	for name, vs := range versions {
		for _, v := range vs {
			seed++
			data, err := servetest.MLP(seed, 1, "", 2, 4, 2)
			if err != nil {
				t.Fatal(err)
			}
			key := filepath.Join(dir, registry.ArtifactKey(name, v))
			os.MkdirAll(filepath.Dir(key), 0o755)
			if err := os.WriteFile(key, data, 0o644); err != nil {
				t.Fatal(err)
			}
			ref, err := serve.LoadONNX(data, name, strconv.Itoa(v))
			if err != nil {
				t.Fatal(err)
			}
			refs[name+":"+strconv.Itoa(v)] = ref
		}
	}
	return dir, refs
}

// startMultiReplica runs a real multi-model server (what hpcml serve
// --multi-model runs) over the repository.
func startMultiReplica(t *testing.T, dir string, job int64) *Replica {
	t.Helper()
	b, err := blob.Open(t.Context(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := serve.NewMulti(&serve.StorageLoader{Bucket: b, Prefix: registry.ModelsDir, File: registry.ArtifactFile},
		serve.MultiOptions{Options: serve.Options{Token: "replica-token"}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { hs.Close(); s.Close(); b.Close() })
	return &Replica{JobID: job, Addr: strings.TrimPrefix(hs.URL, "http://"), Variant: "primary"}
}

type mmAnswer struct {
	status int
	body   string
	header http.Header
}

func mmCall(t *testing.T, url, path, body string, hdr ...string) mmAnswer {
	t.Helper()
	status, header, b := gatewayCall(t, http.MethodPost, url+path, []byte(body), append([]string{"Content-Type", "application/json"}, hdr...)...)
	return mmAnswer{status, string(b), header}
}

// loadedOn asks each replica directly which models it has loaded.
func loadedOn(t *testing.T, reps []*Replica) map[string][]int64 {
	t.Helper()
	out := map[string][]int64{}
	for _, rep := range reps {
		req, _ := http.NewRequest(http.MethodPost, "http://"+rep.Addr+"/v2/repository/index", strings.NewReader(`{"ready":true}`))
		req.Header.Set("Authorization", "Bearer replica-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var rows []RepositoryRow
		json.NewDecoder(resp.Body).Decode(&rows)
		resp.Body.Close()
		for _, r := range rows {
			out[r.Name+":"+r.Version] = append(out[r.Name+":"+r.Version], rep.JobID)
		}
	}
	return out
}

// TestGatewayMultiModel: a multi-model endpoint of three real
// multi-model replicas behind the gateway. The target model is checked
// against the filter and the registry (400 none, 404 unknown or not
// served), aliases and latest resolve to a version, every model's
// requests land on one replica (the one rendezvous hashing ranks first),
// answers are each model's own, and the repository extension is the
// endpoint's (merged index within the filter, load and unload).
func TestGatewayMultiModel(t *testing.T) {
	versions := map[string][]int{"alpha": {1, 2}, "beta": {1, 2}, "churn-a": {1}, "churn-b": {1}, "secret": {1}}
	dir, refs := multiModelRepo(t, versions)
	reg := &repoRegistry{versions: versions, aliases: map[string]int{"alpha:prod": 1}}
	reps := []*Replica{startMultiReplica(t, dir, 11), startMultiReplica(t, dir, 12), startMultiReplica(t, dir, 13)}
	filter, err := endpoint.ParseFilter("alpha,beta:1,churn-*")
	if err != nil {
		t.Fatal(err)
	}
	g, front := newTestGateway(t)
	g.SetRoute(&Route{Endpoint: "mm", Token: "replica-token",
		Variants: []RouteVariant{{Name: "primary", Weight: 1, Fleets: []Fleet{{Percent: 100, Replicas: reps}}}},
		Models:   &ModelRouting{filter: filter, models: "alpha,beta:1,churn-*", resolver: reg, cache: &resolveCache{m: map[string]resolvedRef{}}}})

	infer := func(string) string {
		return `{"inputs":[{"name":"input","shape":[1,2],"datatype":"FP32","data":[0.25,-1.5]}]}`
	}
	want := func(ref string) []float32 {
		outs, err := refs[ref].Infer(t.Context(), map[string]*nn.Tensor{"input": {Shape: []int{1, 2}, Data: []float32{0.25, -1.5}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range outs {
			return o.Data
		}
		return nil
	}
	check := func(what string, a mmAnswer, ref string) {
		t.Helper()
		var ans struct {
			Name    string `json:"model_name"`
			Version string `json:"model_version"`
			Outputs []struct {
				Data []float32 `json:"data"`
			} `json:"outputs"`
			Predictions [][]float32 `json:"predictions"`
		}
		if a.status != 200 || json.Unmarshal([]byte(a.body), &ans) != nil {
			t.Fatalf("%s: %d %s", what, a.status, a.body)
		}
		got := []float32(nil)
		if len(ans.Outputs) == 1 {
			got = ans.Outputs[0].Data
			if ans.Name+":"+ans.Version != ref {
				t.Fatalf("%s: answered by %s:%s, want %s", what, ans.Name, ans.Version, ref)
			}
		} else if len(ans.Predictions) == 1 {
			got = ans.Predictions[0]
		}
		if !slices.Equal(got, want(ref)) {
			t.Fatalf("%s: %v, want %s's %v", what, got, ref, want(ref))
		}
	}

	// Resolution: the path's name, /versions/, an alias, latest.
	check("OIP latest", mmCall(t, front.URL, "/endpoints/mm/v2/models/alpha/infer", infer("")), "alpha:2")
	check("OIP version", mmCall(t, front.URL, "/endpoints/mm/v2/models/alpha/versions/1/infer", infer("")), "alpha:1")
	check("OIP alias", mmCall(t, front.URL, "/endpoints/mm/v2/models/alpha:prod/infer", infer("")), "alpha:1")
	// The filter pins beta to 1: beta alone means that one, not the latest.
	check("OIP pinned", mmCall(t, front.URL, "/endpoints/mm/v2/models/beta/infer", infer("")), "beta:1")
	check("invocations", mmCall(t, front.URL, "/endpoints/mm/invocations", `{"instances":[[0.25,-1.5]]}`,
		HeaderSageMakerTargetModel, "churn-a"), "churn-a:1")
	check("invocations alias", mmCall(t, front.URL, "/endpoints/mm/invocations", `{"instances":[[0.25,-1.5]]}`,
		HeaderTargetModel, "alpha:prod"), "alpha:1")

	for _, c := range []struct {
		path, body string
		hdr        []string
		status     int
		want       string
	}{
		{"/endpoints/mm/invocations", `{"instances":[[1,2]]}`, nil, 400, "X-Hpcml-Target-Model"},
		{"/endpoints/mm/invocations", `{"instances":[[1,2]]}`, []string{HeaderTargetModel, "nope"}, 404, "unknown target model"},
		{"/endpoints/mm/invocations", `{"instances":[[1,2]]}`, []string{HeaderTargetModel, "secret"}, 404, "not served by endpoint mm"},
		{"/endpoints/mm/invocations", `{"instances":[[1,2]]}`, []string{HeaderTargetModel, "beta:2"}, 404, "its models: alpha,beta:1,churn-*"},
		{"/endpoints/mm/invocations", `{"instances":[[1,2]]}`, []string{HeaderTargetModel, "alpha:9"}, 404, "no version 9"},
		{"/endpoints/mm/invocations", `{"instances":[[1,2]]}`, []string{HeaderTargetModel, "alpha:staging"}, 404, "no alias staging"},
		{"/endpoints/mm/invocations", `{"instances":[[1,2]]}`, []string{HeaderTargetModel, "Bad Name"}, 400, "target model"},
		{"/endpoints/mm/v2/models/secret/infer", infer(""), nil, 404, "not served"},
		{"/endpoints/mm/v2/models/alpha:1/versions/2/infer", infer(""), nil, 400, "not both"},
		{"/endpoints/mm/v2/repository/models/nope/load", "", nil, 404, "unknown target model"},
	} {
		a := mmCall(t, front.URL, c.path, c.body, c.hdr...)
		if a.status != c.status || !strings.Contains(a.body, c.want) {
			t.Errorf("%s %v: %d %s; want %d with %q", c.path, c.hdr, a.status, a.body, c.status, c.want)
		}
	}

	// Each model's requests go to one replica, the one pickFor ranks
	// first for it; requests one at a time never spill over.
	served := []string{"alpha:1", "alpha:2", "beta:1", "churn-a:1", "churn-b:1"}
	for range 3 {
		for _, ref := range served {
			name, v, _ := strings.Cut(ref, ":")
			check(ref, mmCall(t, front.URL, "/endpoints/mm/v2/models/"+name+"/versions/"+v+"/infer", infer("")), ref)
		}
	}
	on := loadedOn(t, reps)
	for _, ref := range served {
		if want := pickFor(reps, nil, ref).JobID; !slices.Equal(on[ref], []int64{want}) {
			t.Errorf("%s is loaded on replicas %v; want only %d (its rendezvous replica)", ref, on[ref], want)
		}
	}
	if len(on["secret:1"]) != 0 {
		t.Errorf("a model outside the filter was loaded: %v", on["secret:1"])
	}

	// The repository extension through the gateway.
	a := mmCall(t, front.URL, "/endpoints/mm/v2/repository/index", "")
	var rows []RepositoryRow
	if a.status != 200 || json.Unmarshal([]byte(a.body), &rows) != nil {
		t.Fatalf("index: %d %s", a.status, a.body)
	}
	got := map[string]RepositoryRow{}
	for _, r := range rows {
		got[r.Name+":"+r.Version] = r
	}
	if len(got) != len(served) || got["alpha:2"].State != "READY" || got["alpha:2"].Replicas != 1 {
		t.Fatalf("index: %+v; want the %d served versions, loaded on one replica each, and not secret or beta:2", got, len(served))
	}
	a = mmCall(t, front.URL, "/endpoints/mm/v2/repository/models/alpha/unload", `{"parameters":{"version":2}}`)
	if a.status != 200 || !strings.Contains(a.body, `"unloaded_from_replicas":1`) {
		t.Fatalf("unload: %d %s", a.status, a.body)
	}
	if on := loadedOn(t, reps); len(on["alpha:2"]) != 0 {
		t.Fatalf("alpha:2 still loaded on %v after unload", on["alpha:2"])
	}
	a = mmCall(t, front.URL, "/endpoints/mm/v2/repository/models/alpha:prod/load", "")
	if a.status != 200 || !strings.Contains(a.body, `"version":"1"`) {
		t.Fatalf("load: %d %s", a.status, a.body)
	}
	a = mmCall(t, front.URL, "/endpoints/mm/v2/repository/index", `{"ready":true}`)
	if a.status != 200 || strings.Contains(a.body, `"alpha","version":"2"`) || !strings.Contains(a.body, `"alpha","version":"1"`) {
		t.Fatalf("ready index after unload: %d %s", a.status, a.body)
	}
	if a.header.Get(HeaderIndexMissing) != "" {
		t.Fatalf("every replica answered, yet %s: %s", HeaderIndexMissing, a.header.Get(HeaderIndexMissing))
	}

	// A replica that does not answer (restarting): the index lists what
	// the others hold and names it; with none answering, 502.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := ln.Addr().String()
	ln.Close()
	withDead := func(reps []*Replica) {
		g.SetRoute(&Route{Endpoint: "mm", Token: "replica-token",
			Variants: []RouteVariant{{Name: "primary", Weight: 1, Fleets: []Fleet{{Percent: 100, Replicas: reps}}}},
			Models:   &ModelRouting{filter: filter, models: "alpha,beta:1,churn-*", resolver: reg, cache: &resolveCache{m: map[string]resolvedRef{}}}})
	}
	withDead(append(slices.Clone(reps), &Replica{JobID: 99, Addr: deadAddr, Variant: "primary"}))
	b := mmCall(t, front.URL, "/endpoints/mm/v2/repository/index", `{"ready":true}`)
	if b.status != 200 || b.body != a.body || !strings.Contains(b.header.Get(HeaderIndexMissing), "1 of 4 replicas did not answer: replica 99") {
		t.Fatalf("index with a replica down: %d %s (%s: %q); want the other three's: %s", b.status, b.body,
			HeaderIndexMissing, b.header.Get(HeaderIndexMissing), a.body)
	}
	// Many down: the header names three and counts the rest.
	many := slices.Clone(reps)
	for j := range 5 {
		many = append(many, &Replica{JobID: int64(90 + j), Addr: deadAddr, Variant: "primary"})
	}
	withDead(many)
	b = mmCall(t, front.URL, "/endpoints/mm/v2/repository/index", `{"ready":true}`)
	if m := b.header.Get(HeaderIndexMissing); b.status != 200 || !strings.HasPrefix(m, "5 of 8 replicas did not answer") ||
		!strings.HasSuffix(m, "; 2 more") || strings.Count(m, "replica 9") != 3 {
		t.Fatalf("index with five replicas down: %d, %s: %q", b.status, HeaderIndexMissing, m)
	}
	withDead([]*Replica{{JobID: 99, Addr: deadAddr, Variant: "primary"}})
	if b := mmCall(t, front.URL, "/endpoints/mm/v2/repository/index", ""); b.status != 502 || !strings.Contains(b.body, "replica 99") {
		t.Fatalf("index with every replica down: %d %s", b.status, b.body)
	}
}

// TestPickForBoundedLoad: a key's first replica gets its requests until
// it holds half again the fleet's mean; then the key's next replica.
func TestPickForBoundedLoad(t *testing.T) {
	reps := []*Replica{{JobID: 1}, {JobID: 2}, {JobID: 3}}
	first := pickFor(reps, nil, "m:1")
	for i := range 20 {
		if got := pickFor(reps, nil, "m:1"); got != first {
			t.Fatalf("request %d of an idle fleet went to %d, not %d", i, got.JobID, first.JobID)
		}
	}
	// Keys spread over the replicas.
	seen := map[int64]bool{}
	for i := range 64 {
		seen[pickFor(reps, nil, fmt.Sprintf("model-%d:1", i)).JobID] = true
	}
	if len(seen) != 3 {
		t.Fatalf("64 keys went to replicas %v, want all three", seen)
	}
	// A replica that joins takes models only for itself: every key whose
	// replica changed went to the new one, and the others stayed.
	grown := append(slices.Clone(reps), &Replica{JobID: 4})
	moved := 0
	for i := range 400 {
		key := fmt.Sprintf("model-%d:1", i)
		before, after := pickFor(reps, nil, key), pickFor(grown, nil, key)
		if before != after {
			moved++
			if after.JobID != 4 {
				t.Fatalf("%s moved from replica %d to %d, not to the new one", key, before.JobID, after.JobID)
			}
		}
	}
	if moved == 0 || moved == 400 {
		t.Fatalf("%d of 400 keys moved to a fourth replica; want some (about a quarter), not none or all", moved)
	}
	first.outstanding.Store(5) // others idle: 5 ≥ ⌈1.5 (5+1)/3⌉ = 3
	second := pickFor(reps, nil, "m:1")
	if second == first {
		t.Fatal("a replica far busier than the rest still got the key's requests")
	}
	if got := pickFor(reps, []*Replica{second}, "m:1"); got == second || got == first {
		t.Fatalf("with the second skipped, want the third, got %d", got.JobID)
	}
	first.outstanding.Store(0)
	first.draining.Store(true)
	if got := pickFor(reps, nil, "m:1"); got == first {
		t.Fatal("a draining replica was picked")
	}
}
