package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildHpcml builds the hpcml binary into a temporary directory.
func buildHpcml(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "hpcml")
	build := exec.Command("go", "build", "-o", bin, "./cmd/hpcml")
	build.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return bin
}

// TestServeProcessDrainsOnSIGTERM starts the real binary, sends a request
// whose body is still arriving when SIGTERM comes, and checks that the
// announcement is removed at once, the request still succeeds, and the
// process exits 0.
func TestServeProcessDrainsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the hpcml binary")
	}
	bin := buildHpcml(t)
	storage, _ := serveTestModel(t)
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "serve", "--model", "model://iris/3", "--listen", "127.0.0.1:0",
		"--announce", "endpoints/e/replicas/", "--drain-timeout", "30s")
	cmd.Env = append(os.Environ(), "HPCML_STORAGE=file://"+storage, "HPCML_JOB_ID=9", "HPCML_ATTEMPT=1", "HPCML_SERVE_TOKEN=tok")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}()

	annPath := filepath.Join(storage, "endpoints", "e", "replicas", "9.json")
	var ann announcement
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(annPath)
		if err == nil && json.Unmarshal(b, &ann) == nil {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("hpcml serve exited (%v) before announcing: %s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no announcement: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ann.PID != cmd.Process.Pid || ann.Job != "9" || ann.Attempt != 1 {
		t.Errorf("announcement %+v (pid %d)", ann, cmd.Process.Pid)
	}

	// Half a request: headers and the first part of the body.
	body := `{"id":"slow","inputs":[{"name":"input","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}]}`
	conn, err := net.Dial("tcp", ann.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := fmt.Sprintf("POST /v2/models/iris/infer HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer tok\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", ann.Addr, len(body))
	// A whole request first, so that the server has surely accepted the
	// connection; then half of the next one on it.
	rd := bufio.NewReader(conn)
	if _, err := conn.Write([]byte(head + body)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("first request: %d", resp.StatusCode)
	}
	if _, err := conn.Write([]byte(head + body[:30])); err != nil {
		t.Fatal(err)
	}
	// Let the server start reading it (the connection becomes active),
	// then SIGTERM.
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(annPath); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the announcement was not removed on SIGTERM: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-exited:
		t.Fatalf("exited (%v) with a request in flight: %s", err, stderr.String())
	default:
	}
	// The rest of the body: the request completes.
	if _, err := conn.Write([]byte(body[30:])); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(rd, nil)
	if err != nil {
		t.Fatalf("reading the response: %v (%s)", err, stderr.String())
	}
	var out struct {
		ID      string `json:"id"`
		Outputs []struct {
			Shape []int     `json:"shape"`
			Data  []float32 `json:"data"`
		} `json:"outputs"`
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || out.ID != "slow" || len(out.Outputs) != 1 || len(out.Outputs[0].Data) != 6 {
		t.Fatalf("the in-flight request: %d %+v %v", resp.StatusCode, out, err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v: %s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("did not exit after the drain: %s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "msg=stopped") {
		t.Errorf("log: %s", stderr.String())
	}
}
