package transfer

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"sync/atomic"

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

// offsetFile is a destination written at offsets: a local file being
// made (tmpfileWriter).
type offsetFile interface {
	objectWriter
	io.WriterAt
}

// copyRanged copies a large object from an object store to a local
// file: as parallel ranges where the file can be written at offsets
// (any file hpcml names itself), else (a key gocloud's fileblob must
// escape, see plainKey) as one stream, SHA-256'd and checked against a
// recorded one.
func (e *engine) copyRanged(ctx context.Context, key string, o object, meta map[string]string) (copied, error) {
	w, err := e.dst.create(ctx, key, o.Size, meta, o.ModTime)
	if err != nil {
		return copied{}, err
	}
	f, ok := w.(offsetFile)
	if !ok {
		recorded, err := e.src.metadata(ctx, o.Key)
		if err != nil {
			w.Abort()
			return copied{}, sourceErr(err)
		}
		r, err := e.openSource(ctx, o.Key, 0, -1)
		if err != nil {
			w.Abort()
			return copied{}, err
		}
		defer r.Close()
		h, check := readCheck(preSum{}, map[string]string{MetaSHA256: recorded[MetaSHA256]})
		n, err := e.fill(key, o, w, io.TeeReader(e.limited(ctx, r), h), check)
		if err != nil {
			return copied{}, err
		}
		return copied{sha256: hex.EncodeToString(h.Sum(nil)), size: n}, nil
	}
	c, err := e.downloadRanges(ctx, o.Key, o, f)
	if err != nil {
		w.Abort()
		return copied{}, err
	}
	if err := w.Commit(); err != nil {
		return copied{}, fmt.Errorf("write %s: %w", keyToURL(e.dst.ep, key), err)
	}
	return c, nil
}

// downloadRanges fetches the object key (o.Size bytes) into f in
// parallel parts and checks it end to end, by the strongest checksum
// the object carries: hpcml's recorded SHA-256, else the S3 checksum its
// writer and the store agreed (s3Sum), else none, and then it takes the
// SHA-256 for the report. Every part is read under the ETag the object
// had when the copy began: an object replaced meanwhile fails the copy
// rather than mixing two versions.
func (e *engine) downloadRanges(ctx context.Context, key string, o object, f offsetFile) (copied, error) {
	attrs, err := e.src.bucket.Attributes(ctx, e.src.full(key))
	if err != nil {
		return copied{}, sourceErr(hblob.Describe(err, e.src.ep.Raw+" "+key))
	}
	if attrs.Size != o.Size {
		return copied{}, fmt.Errorf("source changed while copied: listed %d bytes, now %d", o.Size, attrs.Size)
	}
	if recorded := attrs.Metadata[MetaSHA256]; recorded != "" {
		h := sha256.New()
		err := e.downloadHashed(ctx, key, attrs.ETag, o, f, h)
		sum := hex.EncodeToString(h.Sum(nil))
		if err == nil && sum != recorded {
			err = fmt.Errorf("source does not match its recorded SHA-256 (%s, read %s)", recorded, sum)
		}
		return copied{sha256: sum, size: o.Size}, err
	}
	switch want := e.src.s3Sum(ctx, key, attrs.ETag); {
	case want != nil && want.parts > 0:
		got, err := e.downloadParts(ctx, key, attrs.ETag, o, f, want)
		if !errors.Is(err, errNoPartReads) {
			return copied{s3: got, size: o.Size}, err
		}
		// A store that does not read parts by number: as if no checksum.
	case want != nil:
		return copied{s3: want, size: o.Size}, e.downloadStreams(ctx, key, attrs.ETag, o, f, want)
	}
	h := sha256.New()
	err = e.downloadHashed(ctx, key, attrs.ETag, o, f, h)
	return copied{sha256: hex.EncodeToString(h.Sum(nil)), size: o.Size}, err
}

// downloadHashed fetches the object key (o.Size bytes) in ranges,
// partsInFlight at a time, each received into a buffer of its own, from
// which it is both hashed (into h, in the object's order) and written
// at its offset in f, by one goroutine each. Hashing from the buffers
// overlaps the download instead of following it and reads no byte back
// from the file; one writer keeps the receivers off the file's lock
// (four writers into one file spent a fifth more system CPU than one,
// spinning on it), and it does not wait for the hash. A buffer is free
// again once its range is hashed and written, and there are hashWindow
// of them: the download runs at most that many ranges ahead of the
// hash. Without that bound the hash, one goroutine among the ranges'
// (and the server's, on a small machine), fell behind: on two cores it
// still had 0.6 s of a 1 GiB object's SHA-256 to do after the last
// range had arrived, with one core idle.
func (e *engine) downloadHashed(ctx context.Context, key, etag string, o object, f offsetFile, h hash.Hash) error {
	part := hblob.PartSize(o.Size)
	parts := int((o.Size + part - 1) / part)
	window := min(hashWindow, parts)
	release, err := e.reserveMemory(ctx, int64(window)*part)
	if err != nil {
		return err
	}
	defer release()
	free := make(chan []byte, window) // buffers not holding a range still to hash or write
	for range window {
		free <- make([]byte, part)
	}
	toHash := make(chan *receivedPart, window)
	toWrite := make(chan *receivedPart, window)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(partsInFlight + 2) // and the hash and the writer
	g.Go(func() error { return e.hashParts(gctx, parts, toHash, h, free) })
	g.Go(func() error {
		for range parts {
			select {
			case p := <-toWrite:
				if _, err := f.WriteAt(p.data, p.off); err != nil {
					return fmt.Errorf("write range at %d: %w", p.off, err)
				}
				p.done(free)
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	var begun error
	for i := range parts {
		var buf []byte
		select {
		case buf = <-free:
		case <-gctx.Done():
			begun = gctx.Err() // the group's error says why, if it has one
		}
		if begun != nil {
			break
		}
		off := int64(i) * part
		p := &receivedPart{i: i, off: off, data: buf[:min(part, o.Size-off)]}
		p.users.Store(2) // the hash and the writer
		g.Go(func() error {
			if err := e.downloadPart(gctx, key, etag, off, p.data); err != nil {
				return err
			}
			toHash <- p
			toWrite <- p
			return nil
		})
	}
	return cmp.Or(g.Wait(), begun)
}

// downloadStreams fetches an object with a whole-object CRC as
// partsInFlight streams of equal length, each written straight into f
// and CRC'd on the way, and checks the CRCs combined (combineCRC) against
// the object's. A CRC, unlike a SHA-256, need not see the bytes in
// order: no buffers, and a few long GETs instead of one per part. On a
// loopback versitygw, a 1 GiB download took 0.6–1.6 s this way against
// 1.8–2.3 s as in-order parts, and the server 0.54–0.73 CPU-s against
// 0.74–0.92.
func (e *engine) downloadStreams(ctx context.Context, key, etag string, o object, f offsetFile, want *s3Sum) error {
	n := int64(partsInFlight)
	span := (o.Size + n - 1) / n
	crcs := make([]uint64, n)
	g, gctx := errgroup.WithContext(ctx)
	for i := range n {
		off := i * span
		length := min(span, o.Size-off)
		g.Go(func() error {
			r, err := e.openRange(gctx, key, etag, off, length)
			if err != nil {
				return err
			}
			defer r.Close()
			h := want.newHash()
			buf := e.buffer()
			defer e.bufs.Put(buf)
			got, err := io.CopyBuffer(io.NewOffsetWriter(f, off), io.TeeReader(&progressReader{r: e.limited(gctx, r), p: e.opts.Progress}, h), *buf)
			if err != nil {
				return fmt.Errorf("copy range at %d: %w", off, err)
			}
			if got != length {
				return fmt.Errorf("source changed while copied: %d bytes at %d, want %d", got, off, length)
			}
			crcs[i] = sumOf(h.Sum(nil))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	crc := crcs[0]
	for i := int64(1); i < n; i++ {
		crc = want.combineCRC(crc, crcs[i], min(span, o.Size-i*span))
	}
	return want.check(want.encodeCRC(crc))
}

// errNoPartReads is a store that answered a read of a part by number
// (GET ?partNumber=) with something else than that part, or refused it
// as a bad or unknown request.
var errNoPartReads = errors.New("the store does not read parts by number")

// downloadParts fetches a multipart object with a composite checksum
// part by part (GET ?partNumber=N, partsInFlight at once), each streamed
// into f at the offset its Content-Range gives, its CRC taken on the way;
// the CRC of the parts' CRCs must be the object's checksum, and the parts
// must tile the object. It returns the checksum with the part sizes.
func (e *engine) downloadParts(ctx context.Context, key, etag string, o object, f offsetFile, want *s3Sum) (*s3Sum, error) {
	sums := make([][]byte, want.parts)
	spans := make([][2]int64, want.parts) // offset, size
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(partsInFlight)
	for i := range want.parts {
		g.Go(func() (err error) {
			sums[i], spans[i], err = e.downloadPartNumber(gctx, key, etag, i+1, o.Size, f, want)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	got := *want
	got.partSizes = make([]int64, want.parts)
	var at int64
	for i, sp := range spans {
		if sp[0] != at {
			return nil, fmt.Errorf("source changed while copied: part %d at byte %d, want %d", i+1, sp[0], at)
		}
		at += sp[1]
		got.partSizes[i] = sp[1]
	}
	if at != o.Size {
		return nil, fmt.Errorf("source changed while copied: %d parts of %d bytes, want %d", want.parts, at, o.Size)
	}
	if err := want.check(want.combine(sums)); err != nil {
		return nil, err
	}
	return &got, nil
}

// downloadPartNumber copies part n of the object into f where its
// Content-Range places it, and returns the part's CRC and span.
func (e *engine) downloadPartNumber(ctx context.Context, key, etag string, n int, size int64, f offsetFile, want *s3Sum) ([]byte, [2]int64, error) {
	r, err := e.src.bucket.NewRangeReader(ctx, e.src.full(key), 0, -1, &blob.ReaderOptions{
		BeforeRead: func(as func(any) bool) error {
			var in *s3.GetObjectInput
			if as(&in) {
				in.PartNumber = aws.Int32(int32(n))
			}
			return hblob.IfMatch(etag)(as)
		},
	})
	var status interface{ HTTPStatusCode() int }
	if errors.As(err, &status) && (status.HTTPStatusCode() == http.StatusBadRequest || status.HTTPStatusCode() == http.StatusNotImplemented) {
		return nil, [2]int64{}, fmt.Errorf("part %d: %w: %w", n, errNoPartReads, err)
	}
	if err != nil {
		return nil, [2]int64{}, sourceErr(hblob.Describe(err, e.src.ep.Raw+" "+key))
	}
	defer r.Close()
	var out s3.GetObjectOutput
	if !r.As(&out) {
		return nil, [2]int64{}, errNoPartReads
	}
	off, length, total, ok := parseContentRange(aws.ToString(out.ContentRange))
	if !ok || aws.ToInt32(out.PartsCount) != int32(want.parts) {
		return nil, [2]int64{}, fmt.Errorf("part %d: %w", n, errNoPartReads)
	}
	if total != size {
		return nil, [2]int64{}, fmt.Errorf("source changed while copied: listed %d bytes, now %d", size, total)
	}
	h := want.newHash()
	buf := e.buffer()
	defer e.bufs.Put(buf)
	got, err := io.CopyBuffer(io.NewOffsetWriter(f, off), io.TeeReader(&progressReader{r: e.limited(ctx, r), p: e.opts.Progress}, h), *buf)
	if err != nil {
		return nil, [2]int64{}, fmt.Errorf("copy part %d: %w", n, err)
	}
	if got != length {
		return nil, [2]int64{}, fmt.Errorf("source changed while copied: %d bytes in part %d, want %d", got, n, length)
	}
	return h.Sum(nil), [2]int64{off, length}, nil
}

// parseContentRange reads "bytes FIRST-LAST/TOTAL".
func parseContentRange(s string) (off, length, total int64, ok bool) {
	var first, last int64
	if _, err := fmt.Sscanf(s, "bytes %d-%d/%d", &first, &last, &total); err != nil || first < 0 || last < first || total <= last {
		return 0, 0, 0, false
	}
	return first, last - first + 1, total, true
}

// hashWindow is how many parts a ranged download may have begun beyond
// those hashed: the parts in flight, and two more done while the hash
// catches up.
const hashWindow = partsInFlight + 2

// receivedPart is range i of a ranged download, at off, received.
type receivedPart struct {
	i    int
	off  int64
	data []byte
	// users are those yet to be done with data: the buffer is free for
	// another range once the last of them is.
	users atomic.Int32
}

// done is one user done with the range's buffer; the last gives it back.
func (p *receivedPart) done(free chan<- []byte) {
	if p.users.Add(-1) == 0 {
		free <- p.data[:cap(p.data)]
	}
}

// openRange opens n bytes at off of the source object key, read only
// while it still has the ETag etag.
func (e *engine) openRange(ctx context.Context, key, etag string, off, n int64) (*blob.Reader, error) {
	r, err := e.src.bucket.NewRangeReader(ctx, e.src.full(key), off, n, &blob.ReaderOptions{
		BeforeRead: hblob.IfMatch(etag),
	})
	if err != nil {
		return nil, sourceErr(hblob.Describe(err, e.src.ep.Raw+" "+key))
	}
	return r, nil
}

// downloadPart receives len(buf) bytes at off of the object into buf.
func (e *engine) downloadPart(ctx context.Context, key, etag string, off int64, buf []byte) error {
	r, err := e.openRange(ctx, key, etag, off, int64(len(buf)))
	if err != nil {
		return err
	}
	defer r.Close()
	got, err := io.ReadFull(&progressReader{r: e.limited(ctx, r), p: e.opts.Progress}, buf)
	if err == nil {
		// A range is exactly its length; more is a server that ignored it.
		if n, _ := r.Read(make([]byte, 1)); n > 0 {
			return fmt.Errorf("source changed while copied: more than %d bytes at %d", len(buf), off)
		}
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("source changed while copied: %d bytes at %d, want %d", got, off, len(buf))
	}
	if err != nil {
		return fmt.Errorf("copy range at %d: %w", off, err)
	}
	return nil
}

// hashParts writes the ranges of a ranged download to h in the order of
// the object as they are received, done with each once hashed, until
// all are or ctx ends.
func (e *engine) hashParts(ctx context.Context, parts int, received <-chan *receivedPart, h hash.Hash, free chan<- []byte) error {
	waiting := make(map[int]*receivedPart, hashWindow) // received ahead of their turn
	for next := 0; next < parts; {
		select {
		case p := <-received:
			waiting[p.i] = p
		case <-ctx.Done():
			return ctx.Err()
		}
		for p, ok := waiting[next]; ok; p, ok = waiting[next] {
			if e.opts.beforeHashPart != nil {
				e.opts.beforeHashPart(next)
			}
			h.Write(p.data)
			delete(waiting, next)
			p.done(free)
			next++
		}
	}
	return nil
}
