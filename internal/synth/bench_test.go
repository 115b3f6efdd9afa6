package synth

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/hpcml/hpcml/internal/table"
)

// BenchmarkSampleParquet samples a model of the generated table (9
// columns of every type, By its category) to
// a zstd Parquet file; b.N is in rows (go test -bench Sample
// -benchtime 1000000x).
func BenchmarkSampleParquet(b *testing.B) {
	dir := b.TempDir()
	src := writeGenerated(b, dir, 5000)
	m := fitURL(b, src, table.Options{}, FitOptions{By: "cat"})
	b.ResetTimer()
	out := filepath.Join(dir, "out.parquet")
	w, err := table.Create(context.Background(), out, m.Schema(), table.WriteOptions{Compression: "zstd"})
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Sample(context.Background(), int64(b.N), 1, w); err != nil {
		b.Fatal(err)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkSampleDiscard is the sampling alone: batches made and
// dropped.
func BenchmarkSampleDiscard(b *testing.B) {
	m := fitURL(b, writeGenerated(b, b.TempDir(), 5000), table.Options{}, FitOptions{By: "cat"})
	b.ResetTimer()
	if err := m.Sample(context.Background(), int64(b.N), 1, discard{}); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

type discard struct{}

func (discard) Write(rec arrow.RecordBatch) error { return nil }
func (discard) Close() error                      { return nil }
func (discard) Abort()                            {}
