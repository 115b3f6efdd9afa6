package deploy

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hpcml/hpcml/internal/deploy/endpoint"
	"github.com/hpcml/hpcml/internal/registry"
	"github.com/hpcml/hpcml/internal/task"
)

// Multi-model endpoints (endpoint.MultiModel): every replica runs
// `hpcml serve --multi-model` over the registry's storage, with no filter
// of its own; the gateway checks each request's target model against the
// endpoint's filter and the registry, resolves aliases and "latest" to a
// version, and sends a model's requests to the replica rendezvous hashing
// ranks first for it, so that a model is loaded on one replica (or a few,
// under load) rather than on all.

// resolveTTL is how long the gateway remembers what a reference resolved
// to: an alias moved, or a new latest version, is followed that much
// later at most, and a request costs no registry read in between.
const resolveTTL = 2 * time.Second

// ModelRouting is a multi-model endpoint's part of its routing table.
type ModelRouting struct {
	filter   endpoint.Filter
	models   string // the filter as given, for errors
	resolver Resolver
	cache    *resolveCache
}

// resolveCache remembers reference resolutions for resolveTTL; it
// outlives the routing tables (one per tick) of its endpoint.
type resolveCache struct {
	mu sync.Mutex
	m  map[string]resolvedRef
}

type resolvedRef struct {
	name    string
	version int
	at      time.Time
}

// maxResolveCache bounds the cache; past it, it starts again.
const maxResolveCache = 10000

// modelRouting is the routing part of a multi-model endpoint (nil for
// others), keeping the resolutions of the route it replaces.
func (c *Controller) modelRouting(e *endpoint.Endpoint) *ModelRouting {
	if e.Spec.MultiModel == nil || c.cfg.Registry == nil {
		return nil
	}
	cache := &resolveCache{m: map[string]resolvedRef{}}
	if old := c.cfg.Gateway.Route(e.Name); old != nil && old.Models != nil {
		cache = old.Models.cache
	}
	return &ModelRouting{filter: e.Spec.MultiModel.Filter(), models: e.Spec.MultiModel.Models, resolver: c.cfg.Registry, cache: cache}
}

// multiModelArgs are the hpcml serve flags of a multi-model replica (nil
// for other endpoints): every model of the registry's storage, loaded on
// first use; the gateway enforces the endpoint's filter.
func multiModelArgs(e *endpoint.Endpoint, listen string) []string {
	m := e.Spec.MultiModel
	if m == nil {
		return nil
	}
	cmd := []string{task.SelfProgram, "serve", "--multi-model", "--listen", listen, "--announce", AnnouncePrefix(e.Name)}
	if m.CacheBytes > 0 {
		cmd = append(cmd, "--model-cache-bytes", strconv.FormatInt(m.CacheBytes, 10))
	}
	return cmd
}

// multiModelVariant is the variant of a multi-model endpoint: everything
// but a model, which the requests name.
func multiModelVariant(field string, vr VariantRequest) (endpoint.Variant, error) {
	if vr.Model != "" {
		return endpoint.Variant{}, fieldErr(field+".model", "a multi-model endpoint serves the models --models names: its variant takes no model (%q)", vr.Model)
	}
	return endpoint.Variant{Name: vr.Name, Replicas: vr.Replicas, Weight: vr.Weight, CPUs: vr.CPUs, Batching: vr.Batching}, nil
}

// routeError is a target model the gateway refuses, with its status.
type routeError struct {
	status int
	msg    string
}

func (e *routeError) Error() string { return e.msg }

// resolve finds the model version a target reference names among those
// the endpoint serves: NAME (the latest, or the highest version the
// filter pins), NAME:VERSION or NAME:ALIAS.
func (m *ModelRouting) resolve(ctx context.Context, ep, ref string) (string, int, error) {
	r, err := registry.ParseRef(strings.TrimSpace(ref))
	if err != nil {
		return "", 0, &routeError{http.StatusBadRequest, "target model: " + err.Error()}
	}
	pinned := []int(nil)
	if r.Version == 0 && r.Alias == "" {
		pinned = m.filter.Pinned(r.Name)
	}
	key := r.String()
	if pinned != nil {
		key += fmt.Sprint(pinned)
	}
	m.cache.mu.Lock()
	hit, ok := m.cache.m[key]
	m.cache.mu.Unlock()
	if !ok || time.Since(hit.at) >= resolveTTL {
		hit = resolvedRef{at: time.Now()}
		var v *registry.Version
		if pinned == nil {
			v, err = m.resolver.Resolve(ctx, r)
		}
		for _, p := range pinned {
			if v, err = m.resolver.Resolve(ctx, registry.Ref{Name: r.Name, Version: p}); !errors.Is(err, registry.ErrNotFound) {
				break
			}
		}
		var ie *registry.InputError
		switch {
		case errors.Is(err, registry.ErrNotFound):
			return "", 0, &routeError{http.StatusNotFound, fmt.Sprintf("unknown target model %q: %v", ref, err)}
		case errors.As(err, &ie):
			return "", 0, &routeError{http.StatusBadRequest, fmt.Sprintf("target model %q: %v", ref, err)}
		case err != nil:
			return "", 0, fmt.Errorf("resolve target model %q: %w", ref, err)
		}
		hit.name, hit.version = v.Name, v.Version
		m.cache.mu.Lock()
		if len(m.cache.m) >= maxResolveCache {
			clear(m.cache.m)
		}
		m.cache.m[key] = hit
		m.cache.mu.Unlock()
	}
	if !m.filter.Match(hit.name, hit.version) {
		return "", 0, &routeError{http.StatusNotFound, fmt.Sprintf("model %s version %d is not served by endpoint %s (its models: %s)",
			hit.name, hit.version, ep, m.models)}
	}
	return hit.name, hit.version, nil
}

// multiModel prepares a request to a multi-model endpoint: the target
// model resolved and checked, the path (OIP) or header (/invocations)
// naming its version, and the key that routes it. It answers the
// repository extension itself, and refusals; ok is false when it has
// answered.
func (g *Gateway) multiModel(w http.ResponseWriter, r *http.Request, rt *Route, path string) (newPath, key string, ok bool) {
	fail := func(err error) (string, string, bool) {
		var re *routeError
		if errors.As(err, &re) {
			gatewayError(w, re.status, "%s", re.msg)
		} else {
			g.log.Warn("multi-model target", "endpoint", rt.Endpoint, "err", err)
			gatewayError(w, http.StatusServiceUnavailable, "%v", err)
		}
		return "", "", false
	}
	m := rt.Models
	switch {
	case path == "/invocations":
		target := r.Header.Get(HeaderTargetModel)
		if target == "" {
			target = r.Header.Get(HeaderSageMakerTargetModel)
		}
		if target == "" {
			return fail(&routeError{http.StatusBadRequest, fmt.Sprintf("endpoint %s serves many models: name one with the %s (or %s) header: NAME, NAME:VERSION or NAME:ALIAS",
				rt.Endpoint, HeaderTargetModel, HeaderSageMakerTargetModel)})
		}
		name, version, err := m.resolve(r.Context(), rt.Endpoint, target)
		if err != nil {
			return fail(err)
		}
		key = name + ":" + strconv.Itoa(version)
		r.Header.Del(HeaderSageMakerTargetModel)
		r.Header.Set(HeaderTargetModel, key)
		return path, key, true
	case strings.HasPrefix(path, "/v2/models/"):
		ref, tail, _ := strings.Cut(strings.TrimPrefix(path, "/v2/models/"), "/")
		if v, ok := strings.CutPrefix(tail, "versions/"); ok {
			var ver string
			ver, tail, _ = strings.Cut(v, "/")
			if strings.Contains(ref, ":") {
				return fail(&routeError{http.StatusBadRequest, fmt.Sprintf("model %q: give the version in the name or in /versions/, not both", ref)})
			}
			ref += ":" + ver
		}
		name, version, err := m.resolve(r.Context(), rt.Endpoint, ref)
		if err != nil {
			return fail(err)
		}
		key = name + ":" + strconv.Itoa(version)
		newPath = "/v2/models/" + name + "/versions/" + strconv.Itoa(version)
		if tail != "" {
			newPath += "/" + tail
		}
		return newPath, key, true
	case strings.HasPrefix(path, "/v2/repository/"):
		g.serveRepository(w, r, rt, strings.TrimPrefix(path, "/v2/repository/"))
		return "", "", false
	}
	return path, "", true
}

// replicaAnswer is one replica's answer to a request the gateway fans
// out.
type replicaAnswer struct {
	job    int64
	status int
	body   []byte
	err    error
}

// HeaderIndexMissing, on a multi-model endpoint's merged repository index,
// says which replicas did not answer: the index lists what the others
// hold, rather than nothing because one replica is restarting.
const HeaderIndexMissing = "X-Hpcml-Index-Missing"

// toReplicas sends one request to each ready replica of the endpoint at
// once and returns their answers.
func (g *Gateway) toReplicas(ctx context.Context, rt *Route, target string, body []byte) []replicaAnswer {
	var reps []*Replica
	for i := range rt.Variants {
		for j := range rt.Variants[i].Fleets {
			reps = append(reps, rt.Variants[i].Fleets[j].Replicas...)
		}
	}
	out := make([]replicaAnswer, len(reps))
	var wg sync.WaitGroup
	h := http.Header{"Content-Type": {"application/json"}}
	for i, rep := range reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = g.ask(ctx, rt, rep, target, h, body)
		}()
	}
	wg.Wait()
	return out
}

// ask sends one small request to a replica and reads its answer whole.
func (g *Gateway) ask(ctx context.Context, rt *Route, rep *Replica, target string, h http.Header, body []byte) replicaAnswer {
	resp, err := g.up.do(ctx, rep.Addr, http.MethodPost, target, h, rt.Token, body)
	if err != nil {
		return replicaAnswer{job: rep.JobID, err: err}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	resp.finish(err == nil)
	return replicaAnswer{job: rep.JobID, status: resp.StatusCode, body: b, err: err}
}

// RepositoryRow is a row of a multi-model endpoint's OIP repository index
// (what the gateway merges and `endpoint models` prints); Replicas is
// hpcml's addition: how many replicas have the model loaded.
type RepositoryRow struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	State    string `json:"state"`
	Reason   string `json:"reason,omitempty"`
	Bytes    int64  `json:"bytes,omitempty"`
	Replicas int    `json:"replicas"`
}

// serveRepository answers the OIP repository extension for a
// multi-model endpoint: the index merges the replicas' (only the models
// the filter allows), load loads on the replica the model's requests go
// to, unload unloads from every replica.
func (g *Gateway) serveRepository(w http.ResponseWriter, r *http.Request, rt *Route, rest string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		gatewayError(w, http.StatusMethodNotAllowed, "the repository extension takes POST")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10+1))
	if err != nil || len(body) > 64<<10 {
		gatewayError(w, http.StatusBadRequest, "the request body is unreadable or over 64 KiB")
		return
	}
	ctx := r.Context()
	if rest == "index" {
		g.repositoryIndex(w, r, rt, body)
		return
	}
	m, action, found := strings.Cut(strings.TrimPrefix(rest, "models/"), "/")
	if !strings.HasPrefix(rest, "models/") || !found || (action != "load" && action != "unload") {
		gatewayError(w, http.StatusNotFound, "no route %s (the repository extension has index, models/NAME/load and models/NAME/unload)", r.URL.Path)
		return
	}
	var req struct {
		Parameters map[string]json.RawMessage `json:"parameters"`
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			gatewayError(w, http.StatusBadRequest, "invalid JSON body: %v", err)
			return
		}
	}
	ref := m
	if raw, ok := req.Parameters["version"]; ok {
		var s string
		var n int
		switch {
		case json.Unmarshal(raw, &s) == nil && s != "":
		case json.Unmarshal(raw, &n) == nil && n > 0:
			s = strconv.Itoa(n)
		default:
			gatewayError(w, http.StatusBadRequest, "parameters.version %s: want a version, as a string or a whole number", raw)
			return
		}
		ref += ":" + s
	}
	name, version, err := rt.Models.resolve(ctx, rt.Endpoint, ref)
	if err != nil {
		var re *routeError
		if errors.As(err, &re) {
			gatewayError(w, re.status, "%s", re.msg)
		} else {
			gatewayError(w, http.StatusServiceUnavailable, "%v", err)
		}
		return
	}
	fwd, _ := json.Marshal(map[string]any{"parameters": map[string]string{"version": strconv.Itoa(version)}})
	target := "/v2/repository/models/" + name + "/" + action
	if action == "load" {
		key := name + ":" + strconv.Itoa(version)
		for i := range rt.Variants {
			v := &rt.Variants[i]
			if _, rep := pickReplica(v, nil, key); rep != nil {
				a := g.ask(ctx, rt, rep, target, http.Header{"Content-Type": {"application/json"}}, fwd)
				rep.release()
				if a.err != nil {
					gatewayError(w, http.StatusBadGateway, "replica %d: %v", rep.JobID, a.err)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(a.status)
				w.Write(a.body)
				return
			}
		}
		gatewayError(w, http.StatusServiceUnavailable, "endpoint %q has no ready replica", rt.Endpoint)
		return
	}
	answers := g.toReplicas(ctx, rt, target, fwd)
	count := 0
	for _, a := range answers {
		switch {
		case a.err != nil:
			gatewayError(w, http.StatusBadGateway, "a replica failed to unload %s: %v", ref, a.err)
			return
		case a.status != http.StatusOK:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(a.status)
			w.Write(a.body)
			return
		}
		var ans struct {
			Unloaded []string `json:"unloaded"`
		}
		if json.Unmarshal(a.body, &ans) == nil && len(ans.Unloaded) > 0 {
			count++
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"name": name, "version": strconv.Itoa(version), "unloaded_from_replicas": count})
}

// repositoryIndex merges the replicas' indexes: a model is READY when a
// replica has it loaded (Replicas says how many), LOADING when one is
// loading it, else UNAVAILABLE; models outside the filter are left out.
func (g *Gateway) repositoryIndex(w http.ResponseWriter, r *http.Request, rt *Route, body []byte) {
	var req struct {
		Ready bool `json:"ready"`
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			gatewayError(w, http.StatusBadRequest, "invalid JSON body: %v", err)
			return
		}
	}
	answers := g.toReplicas(r.Context(), rt, "/v2/repository/index", []byte("{}"))
	if len(answers) == 0 {
		gatewayError(w, http.StatusServiceUnavailable, "endpoint %q has no ready replica", rt.Endpoint)
		return
	}
	rank := map[string]int{"UNAVAILABLE": 0, "LOADING": 1, "READY": 2}
	merged := map[[2]string]*RepositoryRow{}
	var missing []string
	for _, a := range answers {
		var rows []RepositoryRow
		switch {
		case a.err != nil:
			missing = append(missing, fmt.Sprintf("replica %d: %v", a.job, a.err))
			continue
		case a.status != http.StatusOK:
			missing = append(missing, fmt.Sprintf("replica %d: %d %s", a.job, a.status, truncate(a.body, 200)))
			continue
		case json.Unmarshal(a.body, &rows) != nil:
			missing = append(missing, fmt.Sprintf("replica %d: its index is not JSON", a.job))
			continue
		}
		for _, row := range rows {
			v, err := strconv.Atoi(row.Version)
			if err != nil || !rt.Models.filter.Match(row.Name, v) {
				continue
			}
			k := [2]string{row.Name, row.Version}
			cur := merged[k]
			if cur == nil {
				cur = &RepositoryRow{Name: row.Name, Version: row.Version, State: row.State, Reason: row.Reason}
				merged[k] = cur
			}
			if row.State == "READY" {
				cur.Replicas++
				cur.Bytes = row.Bytes
			}
			if rank[row.State] > rank[cur.State] {
				cur.State, cur.Reason = row.State, row.Reason
			}
		}
	}
	if len(missing) == len(answers) {
		gatewayError(w, http.StatusBadGateway, "no replica listed its models: %s", strings.Join(missing, "; "))
		return
	}
	if len(missing) > 0 {
		// One line (a replica's answer may hold line breaks), of bounded
		// length (proxies refuse long headers): the first three named.
		named := strings.Join(missing[:min(len(missing), 3)], "; ")
		if len(missing) > 3 {
			named += fmt.Sprintf("; %d more", len(missing)-3)
		}
		w.Header().Set(HeaderIndexMissing, strings.Join(strings.Fields(fmt.Sprintf("%d of %d replicas did not answer: %s",
			len(missing), len(answers), named)), " "))
	}
	out := []RepositoryRow{}
	for _, row := range merged {
		if !req.Ready || row.State == "READY" {
			out = append(out, *row)
		}
	}
	slices.SortFunc(out, func(a, b RepositoryRow) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		x, _ := strconv.Atoi(a.Version)
		y, _ := strconv.Atoi(b.Version)
		return x - y
	})
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// pickFor chooses a replica for a request: the least busy without a
// model key; with one, rendezvous hashing over the replicas with bounded
// loads: the first replica in the key's own order whose outstanding
// requests are below 1.5 times the fleet's mean (counting this one), so that a
// model's requests keep going where it is loaded, and spill over to the
// next replica in its order only when that one is much busier than the
// rest.
func pickFor(reps []*Replica, skip []*Replica, key string) *Replica {
	if key == "" {
		return leastOutstanding(reps, skip)
	}
	type ranked struct {
		rep   *Replica
		score uint64
	}
	cands := make([]ranked, 0, len(reps))
	var total int64
	for _, r := range reps {
		if r.draining.Load() || slices.Contains(skip, r) {
			continue
		}
		cands = append(cands, ranked{r, rendezvous(key, r.JobID)})
		total += r.outstanding.Load()
	}
	if len(cands) == 0 {
		return nil
	}
	slices.SortFunc(cands, func(a, b ranked) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	n := int64(len(cands))
	bound := (3*(total+1) + 2*n - 1) / (2 * n) // ⌈1.5 (total+1) / n⌉
	for _, c := range cands {
		if c.rep.outstanding.Load() < bound {
			return c.rep
		}
	}
	return cands[0].rep
}

// rendezvous is a replica's score for a key (highest random weight): the
// replicas' order for a key stays the same when others come and go, so
// a model moves only when the replica it was on does.
func rendezvous(key string, job int64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(job))
	h.Write(b[:])
	// FNV's low bits mix poorly for short inputs: finish with SplitMix64.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// updateMultiModel applies what is particular to updating a multi-model
// endpoint: a new filter (--models), which the gateway applies at once
// and no replica restarts for; there is no model to deploy. handled is
// false when the update is the ordinary in-place kind (replicas, weight,
// autoscaling) or the endpoint is not multi-model.
func (c *Controller) updateMultiModel(ctx context.Context, e *endpoint.Endpoint, req UpdateRequest) (*UpdateResult, bool, error) {
	if e.Spec.MultiModel == nil {
		if req.Models != "" {
			return nil, true, fieldErr("models", "endpoint %s serves one model: --models is for multi-model endpoints (endpoint create --multi-model)", e.Name)
		}
		return nil, false, nil
	}
	if req.Model != "" || req.CPUs != 0 || req.Batching != nil || req.Strategy != "" || req.MaxErrorRate != nil || req.MaxP99 != nil {
		return nil, true, fieldErr("model", "endpoint %s is multi-model: it serves the models --models names, so there is no model to deploy "+
			"(change --models); its replicas' cpus and batching are set at creation", e.Name)
	}
	if req.Models == "" {
		return nil, false, nil
	}
	if _, err := endpoint.ParseFilter(req.Models); err != nil {
		return nil, true, fieldErr("models", "%v", err)
	}
	old := e.Spec.MultiModel.Models
	mm := *e.Spec.MultiModel
	mm.Models = req.Models
	e.Spec.MultiModel = &mm
	var res *UpdateResult
	var err error
	if req.Replicas > 0 || req.Weight != nil || req.Autoscale != nil || req.NoAutoscale {
		res, err = c.updateInPlace(ctx, e, &e.Spec.Variants[0], req)
	} else if err = e.Spec.Check(); err == nil {
		res = &UpdateResult{Endpoint: e, DryRun: req.DryRun}
		if !req.DryRun {
			err = c.cfg.Store.UpdateEndpoint(ctx, e)
		}
	}
	if err != nil || req.DryRun {
		return res, true, err
	}
	res.Plan = fmt.Sprintf("models %s → %s: the gateway applies the new filter now; no replica restarts", old, req.Models)
	// The routing table follows at once rather than at the next tick:
	// a model taken out of the filter is refused from now on.
	if rt := c.cfg.Gateway.Route(e.Name); rt != nil {
		next := *rt
		next.Models = c.modelRouting(e)
		c.cfg.Gateway.SetRoute(&next)
	}
	c.poke()
	return res, true, nil
}
