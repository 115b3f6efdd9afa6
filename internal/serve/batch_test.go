package serve

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond until it holds, failing the test after 30 s (a
// bound for a hung test, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

type result struct {
	code int
	body []byte
}

// inferRows sends rows (of 4 features) to the MLP in the background.
func inferRows(t *testing.T, ts *testServer, x []float32, out chan<- result) {
	body := fmt.Sprintf(`{"inputs":[{"name":"input","shape":[%d,4],"datatype":"FP32","data":%s}]}`, len(x)/4, mustJSON(t, x))
	go func() {
		resp, err := http.Post(ts.URL+"/v2/models/iris/infer", "application/json", strings.NewReader(body))
		if err != nil {
			out <- result{code: -1, body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		out <- result{code: resp.StatusCode, body: b}
	}()
}

// TestBatchingMerges holds the only execution slot with one request, queues
// seven more of different sizes, then lets go: the seven must run as one
// execution, and each must get exactly what it gets run by itself.
func TestBatchingMerges(t *testing.T) {
	base := loadModel(t, mlpSpec(), "iris")
	rec := &recordingModel{Model: base, started: make(chan struct{}, 100), gate: make(chan struct{})}
	ts := startServer(t, rec, Options{MaxBatch: 16, Concurrency: 1})

	first := make(chan result, 1)
	inferRows(t, ts, randomData(100, 4), first)
	<-rec.started

	sizes := []int{1, 2, 1, 3, 1, 1, 2}
	inputs := make([][]float32, len(sizes))
	results := make([]chan result, len(sizes))
	for i, n := range sizes {
		inputs[i] = randomData(uint64(i), 4*n)
		results[i] = make(chan result, 1)
		inferRows(t, ts, inputs[i], results[i])
	}
	waitFor(t, "7 queued requests", func() bool { return ts.exec.queued() == len(sizes) })
	close(rec.gate)

	if r := <-first; r.code != 200 {
		t.Fatalf("first: %d %s", r.code, r.body)
	}
	for i, n := range sizes {
		r := <-results[i]
		if r.code != 200 {
			t.Fatalf("request %d: %d %s", i, r.code, r.body)
		}
		resp := decode[inferResponse](t, r.body)
		if !slices.Equal(resp.Outputs[0].Shape, []int{n, 3}) {
			t.Fatalf("request %d: shape %v, want [%d 3]", i, resp.Outputs[0].Shape, n)
		}
		want := direct(t, base, "input", []int{n, 4}, inputs[i])
		sameFloats(t, fmt.Sprintf("request %d", i), resp.Outputs[0].Data, want.Data)
	}
	if got := rec.recorded(); !slices.Equal(got, []int{1, 11}) {
		t.Errorf("executions of %v rows, want [1 11]", got)
	}
	_, metrics := ts.get(t, "/metrics")
	for _, want := range []string{"hpcml_serve_batch_size_count 2", "hpcml_serve_batch_size_sum 12", `hpcml_serve_batch_size_bucket{le="1"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// queueInOrder sends requests one at a time, each once the previous one
// is in the queue, so that the queue's order is known.
func queueInOrder(t *testing.T, ts *testServer, sizes []int) []chan result {
	var out []chan result
	for i, n := range sizes {
		ch := make(chan result, 1)
		inferRows(t, ts, randomData(uint64(i), 4*n), ch)
		out = append(out, ch)
		waitFor(t, "a queued request", func() bool { return ts.exec.queued() == i+1 })
	}
	return out
}

func TestBatchingLimits(t *testing.T) {
	for _, c := range []struct {
		name  string
		sizes []int
		want  []int
	}{
		// Six single rows with at most 4 per batch: 4, then 2.
		{"max batch", []int{1, 1, 1, 1, 1, 1}, []int{1, 4, 2}},
		// A request larger than the max batch runs alone, in its turn.
		{"oversize request", []int{1, 6, 1}, []int{1, 1, 6, 1}},
		// One that does not fit in what is left starts the next batch.
		{"no room", []int{3, 2, 1}, []int{1, 3, 3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := loadModel(t, mlpSpec(), "iris")
			rec := &recordingModel{Model: base, started: make(chan struct{}, 100), gate: make(chan struct{})}
			ts := startServer(t, rec, Options{MaxBatch: 4, Concurrency: 1})
			first := make(chan result, 1)
			inferRows(t, ts, randomData(100, 4), first)
			<-rec.started
			results := queueInOrder(t, ts, c.sizes)
			close(rec.gate)
			for i, ch := range append(results, first) {
				if r := <-ch; r.code != 200 {
					t.Fatalf("request %d: %d %s", i, r.code, r.body)
				}
			}
			if got := rec.recorded(); !slices.Equal(got, c.want) {
				t.Errorf("executions of %v rows, want %v", got, c.want)
			}
		})
	}
}

// TestQueueDelayAndPreferredSizes: with an hour of queue delay the
// batcher waits for the batch to fill, and sends a preferred size at
// once when nothing more is queued. (Were either broken, the requests
// would wait out their 30 s timeout and fail.)
func TestQueueDelayAndPreferredSizes(t *testing.T) {
	base := loadModel(t, mlpSpec(), "iris")

	rec := &recordingModel{Model: base}
	ts := startServer(t, rec, Options{MaxBatch: 3, MaxQueueDelay: time.Hour, Timeout: 30 * time.Second})
	var results []chan result
	for i := range 3 {
		ch := make(chan result, 1)
		inferRows(t, ts, randomData(uint64(i), 4), ch)
		results = append(results, ch)
	}
	for _, ch := range results {
		if r := <-ch; r.code != 200 {
			t.Fatalf("%d %s", r.code, r.body)
		}
	}
	if got := rec.recorded(); !slices.Equal(got, []int{3}) {
		t.Errorf("with a long queue delay: executions of %v rows, want [3]", got)
	}

	rec = &recordingModel{Model: base}
	ts = startServer(t, rec, Options{MaxBatch: 8, MaxQueueDelay: time.Hour, PreferredBatch: []int{2}, Concurrency: 1, Timeout: 30 * time.Second})
	// The first request waits (for an hour) for a batch of 8 or a preferred
	// 2: a second request makes 2.
	results = queueInOrderAny(t, ts, 2)
	for _, ch := range results {
		if r := <-ch; r.code != 200 {
			t.Fatalf("%d %s", r.code, r.body)
		}
	}
	if got := rec.recorded(); !slices.Equal(got, []int{2}) {
		t.Errorf("preferred size 2: executions of %v rows, want [2]", got)
	}
}

// queueInOrderAny sends n single-row requests without waiting for them
// to be queued (the batcher takes them at once).
func queueInOrderAny(t *testing.T, ts *testServer, n int) []chan result {
	var out []chan result
	for i := range n {
		ch := make(chan result, 1)
		inferRows(t, ts, randomData(uint64(i), 4), ch)
		out = append(out, ch)
	}
	return out
}

func TestTimeouts(t *testing.T) {
	base := loadModel(t, mlpSpec(), "iris")
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			o := Options{Concurrency: 1, Timeout: 300 * time.Millisecond}
			if batched {
				o.MaxBatch = 4
			}
			// The model holds its first execution until gate closes,
			// whatever the request's context says.
			rec := &recordingModel{Model: base, started: make(chan struct{}, 100), gate: make(chan struct{}), ignoreCtx: true}
			ts := startServer(t, rec, o)
			first := make(chan result, 1)
			inferRows(t, ts, randomData(1, 4), first)
			<-rec.started
			// The only slot is taken: this one times out in the queue.
			second := make(chan result, 1)
			inferRows(t, ts, randomData(2, 4), second)
			r := <-second
			if r.code != http.StatusServiceUnavailable {
				t.Fatalf("queued past the timeout: %d %s", r.code, r.body)
			}
			contains(t, "queue timeout", errorMessage(t, r.body), "timed out waiting in the queue")
			close(rec.gate)
			if r := <-first; r.code != 200 && r.code != http.StatusGatewayTimeout {
				t.Fatalf("first: %d %s", r.code, r.body)
			}
			// The abandoned request never runs.
			third := make(chan result, 1)
			inferRows(t, ts, randomData(3, 8), third)
			if r := <-third; r.code != 200 {
				t.Fatalf("third: %d %s", r.code, r.body)
			}
			if got := rec.recorded(); !slices.Equal(got, []int{1, 2}) {
				t.Errorf("executions of %v rows, want [1 2] (the timed-out request skipped)", got)
			}
		})
	}

	// A model that computes past the timeout: 504.
	rec := &recordingModel{Model: base, gate: make(chan struct{})}
	defer close(rec.gate)
	for _, batched := range []bool{false, true} {
		o := Options{Timeout: 200 * time.Millisecond}
		if batched {
			o.MaxBatch = 4
		}
		ts := startServer(t, rec, o)
		ch := make(chan result, 1)
		inferRows(t, ts, randomData(1, 4), ch)
		r := <-ch
		if r.code != http.StatusGatewayTimeout {
			t.Fatalf("batched=%v: computing past the timeout: %d %s", batched, r.code, r.body)
		}
		contains(t, "compute timeout", errorMessage(t, r.body), "timed out while the model computed")
	}
}

// TestBatchingUnderLoad: many concurrent clients against a batching
// server; every answer is the unbatched one.
func TestBatchingUnderLoad(t *testing.T) {
	base := loadModel(t, cnnSpec(), "digits")
	rec := &recordingModel{Model: base}
	ts := startServer(t, rec, Options{MaxBatch: 8, MaxQueueDelay: 2 * time.Millisecond, PreferredBatch: []int{4, 8}, Concurrency: 1})
	const clients, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, clients*each)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				x := randomData(uint64(c*100+i), 64)
				body := fmt.Sprintf(`{"inputs":[{"name":"input","shape":[1,1,8,8],"datatype":"FP32","data":%s}]}`, mustJSON(t, x))
				resp, err := http.Post(ts.URL+"/v2/models/digits/infer", "application/json", strings.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				var r inferResponse
				err = json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %d: %v", resp.StatusCode, err)
					return
				}
				want := direct(t, base, "input", []int{1, 1, 8, 8}, x)
				if !slices.Equal(r.Outputs[0].Data, want.Data) {
					errs <- fmt.Errorf("client %d request %d: %v, want %v", c, i, r.Outputs[0].Data, want.Data)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 0
	for _, n := range rec.recorded() {
		total += n
	}
	if total != clients*each {
		t.Errorf("%d rows executed, want %d", total, clients*each)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	m := loadModel(t, mlpSpec(), "iris")
	for _, c := range []struct {
		o   Options
		msg string
	}{
		{Options{MaxBatch: 4, PreferredBatch: []int{8}}, "preferred batch size 8"},
		{Options{MaxQueueDelay: -1}, "negative"},
		{Options{Concurrency: -1}, "negative"},
		{Options{MaxPayload: -1}, "negative"},
		{Options{Timeout: -1}, "negative"},
	} {
		if _, err := New(m, c.o); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%+v: %v, want %q", c.o, err, c.msg)
		}
	}
	// A model whose batch dimension is fixed cannot be batched.
	fixed := &fixedBatch{twoOutputs{}}
	if _, err := New(fixed, Options{MaxBatch: 4}); err == nil || !strings.Contains(err.Error(), "cannot batch") {
		t.Errorf("fixed batch dimension: %v", err)
	}
	if _, err := New(fixed, Options{}); err != nil {
		t.Errorf("fixed batch dimension without batching: %v", err)
	}
}

type fixedBatch struct{ twoOutputs }

func (f *fixedBatch) Info() ModelInfo {
	i := f.twoOutputs.Info()
	i.Inputs[0].Shape = []int64{2, 2}
	return i
}

// TestBodyTimeout: a body that trickles in past the timeout is answered
// 408 rather than holding the handler.
func TestBodyTimeout(t *testing.T) {
	m := loadModel(t, mlpSpec(), "iris")
	ts := startServer(t, m, Options{Timeout: 300 * time.Millisecond})
	for _, path := range []string{"/v2/models/iris/infer", "/invocations"} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"inputs\":", path)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
		}
		contains(t, path, errorMessage(t, b), "did not arrive within the timeout")
	}
}

func TestInvocationsBatched(t *testing.T) {
	base := loadModel(t, mlpSpec(), "iris")
	rec := &recordingModel{Model: base, started: make(chan struct{}, 100), gate: make(chan struct{})}
	ts := startServer(t, rec, Options{MaxBatch: 8, Concurrency: 1})
	first := make(chan result, 1)
	inferRows(t, ts, randomData(1, 4), first)
	<-rec.started
	x := randomData(2, 12)
	want := direct(t, base, "input", []int{3, 4}, x)
	var chans []chan result
	for i := range 3 {
		ch := make(chan result, 1)
		body := mustJSON(t, map[string]any{"instances": [][]float32{x[4*i : 4*i+4]}})
		go func() {
			resp, err := http.Post(ts.URL+"/invocations", "application/json", strings.NewReader(body))
			if err != nil {
				ch <- result{code: -1, body: []byte(err.Error())}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			ch <- result{code: resp.StatusCode, body: b}
		}()
		chans = append(chans, ch)
	}
	waitFor(t, "3 queued requests", func() bool { return ts.exec.queued() == 3 })
	close(rec.gate)
	<-first
	for i, ch := range chans {
		r := <-ch
		var got map[string][][]float32
		if r.code != 200 || json.Unmarshal(r.body, &got) != nil {
			t.Fatalf("request %d: %d %s", i, r.code, r.body)
		}
		sameFloats(t, fmt.Sprint("request ", i), got["predictions"][0], want.Data[3*i:3*i+3])
	}
	if got := rec.recorded(); !slices.Equal(got, []int{1, 3}) {
		t.Errorf("executions of %v rows, want [1 3]", got)
	}
}
