package table

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	gcblob "gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	hblob "github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/transfer"
)

// file is one file of a table's source: a local file or an object.
type file struct {
	name   string // for messages: the path or s3://bucket/key
	url    string // opens this file alone (a Piece's URL)
	size   int64
	path   string // a local file's path; "" for an object
	bucket *gcblob.Bucket
	key    string
	format Format
	comp   compression
}

// source is the files a URL names, in key order.
type source struct {
	files   []*file
	buckets []*gcblob.Bucket
	single  bool // the URL named one file
}

func (s *source) Close() {
	for _, b := range s.buckets {
		b.Close()
	}
	s.buckets = nil
}

const datasetScheme = "dataset://"

// resolveURL turns a dataset name into its URL through the caller's hook.
func resolveURL(ctx context.Context, raw string, opts *Options) (string, error) {
	if !strings.HasPrefix(raw, datasetScheme) {
		return raw, nil
	}
	ref := strings.TrimPrefix(raw, datasetScheme)
	name, version, _ := strings.Cut(ref, "@")
	if name == "" {
		return "", fmt.Errorf("%s: no dataset name (dataset://NAME[@VERSION])", raw)
	}
	if opts.ResolveDataset == nil {
		return "", fmt.Errorf("%s: dataset names cannot be resolved here (no Options.ResolveDataset)", raw)
	}
	u, err := opts.ResolveDataset(ctx, name, version)
	if err != nil {
		return "", fmt.Errorf("%s: %w", raw, err)
	}
	if strings.HasPrefix(u, datasetScheme) {
		return "", fmt.Errorf("%s: resolved to another dataset name, %s", raw, u)
	}
	return u, nil
}

// listSource finds the files raw names: one file, or every table file
// under a directory or prefix.
func listSource(ctx context.Context, raw string, opts *Options) (*source, error) {
	raw, err := resolveURL(ctx, raw, opts)
	if err != nil {
		return nil, err
	}
	ep, err := transfer.ParseEndpoint(raw)
	if err != nil {
		return nil, err
	}
	src := &source{}
	switch ep.Kind {
	case transfer.KindLocal:
		err = src.listLocal(ep)
	case transfer.KindS3:
		err = src.listS3(ctx, ep)
	default:
		err = fmt.Errorf("%s: tables are read from local paths, file:// or s3:// URLs (copy it first: hpcml data cp)", raw)
	}
	if err == nil {
		err = src.pick(raw, opts)
	}
	if err != nil {
		src.Close()
		return nil, err
	}
	return src, nil
}

func (s *source) listLocal(ep transfer.Endpoint) error {
	shown := ep.Raw
	if strings.HasPrefix(shown, "file://") {
		if u, err := url.Parse(shown); err == nil {
			shown = filepath.FromSlash(u.Path)
		}
	}
	if ep.Single() {
		p := filepath.Join(ep.Root, ep.Prefix)
		info, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("%s: %w", shown, errors.Unwrap(err))
		}
		s.files = append(s.files, &file{name: shown, url: p, size: info.Size(), path: p})
		s.single = true
		return nil
	}
	if _, err := os.Stat(ep.Root); err != nil {
		return fmt.Errorf("%s: %w", shown, errors.Unwrap(err))
	}
	err := filepath.WalkDir(ep.Root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if p != ep.Root && errors.Is(err, fs.ErrNotExist) {
				return nil // gone while listing
			}
			return err
		}
		if d.IsDir() {
			if p != ep.Root && hidden(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if hidden(d.Name()) || !d.Type().IsRegular() && d.Type()&os.ModeSymlink == 0 {
			return nil
		}
		info, err := os.Stat(p) // follows links
		if err != nil || !info.Mode().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(ep.Root, p)
		s.files = append(s.files, &file{name: filepath.Join(shown, rel), url: p, size: info.Size(), path: p, key: filepath.ToSlash(rel)})
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", shown, err)
	}
	// Key order, as an object store lists them ("a.csv" before "a/b.csv").
	sort.Slice(s.files, func(i, j int) bool { return s.files[i].key < s.files[j].key })
	return nil
}

// hidden names are not data: .crc, _SUCCESS, _temporary/, temp files.
func hidden(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || strings.HasSuffix(name, ".tmp")
}

func (s *source) listS3(ctx context.Context, ep transfer.Endpoint) error {
	b, err := hblob.Open(ctx, ep.Bucket)
	if err != nil {
		return err
	}
	s.buckets = append(s.buckets, b)
	bu, err := url.Parse(ep.Bucket)
	if err != nil {
		return err
	}
	object := func(key string, size int64) *file {
		u := *bu
		u.Path = "/" + key
		return &file{name: "s3://" + bu.Host + "/" + key, url: u.String(), size: size, bucket: b, key: key}
	}
	prefix := ep.Prefix
	if ep.Single() {
		a, err := b.Attributes(ctx, ep.Prefix)
		if err == nil {
			s.files = append(s.files, object(ep.Prefix, a.Size))
			s.single = true
			return nil
		}
		if gcerrors.Code(err) != gcerrors.NotFound {
			return hblob.Describe(err, "s3://"+bu.Host+"/"+ep.Prefix)
		}
		prefix += "/" // s3://b/data meaning the objects under data/
	}
	it := b.List(&gcblob.ListOptions{Prefix: prefix})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return hblob.Describe(err, "s3://"+bu.Host+"/"+prefix)
		}
		if o.IsDir || strings.HasSuffix(o.Key, "/") {
			continue
		}
		hide := false
		for _, seg := range strings.Split(strings.TrimPrefix(o.Key, prefix), "/") {
			hide = hide || hidden(seg)
		}
		if !hide {
			s.files = append(s.files, object(o.Key, o.Size))
		}
	}
	if len(s.files) == 0 {
		if ep.Single() {
			return fmt.Errorf("s3://%s/%s: not found", bu.Host, ep.Prefix)
		}
		return fmt.Errorf("s3://%s/%s: no files", bu.Host, prefix)
	}
	sort.Slice(s.files, func(i, j int) bool { return s.files[i].key < s.files[j].key })
	return nil
}

// pick keeps a prefix's table files and sets every file's format: all
// files of a table are of one format.
func (s *source) pick(raw string, opts *Options) error {
	var kept []*file
	for _, f := range s.files {
		format, comp := formatOf(f.name)
		f.comp = comp
		switch {
		case opts.Format != "" && (format != "" || path.Ext(f.name) == "" || s.single):
			// Set: every table file, and files without an extension
			// (Hadoop's part-00000).
			f.format = opts.Format
		case format != "":
			f.format = format
		case s.single:
			return fmt.Errorf("%s: unknown table format (the name should end in .csv, .tsv, .parquet, .jsonl, .ndjson or .json, maybe with .gz or .zst; or set the format)", f.name)
		default:
			continue // not a table file
		}
		if f.format == FormatParquet && f.comp != compNone {
			return fmt.Errorf("%s: a Parquet file cannot be read compressed as a whole (Parquet compresses inside)", f.name)
		}
		if len(kept) > 0 && kept[0].format != f.format {
			return fmt.Errorf("%s is %s but %s is %s: a table's files are of one format", kept[0].name, kept[0].format, f.name, f.format)
		}
		kept = append(kept, f)
	}
	if len(kept) == 0 {
		if len(s.files) == 0 {
			return fmt.Errorf("%s: no files", raw)
		}
		return fmt.Errorf("%s: no table files among its %d files (.csv, .tsv, .parquet, .jsonl, ...)", raw, len(s.files))
	}
	if len(kept) > 1 {
		// Empty files in a prefix hold no rows and no header: skipped.
		nonEmpty := kept[:0:0]
		for _, f := range kept {
			if f.size > 0 {
				nonEmpty = append(nonEmpty, f)
			}
		}
		if len(nonEmpty) == 0 {
			return fmt.Errorf("%s: all %d files are empty", raw, len(kept))
		}
		kept = nonEmpty
	}
	s.files = kept
	return nil
}

// open reads the bytes [off, off+n) of the file as stored (n < 0: to the end).
func (f *file) open(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	if f.path != "" {
		fh, err := os.Open(f.path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, errors.Unwrap(err))
		}
		if off > 0 {
			if _, err := fh.Seek(off, io.SeekStart); err != nil {
				fh.Close()
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
		}
		if n >= 0 {
			return readCloser{io.LimitReader(fh, n), fh}, nil
		}
		return fh, nil
	}
	if n < 0 && off >= f.size {
		return io.NopCloser(strings.NewReader("")), nil
	}
	r, err := f.bucket.NewRangeReader(ctx, f.key, off, n, nil)
	if err != nil {
		return nil, hblob.Describe(err, f.name)
	}
	return r, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// streamSize is how many bytes stream(off) yields, or 0 if not known.
func (f *file) streamSize(off int64) int64 {
	if f.comp != compNone {
		return 0
	}
	return max(f.size-off, 1)
}

// stream reads the file from byte off, decompressed. A compressed file
// is read from its start only.
func (f *file) stream(ctx context.Context, off int64) (io.ReadCloser, error) {
	if f.comp != compNone && off != 0 {
		return nil, fmt.Errorf("%s: a compressed file is read from its start only", f.name)
	}
	r, err := f.open(ctx, off, -1)
	if err != nil {
		return nil, err
	}
	z, err := f.decompress(r)
	if err != nil || (f.comp == compNone && f.path != "") {
		return z, err // a local file: the kernel reads ahead
	}
	// Decompression and the network overlap the parsing.
	return newReadAhead(z, 1<<20, 2), nil
}

// Decompress wraps r, the bytes of the file name, in the decompressor
// its extension names (.gz, .zst), as Open reads such files; r itself for
// any other name. Errors name the file. Closing the result closes r.
func Decompress(name string, r io.ReadCloser) (io.ReadCloser, error) {
	_, comp := formatOf(name)
	return (&file{name: name, comp: comp}).decompress(r)
}

func (f *file) decompress(r io.ReadCloser) (io.ReadCloser, error) {
	switch f.comp {
	case compGzip:
		z, err := gzip.NewReader(r)
		if err != nil {
			r.Close()
			if err == io.EOF {
				return nil, &Error{File: f.name, Msg: "empty (not even a gzip header)"}
			}
			return nil, &Error{File: f.name, Msg: "not gzip: " + err.Error()}
		}
		return readCloser{decompressErr{z, f.name}, closers{z, r}}, nil
	case compZstd:
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			r.Close()
			return nil, &Error{File: f.name, Msg: "not zstd: " + err.Error()}
		}
		return readCloser{decompressErr{z, f.name}, closers{z.IOReadCloser(), r}}, nil
	}
	return r, nil
}

// readAhead reads src in a goroutine, up to depth chunks ahead of its
// reader.
type readAhead struct {
	src  io.ReadCloser
	ch   chan chunk
	free chan []byte
	cur  []byte // the unread rest of the current chunk
	buf  []byte // the current chunk, to give back
	err  error
	stop chan struct{}
	done chan struct{}
}

type chunk struct {
	b   []byte
	err error
}

func newReadAhead(src io.ReadCloser, size, depth int) *readAhead {
	ra := &readAhead{src: src, ch: make(chan chunk, depth), free: make(chan []byte, depth+1),
		stop: make(chan struct{}), done: make(chan struct{})}
	for i := 0; i <= depth; i++ {
		ra.free <- make([]byte, size)
	}
	go ra.run()
	return ra
}

func (ra *readAhead) run() {
	defer close(ra.done)
	for {
		var b []byte
		select {
		case b = <-ra.free:
		case <-ra.stop:
			return
		}
		n, err := io.ReadFull(ra.src, b)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		select {
		case ra.ch <- chunk{b[:n], err}:
		case <-ra.stop:
			return
		}
		if err != nil {
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.err != nil {
			return 0, ra.err
		}
		if ra.buf != nil {
			ra.free <- ra.buf[:cap(ra.buf)]
			ra.buf = nil
		}
		c := <-ra.ch
		ra.buf, ra.cur, ra.err = c.b, c.b, c.err
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close waits for the read in flight (the source is not safe to close
// while it is read), then closes the source.
func (ra *readAhead) Close() error {
	close(ra.stop)
	<-ra.done
	return ra.src.Close()
}

// decompressErr names the file in a decompression error.
type decompressErr struct {
	r    io.Reader
	name string
}

func (d decompressErr) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = &Error{File: d.name, Msg: "truncated compressed data"}
		} else if _, ok := err.(*Error); !ok && !errors.Is(err, context.Canceled) {
			err = &Error{File: d.name, Msg: "bad compressed data: " + err.Error()}
		}
	}
	return n, err
}

type closers []io.Closer

func (c closers) Close() error {
	var first error
	for _, x := range c {
		if err := x.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// readerAt is random access to the file (Parquet reads its footer, then
// column chunks): the local file, or ranged GETs of the object.
type readerAtSeeker interface {
	io.ReaderAt
	io.Seeker
	io.Closer
}

func (f *file) readerAt(ctx context.Context) (readerAtSeeker, error) {
	if f.path != "" {
		fh, err := os.Open(f.path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, errors.Unwrap(err))
		}
		return fh, nil
	}
	return &objectReaderAt{ctx: ctx, f: f}, nil
}

// objectReaderAt reads an object by ranges.
type objectReaderAt struct {
	ctx context.Context
	f   *file
	off int64
}

func (o *objectReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= o.f.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), o.f.size-off)
	r, err := o.f.bucket.NewRangeReader(o.ctx, o.f.key, off, want, nil)
	if err != nil {
		return 0, hblob.Describe(err, o.f.name)
	}
	defer r.Close()
	n, err := io.ReadFull(r, p[:want])
	if err != nil {
		return n, fmt.Errorf("%s: reading bytes %d-%d: %w", o.f.name, off, off+want, err)
	}
	if int64(n) < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

func (o *objectReaderAt) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += o.off
	case io.SeekEnd:
		offset += o.f.size
	}
	if offset < 0 {
		return 0, errors.New("seek before the start")
	}
	o.off = offset
	return offset, nil
}

func (o *objectReaderAt) Close() error { return nil }

// openFile opens one file by the URL a Piece carries, sharing buckets
// through the cache.
type opener struct {
	buckets map[string]*gcblob.Bucket
}

func (o *opener) file(ctx context.Context, raw string, format Format) (*file, error) {
	ep, err := transfer.ParseEndpoint(raw)
	if err != nil {
		return nil, err
	}
	var f *file
	switch ep.Kind {
	case transfer.KindLocal:
		p := filepath.Join(ep.Root, ep.Prefix)
		info, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, errors.Unwrap(err))
		}
		f = &file{name: p, url: p, size: info.Size(), path: p}
	case transfer.KindS3:
		b := o.buckets[ep.Bucket]
		if b == nil {
			if b, err = hblob.Open(ctx, ep.Bucket); err != nil {
				return nil, err
			}
			if o.buckets == nil {
				o.buckets = map[string]*gcblob.Bucket{}
			}
			o.buckets[ep.Bucket] = b
		}
		bu, _ := url.Parse(ep.Bucket)
		name := "s3://" + bu.Host + "/" + ep.Prefix
		a, err := b.Attributes(ctx, ep.Prefix)
		if err != nil {
			return nil, hblob.Describe(err, name)
		}
		f = &file{name: name, url: raw, size: a.Size, bucket: b, key: ep.Prefix}
	default:
		return nil, fmt.Errorf("%s: not a file or s3:// URL", raw)
	}
	_, f.comp = formatOf(f.name)
	f.format = format
	return f, nil
}

func (o *opener) Close() {
	for _, b := range o.buckets {
		b.Close()
	}
	o.buckets = nil
}
