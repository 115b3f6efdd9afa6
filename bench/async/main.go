// Command async measures asynchronous inference end to end: requests
// submitted at a steady rate to POST /endpoints/NAME/async-invocations,
// each timed from its submission to its result object (the moment the
// server ended the request, which is after the object was written, as
// its webhook notice reports), against the same model's synchronous
// /invocations through the gateway at the same rate (the same replica).
//
//	go run ./bench/async -hpcml bin/hpcml [-rate 100] [-duration 20s] [-out FILE]
//
// The model is bench/serve's small MLP (32 → 64 → 10, softmax), one row
// per request, one replica with --cpus 1. The ratio of async to sync
// latency is the price of the durable queue: an inline payload stored in
// the server's storage, a SQLite insert, a lease, the payload streamed
// from storage, the answer written to storage and the row's conditional
// update. Throughput is completed requests per second over the run.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hpcml/hpcml/bench/internal/load"
	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/deploy"
)

func main() {
	hpcml := flag.String("hpcml", "bin/hpcml", "the hpcml binary")
	rate := flag.Int("rate", 100, "requests per second, the same for both paths")
	duration := flag.Duration("duration", 20*time.Second, "load per path")
	out := flag.String("out", "", "write the results as JSON to this file")
	flag.Parse()
	if err := run(*hpcml, *rate, *duration, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench/async:", err)
		os.Exit(1)
	}
}

// Result is one path's figures.
type Result struct {
	Path       string        `json:"path"`
	Requests   int           `json:"requests"`
	Succeeded  int           `json:"succeeded"`
	Throughput float64       `json:"throughput"`
	P50        time.Duration `json:"p50_ns"`
	P90        time.Duration `json:"p90_ns"`
	P99        time.Duration `json:"p99_ns"`
}

func (r Result) String() string {
	us := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	return fmt.Sprintf("%-6s %5d requests, %5d ok, %7.1f/s, p50 %9v, p90 %9v, p99 %9v", r.Path, r.Requests, r.Succeeded,
		r.Throughput, us(r.P50), us(r.P90), us(r.P99))
}

// bodies are /invocations bodies of one random row of 32 features.
func bodies() [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var out [][]byte
	for range 64 {
		row := make([]float32, 32)
		for i := range row {
			row[i] = float32(rng.NormFloat64())
		}
		b, _ := json.Marshal(map[string]any{"instances": [][]float32{row}})
		out = append(out, b)
	}
	return out
}

func run(hpcml string, rate int, d time.Duration, outFile string) error {
	dir, err := os.MkdirTemp("", "hpcml-bench-async-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	port, err := load.FreePort()
	if err != nil {
		return err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	srv, err := load.StartServer(ctx, hpcml, filepath.Join(dir, "data"), strings.TrimPrefix(base, "http://"), nil, "--cpus", "2")
	if err != nil {
		return err
	}
	c := srv.Client
	defer func() {
		c.DeleteEndpoint(ctx, "bench")
		time.Sleep(2 * time.Second) // the replica drains and stops
		srv.Stop()
	}()
	token := srv.Token

	// A webhook receiver: each notice carries the request's end.
	var mu sync.Mutex
	ended := map[string]time.Time{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hook := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n deploy.Notice
		if json.NewDecoder(r.Body).Decode(&n) == nil && n.Status == "succeeded" {
			mu.Lock()
			ended[n.InferenceID] = n.EndedAt
			mu.Unlock()
		}
	})}
	go hook.Serve(ln)
	defer hook.Close()

	modelPath, err := load.SmallMLP(dir)
	if err != nil {
		return err
	}
	cli := load.CLI(hpcml, base, token)
	if err := cli("model", "register", "mlp", "--artifact", modelPath); err != nil {
		return err
	}
	if err := cli("endpoint", "create", "bench", "--model", "mlp:1", "--cpus", "1", "--async", "--async-concurrency", "8",
		"--webhook", "http://"+ln.Addr().String()+"/done", "--wait"); err != nil {
		return err
	}
	bs := bodies()
	fmt.Printf("bench/async: %d req/s for %v per path; GOMAXPROCS %d; %s; load %s\n", rate, d, runtime.GOMAXPROCS(0),
		load.CPUModel(), load.LoadAvg())

	// Synchronous: the same replica through the gateway's /invocations.
	hdr := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
	url := base + "/endpoints/bench/invocations"
	load.Attack(url, hdr, bs, float64(rate), min(d/4, 2*time.Second), 64, "warm-up")
	vm := load.Attack(url, hdr, bs, float64(rate), d, 64, "sync")
	syncRes := Result{Path: "sync", Requests: int(vm.Requests), Succeeded: int(float64(vm.Requests) * vm.Success),
		Throughput: vm.Throughput, P50: vm.Latencies.P50, P90: vm.Latencies.P90, P99: vm.Latencies.P99}
	fmt.Println(" ", syncRes)

	asyncRes, err := runAsync(ctx, c, "bench", bs, rate, d, func() map[string]time.Time {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(ended)
	})
	if err != nil {
		return err
	}
	fmt.Println(" ", asyncRes)
	if syncRes.P50 > 0 {
		fmt.Printf("  async/sync latency: p50 %.1f×, p99 %.1f×; async throughput %.2f of the rate asked\n",
			float64(asyncRes.P50)/float64(syncRes.P50), float64(asyncRes.P99)/float64(syncRes.P99), asyncRes.Throughput/float64(rate))
	}
	if outFile != "" {
		b, _ := json.MarshalIndent(map[string]any{"rate": rate, "duration_s": d.Seconds(), "machine": load.Machine(),
			"version": load.TreeVersion(), "results": []Result{syncRes, asyncRes}}, "", "  ")
		return os.WriteFile(outFile, b, 0o644)
	}
	return nil
}

// runAsync submits at rate for d (open loop: a slow answer does not slow
// the submissions), then waits for every accepted request's notice, and
// times each from just before its submission to its end.
func runAsync(ctx context.Context, c *client.Client, ep string, bs [][]byte, rate int, d time.Duration,
	ended func() map[string]time.Time) (Result, error) {
	var mu sync.Mutex
	sent := map[string]time.Time{}
	failed := 0
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	start := time.Now()
	for i := 0; time.Since(start) < d; i++ {
		<-tick.C
		wg.Add(1)
		go func(body []byte) {
			defer wg.Done()
			t0 := time.Now()
			acc, err := c.InvokeAsync(ctx, ep, bytes.NewReader(body), client.AsyncOptions{ContentType: "application/json"})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			sent[acc.InferenceID] = t0
		}(bs[i%len(bs)])
	}
	wg.Wait()
	deadline := time.Now().Add(2*d + time.Minute)
	var got map[string]time.Time
	for {
		got = ended()
		done := 0
		for id := range sent {
			if _, ok := got[id]; ok {
				done++
			}
		}
		if done == len(sent) {
			break
		}
		if time.Now().After(deadline) {
			return Result{}, fmt.Errorf("%d of %d async requests ended in time", done, len(sent))
		}
		time.Sleep(100 * time.Millisecond)
	}
	var lat []time.Duration
	last := start
	for id, t0 := range sent {
		e := got[id]
		lat = append(lat, e.Sub(t0))
		if e.After(last) {
			last = e
		}
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	return Result{Path: "async", Requests: len(sent) + failed, Succeeded: len(sent),
		Throughput: float64(len(sent)) / last.Sub(start).Seconds(), P50: pct(0.50), P90: pct(0.90), P99: pct(0.99)}, nil
}
