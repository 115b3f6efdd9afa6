// Package dataset is the model of versioned datasets: a dataset is a name
// and a series of immutable versions, each a manifest of objects (key,
// size, SHA-256) taken from a source URL. Jobs, training and analysis
// name NAME@VERSION and get exactly the bytes the manifest lists: staging
// checks every object's checksum against it. No I/O here.
package dataset

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Object is one object of a version, its key relative to the source.
type Object struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest is what a version holds.
type Manifest struct {
	// Source is where the objects were listed (a URL without secrets).
	Source  string   `json:"source"`
	Objects []Object `json:"objects"`
}

// Version is one immutable version of a dataset.
type Version struct {
	Dataset string `json:"dataset"`
	Version int    `json:"version"`
	Source  string `json:"source"`
	Files   int    `json:"files"`
	Bytes   int64  `json:"bytes"`
	// Digest identifies the content: the SHA-256 of the manifest's
	// objects in key order. Two versions with one digest hold the same.
	Digest string `json:"digest"`
	// ManifestKey is where the manifest is in the server's storage.
	ManifestKey string    `json:"manifest_key"`
	CreatedAt   time.Time `json:"created_at"`
}

// Dataset is a name and its versions.
type Dataset struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Latest    *Version  `json:"latest,omitempty"`
	Versions  []Version `json:"versions,omitempty"`
}

// Bounds on a manifest, so that one request cannot exhaust the server.
const (
	MaxObjects   = 1_000_000
	MaxKeyLength = 1024
	// MaxManifestBytes bounds a manifest document in a request.
	MaxManifestBytes = 256 << 20
)

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	hexRE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ValidName reports whether s can name a dataset.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// CheckSource refuses a source that cannot hold a dataset: jobs fetch a
// version's objects by key from its source, which an http(s) URL cannot
// serve. (The CLI asks before it lists and checksums a whole source.)
func CheckSource(source string) error {
	// "://": a local dir may be named "http:data".
	if u, err := url.Parse(source); err == nil && (u.Scheme == "http" || u.Scheme == "https") && strings.Contains(source, "://") {
		return fmt.Errorf("%s: an http(s) URL cannot hold a dataset (its objects cannot be fetched by key); copy it to a bucket or directory first", source)
	}
	return nil
}

// Validate checks a manifest and puts its objects in key order.
func (m *Manifest) Validate() error {
	if err := CheckSource(m.Source); err != nil {
		return fmt.Errorf("manifest source %w", err)
	}
	if len(m.Objects) > MaxObjects {
		return fmt.Errorf("manifest: %d objects, at most %d", len(m.Objects), MaxObjects)
	}
	sort.Slice(m.Objects, func(i, j int) bool { return m.Objects[i].Key < m.Objects[j].Key })
	for i, o := range m.Objects {
		switch {
		case o.Key == "" || len(o.Key) > MaxKeyLength:
			return fmt.Errorf("manifest object %d: key must be 1..%d bytes", i, MaxKeyLength)
		case strings.HasPrefix(o.Key, "/") || path.Clean(o.Key) != o.Key || o.Key == ".." || strings.HasPrefix(o.Key, "../"):
			return fmt.Errorf("manifest object %q: keys are relative paths without . or .. elements", o.Key)
		case o.Size < 0:
			return fmt.Errorf("manifest object %q: negative size", o.Key)
		case !hexRE.MatchString(o.SHA256):
			return fmt.Errorf("manifest object %q: sha256 must be 64 lowercase hex digits", o.Key)
		case i > 0 && m.Objects[i-1].Key == o.Key:
			return fmt.Errorf("manifest object %q: listed twice", o.Key)
		}
	}
	return nil
}

// Digest is the SHA-256 of the objects (validated, in key order).
func (m *Manifest) Digest() string {
	h := sha256.New()
	for _, o := range m.Objects {
		h.Write([]byte(o.Key))
		h.Write([]byte{0})
		h.Write([]byte(strconv.FormatInt(o.Size, 10)))
		h.Write([]byte{0})
		h.Write([]byte(o.SHA256))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Totals counts the manifest's files and bytes.
func (m *Manifest) Totals() (files int, bytes int64) {
	for _, o := range m.Objects {
		bytes += o.Size
	}
	return len(m.Objects), bytes
}

// ManifestKey is where a manifest of dataset name with the given digest
// is kept: by content, so it is written before any version points at it,
// and never changes.
func ManifestKey(name, digest string) string {
	return fmt.Sprintf("datasets/%s/manifests/%s.json", name, digest)
}

// Ref is NAME or NAME@VERSION (VERSION a number, or "latest").
type Ref struct {
	Name    string
	Version int // 0: the latest
}

// ParseRef reads NAME[@VERSION].
func ParseRef(s string) (Ref, error) {
	name, v, has := strings.Cut(s, "@")
	if !ValidName(name) {
		return Ref{}, fmt.Errorf("%q is not a dataset name", name)
	}
	r := Ref{Name: name}
	if has && v != "latest" {
		n, err := strconv.Atoi(strings.TrimPrefix(v, "v"))
		if err != nil || n < 1 {
			return Ref{}, fmt.Errorf("%q: version must be a positive number or latest", s)
		}
		r.Version = n
	}
	return r, nil
}
