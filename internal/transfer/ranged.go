package transfer

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

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
// overlaps the download instead of following it; and the download runs
// at most hashWindow parts ahead of the hash. Without that bound the
// hash, one goroutine among the parts' (and the server's, on a small
// machine), fell behind: on two cores it still had 0.6 s of a 1 GiB
// object to hash after the last part had arrived, with one core idle.
// Every part is read under the ETag the object had when the copy began:
// an object replaced meanwhile fails the copy rather than mixing two
// versions, and one that carries hpcml's SHA-256 is checked against it.
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

	done := make(chan int, parts)              // parts written, in any order
	ahead := semaphore.NewWeighted(hashWindow) // parts begun and not yet hashed
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(partsInFlight + 1) // and the hash
	var sum string
	g.Go(func() (err error) {
		sum, err = e.hashPrefix(gctx, f, o.Size, part, parts, done, ahead)
		return err
	})
	var begun error
	for i := range parts {
		if begun = ahead.Acquire(gctx, 1); begun != nil {
			break // the group's error says why, if it has one
		}
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
	if err := cmp.Or(g.Wait(), begun); err != nil {
		return "", err
	}
	if recorded != "" && recorded != sum {
		return "", fmt.Errorf("source does not match its recorded SHA-256 (%s, read %s)", recorded, sum)
	}
	return sum, nil
}

// hashWindow is how many parts a ranged download may have begun beyond
// those hashed: the parts in flight, and two more done while the hash
// catches up.
const hashWindow = partsInFlight + 2

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

// hashPrefix hashes f's parts in order as they are reported done, each
// hashed part releasing its place in ahead, until all are hashed or ctx
// ends.
func (e *engine) hashPrefix(ctx context.Context, f io.ReaderAt, size, part int64, parts int, done <-chan int, ahead *semaphore.Weighted) (string, error) {
	h := sha256.New()
	ready := make([]bool, parts)
	buf := e.buffer()
	defer e.bufs.Put(buf)
	for next := 0; next < parts; {
		select {
		case i := <-done:
			ready[i] = true
		case <-ctx.Done():
			return "", ctx.Err()
		}
		for ; next < parts && ready[next]; next++ {
			if e.opts.beforeHashPart != nil {
				e.opts.beforeHashPart(next)
			}
			off := int64(next) * part
			sec := io.NewSectionReader(f, off, min(part, size-off))
			if _, err := io.CopyBuffer(h, sec, *buf); err != nil {
				return "", fmt.Errorf("read back downloaded part at %d: %w", off, err)
			}
			ahead.Release(1)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
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
