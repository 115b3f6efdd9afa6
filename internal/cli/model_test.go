package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hpcml/hpcml/internal/api"
	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/onnx"
	"github.com/hpcml/hpcml/internal/registry"
	"github.com/hpcml/hpcml/internal/sched"
	"github.com/hpcml/hpcml/internal/store"
)

// registryServer is the real API with a registry (SQLite, file storage)
// on loopback; it returns the CLI's environment for it.
func registryServer(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(t.Context(), filepath.Join(dir, "hpcml.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b, err := blob.Open(t.Context(), blob.WithCreateDir("file://"+filepath.Join(dir, "objects")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	log := slog.New(slog.DiscardHandler)
	const token = "cli-model-test-token-0123"
	h := api.New(api.Config{Store: st, Scheduler: sched.New(st, log, nil), Token: token, Registry: prometheus.NewRegistry(),
		Log: log, Storage: b, Models: registry.New(st, b, log)})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return map[string]string{"HPCML_SERVER": srv.URL, "HPCML_TOKEN": token}
}

func testONNX(t *testing.T, seed uint64) []byte {
	t.Helper()
	m, err := nn.Build(nn.Spec{Input: []int{3}, Layers: []nn.LayerSpec{{Type: "dense", Units: 4}, {Type: "relu"}, {Type: "dense", Units: 2}}}, seed)
	if err != nil {
		t.Fatal(err)
	}
	data, err := onnx.Export(m, onnx.ExportOptions{Metadata: map[string]string{"hpcml.note": "test"}})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestModelCommands(t *testing.T) {
	vars := registryServer(t)
	dir := t.TempDir()
	m1, m2 := testONNX(t, 1), testONNX(t, 2)
	p1, p2 := filepath.Join(dir, "a.onnx"), filepath.Join(dir, "b.onnx")
	os.WriteFile(p1, m1, 0o644)
	os.WriteFile(p2, m2, 0o644)

	// A relative local path is sent as an absolute file:// URL.
	t.Chdir(dir)
	r := runCLI(t, vars, "model", "register", "tiny", "--artifact", "a.onnx", "--description", "first", "--metadata", "owner=me", "--metric", "accuracy=0.75")
	if r.code != 0 || !strings.Contains(r.stdout, "Registered tiny:1") || !strings.Contains(r.stdout, "model://tiny/1") {
		t.Fatalf("register: %+v", r)
	}
	r = runCLI(t, vars, "model", "register", "tiny", "--artifact", p2, "-o", "json")
	var v registry.Version
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 0 || v.Version != 2 {
		t.Fatalf("register -o json: %+v %v", r, err)
	}
	if r := runCLI(t, vars, "model", "alias", "tiny", "staging", "1"); r.code != 0 || !strings.Contains(r.stdout, "tiny:staging -> version 1 (new alias)") {
		t.Fatalf("alias: %+v", r)
	}
	// Promotion by alias: production takes what staging points at.
	if r := runCLI(t, vars, "model", "alias", "tiny", "production", "staging"); r.code != 0 || !strings.Contains(r.stdout, "version 1") {
		t.Fatalf("alias from alias: %+v", r)
	}
	if r := runCLI(t, vars, "model", "alias", "tiny", "staging", "latest"); r.code != 0 || !strings.Contains(r.stdout, "version 2 (was 1)") {
		t.Fatalf("move alias: %+v", r)
	}

	r = runCLI(t, vars, "model", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "production=1,staging=2") || !strings.Contains(r.stdout, "tiny") {
		t.Fatalf("list: %+v", r)
	}
	var list []registry.Model
	if r := runCLI(t, vars, "model", "list", "-o", "json"); json.Unmarshal([]byte(r.stdout), &list) != nil || len(list) != 1 || list[0].LatestVersion != 2 {
		t.Fatalf("list -o json: %+v", r)
	}
	r = runCLI(t, vars, "model", "get", "tiny:production")
	if r.code != 0 || !strings.Contains(r.stdout, "tiny:1") || !strings.Contains(r.stdout, "accuracy") || !strings.Contains(r.stdout, "[-1 3]") ||
		!strings.Contains(r.stdout, "hpcml.note") {
		t.Fatalf("get: %+v", r)
	}
	var mv client.ModelVersion
	if r := runCLI(t, vars, "model", "get", "tiny", "-o", "json"); json.Unmarshal([]byte(r.stdout), &mv) != nil || mv.Version.Version != 2 ||
		strings.Join(mv.Aliases, ",") != "staging" {
		t.Fatalf("get -o json: %+v", r)
	}
	var vs []client.ModelVersion
	if r := runCLI(t, vars, "model", "versions", "tiny", "-o", "json"); json.Unmarshal([]byte(r.stdout), &vs) != nil || len(vs) != 2 {
		t.Fatalf("versions -o json: %+v", r)
	}
	if r := runCLI(t, vars, "model", "versions", "tiny"); r.code != 0 || !strings.Contains(r.stdout, "production") {
		t.Fatalf("versions: %+v", r)
	}

	out := filepath.Join(dir, "dl.onnx")
	if r := runCLI(t, vars, "model", "download", "tiny:production", "-o", out); r.code != 0 || !strings.Contains(r.stderr, "SHA-256 checked") {
		t.Fatalf("download: %+v", r)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, m1) {
		t.Fatal("downloaded file differs from the registered one")
	}
	if r := runCLI(t, vars, "model", "alias", "tiny", "staging", "--delete"); r.code != 0 {
		t.Fatalf("delete alias: %+v", r)
	}

	// Mistakes exit 1 naming the problem and change nothing.
	garbage := filepath.Join(dir, "garbage.onnx")
	os.WriteFile(garbage, []byte("nope"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"model", "register", "Tiny", "--artifact", p1}, "model name"},
		{[]string{"model", "register", "tiny"}, "--artifact URL and --from-training"},
		{[]string{"model", "register", "tiny", "--artifact", garbage}, "not a valid ONNX"},
		{[]string{"model", "register", "tiny", "--from-training", "99"}, "training job 99"},
		{[]string{"model", "register", "tiny", "--artifact", p1, "--metric", "acc=high"}, "not a number"},
		{[]string{"model", "get", "tiny:9"}, "no version 9"},
		{[]string{"model", "get", "nope"}, "nope"},
		{[]string{"model", "alias", "tiny", "production", "9"}, "no version 9"},
		{[]string{"model", "alias", "tiny", "Prod", "1"}, "alias"},
		{[]string{"model", "alias", "tiny", "staging"}, "--delete"},
		{[]string{"model", "download", "tiny:1"}, "-o FILE"},
		{[]string{"train", "-a", "mlp", "--data", "x.csv", "--register", "tiny"}, "--register needs --wait"},
		{[]string{"train", "-a", "mlp", "--data", "x.csv", "--register", "Bad!", "--wait"}, "--register"},
	} {
		r := runCLI(t, vars, c.args...)
		if r.code != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 1 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
	if r := runCLI(t, vars, "model", "versions", "tiny", "-o", "json"); json.Unmarshal([]byte(r.stdout), &vs) != nil || len(vs) != 2 {
		t.Fatalf("versions after mistakes: %+v", r)
	}
	s := sha256.Sum256(m1)
	if vs[1].SHA256 != hex.EncodeToString(s[:]) {
		t.Fatal("version 1's checksum changed")
	}
}
