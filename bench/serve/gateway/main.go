// Command gateway measures the latency the endpoint gateway adds: the same
// small MLP replica (an `hpcml serve` job of a real endpoint) is called
// directly and through `hpcml server`'s gateway (/endpoints/NAME/v2/...),
// at the same fixed request rate, alternately, with vegeta (as a library)
// on loopback. The difference of the p50 (and p99) latencies is what the
// gateway costs a request: its routing, its proxy hop and its stats.
//
//	go run ./bench/serve/gateway -hpcml bin/hpcml [-rate 1000] [-step 5s] [-rounds 3]
//
// A peer runs in the same rounds: this binary re-executed as a plain
// net/http server with httputil.ReverseProxy in front of the same replica,
// so the gateway's cost can be read against what any proxy hop costs on
// the machine. Each proxy's CPU time per request is reported too (less
// sensitive to a busy machine than latencies).
//
// A floor runs in the same rounds too: a relay (this binary again) that
// copies bytes between each client connection and one of its own to the
// replica without parsing HTTP — what one more hop costs on this machine
// before any proxy does anything.
//
// The goal (ARCHITECTURE.md §7): the gateway adds ≤ 150 µs at p50. The
// run is bounded: rounds × 3 × step of load, plus start-up.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hpcml/hpcml/bench/internal/load"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/onnx"
)

// peerEnv makes this binary the peer: a plain net/http server with
// httputil.ReverseProxy in front of the replica (the proxy every Go
// programmer would write), so that the gateway's added latency can be
// read against what any extra hop costs on this machine.
const peerEnv = "HPCML_BENCH_GATEWAY_PEER"

// relayEnv makes this binary the byte relay to the replica at its value.
const relayEnv = "HPCML_BENCH_GATEWAY_RELAY"

func main() {
	if target := os.Getenv(relayEnv); target != "" {
		if err := runRelay(target); err != nil {
			fmt.Fprintln(os.Stderr, "relay:", err)
			os.Exit(1)
		}
		return
	}
	if target := os.Getenv(peerEnv); target != "" {
		if err := runPeer(target); err != nil {
			fmt.Fprintln(os.Stderr, "peer:", err)
			os.Exit(1)
		}
		return
	}
	hpcml := flag.String("hpcml", "bin/hpcml", "the hpcml binary")
	rate := flag.Int("rate", 1000, "requests per second, the same for both paths")
	step := flag.Duration("step", 5*time.Second, "load per path and round")
	rounds := flag.Int("rounds", 3, "rounds (direct, then gateway)")
	out := flag.String("out", "", "write the results as JSON to this file")
	flag.Parse()
	if err := run(*hpcml, *rate, *step, *rounds, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench/serve/gateway:", err)
		os.Exit(1)
	}
}

type sample struct {
	Path       string        `json:"path"`
	Round      int           `json:"round"`
	Throughput float64       `json:"throughput"`
	Success    float64       `json:"success"`
	P50        time.Duration `json:"p50_ns"`
	P99        time.Duration `json:"p99_ns"`
	// ServerCPU is the hpcml server's CPU time per request during a
	// gateway round: what the gateway costs, less sensitive to a busy
	// machine than latencies.
	ServerCPU time.Duration `json:"server_cpu_per_request_ns,omitempty"`
}

func run(hpcml string, rate int, step time.Duration, rounds int, outPath string) error {
	if _, err := os.Stat(hpcml); err != nil {
		return fmt.Errorf("the hpcml binary: %w (make build, or -hpcml)", err)
	}
	dir, err := os.MkdirTemp("", "hpcml-bench-gateway-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	port, err := load.FreePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	srv, err := load.StartServer(ctx, hpcml, filepath.Join(dir, "data"), addr, nil, "--cpus", "2")
	if err != nil {
		return err
	}
	base, token, c := "http://"+addr, srv.Token, srv.Client
	defer func() {
		c.DeleteEndpoint(ctx, "gw")
		time.Sleep(2 * time.Second) // the replica drains and stops
		srv.Stop()
	}()

	// The MLP of bench/serve: 32 → 64 → 10, softmax.
	modelPath, err := load.SmallMLP(dir)
	if err != nil {
		return err
	}
	cli := load.CLI(hpcml, base, token)
	if err := cli("model", "register", "mlp", "--artifact", modelPath); err != nil {
		return err
	}
	if err := cli("endpoint", "create", "gw", "--model", "mlp:1", "--cpus", "1", "--wait"); err != nil {
		return err
	}
	st, err := c.GetEndpoint(ctx, "gw")
	if err != nil {
		return err
	}
	if len(st.Replicas) != 1 || st.Replicas[0].Addr == "" {
		return fmt.Errorf("replica not found: %+v", st.Replicas)
	}
	j, err := c.GetJob(ctx, strconv.FormatInt(st.Replicas[0].Job, 10))
	if err != nil {
		return err
	}
	replicaToken := j.Spec.Env[job.ServeTokenEnv]
	direct := "http://" + st.Replicas[0].Addr + "/v2/models/mlp/infer"
	viaGateway := base + "/endpoints/gw/v2/models/mlp/infer"
	bodies := load.OIPBodies(onnx.InputName, []int{1, 32})
	peer, peerURL, err := startPeer(peerEnv+"=http://"+st.Replicas[0].Addr, "HPCML_BENCH_GATEWAY_TOKEN="+replicaToken)
	if err != nil {
		return err
	}
	defer func() { peer.Process.Kill(); peer.Wait() }()
	viaPeer := peerURL + "/v2/models/mlp/infer"
	relay, relayURL, err := startPeer(relayEnv + "=" + st.Replicas[0].Addr)
	if err != nil {
		return err
	}
	defer func() { relay.Process.Kill(); relay.Wait() }()
	viaRelay := relayURL + "/v2/models/mlp/infer"

	fmt.Printf("bench/serve/gateway: %d req/s, %v per path and round, %d rounds; GOMAXPROCS %d\n", rate, step, rounds, runtime.GOMAXPROCS(0))
	fmt.Printf("  replica %s (job %d), gateway %s\n", direct, j.ID, viaGateway)
	attack(direct, replicaToken, bodies, rate, step/2) // warm-up: connections, heaps
	attack(viaGateway, token, bodies, rate, step/2)
	attack(viaPeer, "", bodies, rate, step/2)
	attack(viaRelay, replicaToken, bodies, rate, step/2)
	var samples []sample
	for r := 1; r <= rounds; r++ {
		for _, p := range []struct{ name, url, tok string }{{"direct", direct, replicaToken}, {"gateway", viaGateway, token},
			{"peer", viaPeer, ""}, {"relay", viaRelay, replicaToken}} {
			pid := srv.Pid()
			switch p.name {
			case "peer":
				pid = peer.Process.Pid
			case "relay":
				pid = relay.Process.Pid
			}
			cpu0 := load.ProcessCPU(pid)
			s := attack(p.url, p.tok, bodies, rate, step)
			s.Path, s.Round = p.name, r
			if n := s.Throughput * step.Seconds(); p.name != "direct" && n > 0 && cpu0 >= 0 {
				s.ServerCPU = time.Duration(float64(load.ProcessCPU(pid)-cpu0) / n)
			}
			samples = append(samples, s)
			fmt.Printf("  round %d %-8s throughput %7.0f/s, success %5.1f%%, p50 %8v, p99 %8v", r, p.name, s.Throughput,
				100*s.Success, s.P50.Round(time.Microsecond), s.P99.Round(time.Microsecond))
			if s.ServerCPU > 0 {
				fmt.Printf(", server CPU %v/request", s.ServerCPU.Round(time.Microsecond))
			}
			fmt.Println()
		}
	}
	med := func(path string, f func(sample) time.Duration) time.Duration {
		var v []time.Duration
		for _, s := range samples {
			if s.Path == path {
				v = append(v, f(s))
			}
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	p50 := func(s sample) time.Duration { return s.P50 }
	p99 := func(s sample) time.Duration { return s.P99 }
	d50, g50, d99, g99 := med("direct", p50), med("gateway", p50), med("direct", p99), med("gateway", p99)
	q50, q99 := med("peer", p50), med("peer", p99)
	r50, r99 := med("relay", p50), med("relay", p99)
	us := func(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
	fmt.Printf("\nmedian of %d rounds: direct p50 %v p99 %v; gateway p50 %v p99 %v; peer proxy p50 %v p99 %v; relay p50 %v p99 %v\n", rounds,
		us(d50), us(d99), us(g50), us(g99), us(q50), us(q99), us(r50), us(r99))
	fmt.Printf("the gateway adds %v at p50 (goal ≤ 150µs) and %v at p99; a plain httputil.ReverseProxy adds %v and %v; "+
		"a byte relay (one more hop, no HTTP) adds %v and %v\n",
		us(g50-d50), us(g99-d99), us(q50-d50), us(q99-d99), us(r50-d50), us(r99-d99))
	if outPath != "" {
		b, _ := json.MarshalIndent(map[string]any{"samples": samples, "added_p50_ns": g50 - d50, "added_p99_ns": g99 - d99,
			"peer_added_p50_ns": q50 - d50, "peer_added_p99_ns": q99 - d99,
			"relay_added_p50_ns": r50 - d50, "relay_added_p99_ns": r99 - d99}, "", "  ")
		return os.WriteFile(outPath, b, 0o644)
	}
	return nil
}

// startPeer starts this binary with env (the peer proxy or the relay)
// and returns the URL it prints.
func startPeer(env ...string) (*exec.Cmd, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		return nil, "", fmt.Errorf("peer proxy: %w", err)
	}
	return cmd, "http://" + strings.TrimSpace(line), nil
}

// runPeer serves httputil.ReverseProxy to target on a free loopback port
// (printed on stdout), adding the replica's token.
func runPeer(target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	token := os.Getenv("HPCML_BENCH_GATEWAY_TOKEN")
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Header.Set("Authorization", "Bearer "+token)
		},
		Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	return http.Serve(ln, rp)
}

// runRelay copies bytes between each connection it accepts on a free
// loopback port (printed on stdout) and a connection of its own to the
// replica at addr, both ways, parsing nothing.
func runRelay(addr string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer u.Close()
			go io.Copy(u, c)
			io.Copy(c, u)
		}()
	}
}

// attack runs rate requests/s at url for d with the bearer token (none if
// empty) and summarises them.
func attack(url, token string, bodies [][]byte, rate int, d time.Duration) sample {
	hdr := http.Header{"Content-Type": {"application/json"}}
	if token != "" {
		hdr.Set("Authorization", "Bearer "+token)
	}
	m := load.Attack(url, hdr, bodies, float64(rate), d, 256, "gateway")
	return sample{Throughput: m.Throughput, Success: m.Success, P50: m.Latencies.P50, P99: m.Latencies.P99}
}
