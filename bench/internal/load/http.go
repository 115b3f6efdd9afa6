package load

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// OIPBodies makes 64 different Open Inference Protocol request bodies of
// one FP32 input named input of the given shape, seeded so every run
// sends the same requests.
func OIPBodies(input string, shape []int) [][]byte {
	n := 1
	for _, d := range shape {
		n *= d
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var out [][]byte
	for range 64 {
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(rng.NormFloat64())
		}
		b, _ := json.Marshal(map[string]any{"inputs": []any{map[string]any{
			"name": input, "shape": shape, "datatype": "FP32", "data": data}}})
		out = append(out, b)
	}
	return out
}

// Attack POSTs the bodies in turn to url at rate requests/s for d with
// vegeta (keep-alive connections, up to maxWorkers in flight), with the
// given headers, and returns vegeta's summary.
func Attack(url string, hdr http.Header, bodies [][]byte, rate float64, d time.Duration, maxWorkers uint64, name string) vegeta.Metrics {
	var i atomic.Uint64
	targeter := func(t *vegeta.Target) error {
		n := i.Add(1)
		*t = vegeta.Target{Method: http.MethodPost, URL: url, Body: bodies[n%uint64(len(bodies))], Header: hdr}
		return nil
	}
	atk := vegeta.NewAttacker(vegeta.KeepAlive(true), vegeta.Workers(8), vegeta.MaxWorkers(maxWorkers), vegeta.Timeout(10*time.Second))
	var m vegeta.Metrics
	for r := range atk.Attack(targeter, vegeta.Rate{Freq: int(rate), Per: time.Second}, d, name) {
		m.Add(r)
	}
	m.Close()
	return m
}

// ProcessCPU is a process's user + system CPU time from /proc (Linux), -1
// if unknown.
func ProcessCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// Fields after the command name's ")" start at field 3: utime and
	// stime (14, 15) are the 12th and 13th.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	var ticks int64
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return -1
		}
		ticks += v
	}
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(ticks) * time.Second / clockTicks
}
