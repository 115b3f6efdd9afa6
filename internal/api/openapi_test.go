package api

import (
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/sched"
	"github.com/hpcml/hpcml/internal/store"
	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"
)

func newTestHandler(t *testing.T) *Handler {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "hpcml.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	return New(Config{Store: st, Scheduler: sched.New(st, log, nil), Token: "test-token-0123456789", Registry: reg, Log: log})
}

// specRoutes lists "METHOD /path" of every operation in openapi.yaml.
func specRoutes(t *testing.T) []string {
	t.Helper()
	var doc struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openapiYAML, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	methods := []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}
	var out []string
	for path, ops := range doc.Paths {
		for key := range ops {
			if slices.Contains(methods, key) {
				out = append(out, strings.ToUpper(key)+" "+path)
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIMatchesRoutes: every route the server serves is in the spec,
// and every operation of the spec is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	h := newTestHandler(t)
	served := h.Routes()
	sort.Strings(served)
	spec := specRoutes(t)
	for _, r := range served {
		if !slices.Contains(spec, r) {
			t.Errorf("served but not in openapi.yaml: %s", r)
		}
	}
	for _, r := range spec {
		if !slices.Contains(served, r) {
			t.Errorf("in openapi.yaml but not served: %s", r)
		}
	}

	// Routes() must tell the truth about the mux: each spec operation,
	// with its path parameters filled in, reaches the pattern it names.
	fill := strings.NewReplacer("{id}", "7", "{name}", "default", "{path}", "out/report.json")
	for _, r := range spec {
		method, path, _ := strings.Cut(r, " ")
		req := httptest.NewRequest(method, fill.Replace(path), nil)
		_, pattern := h.mux.Handler(req)
		if openapiPath(pattern) != r {
			t.Errorf("%s %s is routed to %q", method, fill.Replace(path), pattern)
		}
	}
}

// TestEveryRouteButHealthNeedsTheToken asks each spec operation without a
// token; only those the spec marks `security: []` may answer.
func TestEveryRouteButHealthNeedsTheToken(t *testing.T) {
	h := newTestHandler(t)
	var doc struct {
		Paths map[string]map[string]struct {
			Security *[]any `yaml:"security"`
		} `yaml:"paths"`
	}
	if err := yaml.Unmarshal(openapiYAML, &doc); err != nil {
		t.Fatal(err)
	}
	fill := strings.NewReplacer("{id}", "7", "{name}", "default")
	for path, ops := range doc.Paths {
		for method, op := range ops {
			public := op.Security != nil && len(*op.Security) == 0
			req := httptest.NewRequest(strings.ToUpper(method), fill.Replace(path), strings.NewReader("{}"))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if got := rec.Code == 401; got == public {
				t.Errorf("%s %s without a token: %d (public in the spec: %v)", method, path, rec.Code, public)
			}
		}
	}
}

// TestOpenAPIDescribesProgress: the Progress schema has every field of
// job.Progress, and the Job schema the progress a job get adds.
func TestOpenAPIDescribesProgress(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `yaml:"properties"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(openapiYAML, &doc); err != nil {
		t.Fatal(err)
	}
	if _, ok := doc.Components.Schemas["Job"].Properties["progress"]; !ok {
		t.Error("schema Job has no progress")
	}
	props := doc.Components.Schemas["Progress"].Properties
	typ := reflect.TypeFor[job.Progress]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if _, ok := props[name]; !ok {
			t.Errorf("schema Progress has no %s (field %s)", name, typ.Field(i).Name)
		}
	}
	if len(props) != typ.NumField() {
		t.Errorf("schema Progress has %d properties, job.Progress %d fields", len(props), typ.NumField())
	}
}
