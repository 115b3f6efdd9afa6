package profile

import (
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// benchBatch is cols Float64 columns of rows normal values, no nulls, the
// shape of the benchmark (10M rows × 9 numeric columns).
func benchBatch(cols, rows int, seed uint64) arrow.RecordBatch {
	r := rand.New(rand.NewPCG(seed, 1))
	fields := make([]arrow.Field, cols)
	arrs := make([]arrow.Array, cols)
	for c := range cols {
		fields[c] = arrow.Field{Name: string(rune('a' + c)), Type: arrow.PrimitiveTypes.Float64, Nullable: true}
		b := array.NewFloat64Builder(memory.DefaultAllocator)
		vs := make([]float64, rows)
		for i := range vs {
			vs[i] = r.NormFloat64()*10 + float64(c)
		}
		b.AppendValues(vs, nil)
		arrs[c] = b.NewArray()
		b.Release()
	}
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), arrs, int64(rows))
}

// BenchmarkAddFloat64 is Add on 9 Float64 columns × 64k-row batches (eight
// different batches in turn, so rows are not all duplicates); the ns/value
// metric is per cell. Run with -benchtime 150x for the 10M-row steady state.
func BenchmarkAddFloat64(b *testing.B) {
	const cols, rows = 9, 1 << 16
	recs := make([]arrow.RecordBatch, 8)
	for i := range recs {
		recs[i] = benchBatch(cols, rows, uint64(i+1))
		defer recs[i].Release()
	}
	s := NewState(recs[0].Schema(), Options{})
	b.SetBytes(cols * rows * 8)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.Add(recs[i%len(recs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*cols*rows), "ns/value")
}
