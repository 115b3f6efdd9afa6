package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zeebo/xxh3"
	"gocloud.dev/gcerrors"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	hblob "github.com/hpcml/hpcml/internal/blob"
)

// Verify modes, as DataSync's.
const (
	VerifyNone        = "none"        // trust the transfer's own checksums
	VerifyTransferred = "transferred" // re-read what was written and compare
	VerifyAll         = "all"         // compare the whole destination with the source
)

// Options of a transfer.
type Options struct {
	// Transfers is how many objects are copied at once; Checkers how
	// many are compared at once (reads of checksums).
	Transfers, Checkers int
	// Checksum compares by SHA-256 instead of size and time.
	Checksum bool
	// Delete removes destination objects the source does not have (not
	// when anything failed, as rclone does).
	Delete  bool
	Include []string
	Exclude []string
	DryRun  bool
	// BwLimit bounds the bytes per second read from the source, across
	// all transfers (0: no limit).
	BwLimit int64
	// MaxMemory bounds the part buffers of the multipart uploads and
	// ranged downloads under way, across all transfers (0:
	// DefaultMaxMemory). Parts grow with a
	// file's size (to fit S3's 10,000), so without a bound a few huge
	// files sent at once could take gigabytes; beyond it a large file
	// waits for others to finish (one alone always goes).
	MaxMemory int64
	// Retries is how many times a failed object is tried again, with a
	// doubling backoff from RetryDelay.
	Retries    int
	RetryDelay time.Duration
	Verify     string
	// Progress, if set, is told about bytes and files as they move.
	Progress *Progress
	Log      *slog.Logger

	// noTmpfile makes local writes go through a temporary name and a
	// rename, as on file systems without O_TMPFILE (tests).
	noTmpfile bool
	// memoryProbe, if set, is told the part buffer bytes in use each
	// time a large upload or download takes its share (tests).
	memoryProbe func(inUse int64)
	// afterPreSum, if set, runs after a large object's first read, before
	// its copy (tests).
	afterPreSum func(key string)
	// beforeHashPart, if set, runs before a ranged download hashes each of
	// its parts (tests).
	beforeHashPart func(part int)
}

func (o *Options) defaults() {
	if o.Transfers <= 0 {
		o.Transfers = 16
	}
	if o.Checkers <= 0 {
		o.Checkers = 16
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = time.Second
	}
	if o.Verify == "" {
		o.Verify = VerifyNone
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxMemory <= 0 {
		o.MaxMemory = DefaultMaxMemory
	}
}

// DefaultMaxMemory is Options.MaxMemory's default: 16 transfers of large
// files with the default 16 MiB parts (4 in flight and one filling each)
// fit, with room to spare.
const DefaultMaxMemory = 2 << 30

// smallObject: objects up to this size are read into memory once, hashed
// and written from there; larger ones are streamed (memory stays bounded
// by Transfers × this, plus the S3 writer's parts).
const smallObject = 8 << 20

// Sync makes dst hold what src holds: it copies what is missing or
// different (by size and time, or by checksum), and with Delete removes
// what src does not have. copyOnly (hpcml data cp) never deletes.
func Sync(ctx context.Context, src, dst Endpoint, opts Options) (*Report, error) {
	return run(ctx, "sync", src, dst, opts)
}

// Copy copies src to dst like Sync, without deleting anything.
func Copy(ctx context.Context, src, dst Endpoint, opts Options) (*Report, error) {
	opts.Delete = false
	return run(ctx, "copy", src, dst, opts)
}

type engine struct {
	opts     Options
	src, dst *store
	limiter  *rate.Limiter
	filter   *filter
	// memory counts the part buffers of large objects under way (uploads
	// and ranged downloads) against opts.MaxMemory; memoryInUse follows it (a semaphore does
	// not say how much it holds).
	memory      *semaphore.Weighted
	memoryInUse atomic.Int64

	mu  sync.Mutex
	rep *Report
	// full is set by the first write the destination refused for want of
	// space; from then on no file is started (see copyAll).
	full *FullError
	// bufs are the buffers objects are copied through.
	bufs sync.Pool
}

func (e *engine) buffer() *[]byte {
	if b, ok := e.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 256<<10)
	return &b
}

// run runs a transfer. An error that stops it once it has started comes
// with its report, which carries the error at its top level too.
func run(ctx context.Context, op string, src, dst Endpoint, opts Options) (*Report, error) {
	rep, err := runTransfer(ctx, op, src, dst, opts)
	if err != nil && rep != nil {
		rep.setError(err)
	}
	return rep, err
}

func runTransfer(ctx context.Context, op string, src, dst Endpoint, opts Options) (*Report, error) {
	opts.defaults()
	f, err := newFilter(opts.Include, opts.Exclude)
	if err != nil {
		return nil, err
	}
	switch opts.Verify {
	case VerifyNone, VerifyTransferred, VerifyAll:
	default:
		return nil, fmt.Errorf("verify mode %q: want none, transferred or all", opts.Verify)
	}
	rep := newReport(op, src.Raw, dst.Raw, opts.Verify, time.Now())
	rep.DryRun = opts.DryRun
	if err := checkEndpoints(src, dst.AsTree()); err != nil {
		return nil, err // before any request: this much is known locally
	}
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
	if err := checkEndpoints(src, dst); err != nil {
		return nil, err
	}
	if src.Single() {
		// Before the destination is opened (a missing object is named as
		// the problem, rather than whatever the destination may say).
		if _, err := s.stat(ctx, ""); err != nil {
			return nil, err
		}
	}
	// A dry run's local destination may not exist: everything would be
	// copied. Opened for writing, a missing one is made only by prepare.
	d, err := openStore(ctx, dst, true)
	if err != nil {
		return nil, err
	}
	if opts.DryRun {
		d.writing = false // a dry run removes no leftovers either
	}
	defer d.close()
	d.noTmpfile = opts.noTmpfile
	e := &engine{opts: opts, src: s, dst: d, filter: f, rep: rep, memory: semaphore.NewWeighted(opts.MaxMemory)}
	if opts.BwLimit > 0 {
		// A burst of 256 KiB: reads are at most that, so the limit holds
		// to within a few reads.
		e.limiter = rate.NewLimiter(rate.Limit(opts.BwLimit), 256<<10)
	}
	srcObjs, dstObjs, err := e.listBoth(ctx)
	if err != nil {
		return nil, err
	}
	if src.Single() && len(srcObjs) == 0 {
		return nil, fmt.Errorf("%s: not found", src.Raw)
	}
	toCopy, toDelete, err := e.plan(ctx, srcObjs, dstObjs)
	if err != nil {
		return nil, err
	}
	if !opts.DryRun {
		if err := d.prepare(ctx); err != nil {
			return nil, err
		}
	}
	if opts.Progress != nil {
		var total int64
		for _, o := range toCopy {
			total += max(o.Size, 0) // an unknown size (-1) counts when copied
		}
		opts.Progress.Start(len(toCopy), total)
	}
	e.copyAll(ctx, toCopy)
	if opts.Progress != nil {
		opts.Progress.Done()
	}
	if len(toDelete) > 0 {
		if len(rep.Failed) > 0 {
			rep.Failed = append(rep.Failed, Failure{Key: "", Reason: fmt.Sprintf("not deleting %d destination files: the transfer had errors", len(toDelete))})
		} else {
			e.deleteAll(ctx, toDelete)
		}
	}
	if !opts.DryRun && ctx.Err() == nil {
		switch opts.Verify {
		case VerifyTransferred:
			e.verifyEntries(ctx, rep.Transferred)
		case VerifyAll:
			if err := e.verifyAll(ctx); err != nil {
				rep.finish()
				return rep, err
			}
		}
	}
	rep.finish()
	if e.full != nil {
		return rep, e.full
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	return rep, nil
}

// ErrDestinationFull is what a transfer returns (with its report) when
// the destination ran out of space or quota: errors.Is(err,
// ErrDestinationFull) holds for the *FullError it returns.
var ErrDestinationFull = errors.New("destination full")

// FullError says which write found the destination full, and how.
type FullError struct {
	Errno unix.Errno // ENOSPC or EDQUOT
	Path  string     // the file being written, as a location
}

func (e *FullError) Error() string {
	return fmt.Sprintf("destination full: %s writing %s", e.Errno.Error(), e.Path)
}

func (e *FullError) Is(target error) bool { return target == ErrDestinationFull }
func (e *FullError) Unwrap() error        { return e.Errno }

// fullErrno reports whether err is a write refused for want of space
// (ENOSPC) or quota (EDQUOT): not worth a retry, nor worth starting
// another file for — as rclone, which treats ENOSPC as fatal.
func fullErrno(err error) (unix.Errno, bool) {
	for _, errno := range []unix.Errno{unix.ENOSPC, unix.EDQUOT} {
		if errors.Is(err, errno) {
			return errno, true
		}
	}
	return 0, false
}

func (r *Report) finish() {
	r.Ended = time.Now().UTC()
	r.Seconds = r.Ended.Sub(r.Started).Seconds()
	r.Totals.FilesTransferred = len(r.Transferred)
	r.Totals.FilesFailed = len(r.Failed)
	r.Totals.FilesDeleted = len(r.Deleted)
	r.Result = "SUCCESS"
	if !r.OK() {
		r.Result = "ERROR"
	}
}

// checkEndpoints refuses transfers that could never be right: a
// destination inside the source (a sync would copy into itself) or a
// source inside the destination (--delete would remove the source).
func checkEndpoints(src, dst Endpoint) error {
	if dst.Kind == KindHTTP {
		return fmt.Errorf("%s: an http(s) URL can only be a source", dst.Raw)
	}
	same := src.Kind == dst.Kind && src.Kind == KindS3 && s3Identity(src) == s3Identity(dst)
	if src.Kind == KindLocal && dst.Kind == KindLocal {
		// As the file system resolves them: a symlinked path to the source
		// is the source.
		a, b := resolvePath(filepath.Join(src.Root, src.Prefix)), resolvePath(filepath.Join(dst.Root, dst.Prefix))
		switch {
		case a == b:
			return fmt.Errorf("source and destination are the same (%s)", src.Raw)
		case within(a, b):
			return fmt.Errorf("destination %s is inside the source %s: a sync would copy into itself", dst.Raw, src.Raw)
		case within(b, a):
			return fmt.Errorf("source %s is inside the destination %s: refusing, as a sync could delete the source", src.Raw, dst.Raw)
		}
		return nil
	}
	if same {
		a, b := src.Prefix, dst.Prefix
		switch {
		case a == b:
			return fmt.Errorf("source and destination are the same (%s)", src.Raw)
		case !src.Single() && strings.HasPrefix(b, a):
			return fmt.Errorf("destination %s is inside the source %s: a sync would copy into itself", dst.Raw, src.Raw)
		case !dst.Single() && strings.HasPrefix(a, b):
			return fmt.Errorf("source %s is inside the destination %s: refusing, as a sync could delete the source", src.Raw, dst.Raw)
		}
	}
	return nil
}

// resolvePath is p with its symlinks resolved, as far as it exists: the
// longest existing ancestor is resolved and the rest (a destination not
// made yet) joined to it as written.
func resolvePath(p string) string {
	rest := ""
	for cur := p; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// s3Identity names the bucket an S3 endpoint reaches, whatever the order
// or spelling of its URL's query: the bucket and the endpoint (scheme and
// host lower-cased, default port and trailing slash dropped). The other
// parameters (region, path style, profile, ...) say how to reach or sign
// for the bucket, not which bucket it is. No endpoint means the SDK's own,
// which AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL may set.
func s3Identity(ep Endpoint) string {
	u, err := url.Parse(ep.Bucket)
	if err != nil {
		return ep.Bucket
	}
	endpoint := u.Query().Get("endpoint")
	for _, k := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"} {
		if endpoint == "" {
			endpoint = os.Getenv(k)
		}
	}
	return strings.ToLower(u.Host) + " at " + normalEndpoint(endpoint)
}

// normalEndpoint is an endpoint URL in one spelling.
func normalEndpoint(raw string) string {
	e, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || e.Host == "" {
		return strings.ToLower(strings.TrimRight(strings.TrimSpace(raw), "/"))
	}
	scheme, host, port := strings.ToLower(e.Scheme), strings.ToLower(e.Hostname()), e.Port()
	if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		port = ""
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6
	}
	return scheme + "://" + host + strings.TrimRight(e.EscapedPath(), "/")
}

// within reports whether path p is inside dir (not dir itself).
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// listBoth lists the source and the destination at once.
func (e *engine) listBoth(ctx context.Context) ([]object, map[string]object, error) {
	var srcObjs []object
	dstObjs := map[string]object{}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return e.src.list(gctx, func(o object) error {
			srcObjs = append(srcObjs, o)
			return nil
		})
	})
	g.Go(func() error {
		if e.dst.bucket == nil {
			return nil // a dry run's destination that does not exist yet
		}
		return e.dst.list(gctx, func(o object) error {
			dstObjs[o.Key] = o
			return nil
		})
	})
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	if err := e.checkSourceExists(len(srcObjs)); err != nil {
		return nil, nil, err
	}
	// A single source copied into a tree lands under its own name (the
	// last element of an S3 key, as with cp and rclone copy).
	if e.src.ep.Single() && !e.dst.ep.Single() {
		for i := range srcObjs {
			srcObjs[i].Key = path.Base(e.src.ep.Prefix)
		}
	}
	sort.Slice(srcObjs, func(i, j int) bool { return srcObjs[i].Key < srcObjs[j].Key })
	return srcObjs, dstObjs, nil
}

// checkSourceExists refuses a tree source under which nothing was
// listed, when that means it does not exist: an object store has no
// directories, so a mistyped prefix lists no objects rather than fail,
// and with --delete a sync from it would empty the destination (rclone
// refuses a missing source directory likewise). A local directory that
// exists but is empty is a source like any other (its absence fails at
// open), and so is a whole bucket that exists but holds nothing.
func (e *engine) checkSourceExists(listed int) error {
	ep := e.src.ep
	if listed > 0 || ep.Single() || ep.Kind != KindS3 || ep.Prefix == "" {
		return nil
	}
	return fmt.Errorf("source %s not found (no objects under prefix %q)", ep.Raw, ep.Prefix)
}

// plan decides what to copy and what to delete.
func (e *engine) plan(ctx context.Context, srcObjs []object, dstObjs map[string]object) (toCopy []object, toDelete []string, err error) {
	inSrc := make(map[string]bool, len(srcObjs))
	var toCheck []object
	for _, o := range srcObjs {
		if !e.filter.allows(o.Key) {
			continue
		}
		inSrc[o.Key] = true
		e.rep.Totals.FilesListed++
		d, ok := dstObjs[o.Key]
		switch {
		case !ok || d.Size != o.Size:
			toCopy = append(toCopy, o)
		case e.opts.Checksum:
			toCheck = append(toCheck, o)
		case e.timeChanged(o, d):
			toCopy = append(toCopy, o)
		default:
			e.skip(o)
		}
	}
	if len(toCheck) > 0 {
		differ := make([]bool, len(toCheck))
		inParallel(ctx, e.opts.Checkers, len(toCheck), func(ctx context.Context, i int) error {
			key := toCheck[i].Key
			a, err1 := e.sum(ctx, e.src, key)
			b, err2 := e.sum(ctx, e.dst, e.dstKey(key))
			differ[i] = err1 != nil || err2 != nil || a != b
			return nil
		})
		for i, o := range toCheck {
			if differ[i] {
				toCopy = append(toCopy, o)
			} else {
				e.skip(o)
			}
		}
	}
	// One object as the source deletes nothing: there is no tree to
	// mirror, and the directory it lands in holds other files.
	if e.opts.Delete && !e.src.ep.Single() && !e.dst.ep.Single() {
		for k := range dstObjs {
			if !inSrc[k] && e.filter.allows(k) {
				toDelete = append(toDelete, k)
			}
		}
		sort.Strings(toDelete)
	}
	return toCopy, toDelete, ctx.Err()
}

// timeWindow: times closer than this are taken as equal, as some stores
// keep whole seconds.
const timeWindow = time.Second

// timeChanged reports whether the times of a source object and its
// destination copy, of equal sizes, say the source changed.
//
// A local copy carries its source's time, so a time that differs either
// way means another file: one replaced by an older version (a tar
// extract, cp -p, a restore) has an older time and must be copied too.
// An object store's listing gives only the time of the upload, which is
// after its source's (the source's time recorded in the object's
// metadata would take a request per object to read): there, only a source
// newer than the upload is seen as changed — --checksum sees the rest. So
// too for a local file whose key the file store had to escape (see
// plainKey): its time cannot be set, so it is the time of its writing.
func (e *engine) timeChanged(src, dst object) bool {
	if src.ModTime.IsZero() {
		return false // no time known (an http source without Last-Modified)
	}
	if e.dst.ep.Kind == KindLocal && plainKey(e.dst.full(dst.Key)) {
		d := src.ModTime.Sub(dst.ModTime)
		return d > timeWindow || d < -timeWindow
	}
	return src.ModTime.After(dst.ModTime.Add(timeWindow))
}

func (e *engine) skip(o object) {
	e.rep.Totals.FilesSkipped++
	e.rep.Totals.BytesSkipped += o.Size
	e.rep.Skipped = append(e.rep.Skipped, Entry{Key: o.Key, Size: o.Size})
}

// dstKey is where a source key lands: itself, unless dst names one object.
func (e *engine) dstKey(key string) string {
	if e.dst.ep.Single() {
		return ""
	}
	return key
}

// sum is an object's SHA-256: the one recorded with it, or read and
// computed.
func (e *engine) sum(ctx context.Context, s *store, key string) (string, error) {
	if meta, err := s.metadata(ctx, key); err != nil {
		return "", err
	} else if h := meta[MetaSHA256]; h != "" {
		return h, nil
	}
	return hashObject(ctx, s, key)
}

// hashObject reads an object and returns its SHA-256.
func hashObject(ctx context.Context, s *store, key string) (string, error) {
	r, err := s.open(ctx, key, 0, -1)
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// preSum is what must be known of a source object before its copy
// starts. sha256 is the one recorded with it, else read — under the
// bandwidth limit, since these are bytes read from the source as much as
// the copy's own (a large file to S3 is read twice). fingerprint is the
// XXH3-128 of the bytes, when this read them: the copy's own read is
// checked against it instead of hashing SHA-256 a second time (XXH3 costs
// a tenth of SHA-256's CPU, and a change by a writer meanwhile shows in
// either). Without one, the copy checks the recorded SHA-256.
type preSum struct {
	sha256      string
	fingerprint *xxh3.Uint128
}

func (e *engine) preSum(ctx context.Context, key string) (preSum, error) {
	meta, err := e.src.metadata(ctx, key)
	if err != nil {
		return preSum{}, sourceErr(err)
	}
	if h := meta[MetaSHA256]; h != "" {
		return preSum{sha256: h}, nil
	}
	r, err := e.src.open(ctx, key, 0, -1)
	if err != nil {
		return preSum{}, sourceErr(err)
	}
	defer r.Close()
	sha, fp := sha256.New(), xxh3.New()
	if _, err := io.Copy(io.MultiWriter(sha, fp), e.limited(ctx, r)); err != nil {
		return preSum{}, sourceErr(err)
	}
	sum := fp.Sum128()
	return preSum{sha256: hex.EncodeToString(sha.Sum(nil)), fingerprint: &sum}, nil
}

// openSource opens a source object for reading (see store.open).
func (e *engine) openSource(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	r, err := e.src.open(ctx, key, off, n)
	return r, sourceErr(err)
}

// sourceErr marks an error reading the source that says the object is
// not there (any more): it was listed, so it was deleted meanwhile, or
// the listing showed what cannot be read (a dangling symlink). Trying
// again will not bring it back.
func sourceErr(err error) error {
	if err != nil && (errors.Is(err, fs.ErrNotExist) || gcerrors.Code(err) == gcerrors.NotFound) {
		return fmt.Errorf("%w: %w", errNotFoundSource, err)
	}
	return err
}

// copyAll copies objs, Transfers at a time. Once a write finds the
// destination full, no further file is started: those already being
// written finish or fail on their own, and every file not started is
// reported failed as "not attempted" — the disk will not empty itself,
// and failing thousands of files one by one, with retries, would only
// take time and bury the cause. Free space and run the same command
// again: what was completed is skipped.
func (e *engine) copyAll(ctx context.Context, objs []object) {
	inParallel(ctx, e.opts.Transfers, len(objs), func(ctx context.Context, i int) error {
		if o := objs[i]; !e.notAttempted(o) {
			e.copyAndRecord(ctx, o)
		}
		return nil
	})
	sort.Slice(e.rep.Transferred, func(i, j int) bool { return e.rep.Transferred[i].Key < e.rep.Transferred[j].Key })
	sort.Slice(e.rep.Failed, func(i, j int) bool { return e.rep.Failed[i].Key < e.rep.Failed[j].Key })
}

// copyAndRecord copies o and records the outcome in the report.
func (e *engine) copyAndRecord(ctx context.Context, o object) {
	c, err := e.copyWithRetries(ctx, o)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		if errno, ok := fullErrno(err); ok && e.full == nil {
			e.full = &FullError{Errno: errno, Path: keyToURL(e.dst.ep, e.dstKey(o.Key))}
			e.opts.Log.Warn("destination full: starting no more transfers", "key", o.Key, "err", err)
		}
		e.recordFailed(o, err.Error())
		return
	}
	e.rep.Transferred = append(e.rep.Transferred, Entry{Key: o.Key, Size: c.size, SHA256: c.sha256, Checksum: c.s3.String(), s3: c.s3})
	e.rep.Totals.BytesTransferred += c.size
	if e.opts.Progress != nil {
		e.opts.Progress.FileDone()
	}
}

// notAttempted reports whether the destination is full, and if so
// records o as failed without trying it.
func (e *engine) notAttempted(o object) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.full == nil {
		return false
	}
	e.recordFailed(o, "not attempted: "+e.full.Error())
	return true
}

// recordFailed records o as failed for reason in the report and the
// progress. The caller holds e.mu.
func (e *engine) recordFailed(o object, reason string) {
	e.rep.Failed = append(e.rep.Failed, Failure{Key: o.Key, Reason: reason})
	e.rep.Totals.BytesFailed += max(o.Size, 0)
	if e.opts.Progress != nil {
		e.opts.Progress.FileFailed()
	}
}

// destFull reports whether a write has found the destination full.
func (e *engine) destFull() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.full != nil
}

func (e *engine) copyWithRetries(ctx context.Context, o object) (copied, error) {
	delay := e.opts.RetryDelay
	for try := 0; ; try++ {
		c, err := e.copyOne(ctx, o)
		if err == nil || try >= e.opts.Retries || ctx.Err() != nil || permanent(err) || e.destFull() {
			return c, err
		}
		e.opts.Log.Warn("transfer failed; retrying", "key", o.Key, "try", try+1, "err", err)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return copied{}, ctx.Err()
		}
		if e.destFull() {
			return copied{}, err // no new attempt on a full destination
		}
		delay *= 2
	}
}

// permanent reports whether an error is one that trying again will not
// mend, so that a file is not retried (with 1+2+4 s of backoff by
// default) only to fail the same way: a full destination, a source
// object gone, permission denied by the file system, and the object
// store's refusals — a missing bucket, unknown or refused credentials,
// denied access.
func permanent(err error) bool {
	if _, full := fullErrno(err); full {
		return true
	}
	return errors.Is(err, errNotFoundSource) || errors.Is(err, fs.ErrPermission) || hblob.Refused(err)
}

var errNotFoundSource = errors.New("source object vanished")

// copied is what a copy of one object checked it by, and its size: the
// SHA-256 of the bytes read, or (for a large download of an object
// without one of hpcml's) the S3 checksum the source carried.
type copied struct {
	sha256 string
	s3     *s3Sum
	size   int64
}

// copyOne copies one object. Its checksum is of the bytes read from the
// source, computed as they pass; a SHA-256 is recorded with the
// destination object (where the store keeps metadata), so that
// verification and later syncs can compare without reading the source.
// An object of unknown size (o.Size < 0: an http(s) source that sent no
// Content-Length) is streamed, and its size is what was read.
func (e *engine) copyOne(ctx context.Context, o object) (copied, error) {
	if e.opts.DryRun {
		return copied{size: o.Size}, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // an unfinished write is aborted: nothing lands
	key := e.dstKey(o.Key)
	meta := map[string]string{MetaMtime: mtimeValue(o.ModTime)}

	if o.Size >= 0 && o.Size <= smallObject {
		r, want, err := e.src.openWhole(ctx, o.Key)
		if err != nil {
			return copied{}, sourceErr(err)
		}
		// Exactly the listed size, read into a buffer of that size (no
		// doubling growth), then to the end, which must come at once:
		// more bytes mean a grown source, and an error there (a checksum
		// the reader checks at the end) would be lost by ReadFull, which
		// drops an error that comes with the last bytes. Counted as read,
		// not as written: a file is read whole before it is written, and
		// a throttled read of a few MiB takes a while.
		data := make([]byte, o.Size)
		_, err = io.ReadFull(&progressReader{r: e.limited(ctx, r), p: e.opts.Progress}, data)
		if err == nil {
			var more int64
			if more, err = io.Copy(io.Discard, io.LimitReader(r, 1)); err == nil && more > 0 {
				err = fmt.Errorf("source changed while copied: more than the listed %d bytes", o.Size)
			}
		}
		r.Close()
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				err = fmt.Errorf("source changed while copied: fewer than the listed %d bytes", o.Size)
			}
			return copied{}, fmt.Errorf("read source: %w", err)
		}
		sum := sha256.Sum256(data)
		meta[MetaSHA256] = hex.EncodeToString(sum[:])
		if err := want.check(data, meta[MetaSHA256]); err != nil {
			return copied{}, fmt.Errorf("read source: %w", err)
		}
		if _, err := e.write(ctx, key, o, meta, countedReader{bytes.NewReader(data)}, nil); err != nil {
			return copied{}, err
		}
		return copied{sha256: meta[MetaSHA256], size: o.Size}, nil
	}

	if o.Size >= rangedMin && e.src.ep.Kind == KindS3 && e.dst.ep.Kind == KindLocal {
		return e.copyRanged(ctx, key, o, meta)
	}

	// A large object. Where the destination keeps metadata, the checksum
	// must be known before the write starts: read the source twice (from
	// the page cache, for a local file) unless it carries one already.
	var pre preSum
	if e.dst.ep.Kind != KindLocal {
		var err error
		if pre, err = e.preSum(ctx, o.Key); err != nil {
			return copied{}, fmt.Errorf("checksum source: %w", err)
		}
		meta[MetaSHA256] = pre.sha256
		if e.opts.afterPreSum != nil {
			e.opts.afterPreSum(o.Key)
		}
	}
	if e.dst.ep.Kind == KindS3 {
		release, err := e.reserveMemory(ctx, uploadBuffers(o.Size))
		if err != nil {
			return copied{}, err
		}
		defer release()
	}
	r, err := e.openSource(ctx, o.Key, 0, -1)
	if err != nil {
		return copied{}, err
	}
	defer r.Close()
	h, check := readCheck(pre, meta)
	n, err := e.write(ctx, key, o, meta, io.TeeReader(e.limited(ctx, r), h), check)
	if err != nil {
		return copied{}, err
	}
	return copied{sha256: meta[MetaSHA256], size: n}, nil
}

// reserveMemory takes n bytes of buffers (at most MaxMemory: one object
// alone always goes) from the budget, waiting for other large objects to
// give theirs back, and returns what gives them back.
func (e *engine) reserveMemory(ctx context.Context, n int64) (release func(), err error) {
	n = min(n, e.opts.MaxMemory)
	if err := e.memory.Acquire(ctx, n); err != nil {
		return nil, err
	}
	inUse := e.memoryInUse.Add(n)
	if e.opts.memoryProbe != nil {
		e.opts.memoryProbe(inUse)
	}
	return func() {
		e.memoryInUse.Add(-n)
		e.memory.Release(n)
	}, nil
}

// readCheck is what the copy's own read of a source is hashed with, and
// the check of that hash, run after the last byte and before the object
// is committed: against the fingerprint of the first read if there was
// one, else against the recorded SHA-256 (if any), which it then sets.
func readCheck(pre preSum, meta map[string]string) (hash.Hash, func() error) {
	if pre.fingerprint != nil {
		fp := xxh3.New()
		return fp, func() error {
			if fp.Sum128() != *pre.fingerprint {
				return fmt.Errorf("source changed while copied (SHA-256 %s when first read, other bytes since)", pre.sha256)
			}
			return nil
		}
	}
	h := sha256.New()
	return h, func() error {
		got := hex.EncodeToString(h.Sum(nil))
		if want := meta[MetaSHA256]; want != "" && want != got {
			return fmt.Errorf("source changed while copied (SHA-256 %s, then %s)", want, got)
		}
		meta[MetaSHA256] = got
		return nil
	}
}

// write writes r to key and returns the bytes written; check, if set,
// runs after the last byte and before the object is committed, and can
// still abort it.
func (e *engine) write(ctx context.Context, key string, o object, meta map[string]string, r io.Reader, check func() error) (int64, error) {
	w, err := e.dst.create(ctx, key, o.Size, meta, o.ModTime)
	if err != nil {
		return 0, err
	}
	return e.fill(key, o, w, r, check)
}

// fill copies r into w and commits it, or aborts it on any error, and
// returns the bytes copied.
func (e *engine) fill(key string, o object, w objectWriter, r io.Reader, check func() error) (int64, error) {
	// Through a pooled buffer: io.Copy would call the writer's ReadFrom,
	// which allocates 1 MiB per object — most of the cost of a small file.
	var src io.Reader = &progressReader{r: r, p: e.opts.Progress}
	if c, ok := r.(countedReader); ok {
		src = c.Reader
	}
	buf := e.buffer()
	n, err := io.CopyBuffer(struct{ io.Writer }{w}, src, *buf)
	e.bufs.Put(buf)
	if err == nil && o.Size >= 0 && n != o.Size {
		err = fmt.Errorf("source changed while copied: listed %d bytes, read %d", o.Size, n)
	}
	if err == nil && check != nil {
		err = check()
	}
	if err != nil {
		w.Abort()
		return 0, err
	}
	if err := w.Commit(); err != nil {
		return 0, fmt.Errorf("write %s: %w", keyToURL(e.dst.ep, key), err)
	}
	return n, nil
}

// countedReader holds bytes the progress has counted already (as they
// were read from the source): fill does not count them again.
type countedReader struct{ io.Reader }

// limited applies the bandwidth limit to r.
func (e *engine) limited(ctx context.Context, r io.Reader) io.Reader {
	if e.limiter == nil {
		return r
	}
	return &limitedReader{ctx: ctx, r: r, l: e.limiter}
}

type limitedReader struct {
	ctx context.Context
	r   io.Reader
	l   *rate.Limiter
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if len(p) > l.l.Burst() {
		p = p[:l.l.Burst()]
	}
	n, err := l.r.Read(p)
	if n > 0 {
		if werr := l.l.WaitN(l.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

func (e *engine) deleteAll(ctx context.Context, keys []string) {
	if e.opts.DryRun {
		e.rep.Deleted = keys
		return
	}
	var mu sync.Mutex
	inParallel(ctx, e.opts.Checkers, len(keys), func(ctx context.Context, i int) error {
		k := keys[i]
		err := e.dst.remove(ctx, k)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			e.rep.Failed = append(e.rep.Failed, Failure{Key: k, Reason: "delete: " + err.Error()})
		} else {
			e.rep.Deleted = append(e.rep.Deleted, k)
		}
		return nil
	})
	sort.Strings(e.rep.Deleted)
}
