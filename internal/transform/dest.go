package transform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	gcblob "gocloud.dev/blob"

	hblob "github.com/hpcml/hpcml/internal/blob"
)

// The output appears whole or not at all.
//
// A local directory is written as a hidden sibling, .NAME.hpcml-ID, and
// renamed into place when every file is complete (rename is atomic on
// one file system); with overwrite, the old directory is renamed away
// first and removed after.
//
// An S3 prefix cannot be renamed: the files are written under
// PREFIX/_temporary/ID/, then copied to their final keys (server-side),
// and a _SUCCESS object is written last, as Spark and Hadoop's committers
// do. Readers that wait for _SUCCESS see the output whole; hpcml's own
// table readers skip names starting with _ so a reader of the prefix
// never reads the staged files. A failure removes the staged objects.

// SuccessFile marks a complete output.
const SuccessFile = "_SUCCESS"

// dest is where the output goes.
type dest struct {
	url   string // as the user wrote it, normalized
	stage string // where the units write
	// local
	dir, stageDir string
	// S3
	bucket, prefix, stagePrefix string
}

func newDest(raw, id string) (*dest, error) {
	if id == "" || strings.ContainsAny(id, "/\\") {
		return nil, fmt.Errorf("bad run id %q", id)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("output URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "", "file":
		p := raw
		if u.Scheme == "file" {
			if u.Host != "" && u.Host != "localhost" {
				return nil, fmt.Errorf("output URL %q: file URLs name a local path (file:///path)", raw)
			}
			p = u.Path
		}
		p, err = filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		if p == "/" || p == filepath.Dir(p) {
			return nil, fmt.Errorf("output %q: not a root directory", raw)
		}
		stage := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".hpcml-"+id)
		return &dest{url: p, stage: stage, dir: p, stageDir: stage}, nil
	case "s3":
		if u.Host == "" {
			return nil, fmt.Errorf("output URL %q: no bucket", raw)
		}
		prefix := strings.TrimPrefix(u.Path, "/")
		if prefix != "" && !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		bu := *u
		bu.Path = ""
		d := &dest{bucket: bu.String(), prefix: prefix, stagePrefix: prefix + "_temporary/" + id + "/"}
		d.url = urlWithPath(u, "/"+prefix)
		d.stage = urlWithPath(u, "/"+d.stagePrefix)
		return d, nil
	}
	return nil, fmt.Errorf("output URL %q: write to a local path, file:// or s3:// URL", raw)
}

func urlWithPath(u *url.URL, p string) string {
	v := *u
	v.Path = p
	v.RawPath = ""
	return v.String()
}

// join is base (a local path or a URL with a query) with more path
// elements.
func join(base string, elems ...string) string {
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" {
		return filepath.Join(append([]string{base}, elems...)...)
	}
	trail := strings.HasSuffix(elems[len(elems)-1], "/")
	p := path.Join(append([]string{u.Path}, elems...)...)
	if trail {
		p += "/"
	}
	return urlWithPath(u, p)
}

func (d *dest) local() bool { return d.dir != "" }

func (d *dest) open(ctx context.Context) (*gcblob.Bucket, error) {
	return hblob.Open(ctx, d.bucket)
}

// check fails if the destination holds anything and overwrite is off.
func (d *dest) check(ctx context.Context, overwrite bool) error {
	if d.local() {
		entries, err := os.ReadDir(d.dir)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			if fi, serr := os.Stat(d.dir); serr == nil && !fi.IsDir() {
				return fmt.Errorf("%s is a file, not a directory", d.dir)
			}
			return err
		}
		if len(entries) > 0 && !overwrite {
			return fmt.Errorf("%s exists and is not empty (set output.overwrite: true to replace it)", d.dir)
		}
		return nil
	}
	b, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	it := b.List(&gcblob.ListOptions{Prefix: d.prefix})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", hblob.Redact(d.url), err)
		}
		if strings.HasPrefix(o.Key, d.prefix+"_temporary/") {
			continue
		}
		if !overwrite {
			return fmt.Errorf("%s holds objects (%s; set output.overwrite: true to replace them)", hblob.Redact(d.url), o.Key)
		}
		return nil
	}
}

// prepare makes the staging area.
func (d *dest) prepare() error {
	if d.local() {
		if err := os.MkdirAll(filepath.Dir(d.dir), 0o755); err != nil {
			return err
		}
		return os.MkdirAll(d.stageDir, 0o755)
	}
	return nil
}

// commit moves the staged output into place.
func (d *dest) commit(ctx context.Context, overwrite bool) error {
	if d.local() {
		if err := os.MkdirAll(d.stageDir, 0o755); err != nil { // an output of no files at all
			return err
		}
		if err := os.WriteFile(filepath.Join(d.stageDir, SuccessFile), nil, 0o644); err != nil {
			return err
		}
		old := ""
		if entries, err := os.ReadDir(d.dir); err == nil {
			if len(entries) > 0 && !overwrite {
				return fmt.Errorf("%s appeared while the transform ran (set output.overwrite: true to replace it)", d.dir)
			}
			old = filepath.Join(filepath.Dir(d.dir), "."+filepath.Base(d.dir)+".hpcml-old-"+filepath.Base(d.stageDir))
			if err := os.Rename(d.dir, old); err != nil {
				return err
			}
		}
		if err := os.Rename(d.stageDir, d.dir); err != nil {
			if old != "" {
				os.Rename(old, d.dir)
			}
			return err
		}
		if old != "" {
			os.RemoveAll(old)
		}
		return nil
	}
	b, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	if overwrite {
		// _SUCCESS first: the old output is incomplete from now on.
		if err := b.Delete(ctx, d.prefix+SuccessFile); err != nil && !hblob.IsNotFound(err) {
			return err
		}
		if err := d.remove(ctx, b, d.prefix, d.prefix+"_temporary/"); err != nil {
			return err
		}
	}
	keys, err := listKeys(ctx, b, d.stagePrefix)
	if err != nil {
		return err
	}
	for _, k := range keys {
		dst := d.prefix + strings.TrimPrefix(k, d.stagePrefix)
		if err := b.Copy(ctx, dst, k, nil); err != nil {
			return fmt.Errorf("copy %s to %s: %w", k, dst, err)
		}
	}
	if err := d.remove(ctx, b, d.stagePrefix, ""); err != nil {
		return err
	}
	return b.WriteAll(ctx, d.prefix+SuccessFile, nil, nil)
}

// abort removes what was staged.
func (d *dest) abort(ctx context.Context) error {
	if d.local() {
		return os.RemoveAll(d.stageDir)
	}
	b, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	return d.remove(ctx, b, d.stagePrefix, "")
}

func listKeys(ctx context.Context, b *gcblob.Bucket, prefix string) ([]string, error) {
	var keys []string
	it := b.List(&gcblob.ListOptions{Prefix: prefix})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			return keys, nil
		}
		if err != nil {
			return nil, err
		}
		if !o.IsDir {
			keys = append(keys, o.Key)
		}
	}
}

// remove deletes the objects under prefix, but those under except.
func (d *dest) remove(ctx context.Context, b *gcblob.Bucket, prefix, except string) error {
	keys, err := listKeys(ctx, b, prefix)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if except != "" && strings.HasPrefix(k, except) {
			continue
		}
		if err := b.Delete(ctx, k); err != nil && !hblob.IsNotFound(err) {
			return err
		}
	}
	return nil
}
