package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// The Open Inference Protocol's model repository extension (Triton's):
//
//	POST /v2/repository/index                {"ready": true}?           → [{"name","version","state","reason"}]
//	POST /v2/repository/models/NAME/load     {"parameters":{"version":"3"}}?
//	POST /v2/repository/models/NAME/unload   {"parameters":{"version":"3"}}?
//
// States are READY (loaded), LOADING and UNAVAILABLE (in the repository,
// not loaded: it loads on its first request). Load without a version
// loads the highest; unload without one unloads every loaded version. A
// loaded model stays in the cache as any other: least recently used, it
// is evicted when room is needed.

// repositoryModel is one row of the repository index.
type repositoryModel struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"`
	// Bytes and InFlight are hpcml's additions: the model's size as the
	// cache counts it, and the requests holding it.
	Bytes    int64 `json:"bytes,omitempty"`
	InFlight int   `json:"in_flight,omitempty"`
}

const (
	stateReady       = "READY"
	stateLoading     = "LOADING"
	stateUnavailable = "UNAVAILABLE"
)

// maxRepositoryBody bounds the small JSON bodies of the extension.
const maxRepositoryBody = 64 << 10

func (s *MultiServer) routeRepository(w http.ResponseWriter, r *http.Request, rest string) string {
	if !allowMethod(w, r, http.MethodPost) {
		return routeOther
	}
	if rest == "index" {
		s.repositoryIndex(w, r)
		return routeMetadata
	}
	m, ok := strings.CutPrefix(rest, "models/")
	name, action, found := strings.Cut(m, "/")
	if !ok || !found || (action != "load" && action != "unload") {
		writeError(w, http.StatusNotFound, "no route "+r.Method+" "+r.URL.Path+" (the repository extension has index, models/NAME/load and models/NAME/unload)")
		return routeOther
	}
	var req struct {
		Parameters map[string]json.RawMessage `json:"parameters"`
	}
	if err := readSmallJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return routeOther
	}
	version := ""
	if raw, ok := req.Parameters["version"]; ok {
		var err error
		if version, err = versionParam(raw); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return routeOther
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.LoadTimeout)
	defer cancel()
	if action == "load" {
		s.repositoryLoad(ctx, w, name, version)
	} else {
		s.repositoryUnload(ctx, w, name, version)
	}
	return routeOther
}

// readSmallJSON decodes an optional JSON body (empty is the zero value).
func readSmallJSON(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxRepositoryBody+1))
	if err != nil {
		return fmt.Errorf("reading the request body: %v", err)
	}
	if len(b) > maxRepositoryBody {
		return fmt.Errorf("the request body is over %d bytes", maxRepositoryBody)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("invalid JSON body: %v", err)
	}
	return nil
}

// versionParam reads parameters.version: a string or a whole number.
func versionParam(raw json.RawMessage) (string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil && s != "" {
		return s, nil
	}
	var n int64
	if json.Unmarshal(raw, &n) == nil && n > 0 {
		return strconv.FormatInt(n, 10), nil
	}
	return "", fmt.Errorf("parameters.version %s: want a version, as a string or a whole number", raw)
}

func (s *MultiServer) repositoryIndex(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Ready bool `json:"ready"`
	}
	if err := readSmallJSON(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	refs, err := s.loader.List(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "cannot list the model repository: "+err.Error())
		return
	}
	inCache := map[ModelRef]loadedModel{}
	for _, lm := range s.cache.snapshot() {
		inCache[ModelRef{lm.name, lm.version}] = lm
	}
	out := []repositoryModel{}
	for _, ref := range refs {
		if s.opts.Allow != nil && !s.opts.Allow(ref.Name, ref.Version) {
			continue
		}
		row := repositoryModel{Name: ref.Name, Version: ref.Version, State: stateUnavailable, Reason: "not loaded"}
		if lm, ok := inCache[ref]; ok {
			row.State, row.Reason, row.Bytes, row.InFlight = stateReady, "", lm.size, lm.inFlight
			if lm.loading {
				row.State, row.Bytes = stateLoading, 0
			}
		}
		if req.Ready && row.State != stateReady {
			continue
		}
		out = append(out, row)
	}
	slices.SortFunc(out, func(a, b repositoryModel) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return compareVersions(a.Version, b.Version)
	})
	b, _ := json.Marshal(out)
	writeJSON(w, http.StatusOK, b)
}

func (s *MultiServer) repositoryLoad(ctx context.Context, w http.ResponseWriter, name, version string) {
	e, ok := s.acquire(ctx, w, name, version)
	if !ok {
		return
	}
	s.cache.release(e)
	b, _ := json.Marshal(repositoryModel{Name: name, Version: e.version, State: stateReady, Bytes: e.size})
	writeJSON(w, http.StatusOK, b)
}

func (s *MultiServer) repositoryUnload(ctx context.Context, w http.ResponseWriter, name, version string) {
	if err := checkModelName(name); err != nil {
		s.writeLoadFailure(w, err)
		return
	}
	var versions []string
	if version != "" {
		versions = []string{version}
	} else {
		for _, lm := range s.cache.snapshot() {
			if lm.name == name && !lm.loading {
				versions = append(versions, lm.version)
			}
		}
	}
	unloaded := []string{}
	for _, v := range versions {
		if s.cache.unload(name, v) {
			unloaded = append(unloaded, v)
		}
	}
	if len(unloaded) == 0 {
		// Nothing was loaded: fine for a model of the repository (as
		// Triton), unknown otherwise.
		if vs, err := s.versions(ctx, name); err != nil || len(vs) == 0 || (version != "" && !slices.Contains(vs, version)) {
			what := "model " + strconv.Quote(name)
			if version != "" {
				what += " version " + version
			}
			writeError(w, http.StatusNotFound, "unknown model: "+what+" is not in the repository")
			return
		}
	}
	slices.SortFunc(unloaded, compareVersions)
	b, _ := json.Marshal(map[string]any{"name": name, "unloaded": unloaded})
	writeJSON(w, http.StatusOK, b)
}
