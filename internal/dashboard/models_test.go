package dashboard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/onnx"
	"github.com/hpcml/hpcml/internal/registry"
	"github.com/hpcml/hpcml/internal/store"
)

// modelsSource is the fake cluster plus a real registry (SQLite, file
// storage), as the server's Source is.
type modelsSource struct {
	*fakeSource
	reg *registry.Registry
}

func (s *modelsSource) ListModels(ctx context.Context) ([]*registry.Model, error) {
	return s.reg.List(ctx)
}

func (s *modelsSource) GetModel(ctx context.Context, name string) (*registry.Model, error) {
	m, err := s.reg.Get(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return m, err
}

func (s *modelsSource) OpenModelArtifact(ctx context.Context, v *registry.Version) (io.ReadCloser, error) {
	return s.reg.Open(ctx, v)
}

// newModelsSource registers two versions of "iris" (one with metrics and
// an alias) and one of "<b>x</b>"-free "digits", from ONNX files the engine
// exported; it returns the source and the first file's bytes.
func newModelsSource(t *testing.T) (*modelsSource, []byte) {
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
	reg := registry.New(st, b, nil)
	var first []byte
	register := func(name string, seed uint64, req registry.RegisterRequest) {
		m, err := nn.Build(nn.Spec{Input: []int{4}, Layers: []nn.LayerSpec{{Type: "dense", Units: 6}, {Type: "relu"}, {Type: "dense", Units: 3}}}, seed)
		if err != nil {
			t.Fatal(err)
		}
		data, err := onnx.Export(m, onnx.ExportOptions{Head: "softmax", Metadata: map[string]string{"hpcml.classes": "setosa,versicolor,virginica"}})
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = data
		}
		p := filepath.Join(dir, fmt.Sprintf("%s-%d.onnx", name, seed))
		os.WriteFile(p, data, 0o644)
		req.Name, req.Artifact = name, p
		if _, err := reg.Register(t.Context(), req); err != nil {
			t.Fatal(err)
		}
	}
	register("iris", 1, registry.RegisterRequest{Description: "first <try>", Metrics: map[string]float64{"accuracy": 0.9333}})
	register("iris", 2, registry.RegisterRequest{Metadata: map[string]string{"owner": "ml-team"}, Metrics: map[string]float64{"accuracy": 0.96, "loss": 0.12}})
	register("digits", 3, registry.RegisterRequest{})
	if _, err := reg.SetAlias(t.Context(), "iris", "production", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.SetAlias(t.Context(), "iris", "staging", 2); err != nil {
		t.Fatal(err)
	}
	return &modelsSource{fakeSource: newFakeSource(), reg: reg}, first
}

func TestModelsPages(t *testing.T) {
	src, first := newModelsSource(t)
	h, logs := newTestHandler(t, src)

	res := do(t, h, "GET", "/models", true, nil)
	if res.Code != 200 {
		t.Fatalf("/models: %d", res.Code)
	}
	mustContain(t, "/models", res.Body, `aria-current="page">Models</a>`, `data-model="digits"`, `data-model="iris"`,
		`data-alias="production"`, "production → 1", "staging → 2", `<strong>0.9600</strong>`)
	if strings.Index(res.Body, `data-model="digits"`) > strings.Index(res.Body, `data-model="iris"`) {
		t.Error("models are not listed by name")
	}

	res = do(t, h, "GET", "/models/iris", true, nil)
	if res.Code != 200 {
		t.Fatalf("/models/iris: %d", res.Code)
	}
	// The latest version in full: signature, metrics, metadata and the
	// ONNX file's preprocessing metadata; every version listed.
	mustContain(t, "/models/iris", res.Body, "version 2", "model://iris/2", `data-version="2"`, `data-version="1"`,
		`data-tensor="input"`, "[N, 4]", "[N, 3]", "FP32", `data-metric="loss"`, "ml-team", "hpcml.classes",
		"setosa,versicolor,virginica", `href="/models/iris/versions/2/model.onnx"`, "first &lt;try&gt;")
	mustNotContain(t, "/models/iris", res.Body, "first <try>")

	res = do(t, h, "GET", "/models/iris?version=1", true, nil)
	mustContain(t, "/models/iris?version=1", res.Body, "version 1", "model://iris/1", `href="/models/iris/versions/1/model.onnx"`,
		`class="chip alias">production</span>`)

	res = do(t, h, "GET", "/models/iris/versions/1/model.onnx", true, nil)
	if res.Code != 200 || !bytes.Equal([]byte(res.Body), first) || !strings.Contains(res.Header.Get("Content-Disposition"), "iris-1.onnx") {
		t.Fatalf("download: %d, %d bytes", res.Code, len(res.Body))
	}

	for target, code := range map[string]int{
		"/models/nope":                       404,
		"/models/iris?version=7":             404,
		"/models/iris?version=x":             400,
		"/models/Bad%20Name":                 400,
		"/models/iris/versions/7/model.onnx": 404,
		"/models/iris/versions/0/model.onnx": 400,
		"/models/nope/versions/1/model.onnx": 404,
	} {
		if res := do(t, h, "GET", target, true, nil); res.Code != code {
			t.Errorf("%s: %d, want %d", target, res.Code, code)
		}
	}
	// Behind the session like every page.
	if res := do(t, h, "GET", "/models/iris/versions/1/model.onnx", false, nil); res.Code == 200 {
		t.Error("model download without a session")
	}
	if res := do(t, h, "GET", "/models", false, nil); res.Code == 200 {
		t.Error("/models without a session")
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", logs)
	}

	// A Source without a registry: the tab says so.
	h2, _ := newTestHandler(t, newFakeSource())
	res = do(t, h2, "GET", "/models", true, nil)
	mustContain(t, "no registry", res.Body, `id="no-registry"`)
}

func TestModelsPageEmpty(t *testing.T) {
	src, _ := newModelsSource(t)
	dir := t.TempDir()
	st, err := store.Open(t.Context(), filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b, _ := blob.Open(t.Context(), blob.WithCreateDir("file://"+filepath.Join(dir, "o")))
	t.Cleanup(func() { b.Close() })
	src.reg = registry.New(st, b, nil)
	h, _ := newTestHandler(t, src)
	res := do(t, h, "GET", "/models", true, nil)
	mustContain(t, "empty /models", res.Body, `id="no-models"`, "hpcml model register")
}
