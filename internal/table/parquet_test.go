package table

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// writeArrowParquet writes one batch with pqarrow itself (keeping the
// Arrow schema in the file, as pandas and pyarrow do).
func writeArrowParquet(t *testing.T, path string, rec arrow.RecordBatch) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pqarrow.NewFileWriter(rec.Schema(), f, parquet.NewWriterProperties(), pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestParquetTypes(t *testing.T) {
	mem := memory.NewGoAllocator()
	paris := &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "Europe/Paris"}
	sc := arrow.NewSchema([]arrow.Field{
		{Name: "i8", Type: arrow.PrimitiveTypes.Int8, Nullable: true},
		{Name: "u64", Type: arrow.PrimitiveTypes.Uint64, Nullable: true},
		{Name: "f32", Type: arrow.PrimitiveTypes.Float32, Nullable: true},
		{Name: "dec", Type: &arrow.Decimal128Type{Precision: 10, Scale: 2}, Nullable: true},
		{Name: "d", Type: arrow.FixedWidthTypes.Date32, Nullable: true},
		{Name: "tsns", Type: arrow.FixedWidthTypes.Timestamp_ns, Nullable: true},
		{Name: "tsms", Type: paris, Nullable: true},
		{Name: "ls", Type: arrow.BinaryTypes.LargeString, Nullable: true},
		{Name: "dict", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}, Nullable: true},
		{Name: "nul", Type: arrow.Null, Nullable: true},
		{Name: "b", Type: arrow.FixedWidthTypes.Boolean, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(mem, sc)
	defer b.Release()
	b.Field(0).(*array.Int8Builder).AppendValues([]int8{-5, 7}, []bool{true, false})
	b.Field(1).(*array.Uint64Builder).AppendValues([]uint64{1 << 62, 3}, nil)
	b.Field(2).(*array.Float32Builder).AppendValues([]float32{1.5, -2.25}, nil)
	b.Field(3).(*array.Decimal128Builder).AppendValues([]decimal128.Num{decimal128.FromI64(12345), decimal128.FromI64(-1)}, nil)
	b.Field(4).(*array.Date32Builder).AppendValues([]arrow.Date32{19783, -1}, nil)
	b.Field(5).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{1700000000123456789, -1}, nil)
	b.Field(6).(*array.TimestampBuilder).AppendValues([]arrow.Timestamp{1700000000123, 0}, []bool{true, false})
	b.Field(7).(*array.LargeStringBuilder).AppendValues([]string{"large", ""}, []bool{true, true})
	db := b.Field(8).(*array.BinaryDictionaryBuilder)
	db.AppendString("cat")
	db.AppendNull()
	b.Field(9).(*array.NullBuilder).AppendNulls(2)
	b.Field(10).(*array.BooleanBuilder).AppendValues([]bool{true, false}, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	dir := t.TempDir()
	p := filepath.Join(dir, "types.parquet")
	writeArrowParquet(t, p, rec)
	s, rows := readURL(t, p, Options{})
	eq(t, "types", types(s), "i8:int64 u64:int64 f32:float64 dec:float64 d:timestamp tsns:timestamp tsms:timestamp ls:string dict:string nul:string b:bool")
	eq(t, "rows", rows, []string{
		"-5|4611686018427387904|1.5|123.45|2024-03-01T00:00:00Z|2023-11-14T22:13:20.123456Z|2023-11-14T22:13:20.123Z|large|cat|∅|true",
		"∅|3|-2.25|-0.01|1969-12-31T00:00:00Z|1969-12-31T23:59:59.999999Z|∅||∅|∅|false",
	})

	// A type that is not read: the column is named.
	lt := arrow.NewSchema([]arrow.Field{{Name: "ok", Type: arrow.PrimitiveTypes.Int64}, {Name: "xs", Type: arrow.ListOf(arrow.PrimitiveTypes.Int64)}}, nil)
	lb := array.NewRecordBuilder(mem, lt)
	defer lb.Release()
	lb.Field(0).(*array.Int64Builder).Append(1)
	lb.Field(1).(*array.ListBuilder).Append(true)
	lrec := lb.NewRecordBatch()
	defer lrec.Release()
	writeArrowParquet(t, filepath.Join(dir, "list.parquet"), lrec)
	_, err := Open(context.Background(), filepath.Join(dir, "list.parquet"), Options{})
	wantErr(t, err, `list.parquet: column "xs": type list<element: int64, nullable> cannot be read`)

	// A uint64 over int64's range.
	ub := array.NewRecordBuilder(mem, arrow.NewSchema([]arrow.Field{{Name: "u", Type: arrow.PrimitiveTypes.Uint64}}, nil))
	defer ub.Release()
	ub.Field(0).(*array.Uint64Builder).AppendValues([]uint64{1, 1 << 63}, nil)
	urec := ub.NewRecordBatch()
	defer urec.Release()
	writeArrowParquet(t, filepath.Join(dir, "u.parquet"), urec)
	wantErr(t, readErr(t, filepath.Join(dir, "u.parquet"), Options{}), `u.parquet:row group 1, column "u": 9223372036854775808 does not fit an int64`)

	// Not Parquet, empty.
	write(t, dir, "junk.parquet", "this is not parquet at all")
	_, err = Open(context.Background(), filepath.Join(dir, "junk.parquet"), Options{})
	wantErr(t, err, "junk.parquet: not a readable Parquet file")
	write(t, dir, "empty.parquet", "")
	_, err = Open(context.Background(), filepath.Join(dir, "empty.parquet"), Options{})
	wantErr(t, err, "empty.parquet: empty: 0 bytes")
	_, err = Open(context.Background(), filepath.Join(dir, "types.parquet"), Options{Types: map[string]arrow.DataType{"b": String}})
	wantErr(t, err, "column types are set for CSV and JSON Lines only")
}

// csvTable is a CSV of every type, with nulls, quotes and newlines.
func csvTable(rows int) string {
	var b strings.Builder
	b.WriteString("i,f,b,t,s,g\n")
	for i := 0; i < rows; i++ {
		s := fmt.Sprintf("\"s%d, \"\"q\"\"\"", i)
		switch i % 7 {
		case 0:
			s = ""
		case 3:
			s = `""`
		case 5:
			s = "\"two\nlines\""
		case 6:
			s = "\"NA\""
		}
		f := fmt.Sprint(float64(i) / 3)
		if i%11 == 0 {
			f = "NaN"
		} else if i%13 == 0 {
			f = "-inf"
		}
		fmt.Fprintf(&b, "%d,%s,%v,2024-01-%02dT10:00:00.5Z,%s,%d\n", i-rows/2, f, i%2 == 0, i%28+1, s, i%4)
	}
	return b.String()
}

func TestParquetRoundTripAndRowGroups(t *testing.T) {
	dir := t.TempDir()
	src := write(t, dir, "t.csv", csvTable(1000))
	s, want := readURL(t, src, Options{})
	eq(t, "types", types(s), "i:int64 f:float64 b:bool t:timestamp s:string g:int64")
	for _, comp := range []string{"snappy", "zstd", "none"} {
		out := filepath.Join(dir, "t-"+comp+".parquet")
		r, err := Open(context.Background(), src, Options{BatchRows: 100})
		if err != nil {
			t.Fatal(err)
		}
		n, err := WriteParquet(context.Background(), out, r, WriteOptions{Compression: comp, RowGroupRows: 150})
		r.Close()
		if err != nil || n != 1000 {
			t.Fatalf("%d rows, %v", n, err)
		}
		s2, got := readURL(t, out, Options{})
		eq(t, comp+" schema", types(s2), types(s))
		eq(t, comp+" rows", got, want)
		for _, k := range []int{1, 2, 3, 7, 100} {
			parts, got := readParts(t, out, Options{}, k)
			eq(t, fmt.Sprintf("%s n=%d", comp, k), got, want)
			if k == 7 && len(parts) != 7 {
				t.Fatalf("7 row groups asked of 7: %d partitions", len(parts))
			}
		}
	}
	_, err := WriteParquet(context.Background(), filepath.Join(dir, "x.parquet"), NewBatchReader(s), WriteOptions{Compression: "lzma"})
	wantErr(t, err, `compression "lzma": snappy, zstd, gzip or none`)
}

func TestParquetPrefixMismatch(t *testing.T) {
	dir := t.TempDir()
	a := write(t, dir, "a.csv", "x,y\n1,2\n")
	b := write(t, dir, "b.csv", "x,y\n1,2.5\n")
	for src, dst := range map[string]string{a: "pq/1.parquet", b: "pq/2.parquet"} {
		r, err := Open(context.Background(), src, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := WriteParquet(context.Background(), filepath.Join(dir, dst), r, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	err := readErr(t, filepath.Join(dir, "pq"), Options{})
	wantErr(t, err, `2.parquet: column 2 is "y" (float64) here but "y" (int64) in `, `1.parquet: a table's files have the same columns`)
	_, err = Split(context.Background(), filepath.Join(dir, "pq"), Options{}, 2)
	wantErr(t, err, `2.parquet: column 2 is "y" (float64) here`)
}
