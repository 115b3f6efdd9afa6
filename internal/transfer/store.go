package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	hblob "github.com/hpcml/hpcml/internal/blob"
)

// Metadata keys hpcml records with every object it writes.
const (
	MetaSHA256 = hblob.MetaSHA256 // hex SHA-256 of the content (what the node cache checks too)
	MetaMtime  = "mtime"          // the source's modification time (mtimeValue)
)

// mtimeValue is a modification time as MetaMtime holds it: Unix seconds
// with up to nine decimals ("1795764715.6179"), the form rclone writes
// and reads under the same key (s3fs reads its whole seconds), so that
// they restore the times of what hpcml uploaded.
func mtimeValue(t time.Time) string {
	sec, ns := t.Unix(), t.Nanosecond()
	if ns == 0 {
		return strconv.FormatInt(sec, 10)
	}
	sign := ""
	if sec < 0 { // -0.25 s is second -1 and 750 ms; written -0.25
		sign, sec, ns = "-", -(sec + 1), 1e9-ns
	}
	return strings.TrimRight(fmt.Sprintf("%s%d.%09d", sign, sec, ns), "0")
}

// object is one object of an endpoint. Key is relative to the
// endpoint's prefix ("" for an endpoint that names one object). Size is
// -1 when unknown: an http(s) source that sends no Content-Length.
type object struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// store is an endpoint opened for transfers.
type store struct {
	ep     Endpoint
	bucket *blob.Bucket // nil for HTTP, and for a local destination not made yet
	http   *http.Client
	// unmade: a local destination directory that does not exist yet,
	// made by prepare once the transfer is sure to start.
	unmade bool
	// writing: the store is a destination, whose leftover temp files
	// (a killed write's) are ours to remove.
	writing bool
	// noTmpfile: local writes take a temporary name even where O_TMPFILE
	// works (tests of that path).
	noTmpfile bool
	// getter reads small S3 objects by direct GETs (nil: through
	// gocloud), made on the first such read: a presign asks for the
	// credentials, which a listing that failed for want of them (or a
	// command that reads nothing) should not ask for a second time.
	getter     *hblob.Getter
	getterOnce sync.Once
}

func openStore(ctx context.Context, ep Endpoint, forWriting bool) (*store, error) {
	if ep.Kind == KindHTTP {
		if forWriting {
			return nil, fmt.Errorf("%s: an http(s) URL can only be a source", ep.Raw)
		}
		return &store{ep: ep, http: &http.Client{Timeout: 0}}, nil
	}
	s := &store{ep: ep, writing: forWriting}
	if ep.Kind == KindLocal {
		if _, err := os.Stat(ep.Root); err != nil {
			if forWriting && errors.Is(err, fs.ErrNotExist) {
				// Not made here: a transfer that fails before it starts
				// (a missing source, refused credentials) must leave
				// nothing behind, not even an empty directory.
				s.unmade = true
				return s, nil
			}
			return nil, fmt.Errorf("%s: %w", ep.Raw, errors.Unwrap(err))
		}
	}
	if err := s.openBucket(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *store) openBucket(ctx context.Context) error {
	bucketURL := s.ep.Bucket
	if s.ep.Kind == KindLocal && s.writing {
		// Temp files next to their final name: the rename that completes
		// a write stays on one file system.
		bucketURL += "&no_tmp_dir=1"
	}
	b, err := hblob.Open(ctx, bucketURL)
	if err != nil {
		return err
	}
	s.bucket = b
	return nil
}

// directGetter is the store's Getter, made on the first call (nil for a
// store that cannot take one: not S3, a destination, see s3Name).
func (s *store) directGetter(ctx context.Context) *hblob.Getter {
	s.getterOnce.Do(func() {
		if name, ok := s.s3Name(); ok && !s.writing && s.bucket != nil {
			s.getter = hblob.NewGetter(ctx, s.bucket, name)
		}
	})
	return s.getter
}

// s3Name is the name of an S3 store's bucket, for the requests hpcml
// builds itself (direct GETs, a HEAD with checksum mode) with keys as
// full returns them: false for any other store, and for a bucket URL
// with gocloud's prefix or key parameter, which those would not apply.
func (s *store) s3Name() (string, bool) {
	if s.ep.Kind != KindS3 {
		return "", false
	}
	u, err := url.Parse(s.ep.Bucket)
	if err != nil || u.Query().Has("prefix") || u.Query().Has("key") {
		return "", false
	}
	return u.Host, true
}

// prepare makes a local destination directory that does not exist yet:
// called once the listings have succeeded, so that a transfer that
// cannot start changes nothing, and one that starts makes its
// destination even when there is nothing to copy into it.
func (s *store) prepare(ctx context.Context) error {
	if !s.unmade {
		return nil
	}
	if err := os.MkdirAll(s.ep.Root, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", s.ep.Root, err)
	}
	if err := s.openBucket(ctx); err != nil {
		return err
	}
	s.unmade = false
	return nil
}

func (s *store) close() {
	if s.bucket != nil {
		s.bucket.Close()
	}
}

// full is the bucket key of an endpoint-relative key.
func (s *store) full(key string) string {
	if s.ep.Single() {
		return s.ep.Prefix
	}
	return s.ep.Prefix + key
}

// list calls fn for every object of the endpoint, in key order. At a
// local destination, hpcml's own temporary files (isPartial) are not
// objects: they are what a killed write left, and are removed.
func (s *store) list(ctx context.Context, fn func(object) error) error {
	if s.ep.Kind == KindHTTP {
		o, err := s.stat(ctx, "")
		if err != nil {
			return err
		}
		return fn(o)
	}
	if s.ep.Single() {
		a, err := s.bucket.Attributes(ctx, s.ep.Prefix)
		if err != nil {
			if gcerrors.Code(err) == gcerrors.NotFound {
				return nil
			}
			return hblob.Describe(err, s.ep.Raw)
		}
		return fn(object{Key: "", Size: a.Size, ModTime: a.ModTime})
	}
	it := s.bucket.List(&blob.ListOptions{Prefix: s.ep.Prefix})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return hblob.Describe(err, s.ep.Raw)
		}
		if o.IsDir || strings.HasSuffix(o.Key, "/") {
			continue // S3 "folder" markers
		}
		if s.ep.Kind == KindLocal && s.writing && isPartial(o.Key) {
			os.Remove(filepath.Join(s.ep.Root, filepath.FromSlash(o.Key)))
			continue
		}
		if err := fn(object{Key: strings.TrimPrefix(o.Key, s.ep.Prefix), Size: o.Size, ModTime: o.ModTime}); err != nil {
			return err
		}
	}
}

// stat reads one object's size and time (and, through attrs, metadata).
func (s *store) stat(ctx context.Context, key string) (object, error) {
	if s.ep.Kind == KindHTTP {
		resp, err := s.http.Head(s.ep.Bucket)
		if err != nil {
			return object{}, fmt.Errorf("%s: %w", s.ep.Raw, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return object{}, fmt.Errorf("%s: %s", s.ep.Raw, resp.Status)
		}
		mod, _ := http.ParseTime(resp.Header.Get("Last-Modified"))
		// ContentLength is -1 when the server does not say (chunked).
		return object{Key: "", Size: resp.ContentLength, ModTime: mod}, nil
	}
	a, err := s.bucket.Attributes(ctx, s.full(key))
	if err != nil {
		return object{}, hblob.Describe(err, s.ep.Raw+" "+key)
	}
	return object{Key: key, Size: a.Size, ModTime: a.ModTime}, nil
}

// metadata reads what hpcml recorded with an object (nil for local files
// and HTTP, which keep none).
func (s *store) metadata(ctx context.Context, key string) (map[string]string, error) {
	if s.bucket == nil || s.ep.Kind == KindLocal {
		return nil, nil
	}
	a, err := s.bucket.Attributes(ctx, s.full(key))
	if err != nil {
		return nil, hblob.Describe(err, s.ep.Raw+" "+key)
	}
	return a.Metadata, nil
}

// open reads an object from offset off (length n, or to its end if n < 0).
func (s *store) open(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if s.ep.Kind == KindHTTP {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.ep.Bucket, nil)
		if err != nil {
			return nil, err
		}
		if off > 0 || n >= 0 {
			end := ""
			if n >= 0 {
				end = strconv.FormatInt(off+n-1, 10)
			}
			req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-"+end)
		}
		resp, err := s.http.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.ep.Raw, err)
		}
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
			resp.Body.Close()
			return nil, fmt.Errorf("%s: %s", s.ep.Raw, resp.Status)
		}
		return resp.Body, nil
	}
	r, err := s.bucket.NewRangeReader(ctx, s.full(key), off, n, nil)
	if err != nil {
		return nil, hblob.Describe(err, s.ep.Raw+" "+key)
	}
	return r, nil
}

// openWhole reads a whole object as open does, and returns with it what
// the object carries to check the bytes by: a small S3 object by a
// direct GET (blob.Getter) where one can be sent, and through gocloud
// where not or where that did not answer 200 (a missing object, a
// refusal, throttling), whose retries and errors then apply.
func (s *store) openWhole(ctx context.Context, key string) (io.ReadCloser, carried, error) {
	if g := s.directGetter(ctx); g != nil {
		if r, h, err := g.Get(ctx, s.full(key)); err == nil {
			return r, carriedIn(h), nil
		}
	}
	r, err := s.open(ctx, key, 0, -1)
	if err != nil {
		return nil, carried{}, err
	}
	var out s3.GetObjectOutput
	if br, ok := r.(*blob.Reader); ok && br.As(&out) {
		return r, carriedBy(&out), nil
	}
	return r, carried{}, nil
}

// create writes an object: nothing appears under its name until Commit
// (an unnamed file linked, a temp file renamed, a multipart upload
// completed). mtime is the source's time, kept by local files.
func (s *store) create(ctx context.Context, key string, size int64, meta map[string]string, mtime time.Time) (objectWriter, error) {
	if s.ep.Kind == KindLocal && plainKey(s.full(key)) {
		final := filepath.Join(s.ep.Root, filepath.FromSlash(s.full(key)))
		if !s.noTmpfile {
			w, err := newTmpfileWriter(final, mtime)
			if err == nil {
				return w, nil
			}
			if !errors.Is(err, errNoTmpfile) {
				return nil, hblob.Describe(err, s.ep.Raw+" "+key)
			}
		}
		w, err := newTempnameWriter(final, mtime)
		if err != nil {
			return nil, hblob.Describe(err, s.ep.Raw+" "+key)
		}
		return w, nil
	}
	// Object stores, and local keys that fileblob must escape to make a
	// path of (rare: see plainKey).
	opts := &blob.WriterOptions{Metadata: meta, DisableContentTypeDetection: true, ContentType: "application/octet-stream"}
	bw := &blobWriter{after: func() { s.setModTime(key, mtime) }}
	switch s.ep.Kind {
	case KindS3:
		opts.BufferSize = int(hblob.PartSize(size))
		opts.MaxConcurrency = partsInFlight
	case KindLocal:
		// Learn the temp file's name: fileblob removes it when a write is
		// aborted, but not when closing the file fails (a full disk
		// reported at close, as NFS does), and a failed write must leave
		// nothing behind.
		opts.BeforeWrite = func(as func(any) bool) error {
			var f *os.File
			if as(&f) && f != nil {
				bw.tmp = f.Name()
			}
			return nil
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	w, err := s.bucket.NewWriter(ctx, s.full(key), opts)
	if err != nil {
		cancel()
		return nil, hblob.Describe(err, s.ep.Raw+" "+key)
	}
	bw.w, bw.cancel = w, cancel
	return bw, nil
}

// blobWriter is a gocloud writer: cancelling its context before Close
// aborts it (the temp file or the multipart upload goes).
type blobWriter struct {
	w      *blob.Writer
	cancel context.CancelFunc
	after  func()
	tmp    string // a local write's temporary file, removed if it fails
}

func (b *blobWriter) Write(p []byte) (int, error) { return b.w.Write(p) }

func (b *blobWriter) Abort() {
	b.cancel()
	b.w.Close()
	b.removeTmp()
}

func (b *blobWriter) Commit() error {
	defer b.cancel()
	if err := b.w.Close(); err != nil {
		b.removeTmp()
		return err
	}
	b.after()
	return nil
}

// removeTmp removes the temporary file of a failed local write (usually
// gone already).
func (b *blobWriter) removeTmp() {
	if b.tmp != "" {
		os.Remove(b.tmp)
	}
}

// setModTime makes a local file's time the source's, so that the next
// sync sees it as up to date.
func (s *store) setModTime(key string, t time.Time) {
	// An escaped key's file is not at the plain path (a//b is not a/b):
	// setting that path's time would touch another file.
	if s.ep.Kind != KindLocal || t.IsZero() || !plainKey(s.full(key)) {
		return
	}
	p := filepath.Join(s.ep.Root, filepath.FromSlash(s.full(key)))
	os.Chtimes(p, t, t)
}

func (s *store) remove(ctx context.Context, key string) error {
	if err := s.bucket.Delete(ctx, s.full(key)); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return hblob.Describe(err, s.ep.Raw+" "+key)
	}
	return nil
}

// partsInFlight bounds the parts of one object sent at once: memory is
// part size × partsInFlight × transfers.
const partsInFlight = 4

// uploadBuffers is what the S3 writer holds for an object of size bytes:
// its parts in flight and the one it fills.
func uploadBuffers(size int64) int64 { return (partsInFlight + 1) * hblob.PartSize(size) }

// keyToURL renders an endpoint and key for reports.
func keyToURL(ep Endpoint, key string) string {
	if ep.Single() || key == "" {
		return ep.Raw
	}
	raw := ep.Raw
	if u, err := url.Parse(raw); err == nil && u.RawQuery != "" {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/" + key
		return u.String()
	}
	return strings.TrimSuffix(raw, "/") + "/" + key
}
