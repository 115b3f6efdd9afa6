package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/onnx"
	"github.com/hpcml/hpcml/internal/registry"
	"github.com/hpcml/hpcml/internal/sched"
	"github.com/hpcml/hpcml/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

const testToken = "test-token-0123456789"

// modelServer is the API with a registry on real SQLite and file storage,
// served over HTTP on loopback.
func modelServer(t *testing.T) (base string, dir string) {
	t.Helper()
	dir = t.TempDir()
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
	h := New(Config{Store: st, Scheduler: sched.New(st, log, nil), Token: testToken, Registry: prometheus.NewRegistry(),
		Log: log, Storage: b, Models: registry.New(st, b, log)})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, dir
}

func onnxFile(t *testing.T, dir string, seed uint64) (string, []byte) {
	t.Helper()
	m, err := nn.Build(nn.Spec{Input: []int{4}, Layers: []nn.LayerSpec{{Type: "dense", Units: 5}, {Type: "relu"}, {Type: "dense", Units: 2}}}, seed)
	if err != nil {
		t.Fatal(err)
	}
	data, err := onnx.Export(m, onnx.ExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "m.onnx")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}

// call sends a request with the token and decodes a JSON answer into out
// (if not nil); it returns the status and the raw body.
func call(t *testing.T, method, url string, body any, out any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequestWithContext(t.Context(), method, url, rd)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, data)
		}
	}
	return resp.StatusCode, data
}

type apiErr struct {
	Error errorDetail `json:"error"`
}

func wantError(t *testing.T, what string, status int, body []byte, wantStatus int, field, contains string) {
	t.Helper()
	var e apiErr
	if err := json.Unmarshal(body, &e); err != nil {
		t.Errorf("%s: body %q is not the JSON error shape", what, body)
		return
	}
	if status != wantStatus || e.Error.Field != field || !strings.Contains(e.Error.Message, contains) {
		t.Errorf("%s: %d %+v; want %d, field %q, message containing %q", what, status, e.Error, wantStatus, field, contains)
	}
}

func TestModelRegistryAPI(t *testing.T) {
	base, dir := modelServer(t)
	api := base + "/api/v1/models"
	path, data := onnxFile(t, dir, 1)

	var v registry.Version
	status, body := call(t, "POST", api, map[string]any{"name": "mlp", "artifact": "file://" + path, "description": "d",
		"metadata": map[string]string{"team": "a"}}, &v)
	if status != 201 || v.Version != 1 || v.Metadata["team"] != "a" || v.Signature.Inputs[0].Shape[0] != -1 {
		t.Fatalf("register: %d %s", status, body)
	}
	if status, body := call(t, "POST", api, map[string]any{"name": "mlp", "artifact": path}, &v); status != 201 || v.Version != 2 {
		t.Fatalf("register v2: %d %s", status, body)
	}
	var ar struct {
		Version, Previous int
	}
	if status, body := call(t, "PUT", api+"/mlp/aliases/production", `{"version": 1}`, &ar); status != 200 || ar.Version != 1 || ar.Previous != 0 {
		t.Fatalf("set alias: %d %s", status, body)
	}
	if status, body := call(t, "PUT", api+"/mlp/aliases/production", `{"version": 2}`, &ar); status != 200 || ar.Previous != 1 {
		t.Fatalf("move alias: %d %s", status, body)
	}

	var list []registry.Model
	if status, body := call(t, "GET", api, nil, &list); status != 200 || len(list) != 1 || list[0].LatestVersion != 2 || list[0].Aliases["production"] != 2 {
		t.Fatalf("list: %d %s", status, body)
	}
	var m registry.Model
	if status, body := call(t, "GET", api+"/mlp", nil, &m); status != 200 || len(m.Versions) != 2 {
		t.Fatalf("get: %d %s", status, body)
	}
	var versions []versionView
	if status, body := call(t, "GET", api+"/mlp/versions", nil, &versions); status != 200 || len(versions) != 2 ||
		versions[0].Version.Version != 2 || len(versions[0].Aliases) != 1 || len(versions[1].Aliases) != 0 {
		t.Fatalf("versions: %d %s", status, body)
	}
	for ref, want := range map[string]int{"1": 1, "latest": 2, "production": 2} {
		var vv versionView
		if status, body := call(t, "GET", api+"/mlp/versions/"+ref, nil, &vv); status != 200 || vv.Version.Version != want {
			t.Errorf("version %s: %d %s", ref, status, body)
		}
	}

	// The download is the registered file, with its checksum.
	req, _ := http.NewRequest("GET", api+"/mlp/versions/1/artifact", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s := sha256.Sum256(data)
	if resp.StatusCode != 200 || !bytes.Equal(got, data) || resp.Header.Get("X-Hpcml-Sha256") != hex.EncodeToString(s[:]) {
		t.Fatalf("download: %d, %d bytes, sha header %q", resp.StatusCode, len(got), resp.Header.Get("X-Hpcml-Sha256"))
	}

	// Mistakes: 4xx in the JSON error shape naming the problem, and no
	// change.
	bad := filepath.Join(dir, "bad.onnx")
	os.WriteFile(bad, []byte("not onnx"), 0o644)
	cases := []struct {
		what, method, url string
		body              any
		status            int
		field, contains   string
	}{
		{"malformed JSON", "POST", api, `{"name": `, 400, "", "malformed"},
		{"unknown field", "POST", api, `{"name": "m", "artefact": "x"}`, 400, "", "unknown field"},
		{"bad name", "POST", api, map[string]any{"name": "Bad", "artifact": path}, 400, "name", "model name"},
		{"invalid onnx", "POST", api, map[string]any{"name": "mlp", "artifact": bad}, 400, "artifact", "not a valid ONNX"},
		{"missing artefact", "POST", api, map[string]any{"name": "mlp", "artifact": "nope/m.onnx"}, 400, "artifact", "no such"},
		{"unknown training job", "POST", api, map[string]any{"name": "mlp", "training_job": 77}, 404, "", "training job 77"},
		{"unknown model", "GET", api + "/nope", nil, 404, "", "nope"},
		{"unknown version", "GET", api + "/mlp/versions/9", nil, 404, "", "no version 9"},
		{"unknown alias", "GET", api + "/mlp/versions/canary", nil, 404, "", "no alias canary"},
		{"bad ref", "GET", api + "/mlp/versions/0", nil, 400, "", "not a positive number"},
		{"download unknown", "GET", api + "/mlp/versions/9/artifact", nil, 404, "", "no version 9"},
		{"alias to missing version", "PUT", api + "/mlp/aliases/production", `{"version": 9}`, 404, "", "no version 9"},
		{"alias of unknown model", "PUT", api + "/nope/aliases/production", `{"version": 1}`, 404, "", "nope"},
		{"bad alias", "PUT", api + "/mlp/aliases/Prod", `{"version": 1}`, 400, "alias", "alias"},
		{"reserved alias", "PUT", api + "/mlp/aliases/latest", `{"version": 1}`, 400, "alias", "reserved"},
		{"malformed alias body", "PUT", api + "/mlp/aliases/production", `{"v": 1}`, 400, "", "malformed"},
		{"delete unknown alias", "DELETE", api + "/mlp/aliases/canary", nil, 404, "", "no alias canary"},
	}
	for _, c := range cases {
		status, body := call(t, c.method, c.url, c.body, nil)
		wantError(t, c.what, status, body, c.status, c.field, c.contains)
	}
	if status, body := call(t, "GET", api+"/mlp", nil, &m); status != 200 || len(m.Versions) != 2 || m.Aliases["production"] != 2 || len(m.Aliases) != 1 {
		t.Fatalf("after refused requests: %d %s", status, body)
	}

	if status, body := call(t, "DELETE", api+"/mlp/aliases/production", nil, nil); status != 204 {
		t.Fatalf("delete alias: %d %s", status, body)
	}
	if status, _ := call(t, "GET", api+"/mlp/versions/production", nil, nil); status != 404 {
		t.Fatalf("deleted alias still resolves: %d", status)
	}
	// Without the token: 401.
	resp, err = http.Get(api)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
}
