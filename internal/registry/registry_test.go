package registry

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gcblob "gocloud.dev/blob"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/dataset"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/onnx"
	"github.com/hpcml/hpcml/internal/store"
	"github.com/hpcml/hpcml/internal/train"
)

// tinyModel is an MLP made by the engine and exported to ONNX: 4 features
// in, 3 classes out, with preprocessing metadata. seed changes the bytes.
func tinyModel(t testing.TB, seed uint64) []byte {
	t.Helper()
	m, err := nn.Build(nn.Spec{Input: []int{4}, Layers: []nn.LayerSpec{
		{Type: "dense", Units: 8}, {Type: "relu"}, {Type: "dense", Units: 3},
	}}, seed)
	if err != nil {
		t.Fatal(err)
	}
	data, err := onnx.Export(m, onnx.ExportOptions{Head: "softmax",
		Metadata: map[string]string{"hpcml.features": "a,b,c,d", "hpcml.classes": "x,y,z"}})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// env is a registry on a real SQLite database and file storage.
type env struct {
	reg     *Registry
	st      *store.SQLite
	storage *blob.Bucket
	objDir  string
	dir     string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(t.Context(), filepath.Join(dir, "hpcml.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	objDir := filepath.Join(dir, "objects")
	b, err := blob.Open(t.Context(), blob.WithCreateDir("file://"+objDir))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	reg := New(st, b, nil)
	t.Cleanup(func() { reg.Close() })
	return &env{reg: reg, st: st, storage: b, objDir: objDir, dir: dir}
}

// file writes data to a file under the env's dir and returns its path.
func (e *env) file(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// objects lists every key under models/ in the server's storage.
func (e *env) objects(t *testing.T) []string {
	t.Helper()
	var keys []string
	it := e.storage.List(&gcblob.ListOptions{Prefix: ModelsDir})
	for {
		o, err := it.Next(t.Context())
		if err == io.EOF {
			return keys
		}
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, o.Key)
	}
}

func sum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func TestRegisterRecordsAndStoresTheVersion(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	m1, m2 := tinyModel(t, 1), tinyModel(t, 2)
	p1 := e.file(t, "m1.onnx", m1)
	v1, err := e.reg.Register(ctx, RegisterRequest{Name: "iris-mlp", Artifact: p1, Description: "first",
		Metadata: map[string]string{"owner": "ml-team"}, Metrics: map[string]float64{"accuracy": 0.9}})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := e.reg.Register(ctx, RegisterRequest{Name: "iris-mlp", Artifact: "file://" + e.file(t, "m2.onnx", m2)})
	if err != nil {
		t.Fatal(err)
	}
	if v1.Version != 1 || v2.Version != 2 {
		t.Fatalf("versions %d, %d; want 1, 2", v1.Version, v2.Version)
	}
	if v1.SHA256 != sum(m1) || v1.Size != int64(len(m1)) || v2.SHA256 != sum(m2) {
		t.Fatalf("checksums: v1 %s/%d, v2 %s; want %s/%d, %s", v1.SHA256, v1.Size, v2.SHA256, sum(m1), len(m1), sum(m2))
	}
	wantSig := Signature{Inputs: []Tensor{{Name: "input", DataType: "FP32", Shape: []int64{-1, 4}}},
		Outputs: []Tensor{{Name: "output", DataType: "FP32", Shape: []int64{-1, 3}}}}
	if got, _ := json.Marshal(v1.Signature); string(got) != string(must(json.Marshal(wantSig))) {
		t.Fatalf("signature %s, want %s", got, must(json.Marshal(wantSig)))
	}
	if v1.Preprocessing["hpcml.features"] != "a,b,c,d" || v1.Metadata["owner"] != "ml-team" || v1.Metrics["accuracy"] != 0.9 ||
		v1.Description != "first" || v1.URI != "model://iris-mlp/1" || v1.Lineage.Source != p1 {
		t.Fatalf("record: %+v", v1)
	}
	// The storage layout of the contract: the artefact byte for byte and
	// the record beside it.
	stored, err := e.storage.ReadAll(ctx, "models/iris-mlp/1/model.onnx")
	if err != nil || !bytes.Equal(stored, m1) {
		t.Fatalf("stored artefact differs from the file (%v)", err)
	}
	var rec Version
	if err := json.Unmarshal(must(e.storage.ReadAll(ctx, "models/iris-mlp/2/version.json")), &rec); err != nil ||
		rec.SHA256 != v2.SHA256 || rec.Version != 2 {
		t.Fatalf("version.json: %+v %v", rec, err)
	}
	// The artefact as the registry serves it.
	rd, err := e.reg.Open(ctx, v2)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rd)
	rd.Close()
	if sum(got) != v2.SHA256 {
		t.Fatal("Open returned other bytes than registered")
	}

	list, err := e.reg.List(ctx)
	if err != nil || len(list) != 1 || list[0].LatestVersion != 2 || list[0].VersionCount != 2 || list[0].Latest.SHA256 != v2.SHA256 {
		t.Fatalf("list: %+v %v", list, err)
	}
	m, err := e.reg.Get(ctx, "iris-mlp")
	if err != nil || len(m.Versions) != 2 || m.Versions[0].Version != 2 || m.Versions[1].Description != "first" {
		t.Fatalf("get: %+v %v", m, err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestResolveAndAliases(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	for i := range 3 {
		if _, err := e.reg.Register(ctx, RegisterRequest{Name: "m", Artifact: e.file(t, "m.onnx", tinyModel(t, uint64(i)))}); err != nil {
			t.Fatal(err)
		}
	}
	resolve := func(s string) (int, error) {
		t.Helper()
		ref, err := ParseRef(s)
		if err != nil {
			t.Fatalf("parse %q: %v", s, err)
		}
		v, err := e.reg.Resolve(ctx, ref)
		if err != nil {
			return 0, err
		}
		return v.Version, nil
	}
	for ref, want := range map[string]int{"m": 3, "m:latest": 3, "m:1": 1, "m:2": 2} {
		if got, err := resolve(ref); err != nil || got != want {
			t.Errorf("resolve %s: %d %v, want %d", ref, got, err, want)
		}
	}
	if prev, err := e.reg.SetAlias(ctx, "m", "production", 1); err != nil || prev != 0 {
		t.Fatalf("set production: %d %v", prev, err)
	}
	if _, err := e.reg.SetAlias(ctx, "m", "staging", 3); err != nil {
		t.Fatal(err)
	}
	if got, err := resolve("m:production"); err != nil || got != 1 {
		t.Fatalf("production: %d %v", got, err)
	}
	// Moving production (a promotion) returns where it was.
	if prev, err := e.reg.SetAlias(ctx, "m", "production", 3); err != nil || prev != 1 {
		t.Fatalf("move production: %d %v", prev, err)
	}
	if got, _ := resolve("m:production"); got != 3 {
		t.Fatalf("production after the move: %d", got)
	}
	m, _ := e.reg.Get(ctx, "m")
	if !slices.Equal(AliasesOf(m.Aliases, 3), []string{"production", "staging"}) {
		t.Fatalf("aliases of v3: %v", m.Aliases)
	}
	if err := e.reg.DeleteAlias(ctx, "m", "staging"); err != nil {
		t.Fatal(err)
	}
	if _, err := resolve("m:staging"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted alias: %v", err)
	}

	// Mistakes change nothing.
	for _, c := range []struct {
		name, alias string
		version     int
		field       string // "" for not found
	}{
		{"m", "production", 9, ""},
		{"nope", "production", 1, ""},
		{"m", "Prod", 1, "alias"},
		{"m", "latest", 1, "alias"},
		{"m", "9lives", 1, "alias"},
		{"m", "production", 0, "version"},
		{"M!", "production", 1, "name"},
	} {
		_, err := e.reg.SetAlias(ctx, c.name, c.alias, c.version)
		var ie *InputError
		switch {
		case c.field == "" && !errors.Is(err, ErrNotFound):
			t.Errorf("alias %s:%s -> %d: %v, want not found", c.name, c.alias, c.version, err)
		case c.field != "" && (!errors.As(err, &ie) || ie.Field != c.field):
			t.Errorf("alias %s:%s -> %d: %v, want an input error on %s", c.name, c.alias, c.version, err, c.field)
		}
	}
	if got, _ := resolve("m:production"); got != 3 {
		t.Fatalf("production moved by a refused request: %d", got)
	}
	if err := e.reg.DeleteAlias(ctx, "m", "canary"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete unknown alias: %v", err)
	}
	for _, ref := range []string{"m:7", "nope", "nope:1", "m:canary"} {
		if _, err := resolve(ref); !errors.Is(err, ErrNotFound) {
			t.Errorf("resolve %s: %v, want not found", ref, err)
		}
	}
}

func TestParseRef(t *testing.T) {
	for in, want := range map[string]Ref{
		"m": {Name: "m"}, "m:latest": {Name: "m"}, "m:12": {Name: "m", Version: 12},
		"mnist.cnn_v2:production": {Name: "mnist.cnn_v2", Alias: "production"},
	} {
		got, err := ParseRef(in)
		if err != nil || got != want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if in != "m:latest" && got.String() != in {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), in)
		}
	}
	for _, in := range []string{"", ":1", "M", "m:0", "m:-1", "m:1x", "m:", "m:Prod", "-m", "m:1:2", strings.Repeat("a", 64)} {
		if _, err := ParseRef(in); err == nil {
			t.Errorf("ParseRef(%q) accepted", in)
		}
	}
}

// Every refused registration leaves the registry and storage as they were,
// and the error names the field (and, for ONNX, the problem).
func TestBadRegistrationsChangeNothing(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	good := tinyModel(t, 1)
	// An operator the engine lacks: the exported graph with its Relu
	// node's op_type (NodeProto field 4: tag 0x22, length 4) renamed;
	// same length, so the protobuf stays well-formed.
	relu := []byte("\x22\x04Relu")
	if bytes.Count(good, relu) != 1 {
		t.Fatalf("the test model has %d Relu op types, want 1", bytes.Count(good, relu))
	}
	unsupported := bytes.Replace(good, relu, []byte("\x22\x04Relz"), 1)
	garbage := []byte("this is not a protobuf, just text\n")
	cases := []struct {
		name  string
		req   RegisterRequest
		field string
		want  string
	}{
		{"bad name", RegisterRequest{Name: "Bad Name", Artifact: e.file(t, "g.onnx", good)}, "name", "model name"},
		{"nothing", RegisterRequest{Name: "m"}, "artifact", "give an artifact"},
		{"both", RegisterRequest{Name: "m", Artifact: "x.onnx", TrainingJob: 3}, "artifact", "not both"},
		{"missing file", RegisterRequest{Name: "m", Artifact: filepath.Join(e.dir, "nope.onnx")}, "artifact", "no such file"},
		{"missing key", RegisterRequest{Name: "m", Artifact: "somewhere/model.onnx"}, "artifact", "no such file"},
		{"directory", RegisterRequest{Name: "m", Artifact: "file://" + e.dir + "/"}, "artifact", "directory"},
		{"scheme", RegisterRequest{Name: "m", Artifact: "http://example.com/m.onnx"}, "artifact", "scheme"},
		{"escape", RegisterRequest{Name: "m", Artifact: "../etc/passwd"}, "artifact", "escapes"},
		{"not onnx", RegisterRequest{Name: "m", Artifact: e.file(t, "garbage.onnx", garbage)}, "artifact", "not a valid ONNX"},
		{"empty", RegisterRequest{Name: "m", Artifact: e.file(t, "empty.onnx", nil)}, "artifact", "empty"},
		{"unsupported op", RegisterRequest{Name: "m", Artifact: e.file(t, "relz.onnx", unsupported)}, "artifact", "unsupported ONNX operators: Relz (node"},
		{"metadata key", RegisterRequest{Name: "m", Artifact: e.file(t, "g.onnx", good), Metadata: map[string]string{"a=b": "c"}}, "metadata", "metadata key"},
		{"description", RegisterRequest{Name: "m", Artifact: e.file(t, "g.onnx", good), Description: strings.Repeat("x", MaxDescription+1)}, "description", "description"},
	}
	for _, c := range cases {
		_, err := e.reg.Register(ctx, c.req)
		var ie *InputError
		if !errors.As(err, &ie) || ie.Field != c.field || !strings.Contains(ie.Message, c.want) {
			t.Errorf("%s: %v, want an input error on %s containing %q", c.name, err, c.field, c.want)
		}
	}
	if list, err := e.reg.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("models after refused registrations: %v %v", list, err)
	}
	if keys := e.objects(t); len(keys) != 0 {
		t.Fatalf("objects after refused registrations: %v", keys)
	}
	// And the next good one is version 1.
	v, err := e.reg.Register(ctx, RegisterRequest{Name: "m", Artifact: e.file(t, "g.onnx", good)})
	if err != nil || v.Version != 1 {
		t.Fatalf("good registration after bad ones: %+v %v", v, err)
	}
}

// A register killed between writing its objects and committing its row
// leaves objects no row names: no version is visible, and the next
// registration takes that number and overwrites them.
func TestOrphanObjectsOfAnInterruptedRegisterAreInvisibleAndReplaced(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	v1, err := e.reg.Register(ctx, RegisterRequest{Name: "m", Artifact: e.file(t, "a.onnx", tinyModel(t, 1))})
	if err != nil {
		t.Fatal(err)
	}
	// What a kill -9 after the object writes of version 2 leaves.
	half := tinyModel(t, 99)
	if err := e.storage.WriteAll(ctx, ArtifactKey("m", 2), half, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.storage.WriteAll(ctx, RecordKey("m", 2), []byte(`{"name":"m","version":2,"sha256":"stale"}`), nil); err != nil {
		t.Fatal(err)
	}
	if v, err := e.reg.Resolve(ctx, Ref{Name: "m"}); err != nil || v.Version != 1 || v.SHA256 != v1.SHA256 {
		t.Fatalf("latest with an orphan v2 present: %+v %v", v, err)
	}
	if _, err := e.reg.Resolve(ctx, Ref{Name: "m", Version: 2}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the orphan is visible: %v", err)
	}
	retry := tinyModel(t, 2)
	v2, err := e.reg.Register(ctx, RegisterRequest{Name: "m", Artifact: e.file(t, "b.onnx", retry)})
	if err != nil || v2.Version != 2 {
		t.Fatalf("retry: %+v %v", v2, err)
	}
	if got := must(e.storage.ReadAll(ctx, ArtifactKey("m", 2))); sum(got) != sum(retry) || v2.SHA256 != sum(retry) {
		t.Fatal("the retry did not replace the orphan artefact")
	}
	var rec Version
	json.Unmarshal(must(e.storage.ReadAll(ctx, RecordKey("m", 2))), &rec)
	if rec.SHA256 != sum(retry) {
		t.Fatalf("version.json after retry: %+v", rec)
	}
}

// Concurrent registrations of one model get distinct numbers, and each
// number's artefact is the one its record describes.
func TestConcurrentRegistrations(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		p := e.file(t, "c"+string(rune('0'+i))+".onnx", tinyModel(t, uint64(10+i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.reg.Register(ctx, RegisterRequest{Name: "c", Artifact: p})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	m, err := e.reg.Get(ctx, "c")
	if err != nil || len(m.Versions) != 4 {
		t.Fatalf("%+v %v", m, err)
	}
	seen := map[string]bool{}
	for _, v := range m.Versions {
		if got := must(e.storage.ReadAll(ctx, v.ArtifactKey)); sum(got) != v.SHA256 {
			t.Errorf("version %d: stored artefact does not match its checksum", v.Version)
		}
		seen[v.SHA256] = true
	}
	if len(seen) != 4 {
		t.Fatalf("%d distinct artefacts among 4 versions", len(seen))
	}
}

// trainingRun writes what a finished training job leaves in storage and
// inserts its job in the given state.
func trainingRun(t *testing.T, e *env, state job.State, data string, tags ...string) int64 {
	t.Helper()
	ctx := t.Context()
	if _, err := e.st.GetQueue(ctx, "default"); err != nil {
		if err := e.st.CreateQueue(ctx, &job.Queue{Name: "default", Backend: "local"}); err != nil {
			t.Fatal(err)
		}
	}
	j := &job.Job{Name: "train", Queue: "default", State: state, SubmittedAt: time.Now().UTC(),
		Spec: job.Spec{Command: []string{"hpcml", "__train"}, Queue: "default", Tags: map[string]string{}}}
	for i := 0; i+1 < len(tags); i += 2 {
		j.Spec.Tags[tags[i]] = tags[i+1]
	}
	if err := e.st.InsertJob(ctx, j, nil); err != nil {
		t.Fatal(err)
	}
	put := func(file string, v any) {
		var data []byte
		if b, ok := v.([]byte); ok {
			data = b
		} else {
			data = must(json.Marshal(v))
		}
		if err := e.storage.WriteAll(ctx, train.RunDir(j.ID)+file, data, nil); err != nil {
			t.Fatal(err)
		}
	}
	ri := train.RunInfo{Config: train.Config{Algorithm: "mlp", Data: data, Label: "species"},
		Data:      train.DataInfo{Source: data, Task: "classification", Label: "species", Classes: []string{"x", "y", "z"}},
		StartedAt: time.Now().UTC()}
	put(train.RunFile, ri)
	put(train.MetadataFile, train.ModelMetadata{RunInfo: ri, Output: "probabilities"})
	put(train.EvaluationFile, map[string]any{"set": "test", "rows": 30, "loss": 0.2, "accuracy": 0.93, "macro_f1": 0.92})
	put(train.ModelFile, tinyModel(t, 5))
	return j.ID
}

func TestRegisterFromTrainingJob(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if _, _, err := e.st.AddDatasetVersion(ctx, &dataset.Version{Dataset: "iris", Digest: "d1", ManifestKey: "k1", Source: "file:///x/"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.st.AddDatasetVersion(ctx, &dataset.Version{Dataset: "iris", Digest: "d2", ManifestKey: "k2", Source: "file:///x/"}); err != nil {
		t.Fatal(err)
	}
	id := trainingRun(t, e, job.Succeeded, "dataset://iris")
	// A version added after the run started is not the one it read.
	if _, _, err := e.st.AddDatasetVersion(ctx, &dataset.Version{Dataset: "iris", Digest: "d3", ManifestKey: "k3", Source: "file:///x/",
		CreatedAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	v, err := e.reg.Register(ctx, RegisterRequest{Name: "iris", TrainingJob: id, Metadata: map[string]string{"owner": "me"}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Lineage.TrainingJob != id || v.Lineage.Dataset != "iris:2" || v.Lineage.Algorithm != "mlp" || v.Lineage.Data != "dataset://iris" {
		t.Fatalf("lineage %+v", v.Lineage)
	}
	if v.Metrics["accuracy"] != 0.93 || v.Metrics["macro_f1"] != 0.92 || v.Metrics["rows"] != 30 {
		t.Fatalf("metrics %v", v.Metrics)
	}
	if v.Metadata["task"] != "classification" || v.Metadata["classes"] != "x,y,z" || v.Metadata["owner"] != "me" ||
		v.Metadata["output"] != "probabilities" || v.Metadata["evaluation_set"] != "test" {
		t.Fatalf("metadata %v", v.Metadata)
	}
	if v.SHA256 != sum(tinyModel(t, 5)) {
		t.Fatal("checksum is not the training job's model's")
	}
	// The same run named by its storage key is recognised as the job's,
	// and a pinned dataset version is taken as written.
	id2 := trainingRun(t, e, job.Succeeded, "dataset://iris@1")
	v2, err := e.reg.Register(ctx, RegisterRequest{Name: "iris", Artifact: train.RunDir(id2) + train.ModelFile})
	if err != nil || v2.Lineage.TrainingJob != id2 || v2.Lineage.Dataset != "iris:1" || v2.Version != 2 {
		t.Fatalf("by key: %+v %v", v2, err)
	}

	// hpcml train resolves dataset:// at submission and tags the job with
	// the versions; the tag wins over the (resolved) URL in run.json.
	id3 := trainingRun(t, e, job.Succeeded, "file:///srv/iris/", DatasetTag, "iris:1", TestDatasetTag, "iris-test:4")
	if v3, err := e.reg.Register(ctx, RegisterRequest{Name: "iris", TrainingJob: id3}); err != nil || v3.Lineage.Dataset != "iris:1" || v3.Lineage.TestDataset != "iris-test:4" {
		t.Fatalf("dataset from the job's tag: %+v %v", v3, err)
	}

	running := trainingRun(t, e, job.Running, "file:///data/iris.csv")
	if _, err := e.reg.Register(ctx, RegisterRequest{Name: "iris", TrainingJob: running}); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "RUNNING") {
		t.Fatalf("running job: %v", err)
	}
	if _, err := e.reg.Register(ctx, RegisterRequest{Name: "iris", TrainingJob: 999}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown job: %v", err)
	}
	// A succeeded job that is not a training run.
	plain := &job.Job{Name: "x", Queue: "default", State: job.Succeeded, SubmittedAt: time.Now().UTC(),
		Spec: job.Spec{Command: []string{"true"}, Queue: "default"}}
	if err := e.st.InsertJob(ctx, plain, nil); err != nil {
		t.Fatal(err)
	}
	var ie *InputError
	if _, err := e.reg.Register(ctx, RegisterRequest{Name: "iris", TrainingJob: plain.ID}); !errors.As(err, &ie) || ie.Field != "training_job" {
		t.Fatalf("non-training job: %v", err)
	}
	if m, _ := e.reg.Get(ctx, "iris"); m.VersionCount != 3 {
		t.Fatalf("refused registrations added versions: %d", m.VersionCount)
	}
}
