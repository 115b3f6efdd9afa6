package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/hpcml/hpcml/internal/train"
)

// ListTraining lists training runs, newest first.
func (c *Client) ListTraining(ctx context.Context) ([]train.RunSummary, error) {
	var out []train.RunSummary
	if err := c.do(ctx, http.MethodGet, "/api/v1/training", nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("list training runs: %w", err)
	}
	return out, nil
}

// GetTraining reads one run's summary.
func (c *Client) GetTraining(ctx context.Context, id int64) (*train.RunSummary, error) {
	var out train.RunSummary
	if err := c.do(ctx, http.MethodGet, "/api/v1/training/"+strconv.FormatInt(id, 10), nil, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("get training run %d: %w", id, err)
	}
	return &out, nil
}

// TrainingMetrics are a run's metric points from index from on.
type TrainingMetrics struct {
	Total  int           `json:"total"`
	From   int           `json:"from"`
	Points []train.Point `json:"points"`
}

// GetTrainingMetrics reads a run's metric points from index from on.
func (c *Client) GetTrainingMetrics(ctx context.Context, id int64, from int) (*TrainingMetrics, error) {
	var out TrainingMetrics
	q := url.Values{"from": {strconv.Itoa(from)}}
	if err := c.do(ctx, http.MethodGet, "/api/v1/training/"+strconv.FormatInt(id, 10)+"/metrics", q, nil, &out, 0); err != nil {
		return nil, fmt.Errorf("get metrics of training run %d: %w", id, err)
	}
	return &out, nil
}

// GetTrainingFile reads a file of a run: run, model, evaluation (JSON) or
// onnx (the model).
func (c *Client) GetTrainingFile(ctx context.Context, id int64, file string) ([]byte, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/api/v1/training/"+strconv.FormatInt(id, 10)+"/"+url.PathEscape(file), nil, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(req)
	if err != nil {
		return nil, fmt.Errorf("get %s of training run %d: %w", file, id, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxTrainingFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("get %s of training run %d: %w", file, id, err)
	}
	if len(data) > maxTrainingFileBytes {
		return nil, fmt.Errorf("get %s of training run %d: larger than %d bytes", file, id, maxTrainingFileBytes)
	}
	return data, nil
}

// maxTrainingFileBytes bounds a downloaded model (2 GiB, ONNX's protobuf limit).
const maxTrainingFileBytes = 2 << 30
