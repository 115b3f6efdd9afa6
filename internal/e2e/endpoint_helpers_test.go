package e2e

import (
	"bytes"
	le "encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/hpcml/hpcml/internal/deploy"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
)

// fixedBatchONNX is a genuinely broken model of a kind exports really
// produce: it takes input [-1, features] but reshapes to a fixed batch of
// one, so it loads (the loader's trial run uses a batch of one) and
// answers single rows, and fails every request of a larger batch with an
// inference error (a 500 from hpcml serve).
func fixedBatchONNX(features int) []byte {
	str := func(b []byte, n protowire.Number, s string) []byte {
		b = protowire.AppendTag(b, n, protowire.BytesType)
		return protowire.AppendString(b, s)
	}
	msg := func(b []byte, n protowire.Number, m []byte) []byte {
		b = protowire.AppendTag(b, n, protowire.BytesType)
		return protowire.AppendBytes(b, m)
	}
	num := func(b []byte, n protowire.Number, v int64) []byte {
		b = protowire.AppendTag(b, n, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(v))
	}
	// ValueInfoProto{name, type: TypeProto{tensor_type{elem_type FLOAT,
	// shape [batch, features]}}}.
	valueInfo := func(name string, dims ...int64) []byte {
		var shape []byte
		for _, d := range dims {
			var dim []byte
			if d < 0 {
				dim = str(dim, 2, "batch") // dim_param
			} else {
				dim = num(dim, 1, d) // dim_value
			}
			shape = msg(shape, 1, dim)
		}
		var tt []byte
		tt = num(tt, 1, 1) // FLOAT
		tt = msg(tt, 2, shape)
		var tp []byte
		tp = msg(tp, 1, tt)
		var vi []byte
		vi = str(vi, 1, name)
		return msg(vi, 2, tp)
	}
	// The shape initializer: INT64 [2] = {1, features}, as raw data.
	var raw []byte
	raw = le.LittleEndian.AppendUint64(raw, 1)
	raw = le.LittleEndian.AppendUint64(raw, uint64(features))
	var tensor []byte
	tensor = num(tensor, 1, 2) // dims
	tensor = num(tensor, 2, 7) // INT64
	tensor = str(tensor, 8, "shape")
	tensor = protowire.AppendTag(tensor, 9, protowire.BytesType)
	tensor = protowire.AppendBytes(tensor, raw)
	var node []byte
	node = str(node, 1, "input")
	node = str(node, 1, "shape")
	node = str(node, 2, "output")
	node = str(node, 3, "reshape_fixed_batch")
	node = str(node, 4, "Reshape")
	var graph []byte
	graph = msg(graph, 1, node)
	graph = str(graph, 2, "fixed-batch")
	graph = msg(graph, 5, tensor)
	graph = msg(graph, 11, valueInfo("input", -1, int64(features)))
	graph = msg(graph, 12, valueInfo("output", -1, int64(features)))
	var model []byte
	model = num(model, 1, 8) // ir_version
	model = msg(model, 7, graph)
	var opset []byte
	opset = str(opset, 1, "")
	opset = num(opset, 2, 13)
	return msg(model, 8, opset)
}

// trainModel trains a small MLP on two moons and registers it as the
// given model's next version; it returns the registered file's path on
// the server's storage.
func trainModel(t *testing.T, s *server, model string) {
	t.Helper()
	data := moonsTable(t, 400)
	if _, stderr, err := trainCLI(s, "-a", "mlp", "--data", data, "--label", "y", "--epochs", "2", "--hp", "hidden=8",
		"--cpus", "1", "--wait", "--register", model); err != nil {
		t.Fatalf("train --register %s: %v\n%s", model, err, stderr)
	}
}

// hpcml runs the CLI against s and returns stdout, stderr and the error.
func hpcml(s *server, args ...string) (string, string, error) {
	cmd := exec.Command(binary, append(args, "--server", s.URL)...)
	cmd.Env = append(os.Environ(), "HPCML_TOKEN="+s.Token)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func getEndpoint(t *testing.T, s *server, name string) *deploy.Status {
	t.Helper()
	st, err := s.Client.GetEndpoint(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitFor polls cond every 200 ms until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// oipBody is an OIP infer request of rows of (u, v).
func oipBody(rows int) []byte {
	data := make([]float64, 0, 2*rows)
	for i := range rows {
		data = append(data, 0.1*float64(i), 0.5)
	}
	b, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{"name": "input", "shape": []int{rows, 2},
		"datatype": "FP32", "data": data}}})
	return b
}

// result is one request of a load run.
type result struct {
	status  int
	body    string
	err     error
	version string // model_version of a 200 OIP answer
}

// load sends OIP infer requests of batch rows through the gateway from
// workers goroutines, at most every pause per worker, until stop is
// closed or max requests were sent; it returns every result.
type loadRun struct {
	mu      sync.Mutex
	results []result
	done    chan struct{}
	stop    chan struct{}
}

func startLoad(s *server, ep string, workers, rows, max int, pause time.Duration) *loadRun {
	l := &loadRun{done: make(chan struct{}), stop: make(chan struct{})}
	body := oipBody(rows)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	url := s.URL + "/endpoints/" + ep + "/v2/models/moons/infer"
	var wg sync.WaitGroup
	var sent sync.Mutex
	n := 0
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				sent.Lock()
				if n >= max {
					sent.Unlock()
					return
				}
				n++
				sent.Unlock()
				req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+s.Token)
				req.Header.Set("Content-Type", "application/json")
				r := result{}
				resp, err := hc.Do(req)
				if err != nil {
					r.err = err
				} else {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					r.status, r.body = resp.StatusCode, string(b)
					var ans struct {
						Version string `json:"model_version"`
					}
					if json.Unmarshal(b, &ans) == nil {
						r.version = ans.Version
					}
				}
				l.mu.Lock()
				l.results = append(l.results, r)
				l.mu.Unlock()
				if pause > 0 {
					time.Sleep(pause)
				}
			}
		}()
	}
	go func() { wg.Wait(); close(l.done) }()
	return l
}

// finish stops the load and returns its results.
func (l *loadRun) finish() []result {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]result(nil), l.results...)
}

func (l *loadRun) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.results)
}

func summarize(rs []result) string {
	by := map[string]int{}
	for _, r := range rs {
		k := fmt.Sprint(r.status)
		if r.err != nil {
			k = "error: " + r.err.Error()
		} else if r.status != 200 {
			k += " " + strings.TrimSpace(r.body)
		}
		by[k]++
	}
	return fmt.Sprint(by)
}

// replicaPID reads a replica's process id from its announcement in the
// server's storage.
func replicaPID(t *testing.T, s *server, ep string, job int64) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.DataDir, "objects", deploy.AnnouncePrefix(ep), fmt.Sprintf("%d.json", job)))
	if err != nil {
		t.Fatal(err)
	}
	var a deploy.Announcement
	if err := json.Unmarshal(data, &a); err != nil || a.PID == 0 {
		t.Fatalf("announcement of %d: %s %v", job, data, err)
	}
	return a.PID
}

func readyReplicas(st *deploy.Status) []deploy.ReplicaStatus {
	var out []deploy.ReplicaStatus
	for _, r := range st.Replicas {
		if r.State == deploy.ReplicaReady {
			out = append(out, r)
		}
	}
	return out
}

func history(t *testing.T, s *server, ep string) []*endpoint.Deployment {
	t.Helper()
	h, err := s.Client.EndpointHistory(t.Context(), ep, 0)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
