package profile

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// A state of a few rows, with the default (large) settings, round-trips:
// its settings are values, not counts of what the encoding holds.
func TestSmallStateRoundTrip(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Float64, Nullable: true}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	b.Field(0).(*array.Float64Builder).AppendValues([]float64{1, 2, 3}, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	st := NewState(schema, Options{})
	if err := st.Add(rec); err != nil {
		t.Fatal(err)
	}
	data, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeState(data)
	if err != nil {
		t.Fatalf("decode a 3-row state: %v", err)
	}
	if back.Rows() != 3 || *back.Report().Columns[0].Numeric.Sum != 6 {
		t.Fatalf("decoded %d rows", back.Rows())
	}
}
