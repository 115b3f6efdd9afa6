package server

import (
	"context"

	"github.com/hpcml/hpcml/internal/dashboard"
	"github.com/hpcml/hpcml/internal/deploy"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
)

// The dashboard's Endpoints pages read the endpoint controller
// (dashboard.Endpoints).
var _ dashboard.Endpoints = (*dashSource)(nil)

func (s *dashSource) ListEndpoints(ctx context.Context) ([]*deploy.Status, error) {
	return s.endpoints.List(ctx)
}

func (s *dashSource) GetEndpoint(ctx context.Context, name string) (*deploy.Status, error) {
	st, err := s.endpoints.Status(ctx, name)
	return st, notFound(err)
}

func (s *dashSource) EndpointHistory(ctx context.Context, name string) ([]*endpoint.Deployment, error) {
	h, err := s.endpoints.History(ctx, name, 50)
	return h, notFound(err)
}
