package batchtransform

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	gcblob "gocloud.dev/blob"

	"github.com/hpcml/hpcml/internal/blob"
)

// Keys under the output prefix.
const (
	workDir    = "_hpcml/"
	planFile   = workDir + "plan.json"
	partsDir   = workDir + "parts/"
	workersDir = workDir + "workers/"
	submitFile = workDir + "submission.json"
	// ReportFile and ErrorsFile are the report and the failed records,
	// beside the outputs.
	ReportFile = "_report.json"
	ErrorsFile = "_errors.jsonl"
	// OutSuffix ends every output file's name: <input-name>.out.
	OutSuffix = ".out"
)

// NormalizeURL makes a user's input or output location absolute: a local
// path becomes an absolute path (jobs run in directories of their own);
// file:// and s3:// URLs are kept.
func NormalizeURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("empty location")
	}
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil {
			return "", fmt.Errorf("%s: %w", raw, err)
		}
		switch u.Scheme {
		case "file", "s3":
			return raw, nil
		}
		return "", fmt.Errorf("%s: a location is a local path, a file:// or an s3:// URL", raw)
	}
	abs, err := filepath.Abs(raw)
	if err != nil {
		return "", err
	}
	if strings.HasSuffix(raw, "/") {
		abs += "/"
	}
	return abs, nil
}

// outputStore is the output prefix: a bucket and the prefix in it.
type outputStore struct {
	b      *blob.Bucket
	prefix string // "" or ending in "/"
	dir    string // a local output's directory, else ""
	url    string // as the user gave it, normalized
}

// openOutput opens an output prefix, creating a local one's directory.
func openOutput(ctx context.Context, raw string) (*outputStore, error) {
	norm, err := NormalizeURL(raw)
	if err != nil {
		return nil, fmt.Errorf("output: %w", err)
	}
	s := &outputStore{url: norm}
	var bucketURL string
	if !strings.Contains(norm, "://") || strings.HasPrefix(norm, "file://") {
		dir := norm
		if strings.HasPrefix(norm, "file://") {
			u, err := url.Parse(norm)
			if err != nil {
				return nil, fmt.Errorf("output %s: %w", raw, err)
			}
			dir = filepath.FromSlash(u.Path)
		}
		s.dir = filepath.Clean(dir)
		if err := os.MkdirAll(s.dir, 0o755); err != nil {
			return nil, fmt.Errorf("output %s: %w", raw, err)
		}
		// Temporary files beside their final names (renames stay on one
		// file system) and no .attrs sidecars among the user's outputs.
		bucketURL = (&url.URL{Scheme: "file", Path: filepath.ToSlash(s.dir), RawQuery: "metadata=skip&no_tmp_dir=1"}).String()
	} else {
		loc, err := blob.Resolve(norm, "")
		if err != nil {
			return nil, fmt.Errorf("output: %w", err)
		}
		bucketURL, s.prefix = loc.Bucket, loc.Key
		if s.prefix != "" && !strings.HasSuffix(s.prefix, "/") {
			s.prefix += "/"
		}
	}
	if s.b, err = blob.Open(ctx, bucketURL); err != nil {
		return nil, fmt.Errorf("output %s: %w", raw, err)
	}
	return s, nil
}

func (s *outputStore) Close() error { return s.b.Close() }

func (s *outputStore) key(rel string) string { return s.prefix + rel }

// where names an object for messages.
func (s *outputStore) where(rel string) string {
	if s.dir != "" {
		return filepath.Join(s.dir, filepath.FromSlash(rel))
	}
	return Join(asPrefix(s.url), rel)
}

// read returns an object's bytes; ok is false when it does not exist.
func (s *outputStore) read(ctx context.Context, rel string) (data []byte, ok bool, err error) {
	data, err = s.b.ReadAll(ctx, s.key(rel))
	if blob.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", s.where(rel), err)
	}
	return data, true, nil
}

// exists reports whether an object is there.
func (s *outputStore) exists(ctx context.Context, rel string) (bool, error) {
	ok, err := s.b.Exists(ctx, s.key(rel))
	if err != nil {
		return false, fmt.Errorf("look for %s: %w", s.where(rel), err)
	}
	return ok, nil
}

// write puts an object in one piece: readers see all of it or nothing.
// Not Bucket.WriteAll: that hashes the data twice more for a Content-MD5
// (once up front, once to check it), a tenth of a worker's CPU, where
// the S3 client already checksums its uploads.
func (s *outputStore) write(ctx context.Context, rel string, data []byte) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // an unclosed writer is abandoned, not committed
	w, err := s.b.NewWriter(ctx, s.key(rel), nil)
	if err == nil {
		if _, err = w.Write(data); err == nil {
			err = w.Close()
		} else {
			cancel()
			w.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", s.where(rel), err)
	}
	return nil
}

// create opens a streamed object; it appears when the writer is closed
// without error (cancel ctx to abandon it).
func (s *outputStore) create(ctx context.Context, rel string) (*gcblob.Writer, error) {
	w, err := s.b.NewWriter(ctx, s.key(rel), nil)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", s.where(rel), err)
	}
	return w, nil
}

func (s *outputStore) open(ctx context.Context, rel string) (io.ReadCloser, error) {
	r, err := s.b.NewReader(ctx, s.key(rel), nil)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", s.where(rel), err)
	}
	return r, nil
}

func (s *outputStore) remove(ctx context.Context, rel string) error {
	err := s.b.Delete(ctx, s.key(rel))
	if err != nil && !blob.IsNotFound(err) {
		return fmt.Errorf("remove %s: %w", s.where(rel), err)
	}
	return nil
}

// removeAll deletes every object under rel (a prefix ending in "/"),
// and a local output's directory of it (with any temporary file a
// killed writer left).
func (s *outputStore) removeAll(ctx context.Context, rel string) error {
	it := s.b.List(&gcblob.ListOptions{Prefix: s.key(rel)})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", s.where(rel), err)
		}
		if o.IsDir {
			continue
		}
		if err := s.b.Delete(ctx, o.Key); err != nil && !blob.IsNotFound(err) {
			return fmt.Errorf("remove %s: %w", o.Key, err)
		}
	}
	if s.dir != "" {
		if err := os.RemoveAll(filepath.Join(s.dir, filepath.FromSlash(rel))); err != nil {
			return err
		}
	}
	return nil
}

// firstLine reads an object's first line (a part's header) and returns
// the reader positioned after it.
func firstLine(r io.Reader) ([]byte, *bufio.Reader, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	line, err := br.ReadBytes('\n')
	if err != nil {
		if err == io.EOF {
			return nil, nil, errors.New("no header line")
		}
		return nil, nil, err
	}
	return line, br, nil
}

// removeStaleTemps removes what writers killed mid-write left of the
// objects names (relative to the output): a local output's objects are
// written through "<name>.<hex>.tmp" beside them (no_tmp_dir, so that
// the rename stays on one file system), which a kill -9 leaves among
// the user's files. Object stores keep no such thing.
func (s *outputStore) removeStaleTemps(names []string) error {
	if s.dir == "" {
		return nil
	}
	byDir := map[string]map[string]bool{}
	for _, n := range names {
		dir := filepath.Join(s.dir, filepath.Dir(filepath.FromSlash(n)))
		if byDir[dir] == nil {
			byDir[dir] = map[string]bool{}
		}
		byDir[dir][filepath.Base(n)] = true
	}
	for dir, want := range byDir {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("output %s: %w", dir, err)
		}
		for _, e := range ents {
			base, ok := strings.CutSuffix(e.Name(), ".tmp")
			i := strings.LastIndexByte(base, '.')
			if !ok || i < 0 || !want[base[:i]] {
				continue
			}
			if _, err := strconv.ParseUint(base[i+1:], 16, 64); err != nil {
				continue
			}
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}
