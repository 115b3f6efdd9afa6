package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/onnx"
)

// serveTestModel writes a small MLP's ONNX to storage as the registry
// lays it out (models/NAME/VERSION/model.onnx) and returns the storage URL.
func serveTestModel(t *testing.T) (storageDir string, onnxBytes []byte) {
	t.Helper()
	m, err := nn.Build(nn.Spec{Input: []int{4}, Layers: []nn.LayerSpec{{Type: "dense", Units: 8}, {Type: "relu"}, {Type: "dense", Units: 3}}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range m.Params() {
		for i := range p.Value.Data {
			p.Value.Data[i] = float32(rng.NormFloat64())
		}
	}
	data, err := onnx.Export(m, onnx.ExportOptions{Head: "softmax"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "models", "iris", "3", "model.onnx")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, data
}

func TestServeBadInput(t *testing.T) {
	storage, data := serveTestModel(t)
	notONNX := filepath.Join(t.TempDir(), "model.onnx")
	os.WriteFile(notONNX, []byte("this is not a protobuf"), 0o644)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	good := filepath.Join(t.TempDir(), "iris.onnx")
	os.WriteFile(good, data, 0o644)
	store := map[string]string{"HPCML_STORAGE": "file://" + storage}
	for _, c := range []struct {
		name string
		vars map[string]string
		args []string
		msg  string
	}{
		{"no model", nil, nil, "--model is required"},
		{"missing file", nil, []string{"--model", "/nope/model.onnx"}, "/nope/model.onnx"},
		{"not ONNX", nil, []string{"--model", notONNX}, "not a valid ONNX"},
		{"model:// without storage", nil, []string{"--model", "model://iris/3"}, "needs storage"},
		{"model:// bad version", store, []string{"--model", "model://iris/v3"}, "whole number"},
		{"model:// bad name", store, []string{"--model", "model://Iris/3"}, "model://NAME/VERSION"},
		{"model:// unknown", store, []string{"--model", "model://iris/4"}, "no object models/iris/4/model.onnx"},
		{"s3 prefix", nil, []string{"--model", "file://" + storage + "/models/"}, "names a prefix"},
		{"port in use", nil, []string{"--model", good, "--listen", busy.Addr().String()}, "listen on " + busy.Addr().String()},
		{"announce without job id", store, []string{"--model", good, "--announce", "endpoints/e/replicas/"}, "HPCML_JOB_ID is not set"},
		{"announce without storage", nil, []string{"--model", good, "--announce", "x.json"}, "--announce needs storage"},
		{"announce escapes", store, []string{"--model", good, "--announce", "../x.json"}, "escapes the storage root"},
		{"bad payload", nil, []string{"--model", good, "--max-payload", "6XB"}, "--max-payload"},
		{"bad preferred", nil, []string{"--model", good, "--max-batch", "4", "--preferred-batch", "8"}, "preferred batch size 8"},
		{"zero timeout", nil, []string{"--model", good, "--timeout", "0s"}, "--timeout"},
	} {
		r := runCLI(t, c.vars, append([]string{"serve"}, c.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, c.msg) {
			t.Errorf("%s: exit %d, stderr %q; want an error with %q", c.name, r.code, r.stderr, c.msg)
		}
	}
}

// TestServeInProcess runs `hpcml serve` in-process on model://, finds it
// through its announcement, calls it, and stops it the way SIGTERM does
// (the command's context ends): exit 0 and the announcement is gone.
func TestServeInProcess(t *testing.T) {
	storage, _ := serveTestModel(t)
	vars := map[string]string{"HPCML_STORAGE": "file://" + storage, "HPCML_JOB_ID": "42", "HPCML_ATTEMPT": "2", "HPCML_SERVE_TOKEN": "tok"}
	e := env{getenv: func(k string) string { return vars[k] }, lookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, now: time.Now}
	root := newRoot(&cobra.Command{Use: "server"}, e)
	var stderr bytes.Buffer
	root.SetErr(&stderr)
	root.SetOut(io.Discard)
	root.SetArgs([]string{"serve", "--model", "model://iris/3", "--listen", "127.0.0.1:0", "--announce", "endpoints/e/replicas/", "--max-batch", "4", "--max-queue-delay", "1ms"})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- execute(ctx, root) }()

	annPath := filepath.Join(storage, "endpoints", "e", "replicas", "42.json")
	var ann announcement
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(annPath)
		if err == nil && json.Unmarshal(b, &ann) == nil {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d before announcing: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no announcement at %s: %s", annPath, stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ann.Job != "42" || ann.Attempt != 2 || ann.PID != os.Getpid() || ann.Model != "iris" || ann.Version != "3" || ann.Addr == "" {
		t.Errorf("announcement %+v", ann)
	}
	if _, err := time.Parse(time.RFC3339, ann.Started); err != nil {
		t.Errorf("started %q: %v", ann.Started, err)
	}
	req, _ := http.NewRequest("GET", "http://"+ann.Addr+"/v2/models/iris/versions/3", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"name":"iris","versions":["3"],"platform":"onnx"`) {
		t.Errorf("model metadata: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get("http://" + ann.Addr + "/v2/models/iris")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("without the token: %d", resp.StatusCode)
	}

	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d after the drain: %s", code, stderr.String())
	}
	if _, err := os.Stat(annPath); !os.IsNotExist(err) {
		t.Errorf("the announcement is still there after a graceful exit (%v)", err)
	}
	for _, want := range []string{"msg=serving", "addr=" + ann.Addr, "msg=draining", "msg=stopped"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, stderr.String())
		}
	}
}
