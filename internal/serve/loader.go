package serve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	gcblob "gocloud.dev/blob"

	"github.com/hpcml/hpcml/internal/blob"
)

// ModelRef names one model version of a repository.
type ModelRef struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Loader is a MultiServer's model repository: Load reads and loads one
// model version, returning the Model and the bytes it holds in memory
// (what the model cache counts against its budget); List lists every
// model version the repository has, for the repository index. A version
// the repository does not have is an error wrapping ErrModelNotFound.
type Loader interface {
	Load(ctx context.Context, name, version string) (Model, int64, error)
	List(ctx context.Context) ([]ModelRef, error)
}

// VersionLister is what a Loader may add: the versions of one model,
// without listing the whole repository (a request that names no version
// takes the highest; the MultiServer asks for it often).
type VersionLister interface {
	Versions(ctx context.Context, name string) ([]string, error)
}

// ErrModelNotFound is a model, or a version of one, that the repository
// does not have (404).
var ErrModelNotFound = errors.New("model not found")

// StorageLoader loads the ONNX models of an object store laid out as the
// model registry writes it: <Prefix><name>/<version>/<File>, versions
// being whole numbers (models/NAME/VERSION/model.onnx).
type StorageLoader struct {
	Bucket *blob.Bucket
	// Prefix is the repository's root, ending in "/" ("models/").
	Prefix string
	// File is the artefact's name in a version's directory ("model.onnx").
	File string
}

func (l *StorageLoader) key(name, version string) string {
	return l.Prefix + name + "/" + version + "/" + l.File
}

// validRef refuses names and versions that could leave the repository
// (a "/" or "..") or are not what the layout holds.
func validRef(name, version string) error {
	if err := checkModelName(name); err != nil {
		return err
	}
	if n, err := strconv.Atoi(version); err != nil || n < 1 || strconv.Itoa(n) != version {
		return fmt.Errorf("version %q of model %s: %w (versions are whole numbers ≥ 1)", version, name, ErrModelNotFound)
	}
	return nil
}

// checkModelName refuses a name that could leave a repository's root or
// break a storage key; the repository decides the rest.
func checkModelName(name string) error {
	if name == "" || strings.ContainsAny(name, "/\\?#%\x00") || name == "." || name == ".." || len(name) > 255 {
		return fmt.Errorf("%q is not a model name: %w", name, ErrModelNotFound)
	}
	return nil
}

// Load reads the artefact and imports it. The size counted is the bytes
// of the model's tensors as loaded (weights and load-time constants), or
// the artefact's size for a model that has none.
func (l *StorageLoader) Load(ctx context.Context, name, version string) (Model, int64, error) {
	if err := validRef(name, version); err != nil {
		return nil, 0, err
	}
	data, err := l.Bucket.ReadAll(ctx, l.key(name, version))
	if blob.IsNotFound(err) {
		return nil, 0, fmt.Errorf("model %s version %s: no %s in the repository: %w", name, version, l.key(name, version), ErrModelNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("model %s version %s: read %s: %w", name, version, l.key(name, version), err)
	}
	m, err := LoadONNX(data, name, version)
	if err != nil {
		return nil, 0, fmt.Errorf("model %s version %s: %w", name, version, err)
	}
	size := m.Graph().TensorBytes()
	if size == 0 {
		size = int64(len(data))
	}
	return m, size, nil
}

// List walks the repository for <name>/<version>/<File> objects.
func (l *StorageLoader) List(ctx context.Context) ([]ModelRef, error) {
	var out []ModelRef
	it := l.Bucket.List(&gcblob.ListOptions{Prefix: l.Prefix})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list the model repository %s: %w", l.Prefix, err)
		}
		parts := strings.Split(strings.TrimPrefix(obj.Key, l.Prefix), "/")
		if len(parts) != 3 || parts[2] != l.File || validRef(parts[0], parts[1]) != nil {
			continue // version.json and anything else that is not an artefact
		}
		out = append(out, ModelRef{Name: parts[0], Version: parts[1]})
	}
	sortRefs(out)
	return out, nil
}

// Versions lists one model's versions that have an artefact, lowest
// first.
func (l *StorageLoader) Versions(ctx context.Context, name string) ([]string, error) {
	if err := validRef(name, "1"); err != nil {
		return nil, err
	}
	var out []string
	it := l.Bucket.List(&gcblob.ListOptions{Prefix: l.Prefix + name + "/"})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list the versions of model %s: %w", name, err)
		}
		v, file, ok := strings.Cut(strings.TrimPrefix(obj.Key, l.Prefix+name+"/"), "/")
		if ok && file == l.File && validRef(name, v) == nil {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, compareVersions)
	return out, nil
}

// compareVersions orders versions as numbers when both are, else as
// strings.
func compareVersions(a, b string) int {
	na, ea := strconv.Atoi(a)
	nb, eb := strconv.Atoi(b)
	if ea == nil && eb == nil {
		return cmp.Compare(na, nb)
	}
	return strings.Compare(a, b)
}

func sortRefs(refs []ModelRef) {
	slices.SortFunc(refs, func(a, b ModelRef) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return compareVersions(a.Version, b.Version)
	})
}
