// Package transfer moves data between local disks, file:// and S3-
// compatible object stores (and from http(s) URLs): sync, copy, verify,
// list, remove and usage. Both ends go through gocloud.dev/blob (one code
// path for files and objects); what the engine adds is the plan (what to
// copy, skip, delete), parallel transfers with bounded memory, end-to-end
// SHA-256 checksums recorded with each object, never a partial object
// under its final name, and a report shaped like an AWS DataSync task
// report.
package transfer

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	hblob "github.com/hpcml/hpcml/internal/blob"
)

// Kinds of endpoint.
const (
	KindLocal = "local" // a path on this machine (or file://)
	KindS3    = "s3"
	KindHTTP  = "http" // http(s)://, a source of one object
)

// Endpoint is one end of a transfer: a bucket (a directory for local
// paths) and a prefix in it. Keys are relative to the prefix.
type Endpoint struct {
	Kind string
	// Bucket is the gocloud bucket URL (file:///dir?metadata=skip, or
	// s3://bucket?endpoint=...); for HTTP, the object's URL.
	Bucket string
	// Prefix is where the endpoint's objects are in the bucket: "" (the
	// whole bucket), "dir/" (a tree) or "name" (one object).
	Prefix string
	// Root is the local directory of a local endpoint's bucket.
	Root string
	// Raw is the endpoint as the user wrote it, for messages.
	Raw string
}

// AsTree is the endpoint taken as a tree even though it looked like one
// object: a sync of a tree to dst makes dst a tree.
func (e Endpoint) AsTree() Endpoint {
	if !e.Single() {
		return e
	}
	if e.Kind == KindLocal {
		e.Root = filepath.Join(e.Root, e.Prefix)
		e.Bucket = fileBucket(e.Root)
		e.Prefix = ""
		return e
	}
	e.Prefix += "/"
	return e
}

// Locate reads an S3 endpoint that names one object as the tree under
// it when there is no such object but there are objects under "name/":
// s3://bucket/dir for the objects in dir/, as `aws s3 sync` and rclone
// read it (an object store has no directories to tell the two apart).
// Every other endpoint is returned as it is, and so is one whose object
// exists. (Transfers, verification, listings and manifests locate their
// sources themselves, with the bucket they open.)
func Locate(ctx context.Context, ep Endpoint) (Endpoint, error) {
	if ep.Kind != KindS3 || !ep.Single() {
		return ep, nil
	}
	b, err := hblob.Open(ctx, ep.Bucket)
	if err != nil {
		return ep, hblob.Describe(err, ep.Raw)
	}
	defer b.Close()
	return locate(ctx, b, ep)
}

// locate is Locate with ep's bucket open. A HEAD refused for want of
// permission is looked past too: access granted on dir/* alone is a
// common reason to name a prefix. If the listing then fails where the
// HEAD found nothing, its error is the one to report.
func locate(ctx context.Context, b *blob.Bucket, ep Endpoint) (Endpoint, error) {
	if ep.Kind != KindS3 || !ep.Single() {
		return ep, nil
	}
	_, err := b.Attributes(ctx, ep.Prefix)
	code := gcerrors.Code(err)
	if code != gcerrors.NotFound && code != gcerrors.PermissionDenied {
		return ep, nil // there, or an error its own read will report
	}
	objs, _, lerr := b.ListPage(ctx, blob.FirstPageToken, 1, &blob.ListOptions{Prefix: ep.Prefix + "/"})
	switch {
	case lerr != nil && code == gcerrors.NotFound:
		return ep, hblob.Describe(lerr, ep.Raw)
	case lerr != nil || len(objs) == 0:
		return ep, nil
	}
	return ep.AsTree(), nil
}

// locate reads the store's endpoint as Locate does, and returns it.
func (s *store) locate(ctx context.Context) (Endpoint, error) {
	if s.bucket == nil {
		return s.ep, nil
	}
	ep, err := locate(ctx, s.bucket, s.ep)
	s.ep = ep
	return ep, err
}

// Single reports whether the endpoint names one object rather than a tree.
func (e Endpoint) Single() bool { return e.Prefix != "" && !strings.HasSuffix(e.Prefix, "/") }

func (e Endpoint) String() string { return e.Raw }

// ParseEndpoint reads a local path, a file:// URL, an s3://bucket/prefix
// URL (with endpoint, region and use_path_style in its query) or an
// http(s) URL. A local path that is an existing directory, or ends in
// "/", is a tree; otherwise it names one file.
func ParseEndpoint(raw string) (Endpoint, error) {
	if raw == "" {
		return Endpoint{}, fmt.Errorf("empty location")
	}
	if !strings.Contains(raw, "://") {
		abs, err := filepath.Abs(raw)
		if err != nil {
			return Endpoint{}, fmt.Errorf("location %q: %w", raw, err)
		}
		return localEndpoint(raw, abs, strings.HasSuffix(raw, "/"))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Endpoint{}, fmt.Errorf("location %q: %w", raw, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return Endpoint{}, fmt.Errorf("location %q: file URLs name a local path (file:///path)", raw)
		}
		if !path.IsAbs(u.Path) {
			return Endpoint{}, fmt.Errorf("location %q: path must be absolute", raw)
		}
		return localEndpoint(raw, filepath.FromSlash(u.Path), strings.HasSuffix(u.Path, "/"))
	case "s3":
		if u.Host == "" {
			return Endpoint{}, fmt.Errorf("location %q: no bucket (s3://bucket/prefix)", raw)
		}
		prefix := strings.TrimPrefix(u.Path, "/")
		if strings.Contains("/"+prefix+"/", "/../") {
			return Endpoint{}, fmt.Errorf("location %q: .. is not allowed in a key", raw)
		}
		b := *u
		b.Path = ""
		return Endpoint{Kind: KindS3, Bucket: b.String(), Prefix: prefix, Raw: raw}, nil
	case "http", "https":
		if u.Host == "" {
			return Endpoint{}, fmt.Errorf("location %q: no host", raw)
		}
		name := path.Base(u.Path)
		if name == "/" || name == "." || name == "" {
			name = "index"
		}
		return Endpoint{Kind: KindHTTP, Bucket: raw, Prefix: name, Raw: raw}, nil
	default:
		return Endpoint{}, fmt.Errorf("location %q: scheme must be s3://, file:// or http(s)://, or a local path", raw)
	}
}

// localEndpoint is a directory tree, or one file named in its parent.
func localEndpoint(raw, abs string, dir bool) (Endpoint, error) {
	abs = filepath.Clean(abs)
	if info, err := os.Stat(abs); err == nil && info.IsDir() {
		dir = true
	}
	if dir {
		return Endpoint{Kind: KindLocal, Bucket: fileBucket(abs), Root: abs, Raw: raw}, nil
	}
	parent := filepath.Dir(abs)
	return Endpoint{Kind: KindLocal, Bucket: fileBucket(parent), Root: parent, Prefix: filepath.Base(abs), Raw: raw}, nil
}

// fileBucket is the gocloud URL of a local directory: plain files, no
// metadata sidecars.
func fileBucket(dir string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir), RawQuery: "metadata=skip"}).String()
}
