package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	gcblob "gocloud.dev/blob"
	"gocloud.dev/gcerrors"
	"golang.org/x/sync/errgroup"
)

// Cache keeps buckets open by URL, so that work repeated per job (log
// shipping, staging) does not pay for opening a bucket each time. It is
// safe for concurrent use.
type Cache struct {
	mu      sync.Mutex
	buckets map[string]*Bucket
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{buckets: map[string]*Bucket{}} }

// Open returns the bucket for url, opening it on first use.
func (c *Cache) Open(ctx context.Context, url string) (*Bucket, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.buckets[url]; ok {
		return b, nil
	}
	b, err := Open(ctx, url)
	if err != nil {
		return nil, err
	}
	c.buckets[url] = b
	return b, nil
}

// Close closes every bucket.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for u, b := range c.buckets {
		errs = append(errs, b.Close())
		delete(c.buckets, u)
	}
	return errors.Join(errs...)
}

// Stager copies between object storage and a local directory tree that
// must not be escaped (a job dir). The default bucket comes from a cache
// shared by every attempt (it is the same bucket for all of them); any
// other bucket a job names is opened for this Stager only and closed by
// Close, so that a long-lived executor does not keep open one bucket per
// URL any job ever named.
type Stager struct {
	DefaultBucket string
	// Objects, if set, serves the downloads from object stores (s3://)
	// through the node's cache of objects, shared by its jobs. Files
	// (file://) are read where they are.
	Objects ObjectCache
	shared  *Cache
	own     *Cache
}

// ObjectCache keeps what downloads read on the node, by content
// (internal/cache, through the task runner, which counts its hits and
// misses). Fetch returns the bytes of the object tag names (its URL,
// ETag and size), from the cache or fetched with open on a miss, and
// checked against want, the SHA-256 the store recorded, if any. An
// object the cache cannot hold is read from open directly.
type ObjectCache interface {
	Fetch(ctx context.Context, tag, want string, size int64, open func(context.Context) (io.ReadCloser, error)) (io.ReadCloser, error)
}

// MetaSHA256 is the object metadata key hpcml records an object's SHA-256
// under (internal/transfer writes it): the content address of the cache.
const MetaSHA256 = "sha256"

// NewStager returns a Stager resolving bare keys against defaultBucket,
// which it takes from shared. Close it when done.
func NewStager(defaultBucket string, shared *Cache) *Stager {
	return &Stager{DefaultBucket: defaultBucket, shared: shared, own: NewCache()}
}

func (s *Stager) bucket(ctx context.Context, u string) (*Bucket, error) {
	if u == s.DefaultBucket {
		return s.shared.Open(ctx, u)
	}
	return s.own.Open(ctx, u)
}

// Close closes the buckets this Stager opened for itself (not the shared
// default bucket).
func (s *Stager) Close() error { return s.own.Close() }

// Download copies the object (or every object under the prefix) at rawURL
// to rel inside root. Files appear under their final name only when
// complete. It returns the bytes copied.
func (s *Stager) Download(ctx context.Context, rawURL string, root *os.Root, rel string) (int64, error) {
	rel = filepath.Clean(rel) // "data/" names the directory "data"
	loc, err := Resolve(rawURL, s.DefaultBucket)
	if err != nil {
		return 0, err
	}
	b, err := s.bucket(ctx, loc.Bucket)
	if err != nil {
		return 0, err
	}
	fetch := s.fetcher(loc.Bucket, b)
	if !loc.IsPrefix() {
		return downloadOne(ctx, fetch, loc.Key, root, rel)
	}
	// Listed first (an object that would land outside fails the input
	// before any byte is copied), then copied downloadsAtOnce at a time.
	var keys, rels []string
	at := map[string]int{} // rels' indexes
	it := b.List(&gcblob.ListOptions{Prefix: loc.Key})
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("list %s: %w", loc, err)
		}
		if strings.HasSuffix(obj.Key, "/") && obj.Size == 0 {
			// A "folder marker" (what S3 consoles create for an empty
			// folder): a directory, not a file; the files under it
			// create their directories themselves.
			continue
		}
		sub := strings.TrimPrefix(obj.Key, loc.Key)
		if !filepath.IsLocal(sub) {
			return 0, fmt.Errorf("object %q would land outside %s", obj.Key, rel)
		}
		dst := path.Join(rel, sub)
		if i, ok := at[dst]; ok {
			// Keys that land on one path ("a//b", "a/b"): the last listed
			// wins, as when they were copied one after the other.
			keys[i] = obj.Key
			continue
		}
		at[dst] = len(keys)
		keys, rels = append(keys, obj.Key), append(rels, dst)
	}
	if len(keys) == 0 {
		return 0, fmt.Errorf("no objects under %s", loc)
	}
	var total atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(downloadsAtOnce)
	for i := range keys {
		g.Go(func() error {
			n, err := downloadOne(gctx, fetch, keys[i], root, rels[i])
			total.Add(n)
			return err
		})
	}
	err = g.Wait()
	return total.Load(), err
}

// downloadsAtOnce is how many objects of a prefix are copied at once:
// a prefix of many small objects is bound by requests, not bytes.
const downloadsAtOnce = 8

// fetcher is how the objects of bucketURL (open as b) are read: through
// the node's cache for an object store, when the Stager has one, else
// from the bucket.
func (s *Stager) fetcher(bucketURL string, b *Bucket) func(ctx context.Context, key string) (io.ReadCloser, error) {
	direct := func(ctx context.Context, key string) (io.ReadCloser, error) { return b.NewReader(ctx, key, nil) }
	if s.Objects == nil || !strings.HasPrefix(bucketURL, "s3://") {
		return direct
	}
	return func(ctx context.Context, key string) (io.ReadCloser, error) {
		// An object rewritten between its HEAD and its GET fails the GET
		// (If-Match): look again, a few times.
		for try := 1; ; try++ {
			attrs, err := b.Attributes(ctx, key)
			if err != nil {
				return nil, err
			}
			if attrs.ETag == "" {
				return direct(ctx, key)
			}
			// Read under the ETag looked at: bytes of another version
			// must not be kept under this one's tag.
			open := func(ctx context.Context) (io.ReadCloser, error) {
				return b.NewReader(ctx, key, &gcblob.ReaderOptions{BeforeRead: IfMatch(attrs.ETag)})
			}
			tag := strings.Join([]string{bucketURL, key, attrs.ETag, strconv.FormatInt(attrs.Size, 10)}, "\x00")
			r, err := s.Objects.Fetch(ctx, tag, attrs.Metadata[MetaSHA256], attrs.Size, open)
			if gcerrors.Code(err) != gcerrors.FailedPrecondition {
				return r, err
			}
			if try == 3 {
				return nil, fmt.Errorf("object %q changed while it was read, three times: %w", key, err)
			}
		}
	}
}

// IfMatch makes an S3 GET conditional on the object's ETag (a 412 if it
// changed), as a gocloud reader's BeforeRead. Other stores have no ETag
// here and read unconditionally.
func IfMatch(etag string) func(as func(any) bool) error {
	return func(as func(any) bool) error {
		if etag == "" {
			return nil
		}
		var in *s3.GetObjectInput
		if !as(&in) {
			// Not S3's request: the read would not be conditional.
			return errors.New("a conditional read (If-Match) needs an S3 store")
		}
		in.IfMatch = aws.String(etag)
		return nil
	}
}

func downloadOne(ctx context.Context, fetch func(context.Context, string) (io.ReadCloser, error), key string, root *os.Root, rel string) (int64, error) {
	r, err := fetch(ctx, key)
	if err != nil {
		if IsNotFound(err) {
			return 0, fmt.Errorf("object %q does not exist", key)
		}
		return 0, fmt.Errorf("read %q: %w", key, err)
	}
	defer r.Close()
	if dir := path.Dir(rel); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return 0, fmt.Errorf("create %s: %w", dir, err)
		}
	}
	tmp := rel + ".hpcml-partial"
	f, err := root.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", rel, err)
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, rel)
	}
	if err != nil {
		root.Remove(tmp)
		return n, fmt.Errorf("download %q to %s: %w", key, rel, err)
	}
	return n, nil
}

// Upload copies rel inside root — a file, or a directory tree — to rawURL.
// A directory goes under the URL as a prefix. Symlinks are followed as
// long as they stay inside root, for a single file as for the files of a
// directory; one that leads outside is refused (os.Root refuses escapes).
// A symlink to a directory inside a directory tree is not followed (it
// could loop): what it points to is uploaded under its real name, if it
// is part of the output.
func (s *Stager) Upload(ctx context.Context, root *os.Root, rel, rawURL string) (int64, error) {
	rel = filepath.Clean(rel) // "out/" names the directory "out"
	loc, err := Resolve(rawURL, s.DefaultBucket)
	if err != nil {
		return 0, err
	}
	bucketURL := loc.Bucket
	if bucketURL != s.DefaultBucket {
		bucketURL = WithCreateDir(bucketURL) // an output may go to a new directory
	}
	b, err := s.bucket(ctx, bucketURL)
	if err != nil {
		return 0, err
	}
	info, err := root.Stat(rel)
	if err != nil {
		return 0, fmt.Errorf("output %s: %w", rel, err)
	}
	if !info.IsDir() {
		if !info.Mode().IsRegular() {
			return 0, fmt.Errorf("output %s is not a regular file", rel)
		}
		key := loc.Key
		if loc.IsPrefix() {
			key += path.Base(rel)
		}
		return uploadOne(ctx, b, root, rel, key)
	}
	prefix := loc.Key
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	var total int64
	err = fs.WalkDir(root.FS(), rel, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			// Stat through root follows the link, and fails if it
			// leads outside the job dir.
			info, err := root.Stat(p)
			if err != nil {
				return fmt.Errorf("output %s: %w", p, err)
			}
			if info.IsDir() {
				return nil
			}
			if !info.Mode().IsRegular() {
				return fmt.Errorf("output %s is not a regular file", p)
			}
		} else if !d.Type().IsRegular() {
			return fmt.Errorf("output %s is not a regular file", p)
		}
		sub, _ := filepath.Rel(rel, p)
		n, err := uploadOne(ctx, b, root, p, prefix+filepath.ToSlash(sub))
		total += n
		return err
	})
	return total, err
}

func uploadOne(ctx context.Context, b *Bucket, root *os.Root, rel, key string) (int64, error) {
	f, err := root.Open(rel)
	if err != nil {
		return 0, fmt.Errorf("output %s: %w", rel, err)
	}
	defer f.Close()
	size := int64(-1)
	if info, err := f.Stat(); err == nil {
		size = info.Size()
	}
	return UploadReader(ctx, b, key, f, size)
}

// UploadReader writes r to key; the object appears only if all of r was
// written (the writer is aborted on error). size, when known (≥ 0), sizes
// the parts of a multipart upload so that the object fits in S3's 10,000
// parts; unknown (-1), the store's default parts bound it (about 48 GiB
// on S3).
func UploadReader(ctx context.Context, b *Bucket, key string, r io.Reader, size int64) (int64, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var opts *gcblob.WriterOptions
	if size > MinPart {
		opts = &gcblob.WriterOptions{BufferSize: int(PartSize(size))}
	}
	w, err := b.NewWriter(wctx, key, opts)
	if err != nil {
		return 0, fmt.Errorf("write %q: %w", key, err)
	}
	// Not io.Copy: that calls the writer's ReadFrom, which allocates
	// 1 MiB per object — most of the garbage of a server storing many
	// small objects (async payloads and results).
	n, err := io.CopyBuffer(struct{ io.Writer }{w}, r, make([]byte, 32<<10))
	if err != nil {
		cancel() // aborts the upload instead of committing a partial object
		w.Close()
		return n, fmt.Errorf("write %q: %w", key, err)
	}
	if err := w.Close(); err != nil {
		return n, fmt.Errorf("write %q: %w", key, err)
	}
	return n, nil
}
