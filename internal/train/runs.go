package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	gcblob "gocloud.dev/blob"

	"github.com/hpcml/hpcml/internal/blob"
)

// RunsDir is where training runs keep their files in the server's
// storage: training/<job id>/ (a retried job resumes in the same dir).
const RunsDir = "training/"

// RunDir is the storage prefix of the run of job id.
func RunDir(jobID int64) string { return RunsDir + strconv.FormatInt(jobID, 10) + "/" }

// ErrNoRun: no such training run (or not that file of it yet).
var ErrNoRun = errors.New("no such training run")

// Runs reads training runs from the server's storage.
type Runs struct {
	Bucket *blob.Bucket
}

// RunSummary is a run as listed.
type RunSummary struct {
	ID        int64    `json:"id"` // the job's id
	Algorithm string   `json:"algorithm"`
	Data      string   `json:"data"`
	Task      string   `json:"task"`
	Epochs    int      `json:"epochs"`
	StartedAt string   `json:"started_at"`
	Finished  bool     `json:"finished"`
	Metric    string   `json:"metric,omitempty"` // accuracy or rmse
	Value     *float64 `json:"value,omitempty"`  // of the evaluation
	Set       string   `json:"set,omitempty"`
	// State and Reason are the run's job's (filled in by the server).
	State  string `json:"state,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// List summarises every run, newest first.
func (r Runs) List(ctx context.Context) ([]RunSummary, error) {
	it := r.Bucket.List(&gcblob.ListOptions{Prefix: RunsDir, Delimiter: "/"})
	var ids []int64
	for {
		obj, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list training runs: %w", err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(obj.Key, RunsDir), "/")
		if id, err := strconv.ParseInt(name, 10, 64); err == nil && obj.IsDir {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] > ids[j] })
	out := make([]RunSummary, 0, len(ids))
	for _, id := range ids {
		s, err := r.Summary(ctx, id)
		if errors.Is(err, ErrNoRun) {
			continue // started, data not loaded yet (or failed before)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *s)
	}
	return out, nil
}

// Summary describes run id from its files.
func (r Runs) Summary(ctx context.Context, id int64) (*RunSummary, error) {
	var ri RunInfo
	if err := r.ReadJSON(ctx, id, RunFile, &ri); err != nil {
		return nil, err
	}
	s := &RunSummary{ID: id, Algorithm: ri.Config.Algorithm, Data: ri.Data.Source, Task: ri.Data.Task,
		Epochs: ri.Config.Epochs, StartedAt: ri.StartedAt.Format("2006-01-02T15:04:05Z07:00")}
	var ev Evaluation
	switch err := r.ReadJSON(ctx, id, EvaluationFile, &ev); {
	case err == nil:
		s.Finished, s.Set = true, ev.Set
		if ri.Data.Task == Classification {
			s.Metric, s.Value = "accuracy", &ev.Accuracy
		} else {
			s.Metric, s.Value = "rmse", &ev.RMSE
		}
	case !errors.Is(err, ErrNoRun):
		return nil, err
	}
	return s, nil
}

// Raw is one file of run id (RunFile, MetadataFile, EvaluationFile,
// ModelFile, MetricsFile).
func (r Runs) Raw(ctx context.Context, id int64, file string) ([]byte, error) {
	switch file {
	case RunFile, MetadataFile, EvaluationFile, ModelFile, MetricsFile:
	default:
		return nil, fmt.Errorf("%w: no file %q", ErrNoRun, file)
	}
	data, err := r.Bucket.ReadAll(ctx, RunDir(id)+file)
	if blob.IsNotFound(err) {
		return nil, fmt.Errorf("%w: run %d has no %s", ErrNoRun, id, file)
	}
	return data, err
}

// Metrics are run id's metric points, in the order they were made.
func (r Runs) Metrics(ctx context.Context, id int64) ([]Point, error) {
	data, err := r.Raw(ctx, id, MetricsFile)
	if errors.Is(err, ErrNoRun) {
		if _, err := r.Raw(ctx, id, RunFile); err != nil {
			return nil, err
		}
		return []Point{}, nil
	}
	if err != nil {
		return nil, err
	}
	points := []Point{}
	for _, line := range bytes.Split(data, []byte("\n")) {
		var p Point
		if len(line) == 0 || json.Unmarshal(line, &p) != nil {
			continue
		}
		points = append(points, p)
	}
	return points, nil
}

// ReadJSON decodes one of run id's JSON files into v; an error wrapping
// ErrNoRun when the run or the file does not exist.
func (r Runs) ReadJSON(ctx context.Context, id int64, file string, v any) error {
	data, err := r.Raw(ctx, id, file)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("run %d: %s: %w", id, file, err)
	}
	return nil
}
