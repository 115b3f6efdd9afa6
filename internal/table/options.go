package table

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Format is a table's file format.
type Format string

// Formats.
const (
	FormatCSV     Format = "csv" // also TSV and other delimiters
	FormatParquet Format = "parquet"
	FormatJSONL   Format = "jsonl" // JSON Lines: one object per line
)

// Defaults.
const (
	DefaultSampleRows     = 10000
	DefaultBatchRows      = 64 * 1024
	DefaultMaxRecordBytes = 64 << 20
	DefaultPartitionBytes = 128 << 20
	// batchBytes caps a batch's string bytes: a batch of long strings
	// ends before BatchRows.
	batchBytes = 64 << 20
)

// DefaultNullValues are the unquoted CSV fields read as null. "NaN" is
// not among them: in a float column it is NaN.
var DefaultNullValues = []string{"", "NA", "N/A", "null", "NULL"}

// Options say how to read a table. The zero value reads any supported
// file with its format from the extension, a CSV header, an inferred
// delimiter and inferred types.
type Options struct {
	// Format overrides the format the extension implies (and makes every
	// file of a prefix one of that format).
	Format Format

	// CSV: NoHeader says the first record is data (columns are then
	// column_1, column_2, ...). Delimiter is the field separator; 0 detects
	// one of , ; TAB | from the first lines (TAB for .tsv). SkipRows lines
	// are skipped before the header (scikit-learn's bundled CSVs start
	// with a line of counts: SkipRows 1, NoHeader). NullValues replaces
	// DefaultNullValues (quoted fields are never null).
	NoHeader   bool
	Delimiter  rune
	SkipRows   int
	NullValues []string

	// SampleRows is how many rows (CSV records, JSON lines) of the first
	// file types are inferred from; 0 is DefaultSampleRows. A later value
	// that does not fit its column's type is an error.
	SampleRows int
	// Types sets columns' types by name (see ParseType), instead of
	// inferring them.
	Types map[string]arrow.DataType
	// Spec fixes the format, schema and parse settings (as Infer returns
	// them, and a Partition carries them): nothing is inferred.
	Spec *Spec

	// BatchRows is the most rows a batch holds; 0 is DefaultBatchRows.
	BatchRows int
	// MaxRecordBytes bounds one CSV record or JSON line (an unterminated
	// quote would otherwise read the whole file); 0 is the default, 64 MiB.
	MaxRecordBytes int
	// PartitionBytes is the partition size Split aims at when not told
	// how many partitions to make; 0 is 128 MiB.
	PartitionBytes int64

	// ResolveDataset turns dataset://NAME[@VERSION] into the URL of its
	// data (a file or prefix). Without it dataset names are an error.
	ResolveDataset func(ctx context.Context, name, version string) (string, error)

	// Allocator for Parquet decoding; nil is the Go allocator.
	Allocator memory.Allocator
}

func (o *Options) sampleRows() int {
	if o.SampleRows > 0 {
		return o.SampleRows
	}
	return DefaultSampleRows
}

// batchRows is the rows of a batch of ncols columns: BatchRows, fewer
// for a wide table, so that a batch's fixed-width data stays near 32 MiB
// (unless BatchRows is set).
func (o *Options) batchRows(ncols int) int {
	if o.BatchRows > 0 {
		return o.BatchRows
	}
	return min(DefaultBatchRows, max(1024, (32<<20)/(8*max(ncols, 1))))
}

func (o *Options) maxRecord() int {
	if o.MaxRecordBytes > 0 {
		return o.MaxRecordBytes
	}
	return DefaultMaxRecordBytes
}

func (o *Options) alloc() memory.Allocator {
	if o.Allocator != nil {
		return o.Allocator
	}
	return memory.DefaultAllocator
}

// Spec is how a table is read, fixed once: its format, columns and parse
// settings. Every partition of a table carries the same Spec, so that
// every job reads the same columns with the same types.
type Spec struct {
	Format  Format   `json:"format"`
	Columns []Column `json:"columns"`
	// From is the file the schema was read or inferred from (for
	// messages), and SampleRows how many of its rows types were inferred
	// from.
	From       string `json:"from,omitempty"`
	SampleRows int    `json:"sample_rows,omitempty"`

	// CSV settings.
	Delimiter  string   `json:"delimiter,omitempty"`
	Header     bool     `json:"header,omitempty"`
	SkipRows   int      `json:"skip_rows,omitempty"`
	NullValues []string `json:"null_values,omitempty"`
	// QuotedNewlines: the sample had a quoted field spanning lines. Such
	// files are not split into byte ranges (see Split).
	QuotedNewlines bool `json:"quoted_newlines,omitempty"`
}

// Schema is the spec's Arrow schema.
func (s *Spec) Schema() (*arrow.Schema, error) {
	sc, _, err := schemaOf(s.Columns)
	return sc, err
}

func (s *Spec) check() error {
	switch s.Format {
	case FormatCSV:
		if len([]rune(s.Delimiter)) != 1 || s.Delimiter == "\"" || s.Delimiter == "\n" || s.Delimiter == "\r" {
			return fmt.Errorf("CSV delimiter %q: must be one character, not a quote or newline", s.Delimiter)
		}
		if len(s.Delimiter) != 1 {
			return fmt.Errorf("CSV delimiter %q: must be an ASCII character", s.Delimiter)
		}
	case FormatParquet, FormatJSONL:
	default:
		return fmt.Errorf("unknown format %q (csv, parquet or jsonl)", s.Format)
	}
	_, _, err := schemaOf(s.Columns)
	return err
}

// compression of a file by its name.
type compression uint8

const (
	compNone compression = iota
	compGzip
	compZstd
)

// formatOf is a file's format and compression by its name ("" if the
// extension is not a table's).
func formatOf(name string) (Format, compression) {
	n := strings.ToLower(path.Base(name))
	c := compNone
	switch {
	case strings.HasSuffix(n, ".gz"):
		c, n = compGzip, strings.TrimSuffix(n, ".gz")
	case strings.HasSuffix(n, ".zst"):
		c, n = compZstd, strings.TrimSuffix(n, ".zst")
	}
	switch path.Ext(n) {
	case ".csv", ".tsv", ".txt", ".tab", ".psv":
		return FormatCSV, c
	case ".parquet", ".pq":
		if c != compNone {
			return "", c // Parquet compresses inside
		}
		return FormatParquet, c
	case ".jsonl", ".ndjson", ".json":
		return FormatJSONL, c
	}
	return "", c
}

// defaultDelimiter is the delimiter a name implies (0: detect).
func defaultDelimiter(name string) byte {
	n := strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(name), ".gz"), ".zst")
	switch path.Ext(n) {
	case ".tsv", ".tab":
		return '\t'
	case ".psv":
		return '|'
	}
	return 0
}
