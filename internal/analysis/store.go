package analysis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"

	gcblob "gocloud.dev/blob"

	"github.com/hpcml/hpcml/internal/blob"
)

// MaxListedReports bounds a report list: the newest ones.
const MaxListedReports = 200

// ErrNoReport is a report that is not stored.
var ErrNoReport = errors.New("no such report")

// Reports are the reports kept in a bucket (the server's storage), under
// ReportsPrefix; the bucket is their only record.
type Reports struct{ Bucket *blob.Bucket }

// List reads the summaries of the newest profile reports, newest first;
// one that cannot be read is left out.
func (s Reports) List(ctx context.Context) ([]Summary, error) {
	type entry struct {
		key string
		mod int64
	}
	var entries []entry
	it := s.Bucket.List(&gcblob.ListOptions{Prefix: ReportsPrefix + KindProfile + "/"})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("list reports: %w", err)
		}
		if !o.IsDir && path.Base(o.Key) == SummaryFile {
			entries = append(entries, entry{o.Key, o.ModTime.UnixNano()})
		}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].mod > entries[j].mod })
	if len(entries) > MaxListedReports {
		entries = entries[:MaxListedReports]
	}
	out := []Summary{}
	for _, e := range entries {
		data, err := s.Bucket.ReadAll(ctx, e.key)
		if err != nil {
			continue
		}
		if sum, err := DecodeSummary(data); err == nil {
			out = append(out, *sum)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
}

// Raw reads a stored profile report's JSON.
func (s Reports) Raw(ctx context.Context, id string) ([]byte, error) {
	if err := CheckID(id); err != nil {
		return nil, err
	}
	data, err := s.Bucket.ReadAll(ctx, ReportDir(KindProfile, id)+ReportFile)
	if blob.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %q", ErrNoReport, id)
	}
	if err != nil {
		return nil, fmt.Errorf("read report %s: %w", id, err)
	}
	return data, nil
}

// Get reads a stored profile report.
func (s Reports) Get(ctx context.Context, id string) (*ProfileReport, error) {
	data, err := s.Raw(ctx, id)
	if err != nil {
		return nil, err
	}
	return DecodeProfileReport(data)
}

// Put stores a report and then its summary (so a listed report is
// complete), and returns the summary.
func (s Reports) Put(ctx context.Context, rep *ProfileReport) (*Summary, error) {
	data, err := json.Marshal(rep)
	if err != nil {
		return nil, err
	}
	if _, err := DecodeProfileReport(data); err != nil { // what is stored reads back
		return nil, err
	}
	sum := rep.Summary()
	sumData, err := json.Marshal(sum)
	if err != nil {
		return nil, err
	}
	dir := ReportDir(KindProfile, rep.ID)
	if err := s.Bucket.WriteAll(ctx, dir+ReportFile, data, nil); err != nil {
		return nil, fmt.Errorf("store report: %w", err)
	}
	if err := s.Bucket.WriteAll(ctx, dir+SummaryFile, sumData, nil); err != nil {
		return nil, fmt.Errorf("store report summary: %w", err)
	}
	return &sum, nil
}
