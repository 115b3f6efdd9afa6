package task

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"github.com/hpcml/hpcml/internal/cache"
	"github.com/hpcml/hpcml/internal/dataset"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/lazyfs"
	"github.com/hpcml/hpcml/internal/transfer"
)

// datasetFetches is how many objects of a dataset are staged at once.
const datasetFetches = 8

// datasetInput is a dataset version resolved for this attempt: its
// objects, where they land in the job dir, and how to fetch one into
// the node's cache.
type datasetInput struct {
	url     string
	base    string // the input's path in the job dir
	objects []dataset.Object
	get     func(ctx context.Context, o dataset.Object, st *cache.Stats) (*os.File, error)
}

// openDataset reads the manifest the server resolved at submission and
// the version's source.
func (r *runner) openDataset(ctx context.Context, in job.Input, workDir string) (*datasetInput, error) {
	if r.objects == nil {
		return nil, fmt.Errorf("%s: this node has no dataset cache", in.URL)
	}
	if !filepath.IsLocal(filepath.FromSlash(in.Path)) && in.Path != "." {
		return nil, fmt.Errorf("input path %q leaves the job dir", in.Path)
	}
	storage, err := r.buckets.Open(ctx, r.launch.Storage)
	if err != nil {
		return nil, err
	}
	data, err := storage.ReadAll(ctx, in.ManifestKey)
	if err != nil {
		return nil, fmt.Errorf("%s: read manifest: %w", in.URL, err)
	}
	var m dataset.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: manifest: %w", in.URL, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", in.URL, err)
	}
	src, err := transfer.ParseEndpoint(m.Source)
	if err != nil {
		return nil, fmt.Errorf("%s: source: %w", in.URL, err)
	}
	if src.Kind == transfer.KindHTTP {
		return nil, fmt.Errorf("%s: objects of an http(s) source cannot be fetched by key", in.URL)
	}
	// The bucket stays open for the attempt (the runner's bucket cache
	// owns it): a lazy input fetches while the command runs.
	bucket, err := r.buckets.Open(ctx, src.Bucket)
	if err != nil {
		return nil, fmt.Errorf("%s: source: %w", in.URL, err)
	}
	get := func(ctx context.Context, o dataset.Object, st *cache.Stats) (*os.File, error) {
		key := src.Prefix + o.Key
		if src.Single() {
			key = src.Prefix
		}
		return r.objects.Get(ctx, o.SHA256, o.Size, func(ctx context.Context) (io.ReadCloser, error) {
			return bucket.NewReader(ctx, key, nil)
		}, st)
	}
	return &datasetInput{url: in.URL, base: filepath.Join(workDir, filepath.FromSlash(in.Path)), objects: m.Objects, get: get}, nil
}

// prefetch puts every object under the input's path: each is taken from
// the node's cache by checksum, fetched from the version's source into
// the cache on a miss (and refused if its bytes differ from the
// manifest), then copied into place — a copy, not a link, so that a job
// cannot change the bytes other jobs share.
func (d *datasetInput) prefetch(ctx context.Context, st *cache.Stats) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(datasetFetches)
	for _, o := range d.objects {
		g.Go(func() error {
			f, err := d.get(gctx, o, st)
			if err != nil {
				return fmt.Errorf("%s: %s: %w", d.url, o.Key, err)
			}
			defer f.Close()
			return copyFile(f, filepath.Join(d.base, filepath.FromSlash(o.Key)))
		})
	}
	return g.Wait()
}

// mount serves the version read-only under the input's path, each file
// fetched through the cache on its first open. ctx bounds the fetches:
// the runner cancels it when the attempt ends.
func (d *datasetInput) mount(ctx context.Context, st *cache.Stats) (*lazyfs.Mount, error) {
	if err := os.MkdirAll(d.base, 0o755); err != nil {
		return nil, err
	}
	return lazyfs.New(d.base, d.objects, func(rctx context.Context, o dataset.Object) (*os.File, error) {
		// Either the reader gives up (its request's ctx) or the attempt ends.
		fctx, stop := context.WithCancel(rctx)
		defer stop()
		go func() {
			select {
			case <-ctx.Done():
				stop()
			case <-fctx.Done():
			}
		}()
		return d.get(fctx, o, st)
	})
}

// stageDataset makes a dataset input available in the job dir: mounted
// for a lazy input where this node can (the returned mount, which the
// caller unmounts when the attempt ends), else prefetched. A lazy input
// that had to be prefetched says so in the job's stderr log. ctx lasts
// as long as the attempt: a mount fetches under it while the job runs.
func (r *runner) stageDataset(ctx context.Context, in job.Input, workDir string, st *cache.Stats) (*lazyfs.Mount, error) {
	d, err := r.openDataset(ctx, in, workDir)
	if err != nil {
		return nil, err
	}
	if in.Lazy() {
		// Only this node would see the mount: tasks on other nodes need
		// the files in the (shared) job dir.
		if r.launch.Ranks.Nodes > 1 {
			r.jobNote("%s: lazy loading serves one node; this job spans %d, so the input was prefetched", in.URL, r.launch.Ranks.Nodes)
		} else {
			m, err := d.mount(ctx, st)
			if err == nil {
				return m, nil
			}
			host, _ := os.Hostname()
			r.jobNote("%s: lazy loading unavailable on %s (%v); the input was prefetched", in.URL, host, err)
		}
	}
	if err := d.prefetch(ctx, st); err != nil {
		return nil, err
	}
	return nil, nil
}

// copyFile copies in (a cached object, open: the cache may evict it
// meanwhile) to dst (made with its parents), whole or not at all.
func copyFile(in io.Reader, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := dst + ".part"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}

// countedCache is the node's object cache as URL inputs' downloads use
// it (blob.ObjectCache), counting the attempt's hits and misses. An
// object larger than the whole cache is read directly, as it was before
// URL inputs went through the cache.
type countedCache struct {
	c  *cache.Cache
	st *cache.Stats
}

func (cc countedCache) Fetch(ctx context.Context, tag, want string, size int64, open func(context.Context) (io.ReadCloser, error)) (io.ReadCloser, error) {
	if !cc.c.Holds(size) {
		return open(ctx)
	}
	f, err := cc.c.GetTagged(ctx, tag, want, size, open, cc.st)
	if err != nil {
		return nil, err
	}
	return f, nil
}
