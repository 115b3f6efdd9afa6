// Package registry is hpcml's model registry: named models, each a series
// of immutable versions numbered 1, 2, 3…, and aliases (stages such as
// staging and production) that point at one version each.
//
// A version is an ONNX artefact copied byte for byte to the server's
// storage under models/<name>/<version>/model.onnx, beside version.json
// (the Version record), and a row in the metadata store that makes it
// visible. Registering checks the artefact by compiling it with the
// engine's ONNX importer, so a version that is registered is one that
// hpcml serve can load: a corrupt file or an operator the engine does not
// implement is refused at the door, naming the operator.
package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	gcblob "gocloud.dev/blob"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/dataset"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/onnx"
	"github.com/hpcml/hpcml/internal/store"
	"github.com/hpcml/hpcml/internal/train"
)

// Bounds on what one register request may carry.
const (
	// MaxArtifactBytes bounds an artefact: it is read whole into memory
	// to be checked (and served the same way by hpcml serve).
	MaxArtifactBytes   = 2 << 30
	MaxDescription     = 4096
	MaxMetadataEntries = 64
	MaxMetadataKey     = 128
	MaxMetadataValue   = 4096
)

// DatasetTag and TestDatasetTag are the job tags in which hpcml train
// records the dataset versions of a run's data and held-out test data,
// "NAME:VERSION", since the run's config holds their resolved URLs.
const (
	DatasetTag     = "hpcml.dataset"
	TestDatasetTag = "hpcml.test_dataset"
)

// ErrNotFound is wrapped by every error about a model, version, alias or
// training job that does not exist (it is store.ErrNotFound, so callers
// can test either).
var ErrNotFound = store.ErrNotFound

// ErrConflict: the request is well-formed but the registry cannot act on
// it now (a training job that has not succeeded).
var ErrConflict = errors.New("conflict")

// InputError is a caller mistake in one field of a request; nothing was
// changed.
type InputError struct {
	Field   string
	Message string
}

func (e *InputError) Error() string { return e.Message }

func inputErr(field, format string, args ...any) error {
	return &InputError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Tensor is one input or output of a model: its name, its Open Inference
// Protocol datatype and its shape, -1 for a dynamic dimension.
type Tensor struct {
	Name     string  `json:"name"`
	DataType string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// Signature is what a model takes and gives.
type Signature struct {
	Inputs  []Tensor `json:"inputs"`
	Outputs []Tensor `json:"outputs"`
}

// Lineage is where a version came from, as far as the registry knows.
type Lineage struct {
	// Source is the artefact's URL or key as given at register time.
	Source string `json:"source"`
	// TrainingJob is the job whose run made the model (0: unknown).
	TrainingJob int64 `json:"training_job,omitempty"`
	// Algorithm is the training run's algorithm.
	Algorithm string `json:"algorithm,omitempty"`
	// Data is the training data as the run was given it (a URL or a
	// dataset:// name).
	Data string `json:"data,omitempty"`
	// Dataset is the dataset version trained on, NAME:VERSION, when the
	// data was a registered dataset.
	Dataset string `json:"dataset,omitempty"`
	// TestDataset is the dataset version it was evaluated on, when the
	// held-out data was one.
	TestDataset string `json:"test_dataset,omitempty"`
}

// Version is one immutable version of a model: its record is written once,
// at register time, to version.json and the store.
type Version struct {
	Name        string `json:"name"`
	Version     int    `json:"version"`
	Description string `json:"description,omitempty"`
	// URI is the version's model:// URL (hpcml serve --model).
	URI string `json:"uri"`
	// ArtifactKey is the ONNX file's key in the server's storage.
	ArtifactKey string    `json:"artifact_key"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	Signature   Signature `json:"signature"`
	// Preprocessing is the ONNX file's metadata_props: how inputs are to
	// be prepared, label names and the like (hpcml's exporter writes them).
	Preprocessing map[string]string `json:"preprocessing,omitempty"`
	// Metrics are evaluation results (a training job's held-out report).
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// Metadata is free-form key/value data given at register time, over
	// what the training run said (task, classes...).
	Metadata  map[string]string `json:"metadata,omitempty"`
	Lineage   Lineage           `json:"lineage"`
	CreatedAt time.Time         `json:"created_at"`
}

// Model is a model with its aliases and newest version.
type Model struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// VersionCount is how many versions it has; LatestVersion the newest.
	VersionCount  int            `json:"version_count"`
	LatestVersion int            `json:"latest_version"`
	Aliases       map[string]int `json:"aliases"`
	Latest        *Version       `json:"latest,omitempty"`
	// Versions, newest first, only where asked for (Get).
	Versions []Version `json:"versions,omitempty"`
}

// Store is what the registry needs of the metadata store: its own tables,
// and jobs and datasets for lineage.
type Store interface {
	store.ModelStore
	GetJob(ctx context.Context, id int64) (*job.Job, error)
	GetDataset(ctx context.Context, name string) (*dataset.Dataset, error)
}

// Registry registers and looks up model versions.
type Registry struct {
	st      Store
	storage *blob.Bucket
	log     *slog.Logger
	// buckets holds the buckets of artefact URLs outside the server's
	// storage, opened on first use.
	buckets *blob.Cache
	// mu serialises registrations. The version number is chosen before
	// the artefact is written (it is in the artefact's key), so two
	// registrations of one model in this process must not pick the same
	// number and overwrite each other's objects. One server owns a data
	// dir (it takes a lock), so this process is the only writer.
	mu sync.Mutex
}

// New returns a registry over the metadata store and the server's storage.
func New(st Store, storage *blob.Bucket, log *slog.Logger) *Registry {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Registry{st: st, storage: storage, log: log, buckets: blob.NewCache()}
}

// Close releases the buckets opened for artefact URLs.
func (r *Registry) Close() error { return r.buckets.Close() }

// RegisterRequest asks for a new version of a model. Exactly one of
// Artifact and TrainingJob is set.
type RegisterRequest struct {
	Name string `json:"name"`
	// Artifact is an ONNX file: file:///path, s3://bucket/key?..., an
	// absolute path on the server's machine, or a key in the server's
	// storage (training/<job id>/model.onnx is treated as that job's).
	Artifact string `json:"artifact,omitempty"`
	// TrainingJob registers the model.onnx of that finished training job.
	TrainingJob int64             `json:"training_job,omitempty"`
	Description string            `json:"description,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	// Metrics add to (and override) the training run's evaluation.
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

var trainingKeyRE = regexp.MustCompile(`^training/([1-9][0-9]*)/model\.onnx$`)

// check validates the request's fields on their own.
func (q *RegisterRequest) check() error {
	if err := CheckName(q.Name); err != nil {
		return inputErr("name", "%v", err)
	}
	switch {
	case q.Artifact == "" && q.TrainingJob == 0:
		return inputErr("artifact", "give an artifact URL or a training job")
	case q.Artifact != "" && q.TrainingJob != 0:
		return inputErr("artifact", "give an artifact URL or a training job, not both")
	case q.TrainingJob < 0:
		return inputErr("training_job", "training job %d is not a job id", q.TrainingJob)
	}
	if len(q.Description) > MaxDescription || !utf8.ValidString(q.Description) {
		return inputErr("description", "description: want valid UTF-8 of at most %d bytes", MaxDescription)
	}
	if len(q.Metadata) > MaxMetadataEntries {
		return inputErr("metadata", "metadata: %d entries, at most %d", len(q.Metadata), MaxMetadataEntries)
	}
	for k, v := range q.Metadata {
		if k == "" || len(k) > MaxMetadataKey || !utf8.ValidString(k) || strings.ContainsAny(k, "=\n") {
			return inputErr("metadata", "metadata key %q: want 1-%d bytes of UTF-8 without '=' or newlines", k, MaxMetadataKey)
		}
		if len(v) > MaxMetadataValue || !utf8.ValidString(v) {
			return inputErr("metadata", "metadata %s: want valid UTF-8 of at most %d bytes", k, MaxMetadataValue)
		}
	}
	if len(q.Metrics) > MaxMetadataEntries {
		return inputErr("metrics", "metrics: %d entries, at most %d", len(q.Metrics), MaxMetadataEntries)
	}
	for k := range q.Metrics {
		if k == "" || len(k) > MaxMetadataKey {
			return inputErr("metrics", "metric name %q: want 1-%d bytes", k, MaxMetadataKey)
		}
	}
	return nil
}

// Register checks the artefact and records it as the next version of the
// model. A caller mistake is an *InputError naming the field (an unusable
// ONNX file is one, naming the operators the engine lacks); an unknown
// training job wraps ErrNotFound, an unfinished one ErrConflict. On any
// error no version is visible.
func (r *Registry) Register(ctx context.Context, q RegisterRequest) (*Version, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	v := &Version{Name: q.Name, Description: q.Description, Metadata: map[string]string{}, Metrics: map[string]float64{}}
	source, jobID := q.Artifact, q.TrainingJob
	if jobID != 0 {
		source = train.RunDir(jobID) + train.ModelFile
	} else if m := trainingKeyRE.FindStringSubmatch(strings.TrimPrefix(source, "./")); m != nil && !strings.Contains(source, "://") {
		jobID, _ = strconv.ParseInt(m[1], 10, 64)
	}
	v.Lineage.Source = blob.Redact(source)
	if jobID != 0 {
		if err := r.fromTraining(ctx, jobID, v); err != nil {
			return nil, err
		}
	}
	data, err := r.readArtifact(ctx, source)
	if err != nil {
		return nil, err
	}
	g, err := onnx.Load(data)
	if err != nil {
		// onnx.Load's message names the problem: the operators it lacks
		// (all of them), or what is corrupt.
		return nil, inputErr("artifact", "%s cannot be served: %v", blob.Redact(source), err)
	}
	sum := sha256.Sum256(data)
	v.SHA256, v.Size = hex.EncodeToString(sum[:]), int64(len(data))
	v.Signature = Signature{Inputs: tensors(g.Inputs()), Outputs: tensors(g.Outputs())}
	if md := g.Metadata(); len(md) > 0 {
		v.Preprocessing = md
	}
	maps.Copy(v.Metadata, q.Metadata)
	maps.Copy(v.Metrics, q.Metrics)
	if len(v.Metadata) == 0 {
		v.Metadata = nil
	}
	if len(v.Metrics) == 0 {
		v.Metrics = nil
	}
	return r.commit(ctx, v, data)
}

// commit writes the version's objects and then its row.
//
// Crash safety: the row is what makes a version exist (every read goes
// through the store), and it is inserted in one transaction after both
// objects are complete. A kill -9 before the commit leaves at most
// objects under models/<name>/<n>/ that no row names: invisible, and
// harmless because the next registration computes the same n (the
// highest row + 1) and overwrites them, byte for byte its own. A kill
// during a write leaves no partial object either: file:// buckets write
// to a temporary file renamed on Close, S3 makes an upload visible only
// when it completes. A kill after the commit leaves a whole version.
// Nothing ever rewrites the objects of a version that has a row, since n
// is above every row and registrations are serialised (r.mu; one server
// per data dir).
func (r *Registry) commit(ctx context.Context, v *Version, data []byte) (*Version, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for range 3 {
		n, err := r.st.NextModelVersion(ctx, v.Name)
		if err != nil {
			return nil, err
		}
		v.Version, v.URI, v.ArtifactKey = n, URI(v.Name, n), ArtifactKey(v.Name, n)
		v.CreatedAt = time.Now().UTC().Truncate(time.Millisecond)
		record, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return nil, err
		}
		opts := &gcblob.WriterOptions{ContentType: "application/octet-stream"}
		if err := r.storage.WriteAll(ctx, v.ArtifactKey, data, opts); err != nil {
			return nil, fmt.Errorf("model %s version %d: write the artifact: %w", v.Name, n, err)
		}
		if err := r.storage.WriteAll(ctx, RecordKey(v.Name, n), record, &gcblob.WriterOptions{ContentType: "application/json"}); err != nil {
			return nil, fmt.Errorf("model %s version %d: write version.json: %w", v.Name, n, err)
		}
		err = r.st.AddModelVersion(ctx, &store.ModelVersionRow{Model: v.Name, Version: n, SHA256: v.SHA256,
			Size: v.Size, CreatedAt: v.CreatedAt, Record: record})
		if errors.Is(err, store.ErrExists) {
			// Only another writer on the same database gets here (r.mu
			// rules out this process); take the next number.
			r.log.Warn("model version taken while registering; retrying", "model", v.Name, "version", n)
			continue
		}
		if err != nil {
			return nil, err
		}
		r.log.Info("model version registered", "model", v.Name, "version", n, "sha256", v.SHA256, "bytes", v.Size,
			"source", v.Lineage.Source)
		return v, nil
	}
	return nil, fmt.Errorf("model %s: version numbers kept being taken by another writer: %w", v.Name, ErrConflict)
}

func tensors(in []onnx.ValueInfo) []Tensor {
	out := make([]Tensor, len(in))
	for i, t := range in {
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		out[i] = Tensor{Name: t.Name, DataType: t.DataType, Shape: shape}
	}
	return out
}

// readArtifact reads the artefact at source, whole and bounded.
func (r *Registry) readArtifact(ctx context.Context, source string) ([]byte, error) {
	b, key, err := r.locate(ctx, source)
	if err != nil {
		return nil, err
	}
	rd, err := b.NewReader(ctx, key, nil)
	if blob.IsNotFound(err) {
		return nil, inputErr("artifact", "%s: no such file or object", blob.Redact(source))
	}
	if err != nil {
		return nil, fmt.Errorf("read artifact %s: %w", blob.Redact(source), err)
	}
	defer rd.Close()
	if rd.Size() <= 0 {
		// An ONNX file is never empty; what reports no size is a device
		// or a pipe (/dev/zero), which would be read up to the limit.
		return nil, inputErr("artifact", "%s is empty or not a regular file", blob.Redact(source))
	}
	if rd.Size() > MaxArtifactBytes {
		return nil, inputErr("artifact", "%s is %d bytes, more than the %d the registry takes", blob.Redact(source), rd.Size(), int64(MaxArtifactBytes))
	}
	var buf bytes.Buffer
	buf.Grow(int(rd.Size()))
	if _, err := io.Copy(&buf, io.LimitReader(rd, MaxArtifactBytes+1)); err != nil {
		return nil, fmt.Errorf("read artifact %s: %w", blob.Redact(source), err)
	}
	if buf.Len() > MaxArtifactBytes {
		return nil, inputErr("artifact", "%s is larger than the %d bytes the registry takes", blob.Redact(source), int64(MaxArtifactBytes))
	}
	return buf.Bytes(), nil
}

// locate finds the bucket and key of an artefact URL: a key in the
// server's storage, an absolute local path (on the server's machine),
// file:// or s3://.
func (r *Registry) locate(ctx context.Context, source string) (*blob.Bucket, string, error) {
	raw := source
	if filepath.IsAbs(raw) {
		raw = (&url.URL{Scheme: "file", Path: filepath.ToSlash(raw)}).String()
	}
	if strings.HasPrefix(raw, "model://") {
		return nil, "", inputErr("artifact", "%s: a model:// URL is already registered; give a file:// or s3:// URL or a storage key", source)
	}
	loc, err := blob.Resolve(raw, "")
	if err != nil {
		return nil, "", inputErr("artifact", "%v", err)
	}
	if loc.IsPrefix() {
		return nil, "", inputErr("artifact", "%s names a directory or prefix, not an ONNX file", blob.Redact(source))
	}
	if loc.Bucket == "" {
		return r.storage, loc.Key, nil
	}
	b, err := r.buckets.Open(ctx, loc.Bucket)
	if err != nil {
		return nil, "", inputErr("artifact", "%s: %v", blob.Redact(source), err)
	}
	return b, loc.Key, nil
}

// fromTraining fills v's lineage, metrics and metadata from training job
// id's run files. The job must have succeeded (its model is final then).
func (r *Registry) fromTraining(ctx context.Context, id int64, v *Version) error {
	j, err := r.st.GetJob(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("training job %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("training job %d: %w", id, err)
	}
	if j.State != job.Succeeded {
		return fmt.Errorf("training job %d is %s, not SUCCEEDED: register its model once it has finished: %w", id, j.State, ErrConflict)
	}
	v.Lineage.TrainingJob = id
	runs := train.Runs{Bucket: r.storage}
	var ri train.RunInfo
	if err := readRunJSON(ctx, runs, id, train.RunFile, &ri); err != nil {
		return err
	}
	v.Lineage.Algorithm, v.Lineage.Data = ri.Config.Algorithm, ri.Config.Data
	if ri.Data.Task != "" {
		v.Metadata["task"] = ri.Data.Task
	}
	if len(ri.Data.Classes) > 0 {
		v.Metadata["classes"] = strings.Join(ri.Data.Classes, ",")
	}
	if ri.Data.Label != "" {
		v.Metadata["label"] = ri.Data.Label
	}
	if tag := j.Spec.Tags[DatasetTag]; tag != "" {
		v.Lineage.Dataset = tag
	} else {
		v.Lineage.Dataset = r.datasetVersion(ctx, ri.Config.Data, ri.StartedAt)
	}
	v.Lineage.TestDataset = j.Spec.Tags[TestDatasetTag]
	var md train.ModelMetadata
	if err := readRunJSON(ctx, runs, id, train.MetadataFile, &md); err == nil && md.Output != "" {
		v.Metadata["output"] = md.Output
	}
	var ev map[string]any
	if err := readRunJSON(ctx, runs, id, train.EvaluationFile, &ev); err == nil {
		for k, x := range ev {
			if f, ok := x.(float64); ok {
				v.Metrics[k] = f
			}
		}
		if set, ok := ev["set"].(string); ok {
			v.Metadata["evaluation_set"] = set
		}
	}
	return nil
}

func readRunJSON(ctx context.Context, runs train.Runs, id int64, file string, out any) error {
	err := runs.ReadJSON(ctx, id, file, out)
	if errors.Is(err, train.ErrNoRun) {
		return inputErr("training_job", "training job %d has no %s in the server's storage (not a training job?)", id, file)
	}
	if err != nil {
		return fmt.Errorf("training job %d: %w", id, err)
	}
	return nil
}

// datasetVersion is NAME:VERSION of a dataset:// data URL, or "". A URL
// without a version meant the latest when the run started: the newest
// version created before then (versions are immutable, so that is the
// one it read).
func (r *Registry) datasetVersion(ctx context.Context, data string, started time.Time) string {
	rest, ok := strings.CutPrefix(data, "dataset://")
	if !ok {
		return ""
	}
	ref, err := dataset.ParseRef(rest)
	if err != nil {
		return ""
	}
	if ref.Version > 0 {
		return fmt.Sprintf("%s:%d", ref.Name, ref.Version)
	}
	d, err := r.st.GetDataset(ctx, ref.Name)
	if err != nil {
		return ref.Name
	}
	for _, dv := range d.Versions { // newest first
		if started.IsZero() || !dv.CreatedAt.After(started) {
			return fmt.Sprintf("%s:%d", ref.Name, dv.Version)
		}
	}
	return ref.Name
}

// decode turns a store row into its Version.
func decode(row *store.ModelVersionRow) (*Version, error) {
	var v Version
	if err := json.Unmarshal(row.Record, &v); err != nil {
		return nil, fmt.Errorf("model %s version %d: corrupt record: %w", row.Model, row.Version, err)
	}
	return &v, nil
}

func model(row *store.ModelRow) (*Model, error) {
	m := &Model{Name: row.Name, CreatedAt: row.CreatedAt, VersionCount: row.Count, Aliases: row.Aliases}
	if m.Aliases == nil {
		m.Aliases = map[string]int{}
	}
	if row.Latest != nil {
		v, err := decode(row.Latest)
		if err != nil {
			return nil, err
		}
		m.Latest, m.LatestVersion = v, v.Version
	}
	for i := range row.Versions {
		v, err := decode(&row.Versions[i])
		if err != nil {
			return nil, err
		}
		m.Versions = append(m.Versions, *v)
	}
	return m, nil
}

// List lists every model by name with its latest version and aliases.
func (r *Registry) List(ctx context.Context) ([]*Model, error) {
	rows, err := r.st.ListModels(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*Model, 0, len(rows))
	for _, row := range rows {
		m, err := model(row)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// Get reads a model with all its versions, newest first.
func (r *Registry) Get(ctx context.Context, name string) (*Model, error) {
	if err := CheckName(name); err != nil {
		return nil, inputErr("name", "%v", err)
	}
	row, err := r.st.GetModel(ctx, name)
	if err != nil {
		return nil, err
	}
	return model(row)
}

// Resolve finds the version a reference names: a number, an alias, or
// the latest. Unknown models, versions and aliases wrap ErrNotFound.
func (r *Registry) Resolve(ctx context.Context, ref Ref) (*Version, error) {
	if err := CheckName(ref.Name); err != nil {
		return nil, inputErr("name", "%v", err)
	}
	n := ref.Version
	var err error
	switch {
	case n > 0:
	case ref.Alias != "":
		if n, err = r.st.ModelAlias(ctx, ref.Name, ref.Alias); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("model %s has no alias %s: %w", ref.Name, ref.Alias, ErrNotFound)
			}
			return nil, err
		}
	default:
		if n, err = r.st.NextModelVersion(ctx, ref.Name); err != nil {
			return nil, err
		}
		if n--; n == 0 {
			return nil, fmt.Errorf("model %s: %w", ref.Name, ErrNotFound)
		}
	}
	row, err := r.st.GetModelVersion(ctx, ref.Name, n)
	if errors.Is(err, store.ErrNotFound) {
		if _, merr := r.st.GetModel(ctx, ref.Name); errors.Is(merr, store.ErrNotFound) {
			return nil, fmt.Errorf("model %s: %w", ref.Name, ErrNotFound)
		}
		return nil, fmt.Errorf("model %s has no version %d: %w", ref.Name, n, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return decode(row)
}

// SetAlias points alias at version of model name (creating or moving it)
// and returns the version it pointed at before, 0 if none.
func (r *Registry) SetAlias(ctx context.Context, name, alias string, version int) (int, error) {
	if err := CheckName(name); err != nil {
		return 0, inputErr("name", "%v", err)
	}
	if err := CheckAlias(alias); err != nil {
		return 0, inputErr("alias", "%v", err)
	}
	if version < 1 {
		return 0, inputErr("version", "version %d: want a positive version number", version)
	}
	if _, err := r.st.GetModel(ctx, name); err != nil {
		return 0, err
	}
	prev, err := r.st.SetModelAlias(ctx, name, alias, version)
	if errors.Is(err, store.ErrNotFound) {
		return 0, fmt.Errorf("model %s has no version %d: %w", name, version, ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	r.log.Info("model alias set", "model", name, "alias", alias, "version", version, "previous", prev)
	return prev, nil
}

// DeleteAlias removes an alias of model name.
func (r *Registry) DeleteAlias(ctx context.Context, name, alias string) error {
	if err := CheckName(name); err != nil {
		return inputErr("name", "%v", err)
	}
	if err := CheckAlias(alias); err != nil {
		return inputErr("alias", "%v", err)
	}
	if err := r.st.DeleteModelAlias(ctx, name, alias); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("model %s has no alias %s: %w", name, alias, ErrNotFound)
		}
		return err
	}
	r.log.Info("model alias deleted", "model", name, "alias", alias)
	return nil
}

// Open reads a version's artefact from the server's storage.
func (r *Registry) Open(ctx context.Context, v *Version) (io.ReadCloser, error) {
	rd, err := r.storage.NewReader(ctx, v.ArtifactKey, nil)
	if err != nil {
		return nil, fmt.Errorf("model %s version %d: open the artifact: %w", v.Name, v.Version, err)
	}
	return rd, nil
}

// AliasesOf lists the aliases among m's that point at version, sorted.
func AliasesOf(m map[string]int, version int) []string {
	out := []string{} // [] rather than null in JSON
	for a, v := range m {
		if v == version {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}
