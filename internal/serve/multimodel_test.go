package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/serve/servetest"
)

// repoModel is a model written to a test repository, with its reference
// (loaded by itself, not through the server) for checking answers.
type repoModel struct {
	name, version string
	ref           *ONNXModel
	size          int64
}

// writeRepo writes models into a file:// bucket laid out as the registry
// does (models/NAME/VERSION/model.onnx), each with its own weights, and
// returns the loader over it.
func writeRepo(t *testing.T, refs []ModelRef) (*StorageLoader, map[ModelRef]*repoModel) {
	l, m, _ := writeRepoDir(t, refs)
	return l, m
}

func writeRepoDir(t *testing.T, refs []ModelRef) (*StorageLoader, map[ModelRef]*repoModel, string) {
	t.Helper()
	dir := t.TempDir()
	out := map[ModelRef]*repoModel{}
	for i, r := range refs {
		data, err := servetest.MLP(uint64(i+1), 0.5, "softmax", 4, 16, 3) // mlpSpec's shape
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "models", r.Name, r.Version, "model.onnx")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		// A record beside the artefact, as the registry writes: not a model.
		os.WriteFile(filepath.Join(filepath.Dir(path), "version.json"), []byte(`{}`), 0o644)
		ref, err := LoadONNX(data, r.Name, r.Version)
		if err != nil {
			t.Fatal(err)
		}
		out[r] = &repoModel{name: r.Name, version: r.Version, ref: ref, size: ref.Graph().TensorBytes()}
	}
	b, err := blob.Open(t.Context(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return &StorageLoader{Bucket: b, Prefix: "models/", File: "model.onnx"}, out, dir
}

// countingLoader counts the loads of each model version; hold, when set
// for a model name, keeps its loads waiting until closed, and gates, when
// set, wraps a model so that its executions wait for the gate.
type countingLoader struct {
	Loader
	mu    sync.Mutex
	loads map[string]int
	hold  map[string]chan struct{}
	gates map[string]*recordingModel
	// running and most: loads in progress now, and the most at once.
	running, most int
}

func (l *countingLoader) Load(ctx context.Context, name, version string) (Model, int64, error) {
	l.mu.Lock()
	l.loads[name+":"+version]++
	hold := l.hold[name]
	gate := l.gates[name]
	l.running++
	l.most = max(l.most, l.running)
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.running--
		l.mu.Unlock()
	}()
	if hold != nil {
		<-hold
	}
	m, size, err := l.Loader.Load(ctx, name, version)
	if err != nil || gate == nil {
		return m, size, err
	}
	gate.Model = m
	return gate, size, nil
}

func (l *countingLoader) count(name, version string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.loads[name+":"+version]
}

func startMulti(t *testing.T, l Loader, o MultiOptions) (*MultiServer, *testServer) {
	t.Helper()
	s, err := NewMulti(l, o)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() { hs.Close(); s.Close() })
	return s, &testServer{URL: hs.URL, token: o.Token}
}

// metricValue reads one unlabelled series from /metrics.
func metricValue(t *testing.T, ts *testServer, name string) float64 {
	t.Helper()
	code, b := ts.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("/metrics has no %s", name)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

type indexRow struct {
	Name, Version, State, Reason string
	Bytes                        int64
	InFlight                     int `json:"in_flight"`
}

func repoIndex(t *testing.T, ts *testServer, body string) map[string]indexRow {
	t.Helper()
	code, b := ts.post(t, "/v2/repository/index", body)
	if code != 200 {
		t.Fatalf("index: %d %s", code, b)
	}
	rows := decode[[]indexRow](t, b)
	out := map[string]indexRow{}
	for _, r := range rows {
		out[r.Name+":"+r.Version] = r
	}
	return out
}

// inferModel sends one OIP request of 4-feature rows to a model and
// returns the status and the output.
func inferModel(t *testing.T, ts *testServer, path string, x []float32) (int, []float32, string) {
	t.Helper()
	body := map[string]any{"inputs": []any{map[string]any{"name": "input", "shape": []int{len(x) / 4, 4}, "datatype": "FP32", "data": x}}}
	code, b := ts.post(t, path, body)
	if code != 200 {
		return code, nil, string(b)
	}
	r := decode[inferResponse](t, b)
	return code, r.Outputs[0].Data, r.ModelName + ":" + r.ModelVersion
}

// TestMultiModelEvictions: eight models in a cache that holds two, asked
// in turn (OIP and /invocations, from several goroutines) for several
// rounds: every answer is the model's own direct inference, although
// the models are evicted and reloaded all along; the load and unload
// counters move and the cache stays within its budget.
func TestMultiModelEvictions(t *testing.T) {
	var refs []ModelRef
	for i := range 8 {
		refs = append(refs, ModelRef{Name: fmt.Sprintf("m%d", i), Version: "1"})
	}
	loader, models := writeRepo(t, refs)
	size := models[refs[0]].size
	budget := size*2 + size/2
	cl := &countingLoader{Loader: loader, loads: map[string]int{}}
	_, ts := startMulti(t, cl, MultiOptions{CacheBytes: budget, Options: Options{MaxBatch: 8, MaxQueueDelay: 200_000}})

	const rounds, workers = 3, 4
	var wg sync.WaitGroup
	errs := make(chan string, rounds*len(refs)*workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range rounds {
				for i := range refs {
					ref := refs[(i+w)%len(refs)]
					m := models[ref]
					x := randomData(uint64(100*round+10*i+w), 8)
					want := direct(t, m.ref, "input", []int{2, 4}, x)
					if (i+round)%2 == 0 {
						code, got, who := inferModel(t, ts, "/v2/models/"+ref.Name+"/infer", x)
						if code != 200 || who != ref.Name+":1" {
							errs <- fmt.Sprintf("%s infer: %d %s", ref.Name, code, who)
							continue
						}
						for j := range got {
							if got[j] != want.Data[j] {
								errs <- fmt.Sprintf("%s infer: value %d is %v, want %v", ref.Name, j, got[j], want.Data[j])
								break
							}
						}
						continue
					}
					body, _ := json.Marshal(map[string]any{"instances": [][]float32{x[:4], x[4:]}})
					code, b, _ := ts.do(t, http.MethodPost, "/invocations", "application/json", body, HeaderSageMakerTargetModel, ref.Name+":1")
					if code != 200 {
						errs <- fmt.Sprintf("%s invocations: %d %s", ref.Name, code, b)
						continue
					}
					var got struct{ Predictions [][]float32 }
					json.Unmarshal(b, &got)
					if len(got.Predictions) != 2 {
						errs <- fmt.Sprintf("%s invocations: %s", ref.Name, b)
						continue
					}
					flat := append(got.Predictions[0], got.Predictions[1]...)
					for j := range flat {
						if flat[j] != want.Data[j] {
							errs <- fmt.Sprintf("%s invocations: value %d is %v, want %v", ref.Name, j, flat[j], want.Data[j])
							break
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	// A request's hold on its model ends just after its answer: once
	// the last has, what was taken out of the cache is closed.
	var loads, unloads, loaded, bytes float64
	waitFor(t, "the last holds to end", func() bool {
		loads = metricValue(t, ts, "hpcml_serve_model_loads_total")
		unloads = metricValue(t, ts, "hpcml_serve_model_unloads_total")
		loaded = metricValue(t, ts, "hpcml_serve_models_loaded")
		bytes = metricValue(t, ts, "hpcml_serve_model_cache_bytes")
		return loads-unloads == loaded && loaded <= 2
	})
	if loads <= float64(len(refs)) || unloads < 1 || loads-unloads != loaded {
		t.Errorf("loads %v, unloads %v, loaded %v: want more loads than models (evictions forced reloads) and loads-unloads = loaded", loads, unloads, loaded)
	}
	if loaded > 2 || bytes > float64(budget) || bytes != loaded*float64(size) {
		t.Errorf("after the run: %v models, %v bytes; the budget of %d holds 2 of %d bytes", loaded, bytes, budget, size)
	}
	total := 0
	for _, r := range refs {
		total += cl.count(r.Name, r.Version)
	}
	if float64(total) != loads {
		t.Errorf("the loader loaded %d times, the metric says %v", total, loads)
	}
}

// TestMultiModelSingleflight: twenty requests for a model not loaded
// load it once, and all get its answer.
func TestMultiModelSingleflight(t *testing.T) {
	loader, models := writeRepo(t, []ModelRef{{"a", "1"}})
	hold := make(chan struct{})
	cl := &countingLoader{Loader: loader, loads: map[string]int{}, hold: map[string]chan struct{}{"a": hold}}
	_, ts := startMulti(t, cl, MultiOptions{})
	x := randomData(5, 4)
	want := direct(t, models[ModelRef{"a", "1"}].ref, "input", []int{1, 4}, x)
	var wg sync.WaitGroup
	results := make(chan string, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, got, _ := inferModel(t, ts, "/v2/models/a/versions/1/infer", x)
			if code != 200 || len(got) != len(want.Data) || got[0] != want.Data[0] {
				results <- fmt.Sprintf("%d %v", code, got)
			}
		}()
	}
	waitFor(t, "the load to start", func() bool { return cl.count("a", "1") == 1 })
	close(hold)
	wg.Wait()
	close(results)
	for r := range results {
		t.Error(r)
	}
	if n := cl.count("a", "1"); n != 1 {
		t.Fatalf("%d loads for 20 concurrent requests, want 1", n)
	}
	if v := metricValue(t, ts, "hpcml_serve_model_loads_total"); v != 1 {
		t.Fatalf("loads_total %v, want 1", v)
	}
}

// TestMultiModelInFlightNotEvicted: a model computing a request stays
// loaded while other models push the cache over its budget (they are
// evicted instead, even the one just used); its request gets the right
// answer; once idle it is evicted as any other.
func TestMultiModelInFlightNotEvicted(t *testing.T) {
	refs := []ModelRef{{"busy", "1"}, {"b", "1"}, {"c", "1"}}
	loader, models := writeRepo(t, refs)
	gate := &recordingModel{started: make(chan struct{}, 1), gate: make(chan struct{})}
	cl := &countingLoader{Loader: loader, loads: map[string]int{}, gates: map[string]*recordingModel{"busy": gate}}
	size := models[refs[0]].size
	_, ts := startMulti(t, cl, MultiOptions{CacheBytes: size + size/2}) // room for one

	x := randomData(7, 4)
	want := direct(t, models[refs[0]].ref, "input", []int{1, 4}, x)
	done := make(chan []float32, 1)
	go func() {
		_, got, _ := inferModel(t, ts, "/v2/models/busy/infer", x)
		done <- got
	}()
	<-gate.started
	for _, name := range []string{"b", "c"} {
		xb := randomData(8, 4)
		code, got, _ := inferModel(t, ts, "/v2/models/"+name+"/infer", xb)
		sameFloats(t, name, got, direct(t, models[ModelRef{name, "1"}].ref, "input", []int{1, 4}, xb).Data)
		if code != 200 {
			t.Fatalf("%s: %d", name, code)
		}
	}
	// b went for c (idle, least recently used), and c itself once its
	// request was done (its hold ends just after its answer): the cache
	// was over its budget, and busy in use.
	waitFor(t, "b and c to be evicted", func() bool {
		idx := repoIndex(t, ts, "")
		return idx["b:1"].State == stateUnavailable && idx["c:1"].State == stateUnavailable
	})
	if idx := repoIndex(t, ts, ""); idx["busy:1"].State != stateReady || idx["busy:1"].InFlight != 1 {
		t.Fatalf("with busy in flight: %+v; want busy loaded, with its request", idx)
	}
	close(gate.gate)
	sameFloats(t, "busy", <-done, want.Data)
	waitFor(t, "busy's hold to end", func() bool { return repoIndex(t, ts, "")["busy:1"].InFlight == 0 })
	// Idle now, and least recently used: it goes when b needs the room.
	if code, _, _ := inferModel(t, ts, "/v2/models/b/infer", x); code != 200 {
		t.Fatalf("b: %d", code)
	}
	idx := repoIndex(t, ts, "")
	if idx["busy:1"].State != stateUnavailable || idx["b:1"].State != stateReady {
		t.Fatalf("after busy's request: %+v; want busy evicted for b", idx)
	}
	if v := metricValue(t, ts, "hpcml_serve_models_loaded"); v != 1 {
		t.Fatalf("models_loaded %v, want 1", v)
	}
}

// TestMultiModelRepository: the OIP repository extension (index, load,
// unload), the ready route, versions, and the errors of unknown and
// unnamed models.
func TestMultiModelRepository(t *testing.T) {
	refs := []ModelRef{{"iris", "1"}, {"iris", "2"}, {"iris", "10"}, {"digits", "1"}, {"secret", "1"}}
	loader, models := writeRepo(t, refs)
	s, ts := startMulti(t, loader, MultiOptions{Options: Options{Token: "tok"},
		Allow: func(name, version string) bool { return name != "secret" }})

	// Server metadata names the extension.
	code, b := ts.get(t, "/v2")
	if code != 200 || !strings.Contains(string(b), `"model_repository"`) {
		t.Fatalf("/v2: %d %s", code, b)
	}
	idx := repoIndex(t, ts, "")
	if len(idx) != 4 || idx["iris:10"].State != stateUnavailable || idx["iris:10"].Reason != "not loaded" {
		t.Fatalf("index before any load: %+v", idx)
	}
	if _, ok := idx["secret:1"]; ok {
		t.Fatalf("the index lists a model the filter excludes: %+v", idx)
	}
	if ready := repoIndex(t, ts, `{"ready":true}`); len(ready) != 0 {
		t.Fatalf("ready index before any load: %+v", ready)
	}
	// Ready is loaded (Triton's meaning).
	if code, b := ts.get(t, "/v2/models/iris/ready"); code != 400 || !strings.Contains(string(b), `"ready":false`) {
		t.Fatalf("ready before load: %d %s", code, b)
	}
	// Load without a version: the highest (10, not 2: numbers, not text).
	code, b = ts.post(t, "/v2/repository/models/iris/load", "")
	if code != 200 || !strings.Contains(string(b), `"version":"10"`) || !strings.Contains(string(b), `"READY"`) {
		t.Fatalf("load: %d %s", code, b)
	}
	if code, b := ts.get(t, "/v2/models/iris/ready"); code != 200 {
		t.Fatalf("ready after load: %d %s", code, b)
	}
	code, b = ts.post(t, "/v2/repository/models/iris/load", `{"parameters":{"version":2}}`)
	if code != 200 || !strings.Contains(string(b), `"version":"2"`) {
		t.Fatalf("load version 2: %d %s", code, b)
	}
	idx = repoIndex(t, ts, `{"ready":true}`)
	if len(idx) != 2 || idx["iris:2"].State != stateReady || idx["iris:10"].Bytes != models[refs[2]].size {
		t.Fatalf("ready index after loads: %+v", idx)
	}
	// Metadata of a version, and inference without a version: the highest.
	code, b = ts.get(t, "/v2/models/iris/versions/2")
	if code != 200 || !strings.Contains(string(b), `"versions":["2"]`) {
		t.Fatalf("metadata: %d %s", code, b)
	}
	x := randomData(3, 4)
	if code, got, who := inferModel(t, ts, "/v2/models/iris/infer", x); code != 200 || who != "iris:10" {
		t.Fatalf("infer without version: %d %s", code, who)
	} else {
		sameFloats(t, "iris:10", got, direct(t, models[refs[2]].ref, "input", []int{1, 4}, x).Data)
	}
	// Unload without a version: every loaded version.
	code, b = ts.post(t, "/v2/repository/models/iris/unload", "")
	if code != 200 || !strings.Contains(string(b), `"unloaded":["2","10"]`) {
		t.Fatalf("unload: %d %s", code, b)
	}
	if ready := repoIndex(t, ts, `{"ready":true}`); len(ready) != 0 {
		t.Fatalf("ready index after unload: %+v", ready)
	}
	// Unloading what is not loaded is fine; unknown models are 404.
	if code, b := ts.post(t, "/v2/repository/models/digits/unload", ""); code != 200 {
		t.Fatalf("unload of a model not loaded: %d %s", code, b)
	}
	for _, c := range []struct {
		method, path, body string
		header             []string
		code               int
		want               string
	}{
		{"POST", "/v2/models/nope/infer", `{}`, nil, 404, `model \"nope\" is not in the repository`},
		{"POST", "/v2/models/iris/versions/7/infer", `{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}`, nil, 404, "iris version 7"},
		{"POST", "/v2/models/secret/infer", `{}`, nil, 404, "not in the repository"},
		{"POST", "/v2/models/secret/versions/1/infer", `{}`, nil, 404, "not served here"},
		{"GET", "/v2/models/nope/ready", "", nil, 404, "nope"},
		{"GET", "/v2/models/iris/versions/3/ready", "", nil, 404, "iris version 3"},
		{"GET", "/v2/models/digits/versions/1/ready", "", nil, 400, `"ready":false`},
		{"POST", "/v2/repository/models/nope/load", "", nil, 404, "nope"},
		{"POST", "/v2/repository/models/nope/unload", "", nil, 404, "nope"},
		{"POST", "/v2/repository/models/iris/unload", `{"parameters":{"version":"9"}}`, nil, 404, "iris"},
		{"POST", "/v2/repository/models/iris/load", `{"parameters":{"version":true}}`, nil, 400, "parameters.version"},
		{"POST", "/v2/repository/models/iris/load", `{not json`, nil, 400, "invalid JSON"},
		{"POST", "/v2/repository/models/iris/delete", "", nil, 404, "no route"},
		{"GET", "/v2/repository/index", "", nil, 405, "use POST"},
		{"POST", "/invocations", `{"instances":[[1,2,3,4]]}`, nil, 400, "X-Hpcml-Target-Model"},
		{"POST", "/invocations", `{"instances":[[1,2,3,4]]}`, []string{HeaderTargetModel, "iris:production"}, 400, "aliases"},
		{"POST", "/invocations", `{"instances":[[1,2,3,4]]}`, []string{HeaderTargetModel, "ghost"}, 404, "ghost"},
		{"POST", "/invocations", `{"instances":[[1,2,3,4]]}`, []string{HeaderTargetModel, "digits:1"}, 200, "predictions"},
	} {
		code, b, _ := ts.do(t, c.method, c.path, "application/json", []byte(c.body), c.header...)
		if code != c.code || !strings.Contains(string(b), c.want) {
			t.Errorf("%s %s %v: %d %s; want %d with %q", c.method, c.path, c.header, code, b, c.code, c.want)
		}
	}
	// The token is required on the repository routes.
	ts.token = ""
	if code, _ := ts.post(t, "/v2/repository/index", ""); code != 401 {
		t.Fatalf("index without the token: %d", code)
	}
	// Draining: unready, models too.
	ts.token = "tok"
	s.Drain()
	if code, _ := ts.get(t, "/v2/health/ready"); code != 400 {
		t.Fatalf("ready while draining: %d", code)
	}
}

// TestMultiModelTooLarge: a model larger than the whole cache is 507,
// and nothing else is evicted for it.
func TestMultiModelTooLarge(t *testing.T) {
	loader, models := writeRepo(t, []ModelRef{{"a", "1"}, {"b", "1"}})
	size := models[ModelRef{"a", "1"}].size
	_, ts := startMulti(t, loader, MultiOptions{CacheBytes: size - 1})
	code, b := ts.post(t, "/v2/repository/models/a/load", "")
	if code != http.StatusInsufficientStorage || !strings.Contains(string(b), "--model-cache-bytes") {
		t.Fatalf("load of a model larger than the cache: %d %s", code, b)
	}
	if v := metricValue(t, ts, "hpcml_serve_model_load_failures_total"); v != 1 {
		t.Fatalf("load failures %v, want 1", v)
	}
}

// TestMultiModelLoadFailure: an artefact that is not ONNX fails its
// requests with the reason, and is tried again on the next request.
func TestMultiModelLoadFailure(t *testing.T) {
	loader, _, root := writeRepoDir(t, []ModelRef{{"good", "1"}})
	dir := filepath.Join(root, "models", "bad", "1")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "model.onnx"), []byte("not onnx"), 0o644)
	cl := &countingLoader{Loader: loader, loads: map[string]int{}}
	_, ts := startMulti(t, cl, MultiOptions{})
	for range 2 {
		code, b := ts.post(t, "/v2/models/bad/infer", `{}`)
		if code != 500 || !strings.Contains(string(b), "cannot load the model") {
			t.Fatalf("bad model: %d %s", code, b)
		}
	}
	if n := cl.count("bad", "1"); n != 2 {
		t.Fatalf("a failed load is not remembered: want 2 attempts, got %d", n)
	}
}

// TestMultiModelUnloadInFlight: an unload while a request computes takes
// the model out of the cache at once (the index says so, a new request
// loads it again) and frees it only when that request is answered —
// rightly.
func TestMultiModelUnloadInFlight(t *testing.T) {
	loader, models := writeRepo(t, []ModelRef{{"a", "1"}})
	gate := &recordingModel{started: make(chan struct{}, 4), gate: make(chan struct{})}
	cl := &countingLoader{Loader: loader, loads: map[string]int{}, gates: map[string]*recordingModel{"a": gate}}
	_, ts := startMulti(t, cl, MultiOptions{})
	x := randomData(9, 4)
	want := direct(t, models[ModelRef{"a", "1"}].ref, "input", []int{1, 4}, x)
	done := make(chan []float32, 1)
	go func() {
		_, got, _ := inferModel(t, ts, "/v2/models/a/infer", x)
		done <- got
	}()
	<-gate.started
	if code, b := ts.post(t, "/v2/repository/models/a/unload", ""); code != 200 || !strings.Contains(string(b), `"unloaded":["1"]`) {
		t.Fatalf("unload: %d %s", code, b)
	}
	if st := repoIndex(t, ts, "")["a:1"].State; st != stateUnavailable {
		t.Fatalf("after the unload the index says %s", st)
	}
	// Still held by its request: counted, not yet unloaded.
	if b, u := metricValue(t, ts, "hpcml_serve_model_cache_bytes"), metricValue(t, ts, "hpcml_serve_model_unloads_total"); b != float64(models[ModelRef{"a", "1"}].size) || u != 0 {
		t.Fatalf("with its request in flight: cache bytes %v, unloads %v; want the model's bytes and 0", b, u)
	}
	close(gate.gate)
	sameFloats(t, "a", <-done, want.Data)
	// The hold ends just after the answer is written.
	waitFor(t, "the model to be freed", func() bool {
		return metricValue(t, ts, "hpcml_serve_model_cache_bytes") == 0 && metricValue(t, ts, "hpcml_serve_model_unloads_total") == 1
	})
	// The next request loads it again.
	if code, got, _ := inferModel(t, ts, "/v2/models/a/infer", x); code != 200 {
		t.Fatalf("after the unload: %d", code)
	} else {
		sameFloats(t, "a again", got, want.Data)
	}
	if n := cl.count("a", "1"); n != 2 {
		t.Fatalf("%d loads, want 2", n)
	}
}

// TestMultiModelEvictsOnlyWhatItMust: a cache with room for three and a
// half models, full with three, evicts one — the least recently used —
// to load a fourth, not every idle model.
func TestMultiModelEvictsOnlyWhatItMust(t *testing.T) {
	refs := []ModelRef{{"a", "1"}, {"b", "1"}, {"c", "1"}, {"d", "1"}}
	loader, models := writeRepo(t, refs)
	size := models[refs[0]].size
	_, ts := startMulti(t, loader, MultiOptions{CacheBytes: 3*size + size/2})
	for _, r := range refs {
		if code, _, _ := inferModel(t, ts, "/v2/models/"+r.Name+"/infer", randomData(1, 4)); code != 200 {
			t.Fatalf("%s: %d", r.Name, code)
		}
	}
	idx := repoIndex(t, ts, "")
	for name, want := range map[string]string{"a:1": stateUnavailable, "b:1": stateReady, "c:1": stateReady, "d:1": stateReady} {
		if idx[name].State != want {
			t.Fatalf("%s is %s, want %s (index %+v)", name, idx[name].State, want, idx)
		}
	}
	if got := metricValue(t, ts, "hpcml_serve_model_cache_bytes"); got != float64(3*size) {
		t.Fatalf("cache bytes %v, want %d", got, 3*size)
	}
}

// TestMultiModelLoadsOneAtATime: cold requests for many models at once
// load them one after the other (the budget is only checked when a load
// ends), and every request is answered by its own model.
func TestMultiModelLoadsOneAtATime(t *testing.T) {
	var refs []ModelRef
	for i := range 6 {
		refs = append(refs, ModelRef{Name: fmt.Sprintf("cold%d", i), Version: "1"})
	}
	loader, models := writeRepo(t, refs)
	cl := &countingLoader{Loader: loader, loads: map[string]int{}}
	_, ts := startMulti(t, cl, MultiOptions{CacheBytes: 2 * models[refs[0]].size})
	var wg sync.WaitGroup
	for _, r := range refs {
		wg.Go(func() {
			x := randomData(3, 4)
			code, got, _ := inferModel(t, ts, "/v2/models/"+r.Name+"/infer", x)
			if code != 200 {
				t.Errorf("%s: %d", r.Name, code)
				return
			}
			sameFloats(t, r.Name, got, direct(t, models[r].ref, "input", []int{1, 4}, x).Data)
		})
	}
	wg.Wait()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.most != 1 || len(cl.loads) != len(refs) {
		t.Fatalf("%d loads ran at once at most, %d models loaded; want 1 and %d", cl.most, len(cl.loads), len(refs))
	}
}
