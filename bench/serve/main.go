// Command serve measures `hpcml serve`: the highest request rate it
// sustains over the Open Inference Protocol's JSON REST API with a p99
// latency within a bound (10 ms), found by stepping the rate up, with
// vegeta (as a library) as the load generator on loopback.
//
//	go run ./bench/serve -hpcml bin/hpcml [-step 3s] [-p99 10ms] [-budget 5m]
//
// Scenarios, each a fresh server process on 127.0.0.1:
//
//	mlp/hpcml        a small MLP (32 → 64 → 10, softmax) behind `hpcml serve`, one row per request
//	mlp/net-http     the peer: the same model's Graph.Run behind a plain net/http handler
//	                 with encoding/json (this binary, re-executed), the same requests
//	cnn/unbatched    a small CNN on 1×16×16 images (conv 8×3×3, ReLU, dense 512, ReLU,
//	                 dense 10, softmax) behind `hpcml serve`, no batching
//	cnn/batched      the same with dynamic batching (--max-batch 32 --max-queue-delay 2ms)
//	cnn/batched-greedy  --max-batch 32 with no queue delay (Triton's default): a batch
//	                 is whatever queued while the previous ones computed
//	null/net-http    the machine's ceiling: a net/http server (this binary, re-executed)
//	                 that reads each request and answers the MLP's response bytes, fixed,
//	                 without decoding or computing anything. No server of a model can beat
//	                 it with the same load generator on the same cores.
//
// The CNN's cost is mostly its dense head, whose weights a batch reads once
// for all its rows: that is where batching pays on a CPU. (A network whose
// cost is its convolutions gains little: the engine's convolutions already
// run as matrix products as wide as the image at batch 1.)
//
// For each scenario the rate starts at -start-mlp / -start-cnn requests/s and
// grows by -factor per step of -step seconds while a step passes: every
// request succeeds, the p99 latency is ≤ -p99 and the achieved throughput is
// ≥ 95 % of the rate asked. After the first failed step one more step tries
// the midpoint. The result is the highest passing rate. The whole run is
// bounded by -budget (each scenario gets an equal share). The machine may be
// shared, and the load generator shares its CPUs with the server: see
// docs/benchmarks.md for how the numbers were taken.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/hpcml/hpcml/bench/internal/load"
	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/onnx"
)

// childEnv makes this binary the plain net/http peer server; nullEnv
// the server that answers without a model.
const (
	childEnv = "HPCML_BENCH_SERVE_PEER"
	nullEnv  = "HPCML_BENCH_SERVE_NULL"
)

func main() {
	if os.Getenv(nullEnv) != "" {
		if err := runNull(); err != nil {
			fmt.Fprintln(os.Stderr, "null server:", err)
			os.Exit(1)
		}
		return
	}
	if path := os.Getenv(childEnv); path != "" {
		if err := runPeer(path); err != nil {
			fmt.Fprintln(os.Stderr, "peer:", err)
			os.Exit(1)
		}
		return
	}
	hpcml := flag.String("hpcml", "bin/hpcml", "the hpcml binary")
	step := flag.Duration("step", 3*time.Second, "duration of each rate step")
	bound := flag.Duration("p99", 10*time.Millisecond, "p99 latency bound")
	budget := flag.Duration("budget", 5*time.Minute, "bound on the whole run")
	factor := flag.Float64("factor", 1.3, "rate growth per passing step")
	startMLP := flag.Float64("start-mlp", 2000, "first rate for the MLP scenarios (requests/s)")
	startCNN := flag.Float64("start-cnn", 200, "first rate for the CNN scenarios (requests/s)")
	only := flag.String("only", "", "run only scenarios whose name contains this")
	out := flag.String("out", "", "write the results as JSON to this file")
	flag.Parse()
	if err := run(*hpcml, *step, *bound, *budget, *factor, *startMLP, *startCNN, *only, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench/serve:", err)
		os.Exit(1)
	}
}

type scenario struct {
	Name  string
	model string // "mlp" or "cnn"
	peer  bool
	null  bool
	args  []string // extra hpcml serve flags
	start float64
}

type stepResult struct {
	Rate       float64       `json:"rate"`
	Throughput float64       `json:"throughput"`
	Success    float64       `json:"success"`
	P50        time.Duration `json:"p50_ns"`
	P99        time.Duration `json:"p99_ns"`
	// ServerCPU is the server process's CPU time (user + system) per
	// request during the step: less sensitive to a busy machine than
	// the rates, it shows what a request costs the server.
	ServerCPU time.Duration `json:"server_cpu_per_request_ns"`
	Pass      bool          `json:"pass"`
}

type scenarioResult struct {
	Name  string       `json:"name"`
	Best  *stepResult  `json:"best"`
	Steps []stepResult `json:"steps"`
}

func run(hpcml string, step, bound, budget time.Duration, factor, startMLP, startCNN float64, only, outPath string) error {
	if _, err := os.Stat(hpcml); err != nil {
		return fmt.Errorf("the hpcml binary: %w (make build, or -hpcml)", err)
	}
	dir, err := os.MkdirTemp("", "hpcml-bench-serve-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	mlp, err := writeModel(dir, "mlp", nn.Spec{Input: []int{32}, Layers: []nn.LayerSpec{
		{Type: "dense", Units: 64}, {Type: "relu"}, {Type: "dense", Units: 10}}})
	if err != nil {
		return err
	}
	cnn, err := writeModel(dir, "cnn", nn.Spec{Input: []int{1, 16, 16}, Layers: []nn.LayerSpec{
		{Type: "conv2d", Filters: 8, Kernel: 3}, {Type: "relu"},
		{Type: "flatten"}, {Type: "dense", Units: 512}, {Type: "relu"}, {Type: "dense", Units: 10}}})
	if err != nil {
		return err
	}
	models := map[string]string{"mlp": mlp, "cnn": cnn}
	bodies := map[string][][]byte{"mlp": load.OIPBodies(onnx.InputName, []int{1, 32}), "cnn": load.OIPBodies(onnx.InputName, []int{1, 1, 16, 16})}
	all := []scenario{
		{Name: "mlp/hpcml", model: "mlp", start: startMLP},
		{Name: "mlp/net-http", model: "mlp", peer: true, start: startMLP},
		{Name: "cnn/unbatched", model: "cnn", start: startCNN},
		{Name: "cnn/batched", model: "cnn", args: []string{"--max-batch", "32", "--max-queue-delay", "2ms"}, start: startCNN},
		{Name: "cnn/batched-greedy", model: "cnn", args: []string{"--max-batch", "32", "--max-queue-delay", "0s"}, start: startCNN},
		{Name: "null/net-http", model: "mlp", null: true, start: startMLP},
	}
	var scenarios []scenario
	for _, s := range all {
		if strings.Contains(s.Name, only) {
			scenarios = append(scenarios, s)
		}
	}
	if len(scenarios) == 0 {
		return fmt.Errorf("no scenario matches -only %q", only)
	}
	share := budget / time.Duration(len(scenarios))
	fmt.Printf("bench/serve: p99 bound %v, steps of %v, ×%.2f per step, %v per scenario; GOMAXPROCS %d\n",
		bound, step, factor, share.Round(time.Second), runtime.GOMAXPROCS(0))
	var results []scenarioResult
	for _, s := range scenarios {
		r, err := runScenario(s, hpcml, models[s.model], bodies[s.model], step, bound, factor, time.Now().Add(share))
		if err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		results = append(results, r)
	}
	fmt.Println()
	fmt.Printf("%-16s %14s %10s %10s %14s\n", "scenario", "max req/s", "p50", "p99", "server CPU/req")
	best := map[string]float64{}
	for _, r := range results {
		if r.Best == nil {
			fmt.Printf("%-16s %14s\n", r.Name, "none passed")
			continue
		}
		best[r.Name] = r.Best.Throughput
		fmt.Printf("%-16s %14.0f %10v %10v %14v\n", r.Name, r.Best.Throughput, r.Best.P50.Round(time.Microsecond), r.Best.P99.Round(time.Microsecond), r.Best.ServerCPU.Round(time.Microsecond))
	}
	if a, b := best["mlp/hpcml"], best["mlp/net-http"]; a > 0 && b > 0 {
		fmt.Printf("MLP: hpcml serve %.0f req/s = %.2f× the plain net/http peer (goal ≥ 15000 req/s)\n", a, a/b)
	}
	if a := best["null/net-http"]; a > 0 {
		fmt.Printf("ceiling: a net/http server that answers without a model sustains %.0f req/s at p99 ≤ %v on this machine\n", a, bound)
	}
	if a, b := max(best["cnn/batched"], best["cnn/batched-greedy"]), best["cnn/unbatched"]; a > 0 && b > 0 {
		fmt.Printf("CNN: dynamic batching (the better of its two settings) %.2f× the unbatched throughput at p99 ≤ %v (goal ≥ 3×)\n", a/b, bound)
	}
	if outPath != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		return os.WriteFile(outPath, b, 0o644)
	}
	return nil
}

// writeModel exports spec with seeded weights as ONNX.
func writeModel(dir, name string, spec nn.Spec) (string, error) {
	m, err := nn.Build(spec, 1)
	if err != nil {
		return "", err
	}
	data, err := onnx.Export(m, onnx.ExportOptions{Head: "softmax"})
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name+".onnx")
	return p, os.WriteFile(p, data, 0o644)
}

func runScenario(s scenario, hpcml, model string, bodies [][]byte, step, bound time.Duration, factor float64, deadline time.Time) (scenarioResult, error) {
	res := scenarioResult{Name: s.Name}
	var cmd *exec.Cmd
	if s.peer || s.null {
		self, err := os.Executable()
		if err != nil {
			return res, err
		}
		cmd = exec.Command(self)
		cmd.Env = append(os.Environ(), childEnv+"="+model)
		if s.null {
			cmd.Env = append(os.Environ(), nullEnv+"=1")
		}
	} else {
		cmd = exec.Command(hpcml, append([]string{"serve", "--model", model, "--name", s.model, "--listen", "127.0.0.1:0"}, s.args...)...)
		cmd.Env = os.Environ()
	}
	addr, err := load.StartServe(cmd)
	if err != nil {
		return res, err
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	url := "http://" + addr + "/v2/models/" + s.model + "/infer"
	fmt.Printf("\n%s (%s)\n", s.Name, strings.Join(cmd.Args, " "))
	// Warm-up: connections, heap sizes.
	attack(url, bodies, s.start/2, step/2)
	rate, lastPass, lastFail := s.start, 0.0, 0.0
	for time.Now().Add(step).Before(deadline) {
		cpu0 := load.ProcessCPU(cmd.Process.Pid)
		r := attack(url, bodies, rate, step)
		if n := r.Throughput * step.Seconds(); n > 0 && cpu0 >= 0 {
			r.ServerCPU = time.Duration(float64(load.ProcessCPU(cmd.Process.Pid)-cpu0) / n)
		}
		r.Pass = r.Success == 1 && r.P99 <= bound && r.Throughput >= 0.95*rate
		res.Steps = append(res.Steps, r)
		verdict := "fail"
		if r.Pass {
			verdict = "pass"
			if res.Best == nil || r.Throughput > res.Best.Throughput {
				rr := r
				res.Best = &rr
			}
		}
		fmt.Printf("  rate %7.0f/s: throughput %7.0f/s, success %5.1f%%, p50 %8v, p99 %8v, server CPU %6v/request  %s\n",
			rate, r.Throughput, 100*r.Success, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.ServerCPU.Round(time.Microsecond), verdict)
		switch {
		case r.Pass:
			lastPass = rate
			if lastFail > 0 {
				return res, nil // the midpoint passed: done
			}
			rate *= factor
		case lastPass == 0:
			rate /= 2 // the start was already too much
			if rate < 10 {
				return res, nil
			}
		case lastFail == 0:
			lastFail = rate
			rate = (lastPass + lastFail) / 2
		default:
			return res, nil
		}
	}
	return res, nil
}

// runPeer is the plain net/http server: encoding/json in and out, the same
// onnx.Graph.Run, nothing else (no validation beyond the graph's own, no
// batching, no metrics).
func runPeer(modelPath string) error {
	data, err := os.ReadFile(modelPath)
	if err != nil {
		return err
	}
	g, err := onnx.Load(data)
	if err != nil {
		return err
	}
	type tensor struct {
		Name     string    `json:"name"`
		Shape    []int     `json:"shape"`
		DataType string    `json:"datatype"`
		Data     []float32 `json:"data"`
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2/models/{m}/infer", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID     string   `json:"id,omitempty"`
			Inputs []tensor `json:"inputs"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
			return
		}
		in := map[string]*nn.Tensor{}
		for _, t := range req.Inputs {
			in[t.Name] = &nn.Tensor{Shape: t.Shape, Data: t.Data}
		}
		outs, err := g.Run(r.Context(), in)
		if err != nil {
			http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
			return
		}
		resp := struct {
			ModelName    string   `json:"model_name"`
			ModelVersion string   `json:"model_version"`
			ID           string   `json:"id,omitempty"`
			Outputs      []tensor `json:"outputs"`
		}{ModelName: r.PathValue("m"), ModelVersion: "1", ID: req.ID}
		for _, o := range g.Outputs() {
			t := outs[o.Name]
			resp.Outputs = append(resp.Outputs, tensor{Name: o.Name, Shape: t.Shape, DataType: "FP32", Data: t.Data})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	})
	return serveUntilSignal(mux, "peer")
}

// runNull serves fixed answers: the request's body is read and dropped,
// the response is the MLP's shape of answer (ten probabilities), written
// as bytes prepared once.
func runNull() error {
	answer := []byte(`{"model_name":"mlp","model_version":"1","outputs":[{"name":"probabilities","shape":[1,10],"datatype":"FP32",` +
		`"data":[0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1]}]}`)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2/models/{m}/infer", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	})
	return serveUntilSignal(mux, "null server")
}

// serveUntilSignal serves h on a free loopback port, printing the address
// as StartServe expects, until SIGTERM.
func serveUntilSignal(h http.Handler, what string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s serving addr=%s\n", what, ln.Addr())
	srv := &http.Server{Handler: h}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		<-sig
		srv.Shutdown(context.Background())
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// attack runs one step of load and summarises it.
func attack(url string, bodies [][]byte, rate float64, d time.Duration) stepResult {
	m := load.Attack(url, http.Header{"Content-Type": {"application/json"}}, bodies, rate, d, 512, "step")
	return stepResult{Rate: rate, Throughput: m.Throughput, Success: m.Success, P50: m.Latencies.P50, P99: m.Latencies.P99}
}
