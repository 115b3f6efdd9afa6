package transfer

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Verify compares dst with src object by object (SHA-256, from recorded
// metadata where there is some, else read): every source object must be
// at the destination with the same content. Nothing is written.
func Verify(ctx context.Context, src, dst Endpoint, opts Options) (*Report, error) {
	opts.defaults()
	f, err := newFilter(opts.Include, opts.Exclude)
	if err != nil {
		return nil, err
	}
	rep := newReport("verify", src.Raw, dst.Raw, VerifyAll, time.Now())
	s, err := openStore(ctx, src, false)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if src, err = s.locate(ctx); err != nil {
		return nil, err
	}
	if !src.Single() {
		dst = dst.AsTree()
	}
	d, err := openStore(ctx, dst, false)
	if err != nil {
		return nil, err
	}
	defer d.close()
	e := &engine{opts: opts, src: s, dst: d, filter: f, rep: rep}
	if err := e.verifyAll(ctx); err != nil {
		return nil, err
	}
	rep.finish()
	if err := ctx.Err(); err != nil {
		rep.setError(err)
		return rep, err
	}
	return rep, nil
}

// verifyEntries re-reads what was written and compares it with the
// checksums taken while copying.
func (e *engine) verifyEntries(ctx context.Context, entries []Entry) {
	bad := make([]string, len(entries))
	inParallel(ctx, e.opts.Checkers, len(entries), func(ctx context.Context, i int) error {
		en := entries[i]
		var got string
		var err error
		want, what := en.SHA256, "SHA-256"
		if en.s3 != nil { // the copy was checked by the source's S3 checksum
			want, what = en.Checksum, "checksum"
			got, err = e.readS3Sum(ctx, e.dst, e.dstKey(en.Key), en.s3)
		} else {
			got, err = e.readSum(ctx, e.dst, e.dstKey(en.Key))
		}
		switch {
		case err != nil:
			bad[i] = err.Error()
		case got != want:
			bad[i] = fmt.Sprintf("%s %s at the destination, %s copied", what, got, want)
		}
		return nil
	})
	for i, en := range entries {
		if bad[i] != "" {
			e.rep.Mismatched = append(e.rep.Mismatched, Failure{Key: en.Key, Reason: bad[i]})
		} else {
			e.rep.Totals.FilesVerified++
		}
	}
}

// verifyAll compares the whole destination with the source. The
// destination's content is always read (a recorded checksum says what was
// written, not what is there now); the source's recorded one is trusted.
func (e *engine) verifyAll(ctx context.Context) error {
	srcObjs, dstObjs, err := e.listBoth(ctx)
	if err != nil {
		return err
	}
	var keys []string
	for _, o := range srcObjs {
		if e.filter.allows(o.Key) {
			keys = append(keys, o.Key)
		}
	}
	bad := make([]string, len(keys))
	inParallel(ctx, e.opts.Checkers, len(keys), func(ctx context.Context, i int) error {
		k := keys[i]
		if _, ok := dstObjs[e.dstKey(k)]; !ok && !e.dst.ep.Single() {
			bad[i] = "missing at the destination"
			return nil
		}
		want, err := e.sum(ctx, e.src, k)
		if err != nil {
			bad[i] = "source: " + err.Error()
			return nil
		}
		got, err := e.readSum(ctx, e.dst, e.dstKey(k))
		switch {
		case err != nil:
			bad[i] = "destination: " + err.Error()
		case got != want:
			bad[i] = fmt.Sprintf("content differs: SHA-256 %s at the destination, %s at the source", got, want)
		}
		return nil
	})
	if e.rep.Operation == "verify" {
		e.rep.Totals.FilesListed = len(keys)
	}
	for i, k := range keys {
		if bad[i] != "" {
			e.rep.Mismatched = append(e.rep.Mismatched, Failure{Key: k, Reason: bad[i]})
		} else {
			e.rep.Totals.FilesVerified++
		}
	}
	sort.Slice(e.rep.Mismatched, func(i, j int) bool { return e.rep.Mismatched[i].Key < e.rep.Mismatched[j].Key })
	return ctx.Err()
}

// readSum reads an object whole and returns its SHA-256, whatever
// checksum is recorded with it.
func (e *engine) readSum(ctx context.Context, s *store, key string) (string, error) {
	return hashObject(ctx, s, key)
}

// readS3Sum reads an object and returns its checksum of the kind (and,
// for a composite, over the parts) of c.
func (e *engine) readS3Sum(ctx context.Context, s *store, key string, c *s3Sum) (string, error) {
	r, err := s.open(ctx, key, 0, -1)
	if err != nil {
		return "", err
	}
	defer r.Close()
	buf := e.buffer()
	defer e.bufs.Put(buf)
	return c.of(r, *buf)
}

// relPath reports whether dir is inside (or is) root.
func relPath(root, dir string) (bool, error) {
	rel, err := filepath.Rel(root, dir)
	if err != nil {
		return false, err
	}
	return rel == "." || rel != ".." && !strings.HasPrefix(rel, "../"), nil
}
