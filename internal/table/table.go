// Package table reads and writes tabular data — CSV, Parquet, JSON Lines,
// local or in an object store, one file or a prefix of many — as Apache
// Arrow record batches, the one in-memory form every analysis in hpcml
// (profile, transform, synth) works on. Memory is bounded by the batch
// size, never by the row count.
package table

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
)

// Reader yields a table's rows in batches of columns.
type Reader interface {
	// Schema is the table's columns: their names and Arrow types
	// (Int64, Float64, Boolean, String, Timestamp), all nullable.
	Schema() *arrow.Schema
	// Next returns the next batch, which the caller releases, or io.EOF
	// after the last. A malformed input is an error naming the file, line
	// (or row group) and column.
	Next(ctx context.Context) (arrow.RecordBatch, error)
	Close() error
}
