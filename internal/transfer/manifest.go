package transfer

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"

	"github.com/hpcml/hpcml/internal/dataset"
)

// Manifest lists ep's objects with their sizes and SHA-256 (the recorded
// checksum where hpcml wrote one, else read and computed, opts.Checkers
// at a time): the content of a dataset version.
func Manifest(ctx context.Context, ep Endpoint, opts Options) (*dataset.Manifest, error) {
	opts.defaults()
	f, err := newFilter(opts.Include, opts.Exclude)
	if err != nil {
		return nil, err
	}
	s, err := openStore(ctx, ep, false)
	if err != nil {
		return nil, err
	}
	defer s.close()
	tree, err := s.locate(ctx)
	if err != nil {
		return nil, err
	}
	if ep.Single() && !tree.Single() {
		// The manifest's source is read again by jobs (internal/task):
		// it names the tree, as s3://bucket/dir/.
		u, err := url.Parse(ep.Raw)
		if err != nil {
			return nil, err
		}
		u.Path += "/"
		tree.Raw = u.String()
		ep, s.ep = tree, tree
	}
	var objs []object
	if err := s.list(ctx, func(o object) error {
		if f.allows(o.Key) {
			objs = append(objs, o)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if ep.Single() {
		if len(objs) == 0 {
			return nil, fmt.Errorf("%s: not found", ep.Raw)
		}
		objs[0].Key = ep.Prefix
		ep = Endpoint{Kind: ep.Kind, Bucket: ep.Bucket, Root: ep.Root, Raw: ep.Raw, Prefix: ""}
		s.ep.Prefix = "" // the object's key is now its full key
	}
	source := ep.Raw
	if ep.Kind == KindLocal {
		source = filepath.Join(ep.Root, ep.Prefix) // where it is, whatever the shell's directory
	}
	m := &dataset.Manifest{Source: source, Objects: make([]dataset.Object, len(objs))}
	e := &engine{opts: opts}
	err = inParallel(ctx, opts.Checkers, len(objs), func(ctx context.Context, i int) error {
		o := objs[i]
		sum, err := e.sum(ctx, s, o.Key)
		if err != nil {
			return fmt.Errorf("checksum %s: %w", o.Key, err)
		}
		m.Objects[i] = dataset.Object{Key: o.Key, Size: o.Size, SHA256: sum}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, m.Validate()
}
