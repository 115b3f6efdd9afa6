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
	"github.com/hpcml/hpcml/internal/transfer"
)

// datasetFetches is how many objects of a dataset are staged at once.
const datasetFetches = 8

// stageDataset puts a dataset version's objects under in.Path in the job
// dir: each is taken from the node's cache by checksum, fetched from the
// version's source into the cache on a miss (and refused if its bytes
// differ from the manifest), then copied into place — a copy, not a
// link, so that a job cannot change the bytes other jobs share.
func (r *runner) stageDataset(ctx context.Context, in job.Input, workDir string, res *job.Result) error {
	if r.objects == nil {
		return fmt.Errorf("%s: this node has no dataset cache", in.URL)
	}
	storage, err := r.buckets.Open(ctx, r.launch.Storage)
	if err != nil {
		return err
	}
	data, err := storage.ReadAll(ctx, in.ManifestKey)
	if err != nil {
		return fmt.Errorf("%s: read manifest: %w", in.URL, err)
	}
	var m dataset.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%s: manifest: %w", in.URL, err)
	}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("%s: %w", in.URL, err)
	}
	src, err := transfer.ParseEndpoint(m.Source)
	if err != nil {
		return fmt.Errorf("%s: source: %w", in.URL, err)
	}
	if src.Kind == transfer.KindHTTP {
		return fmt.Errorf("%s: objects of an http(s) source cannot be fetched by key", in.URL)
	}
	bucket, err := r.buckets.Open(ctx, src.Bucket)
	if err != nil {
		return fmt.Errorf("%s: source: %w", in.URL, err)
	}
	base := filepath.Join(workDir, filepath.FromSlash(in.Path))
	if !filepath.IsLocal(filepath.FromSlash(in.Path)) && in.Path != "." {
		return fmt.Errorf("input path %q leaves the job dir", in.Path)
	}
	var st cache.Stats
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(datasetFetches)
	for _, o := range m.Objects {
		g.Go(func() error {
			key := src.Prefix + o.Key
			if src.Single() {
				key = src.Prefix
			}
			p, err := r.objects.Get(gctx, o.SHA256, o.Size, func(ctx context.Context) (io.ReadCloser, error) {
				return bucket.NewReader(ctx, key, nil)
			}, &st)
			if err != nil {
				return fmt.Errorf("%s: %s: %w", in.URL, o.Key, err)
			}
			return copyFile(p, filepath.Join(base, filepath.FromSlash(o.Key)))
		})
	}
	err = g.Wait()
	res.CacheHits += st.Hits.Load()
	res.CacheMisses += st.Misses.Load()
	return err
}

// copyFile copies src to dst (made with its parents), whole or not at all.
func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
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
