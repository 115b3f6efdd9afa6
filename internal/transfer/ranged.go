package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"golang.org/x/sync/errgroup"

	hblob "github.com/hpcml/hpcml/internal/blob"
)

// rangedMin is the size from which an object store's object is
// downloaded to a local file as parallel ranged GETs: below it one
// stream is as fast and costs fewer requests.
const rangedMin = 2 * hblob.DefaultPart

// offsetFile is a destination written at offsets and read back: a
// local file being made (tmpfileWriter).
type offsetFile interface {
	objectWriter
	io.WriterAt
	io.ReaderAt
}

// copyRanged copies a large object from an object store to a local
// file: as parallel ranges where the file can be written at offsets
// (an unnamed file), else as one stream.
func (e *engine) copyRanged(ctx context.Context, key string, o object, meta map[string]string) (string, error) {
	w, err := e.dst.create(ctx, key, o.Size, meta, o.ModTime)
	if err != nil {
		return "", err
	}
	f, ok := w.(offsetFile)
	if !ok {
		r, err := e.openSource(ctx, o.Key, 0, -1)
		if err != nil {
			w.Abort()
			return "", err
		}
		defer r.Close()
		h := sha256.New()
		if _, err := e.fill(key, o, w, io.TeeReader(e.limited(ctx, r), h), nil); err != nil {
			return "", err
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	sum, err := e.downloadRanges(ctx, o.Key, o, f)
	if err != nil {
		w.Abort()
		return "", err
	}
	if err := w.Commit(); err != nil {
		return "", fmt.Errorf("write %s: %w", keyToURL(e.dst.ep, key), err)
	}
	return sum, nil
}

// downloadRanges fetches the object key (o.Size bytes) in parts,
// partsInFlight at a time, each written at its offset in f, and returns
// the SHA-256 of the bytes written. The hash follows the written prefix
// as parts complete (reading it back from the page cache), so hashing
// overlaps the download instead of following it. Every part is read
// under the ETag the object had when the copy began: an object replaced
// meanwhile fails the copy rather than mixing two versions, and one that
// carries hpcml's SHA-256 is checked against it.
func (e *engine) downloadRanges(ctx context.Context, key string, o object, f offsetFile) (string, error) {
	part := hblob.PartSize(o.Size)
	parts := int((o.Size + part - 1) / part)
	attrs, err := e.src.bucket.Attributes(ctx, e.src.full(key))
	if err != nil {
		return "", sourceErr(hblob.Describe(err, e.src.ep.Raw+" "+key))
	}
	if attrs.Size != o.Size {
		return "", fmt.Errorf("source changed while copied: listed %d bytes, now %d", o.Size, attrs.Size)
	}
	etag, recorded := attrs.ETag, attrs.Metadata[MetaSHA256]

	done := make(chan int, parts) // parts written, in any order
	stop := make(chan struct{})
	hashed := make(chan hashResult, 1)
	go func() { hashed <- e.hashPrefix(f, o.Size, part, parts, done, stop) }()

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(partsInFlight)
	for i := range parts {
		off := int64(i) * part
		n := min(part, o.Size-off)
		g.Go(func() error {
			if err := e.downloadPart(gctx, key, etag, off, n, f); err != nil {
				return err
			}
			done <- i
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		close(stop)
		<-hashed
		return "", err
	}
	res := <-hashed
	if res.err == nil && recorded != "" && recorded != res.sum {
		return "", fmt.Errorf("source does not match its recorded SHA-256 (%s, read %s)", recorded, res.sum)
	}
	return res.sum, res.err
}

// downloadPart copies n bytes at off of the object into f at off.
func (e *engine) downloadPart(ctx context.Context, key, etag string, off, n int64, f offsetFile) error {
	r, err := e.src.bucket.NewRangeReader(ctx, e.src.full(key), off, n, &blob.ReaderOptions{
		BeforeRead: ifMatch(etag),
	})
	if err != nil {
		return sourceErr(hblob.Describe(err, e.src.ep.Raw+" "+key))
	}
	defer r.Close()
	buf := e.buffer()
	defer e.bufs.Put(buf)
	got, err := io.CopyBuffer(io.NewOffsetWriter(f, off), &progressReader{r: e.limited(ctx, r), p: e.opts.Progress}, *buf)
	if err != nil {
		return fmt.Errorf("copy range at %d: %w", off, err)
	}
	if got != n {
		return fmt.Errorf("source changed while copied: %d bytes at %d, want %d", got, off, n)
	}
	return nil
}

type hashResult struct {
	sum string
	err error
}

// hashPrefix hashes f's parts in order as they are reported done, until
// all are hashed or stop is closed.
func (e *engine) hashPrefix(f io.ReaderAt, size, part int64, parts int, done <-chan int, stop <-chan struct{}) hashResult {
	h := sha256.New()
	ready := make([]bool, parts)
	buf := e.buffer()
	defer e.bufs.Put(buf)
	for next := 0; next < parts; {
		select {
		case i := <-done:
			ready[i] = true
		case <-stop:
			return hashResult{err: errors.New("download stopped")}
		}
		for ; next < parts && ready[next]; next++ {
			off := int64(next) * part
			sec := io.NewSectionReader(f, off, min(part, size-off))
			if _, err := io.CopyBuffer(h, sec, *buf); err != nil {
				return hashResult{err: fmt.Errorf("read back downloaded part at %d: %w", off, err)}
			}
		}
	}
	return hashResult{sum: hex.EncodeToString(h.Sum(nil))}
}

// ifMatch makes an S3 GET conditional on the object's ETag (a 412 if it
// changed). Other stores have no ETag here and read unconditionally.
func ifMatch(etag string) func(as func(any) bool) error {
	return func(as func(any) bool) error {
		var in *s3.GetObjectInput
		if etag != "" && as(&in) {
			in.IfMatch = aws.String(etag)
		}
		return nil
	}
}
