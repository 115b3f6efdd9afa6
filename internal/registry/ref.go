package registry

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

var (
	nameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	aliasRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
)

// Latest is the reference word for a model's newest version; it cannot be
// an alias (NAME and NAME:latest mean the same).
const Latest = "latest"

// ValidName reports whether s is a model name.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// CheckName explains why s is not a model name, or returns nil.
func CheckName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("model name %q: want 1-63 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit", s)
	}
	return nil
}

// CheckAlias explains why s is not an alias, or returns nil.
func CheckAlias(s string) error {
	if s == Latest {
		return fmt.Errorf("alias %q is reserved: NAME:%s always means the newest version", s, Latest)
	}
	if !aliasRE.MatchString(s) {
		return fmt.Errorf("alias %q: want 1-32 characters of a-z, 0-9, '-', starting with a letter (e.g. staging, production)", s)
	}
	return nil
}

// Ref names a version: NAME:VERSION, NAME:ALIAS or NAME (the latest).
// At most one of Version and Alias is set; neither means the latest.
type Ref struct {
	Name    string
	Version int
	Alias   string
}

// String renders the reference as ParseRef reads it.
func (r Ref) String() string {
	switch {
	case r.Version > 0:
		return r.Name + ":" + strconv.Itoa(r.Version)
	case r.Alias != "":
		return r.Name + ":" + r.Alias
	}
	return r.Name
}

// ParseRef reads NAME, NAME:VERSION (a positive number), NAME:latest or
// NAME:ALIAS. Alias names start with a letter, so a number is always a
// version.
func ParseRef(s string) (Ref, error) {
	name, sel, has := strings.Cut(s, ":")
	if err := CheckName(name); err != nil {
		return Ref{}, fmt.Errorf("model reference %q: %w", s, err)
	}
	r := Ref{Name: name}
	switch {
	case !has || sel == Latest:
	case sel != "" && sel[0] >= '0' && sel[0] <= '9':
		n, err := strconv.Atoi(sel)
		if err != nil || n < 1 {
			return Ref{}, fmt.Errorf("model reference %q: version %q is not a positive number", s, sel)
		}
		r.Version = n
	default:
		if err := CheckAlias(sel); err != nil {
			return Ref{}, fmt.Errorf("model reference %q: %w", s, err)
		}
		r.Alias = sel
	}
	return r, nil
}

// ArtifactKey is where version v of model name keeps its ONNX file in the
// server's storage.
func ArtifactKey(name string, v int) string { return VersionDir(name, v) + ArtifactFile }

// RecordKey is where version v of model name keeps its version.json.
func RecordKey(name string, v int) string { return VersionDir(name, v) + RecordFile }

// VersionDir is the storage prefix of version v of model name.
func VersionDir(name string, v int) string { return fmt.Sprintf("%s%s/%d/", ModelsDir, name, v) }

// URI is the model:// URL of a version, which hpcml serve --model reads.
func URI(name string, v int) string { return fmt.Sprintf("model://%s/%d", name, v) }

// Storage layout (the contract of issue 8).
const (
	ModelsDir    = "models/"
	ArtifactFile = "model.onnx"
	RecordFile   = "version.json"
)
