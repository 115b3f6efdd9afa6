package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/hpcml/hpcml/internal/dataset"
)

// AddDatasetVersion stores m as the next version of dataset name (made
// if new); when the latest version holds exactly m's objects, that
// version is returned instead.
func (c *Client) AddDatasetVersion(ctx context.Context, name string, m *dataset.Manifest) (*dataset.Version, error) {
	var out dataset.Version
	if err := c.do(ctx, http.MethodPost, "/api/v1/datasets/"+url.PathEscape(name)+"/versions", nil, m, &out, 0); err != nil {
		return nil, fmt.Errorf("add version of dataset %s: %w", name, err)
	}
	return &out, nil
}

// GetDataset reads a dataset and its versions, newest first.
func (c *Client) GetDataset(ctx context.Context, name string) (*dataset.Dataset, error) {
	var out dataset.Dataset
	if err := c.do(ctx, http.MethodGet, "/api/v1/datasets/"+url.PathEscape(name), nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("get dataset %s: %w", name, err)
	}
	return &out, nil
}

// ListDatasets lists datasets with their latest versions.
func (c *Client) ListDatasets(ctx context.Context) ([]*dataset.Dataset, error) {
	var out []*dataset.Dataset
	if err := c.do(ctx, http.MethodGet, "/api/v1/datasets", nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("list datasets: %w", err)
	}
	return out, nil
}

// DatasetVersion is a version with its manifest.
type DatasetVersion struct {
	dataset.Version
	Manifest dataset.Manifest `json:"manifest"`
}

// GetDatasetVersion reads version v (0: the latest) with its manifest.
func (c *Client) GetDatasetVersion(ctx context.Context, name string, v int) (*DatasetVersion, error) {
	ver := "latest"
	if v > 0 {
		ver = strconv.Itoa(v)
	}
	var out DatasetVersion
	if err := c.do(ctx, http.MethodGet, "/api/v1/datasets/"+url.PathEscape(name)+"/versions/"+ver, nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("get dataset %s@%s: %w", name, ver, err)
	}
	return &out, nil
}
