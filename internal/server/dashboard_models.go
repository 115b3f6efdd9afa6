package server

import (
	"context"
	"io"

	"github.com/hpcml/hpcml/internal/dashboard"
	"github.com/hpcml/hpcml/internal/registry"
)

// The dashboard's Models pages read the registry (dashboard.Models).
var _ dashboard.Models = (*dashSource)(nil)

func (s *dashSource) ListModels(ctx context.Context) ([]*registry.Model, error) {
	return s.models.List(ctx)
}

func (s *dashSource) GetModel(ctx context.Context, name string) (*registry.Model, error) {
	m, err := s.models.Get(ctx, name)
	return m, notFound(err)
}

func (s *dashSource) OpenModelArtifact(ctx context.Context, v *registry.Version) (io.ReadCloser, error) {
	return s.models.Open(ctx, v)
}
