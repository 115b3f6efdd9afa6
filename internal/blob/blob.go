// Package blob addresses object storage by URL. file:// and s3:// go
// through the same gocloud.dev/blob code path; S3-compatible servers are
// reached with s3://bucket?endpoint=...&use_path_style=true&region=...
package blob

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/config"
	gcblob "gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file:// URLs (s3:// URLs: s3.go)
	"gocloud.dev/gcerrors"
)

// Bucket is an open bucket.
type Bucket = gcblob.Bucket

// Open opens a bucket URL such as file:///var/lib/hpcml/objects or
// s3://data?endpoint=http://127.0.0.1:7070&use_path_style=true&region=us-east-1.
// A file:// bucket's directory must exist, unless the URL says
// create_dir=true (see WithCreateDir).
func Open(ctx context.Context, bucketURL string) (*Bucket, error) {
	u, err := url.Parse(bucketURL)
	if err != nil {
		return nil, fmt.Errorf("storage URL %q: %w", bucketURL, err)
	}
	switch u.Scheme {
	case "file", "s3":
	default:
		return nil, fmt.Errorf("storage URL %q: scheme must be file:// or s3://", bucketURL)
	}
	var b *Bucket
	if u.Scheme == "s3" {
		b, err = openS3(ctx, u)
	} else {
		b, err = gcblob.OpenBucket(ctx, u.String())
	}
	var noProfile config.SharedConfigProfileNotExistError
	if errors.As(err, &noProfile) {
		return nil, fmt.Errorf("open storage %s: AWS profile %q not found in the AWS config and credentials files (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, else ~/.aws)",
			Redact(bucketURL), noProfile.Profile)
	}
	if err != nil {
		return nil, fmt.Errorf("open storage %s: %w", Redact(bucketURL), err)
	}
	return b, nil
}

// WithCreateDir makes a file:// bucket URL create its directory when
// opened: right for the server's own storage and for output targets,
// wrong for inputs (reading file:///nope/x must not create /nope).
func WithCreateDir(bucketURL string) string {
	u, err := url.Parse(bucketURL)
	if err != nil || u.Scheme != "file" || u.Query().Get("create_dir") != "" {
		return bucketURL
	}
	q := u.Query()
	q.Set("create_dir", "true")
	u.RawQuery = q.Encode()
	return u.String()
}

// Location is an object (or, with a Key ending in "/" or empty, a prefix)
// in a bucket.
type Location struct {
	Bucket string // bucket URL, with its query
	Key    string
}

// IsPrefix reports whether the location names every object under a prefix.
func (l Location) IsPrefix() bool { return l.Key == "" || strings.HasSuffix(l.Key, "/") }

// String renders the location back as one URL.
func (l Location) String() string {
	u, err := url.Parse(l.Bucket)
	if err != nil {
		return l.Bucket + "/" + l.Key
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + l.Key
	if u.Scheme == "s3" {
		u.Path = "/" + l.Key
	}
	return Redact(u.String())
}

// Resolve turns a user's object URL into a Location. A URL without a
// scheme is a key in the default bucket and must stay inside it.
//
//	results/run1.csv               -> default bucket, key results/run1.csv
//	s3://data/in/x.csv?endpoint=.. -> bucket s3://data?endpoint=.., key in/x.csv
//	file:///srv/data/x.csv         -> bucket file:///srv/data, key x.csv
//	file:///srv/data/              -> bucket file:///srv/data, every object
func Resolve(raw, defaultBucket string) (Location, error) {
	if raw == "" {
		return Location{}, errors.New("empty object URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Location{}, fmt.Errorf("object URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "":
		key := raw
		dir := strings.HasSuffix(key, "/")
		if key = path.Clean(key); !filepath.IsLocal(key) || strings.HasPrefix(raw, "/") {
			return Location{}, fmt.Errorf("object key %q escapes the storage root", raw)
		}
		if dir {
			key += "/"
		}
		return Location{Bucket: defaultBucket, Key: key}, nil
	case "s3":
		if u.Host == "" {
			return Location{}, fmt.Errorf("object URL %q: no bucket", raw)
		}
		key := strings.TrimPrefix(u.Path, "/")
		u.Path = ""
		return Location{Bucket: u.String(), Key: key}, nil
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return Location{}, fmt.Errorf("object URL %q: file URLs name a local path (file:///path)", raw)
		}
		if !path.IsAbs(u.Path) {
			return Location{}, fmt.Errorf("object URL %q: path must be absolute", raw)
		}
		p := path.Clean(u.Path)
		if strings.HasSuffix(u.Path, "/") {
			u.Path = p
			return Location{Bucket: u.String(), Key: ""}, nil
		}
		u.Path = path.Dir(p)
		return Location{Bucket: u.String(), Key: path.Base(p)}, nil
	default:
		return Location{}, fmt.Errorf("object URL %q: scheme must be file:// or s3:// (or a key in the server's storage)", raw)
	}
}

// IsNotFound reports whether err means the object does not exist. On a
// file:// bucket a key under another object's ("a/b" where "a" is a
// file) fails as "not a directory" instead: no such object either.
func IsNotFound(err error) bool {
	return gcerrors.Code(err) == gcerrors.NotFound || errors.Is(err, syscall.ENOTDIR)
}

// Redact hides credentials that may sit in a URL's query.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	for k := range q {
		lk := strings.ToLower(k)
		if strings.Contains(lk, "secret") || strings.Contains(lk, "token") || strings.Contains(lk, "password") {
			q.Set(k, "REDACTED")
		}
	}
	u.RawQuery = q.Encode()
	u.User = nil
	return u.String()
}
