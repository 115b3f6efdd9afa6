// Command multimodel measures `hpcml serve --multi-model`: the latency of
// a model's first request when it is not in the cache (the cold load:
// read from storage, import, check), of requests to a model the cache
// holds (warm), and of round-robin requests over more models than the
// cache holds (every request evicts one model and loads another), against
// the single-model server `hpcml serve --model` answering the same model.
//
//	go run ./bench/multimodel -hpcml bin/hpcml [-models 40] [-hidden 1024] [-requests 500] [-cache-models 8] [-o result.json]
//
// The models are MLPs (64 → hidden → hidden → 10, softmax), each with its
// own weights, in the registry's layout (models/NAME/1/model.onnx) in a
// file:// storage directory: the page cache holds them, so a cold load
// measures the server's own work (storage on S3 would add the object
// store's latency). One client sends one request at a time over a
// keep-alive connection, one row per request: latency, not throughput.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/hpcml/hpcml/bench/internal/load"
	"github.com/hpcml/hpcml/internal/onnx"
	"github.com/hpcml/hpcml/internal/serve/servetest"
)

// latencies summarises one scenario's request latencies.
type latencies struct {
	Name     string  `json:"name"`
	Requests int     `json:"requests"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	MeanMs   float64 `json:"mean_ms"`
	// Loads is how many models the server loaded during the scenario
	// (its hpcml_serve_model_loads_total moved by this much).
	Loads int `json:"loads"`
}

type report struct {
	Machine     string      `json:"machine"`
	CPU         string      `json:"cpu"`
	Hpcml       string      `json:"hpcml"`
	LoadAvg     string      `json:"load_avg"`
	Models      int         `json:"models"`
	Hidden      int         `json:"hidden"`
	ModelBytes  int64       `json:"model_bytes"`
	CacheModels int         `json:"cache_models"`
	Scenarios   []latencies `json:"scenarios"`
}

func main() {
	hpcml := flag.String("hpcml", "bin/hpcml", "the hpcml binary")
	models := flag.Int("models", 40, "models in the repository")
	hidden := flag.Int("hidden", 1024, "hidden width of each model (64 → hidden → hidden → 10)")
	requests := flag.Int("requests", 500, "requests of the warm and single-model scenarios")
	cacheModels := flag.Int("cache-models", 8, "models the cache holds (its budget is this many models' bytes)")
	out := flag.String("o", "", "write the report as JSON to this file")
	flag.Parse()
	if err := run(*hpcml, *models, *hidden, *requests, *cacheModels, *out); err != nil {
		fmt.Fprintln(os.Stderr, "multimodel:", err)
		os.Exit(1)
	}
}

func run(hpcml string, models, hidden, requests, cacheModels int, outPath string) error {
	if models < 2 || cacheModels < 1 || cacheModels >= models || requests < 1 {
		return fmt.Errorf("want -models ≥ 2, 1 ≤ -cache-models < -models, -requests ≥ 1")
	}
	dir, err := os.MkdirTemp("", "hpcml-bench-multimodel-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var size int64
	for i := range models {
		n, err := writeModel(dir, i, hidden)
		if err != nil {
			return err
		}
		size = n
	}
	rep := report{Machine: load.Machine(), CPU: load.CPUModel(), Hpcml: load.BuildVersion(hpcml, true),
		Models: models, Hidden: hidden, ModelBytes: size, CacheModels: cacheModels}
	fmt.Printf("%d models of %d bytes of tensors (64 → %d → %d → 10), cache of %d models\n", models, size, hidden, hidden, cacheModels)
	body := requestBody()
	hc := &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}

	// The multi-model server. Its cache's budget: cacheModels models,
	// and a half for slack (the tensors of every model are the same size).
	budget := size*int64(cacheModels) + size/2
	multi, addr, err := start(hpcml, "serve", "--multi-model", "--storage", "file://"+dir, "--model-cache-bytes",
		strconv.FormatInt(budget, 10), "--listen", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer stop(multi)
	base := "http://" + addr
	url := func(i int) string { return fmt.Sprintf("%s/v2/models/%s/versions/1/infer", base, modelName(i)) }

	// Cold: the first request to each of cacheModels models, one at a
	// time (the cache has room: no eviction in this one).
	cold, err := measure(hc, base, "cold (first request, model not loaded)", cacheModels, func(i int) string { return url(i) }, body)
	if err != nil {
		return err
	}
	// Warm: the same models, now loaded, in turn.
	warm, err := measure(hc, base, "warm (model in the cache)", requests, func(i int) string { return url(i % cacheModels) }, body)
	if err != nil {
		return err
	}
	// Churn: round robin over every model, more than the cache holds:
	// least recently used is the worst case, each request a load.
	churn, err := measure(hc, base, "churn (round robin over more models than the cache)", models, func(i int) string {
		return url((cacheModels + i) % models)
	}, body)
	if err != nil {
		return err
	}
	stop(multi)

	// The single-model server, the same model (model 0) and requests.
	single, addr, err := start(hpcml, "serve", "--model", filepath.Join(dir, "models", modelName(0), "1", "model.onnx"),
		"--name", modelName(0), "--model-version", "1", "--listen", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer stop(single)
	sbase := "http://" + addr
	one, err := measure(hc, "", "single-model server (hpcml serve --model)", requests, func(int) string {
		return sbase + "/v2/models/" + modelName(0) + "/infer"
	}, body)
	if err != nil {
		return err
	}
	rep.Scenarios = []latencies{cold, warm, churn, one}
	rep.LoadAvg = load.LoadAvg()
	fmt.Printf("\n%-55s %9s %9s %9s %9s %6s\n", "scenario", "requests", "p50 ms", "p99 ms", "mean ms", "loads")
	for _, s := range rep.Scenarios {
		fmt.Printf("%-55s %9d %9.3f %9.3f %9.3f %6d\n", s.Name, s.Requests, s.P50Ms, s.P99Ms, s.MeanMs, s.Loads)
	}
	fmt.Printf("load average %s\n", rep.LoadAvg)
	if outPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		return os.WriteFile(outPath, append(b, '\n'), 0o644)
	}
	return nil
}

func modelName(i int) string { return fmt.Sprintf("model-%03d", i) }

// writeModel writes model i (its own weights) in the registry's layout
// and returns the bytes of its tensors as the server counts them.
func writeModel(dir string, i, hidden int) (int64, error) {
	data, err := servetest.MLP(uint64(i), 0.05, "softmax", 64, hidden, hidden, 10)
	if err != nil {
		return 0, err
	}
	path := filepath.Join(dir, "models", modelName(i), "1", "model.onnx")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 0, err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return 0, err
	}
	g, err := onnx.Load(data)
	if err != nil {
		return 0, err
	}
	return g.TensorBytes(), nil
}

func requestBody() []byte {
	return load.OIPBodies("input", []int{1, 64})[0]
}

func start(hpcml string, args ...string) (*exec.Cmd, string, error) {
	cmd := exec.Command(hpcml, args...)
	cmd.Env = os.Environ()
	addr, err := load.StartServe(cmd)
	return cmd, addr, err
}

func stop(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}

// measure sends n requests one at a time (request i to url(i)) and
// summarises their latencies; with base set, it counts the loads the
// server made meanwhile from its metrics.
func measure(hc *http.Client, base, name string, n int, url func(i int) string, body []byte) (latencies, error) {
	loads0, err := loads(hc, base)
	if err != nil {
		return latencies{}, err
	}
	ms := make([]float64, 0, n)
	for i := range n {
		t0 := time.Now()
		resp, err := hc.Post(url(i), "application/json", bytes.NewReader(body))
		if err != nil {
			return latencies{}, fmt.Errorf("%s: %w", name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return latencies{}, fmt.Errorf("%s: request %d answered %d %s", name, i, resp.StatusCode, b)
		}
		ms = append(ms, float64(time.Since(t0).Microseconds())/1000)
	}
	loads1, err := loads(hc, base)
	if err != nil {
		return latencies{}, err
	}
	l := latencies{Name: name, Requests: n, Loads: loads1 - loads0}
	var sum float64
	for _, v := range ms {
		sum += v
	}
	l.MeanMs = load.Round(sum/float64(n), 3)
	slices.Sort(ms)
	l.P50Ms, l.P99Ms = load.Round(load.Pct(ms, 0.50), 3), load.Round(load.Pct(ms, 0.99), 3)
	return l, nil
}

// loads reads hpcml_serve_model_loads_total (0 without a base).
func loads(hc *http.Client, base string) (int, error) {
	if base == "" {
		return 0, nil
	}
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("hpcml_serve_model_loads_total ")); ok {
			f, err := strconv.ParseFloat(string(bytes.TrimSpace(v)), 64)
			return int(f), err
		}
	}
	return 0, fmt.Errorf("%s/metrics has no hpcml_serve_model_loads_total", base)
}
