package transfer

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/hpcml/hpcml/internal/bytesize"
)

// Object is one listed object.
type Object struct {
	Key     string    `json:"key"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}

// List lists the objects of ep (keys relative to its prefix), in order.
func List(ctx context.Context, ep Endpoint) ([]Object, error) {
	s, err := openStore(ctx, ep, false)
	if err != nil {
		return nil, err
	}
	defer s.close()
	if ep, err = s.locate(ctx); err != nil {
		return nil, err
	}
	out := []Object{}
	err = s.list(ctx, func(o object) error {
		out = append(out, Object{Key: o.Key, Size: o.Size, ModTime: o.ModTime})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if ep.Single() && len(out) == 0 {
		return nil, fmt.Errorf("%s: not found", ep.Raw)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Usage counts the objects and bytes of ep.
func Usage(ctx context.Context, ep Endpoint) (files int, bytes int64, err error) {
	objs, err := List(ctx, ep)
	for _, o := range objs {
		files++
		bytes += o.Size
	}
	return files, bytes, err
}

// Remove deletes the objects of ep that the filter allows. An endpoint
// that names one object removes that object alone, or fails: a caller
// that means the tree under such a name says so (Locate).
func Remove(ctx context.Context, ep Endpoint, opts Options) (*Report, error) {
	opts.defaults()
	if ep.Kind == KindHTTP {
		return nil, fmt.Errorf("%s: cannot remove over http(s)", ep.Raw)
	}
	f, err := newFilter(opts.Include, opts.Exclude)
	if err != nil {
		return nil, err
	}
	s, err := openStore(ctx, ep, false)
	if err != nil {
		return nil, err
	}
	defer s.close()
	rep := newReport("remove", ep.Raw, "", VerifyNone, time.Now())
	rep.DryRun = opts.DryRun
	var keys []string
	if err := s.list(ctx, func(o object) error {
		if f.allows(o.Key) || ep.Single() {
			keys = append(keys, o.Key)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	rep.Totals.FilesListed = len(keys)
	if ep.Single() && len(keys) == 0 {
		return nil, fmt.Errorf("%s: not found", ep.Raw)
	}
	e := &engine{opts: opts, dst: s, rep: rep}
	if opts.DryRun {
		rep.Deleted = keys
	} else {
		results := make([]error, len(keys))
		inParallel(ctx, opts.Checkers, len(keys), func(ctx context.Context, i int) error {
			results[i] = e.dst.remove(ctx, keys[i])
			return nil
		})
		for i, k := range keys {
			if results[i] != nil {
				rep.Failed = append(rep.Failed, Failure{Key: k, Reason: results[i].Error()})
			} else {
				rep.Deleted = append(rep.Deleted, k)
			}
		}
	}
	rep.finish()
	if err := ctx.Err(); err != nil {
		rep.setError(err)
		return rep, err
	}
	return rep, nil
}

// ParseRate reads a bandwidth in bytes per second, a size as bytesize
// reads it ("10M" is 10 MiB/s, "512K", "1.5G", a bare number is bytes);
// "", "0" and "off" are no limit (0).
func ParseRate(s string) (int64, error) {
	if s == "" || s == "0" || s == "off" {
		return 0, nil
	}
	return bytesize.Parse(s, bytesize.Byte)
}
