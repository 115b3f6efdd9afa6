package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/bytesize"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
	"github.com/hpcml/hpcml/internal/registry"
	"github.com/hpcml/hpcml/internal/serve"
	"github.com/hpcml/hpcml/internal/task"
)

// checkMultiFlags refuses flag combinations of `hpcml serve` that mix
// one model and many, before anything is loaded.
func checkMultiFlags(f *serveFlags) error {
	if !f.multi {
		if f.models != "" || f.cacheBytes != "" {
			return errors.New("--models and --model-cache-bytes need --multi-model")
		}
		return nil
	}
	switch {
	case f.model != "":
		return errors.New("--multi-model serves the models of --storage: it takes no --model (use --models to choose which)")
	case f.name != "" || f.version != "":
		return errors.New("--name and --model-version name the one model of --model; with --multi-model the request names its model")
	}
	if f.models != "" {
		if _, err := endpoint.ParseFilter(f.models); err != nil {
			return fmt.Errorf("--models: %w", err)
		}
	}
	if f.cacheBytes != "" {
		n, err := bytesize.Parse(f.cacheBytes, bytesize.Byte)
		if err != nil {
			return fmt.Errorf("--model-cache-bytes: %w", err)
		}
		if n <= 0 {
			return fmt.Errorf("--model-cache-bytes %s must be more than 0", f.cacheBytes)
		}
	}
	return nil
}

// multiServer is a MultiServer with the bucket its models come from.
type multiServer struct {
	*serve.MultiServer
	bucket *blob.Bucket
}

func (m *multiServer) Close() {
	m.MultiServer.Close()
	m.bucket.Close()
}

// newMultiServer serves the registry's layout in storage: every model
// version models/NAME/VERSION/model.onnx that --models allows.
func newMultiServer(ctx context.Context, f *serveFlags, storage string, opts serve.Options) (*multiServer, error) {
	if storage == "" {
		return nil, fmt.Errorf("--multi-model needs storage: --storage or $%s", task.StorageEnv)
	}
	mo := serve.MultiOptions{Options: opts}
	if f.cacheBytes != "" {
		mo.CacheBytes, _ = bytesize.Parse(f.cacheBytes, bytesize.Byte) // checked by checkMultiFlags
	}
	if f.models != "" {
		filter, _ := endpoint.ParseFilter(f.models) // checked by checkMultiFlags
		mo.Allow = func(name, version string) bool {
			v, err := strconv.Atoi(version)
			return err == nil && filter.Match(name, v)
		}
	}
	b, err := blob.Open(ctx, storage)
	if err != nil {
		return nil, fmt.Errorf("--storage: %w", err)
	}
	loader := &serve.StorageLoader{Bucket: b, Prefix: registry.ModelsDir, File: registry.ArtifactFile}
	// The repository must be readable now: a wrong --storage is an exit
	// at start, not a 500 on every request.
	if _, err := loader.List(ctx); err != nil {
		b.Close()
		return nil, fmt.Errorf("--storage %s: %w", blob.Redact(storage), err)
	}
	srv, err := serve.NewMulti(loader, mo)
	if err != nil {
		b.Close()
		return nil, err
	}
	return &multiServer{MultiServer: srv, bucket: b}, nil
}
