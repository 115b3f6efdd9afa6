package table

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	gcblob "gocloud.dev/blob"

	hblob "github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/transfer"
)

// WriteOptions say how to write a table.
type WriteOptions struct {
	// Format is the URL's extension's, or opts.Format; Parquet for a
	// directory or prefix.
	Format Format
	// Compression of Parquet pages: snappy (the default), zstd, gzip or
	// none. A CSV or JSON file is compressed by its extension (.gz, .zst).
	Compression string
	// PartitionBy writes a directory (or prefix) with one subdirectory per
	// distinct value of these columns, Hive style:
	// country=FR/year=2024/part-0.parquet (nulls are
	// __HIVE_DEFAULT_PARTITION__). The columns stay in the files too, so
	// that reading the prefix back yields every column with its type.
	PartitionBy []string
	// BaseName names the file in a directory (or each partition's
	// directory), without its extension; "part-0" by default. Jobs
	// writing into one prefix give each its own.
	BaseName string
	// RowGroupRows is the most rows of a Parquet row group; 0 is 1Mi
	// (a row group also ends at about 128 MiB of data).
	RowGroupRows int
	// CSV: the delimiter (',' by default) and whether to leave out the
	// header.
	Delimiter rune
	NoHeader  bool
}

// Writer writes a table's batches. Nothing appears under the output's
// names until Close: each file is written to a temporary name (or an
// unfinished multipart upload) and takes its name when complete.
type Writer interface {
	Write(rec arrow.RecordBatch) error
	// Close completes the output. If it fails, the files this writer
	// completed are removed again (best effort).
	Close() error
	// Abort discards everything written.
	Abort()
}

// Most partitions a PartitionBy writer keeps open at once.
const maxOpenPartitions = 512

// Create writes a table of schema to url: a file, or (with PartitionBy,
// or a URL ending in / or naming a directory) files under a directory or
// prefix.
func Create(ctx context.Context, url string, schema *arrow.Schema, opts WriteOptions) (Writer, error) {
	ep, err := transfer.ParseEndpoint(url)
	if err != nil {
		return nil, err
	}
	if ep.Kind != transfer.KindLocal && ep.Kind != transfer.KindS3 {
		return nil, fmt.Errorf("%s: tables are written to local paths, file:// or s3:// URLs", url)
	}
	tree := !ep.Single() || len(opts.PartitionBy) > 0
	if tree {
		ep = ep.AsTree()
	}
	format := opts.Format
	if format == "" && !tree {
		format, _ = formatOf(ep.Prefix)
	}
	if format == "" {
		format = FormatParquet
	}
	if format != FormatParquet && format != FormatCSV && format != FormatJSONL {
		return nil, fmt.Errorf("%s: unknown format %q", url, format)
	}
	if format == FormatJSONL {
		return nil, fmt.Errorf("%s: JSON Lines are read, not written (write Parquet or CSV)", url)
	}
	codec, err := parquetCodec(opts.Compression)
	if err != nil {
		return nil, err
	}
	bucketURL := ep.Bucket
	if ep.Kind == transfer.KindLocal {
		if err := os.MkdirAll(ep.Root, 0o755); err != nil {
			return nil, fmt.Errorf("%s: %w", url, err)
		}
		bucketURL += "&no_tmp_dir=1" // temp files beside their final names: renames stay on one file system
	}
	b, err := hblob.Open(ctx, bucketURL)
	if err != nil {
		return nil, err
	}
	t := &target{ctx: ctx, bucket: b, ep: ep, format: format, codec: codec, opts: opts, schema: schema}
	if !tree {
		out, err := t.create(ep.Prefix)
		if err != nil {
			b.Close()
			return nil, err
		}
		return &singleWriter{t: t, out: out}, nil
	}
	base := opts.BaseName
	if base == "" {
		base = "part-0"
	}
	ext := ".parquet"
	if format == FormatCSV {
		ext = ".csv"
	}
	name := base + ext
	if len(opts.PartitionBy) == 0 {
		out, err := t.create(ep.Prefix + name)
		if err != nil {
			b.Close()
			return nil, err
		}
		return &singleWriter{t: t, out: out}, nil
	}
	pw := &partitionedWriter{t: t, name: name, outs: map[string]*partOut{}}
	for _, c := range opts.PartitionBy {
		i := schema.FieldIndices(c)
		if len(i) == 0 {
			b.Close()
			return nil, fmt.Errorf("partition column %q is not in the table", c)
		}
		pw.keys = append(pw.keys, i[0])
	}
	return pw, nil
}

func parquetCodec(name string) (compress.Compression, error) {
	switch strings.ToLower(name) {
	case "", "snappy":
		return compress.Codecs.Snappy, nil
	case "zstd":
		return compress.Codecs.Zstd, nil
	case "gzip":
		return compress.Codecs.Gzip, nil
	case "none", "uncompressed":
		return compress.Codecs.Uncompressed, nil
	}
	return 0, fmt.Errorf("compression %q: snappy, zstd, gzip or none", name)
}

// WriteParquet writes what r reads to url as Parquet; the number of rows.
func WriteParquet(ctx context.Context, url string, r Reader, opts WriteOptions) (int64, error) {
	opts.Format = FormatParquet
	return writeAll(ctx, url, r, opts)
}

// WriteCSV writes what r reads to url as CSV; the number of rows.
func WriteCSV(ctx context.Context, url string, r Reader, opts WriteOptions) (int64, error) {
	opts.Format = FormatCSV
	return writeAll(ctx, url, r, opts)
}

func writeAll(ctx context.Context, url string, r Reader, opts WriteOptions) (int64, error) {
	w, err := Create(ctx, url, r.Schema(), opts)
	if err != nil {
		return 0, err
	}
	n, err := Copy(ctx, w, r)
	if err != nil {
		w.Abort()
		return n, err
	}
	return n, w.Close()
}

// Copy writes every batch r reads to w (neither is closed); the rows.
func Copy(ctx context.Context, w Writer, r Reader) (int64, error) {
	var n int64
	for {
		rec, err := r.Next(ctx)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		err = w.Write(rec)
		n += rec.NumRows()
		rec.Release()
		if err != nil {
			return n, err
		}
	}
}

// target is where a writer's files go.
type target struct {
	ctx    context.Context
	bucket *gcblob.Bucket
	ep     transfer.Endpoint
	format Format
	codec  compress.Compression
	opts   WriteOptions
	schema *arrow.Schema
}

func (t *target) show(key string) string {
	if t.ep.Kind == transfer.KindLocal {
		return path.Join(t.ep.Root, key)
	}
	return hblob.Location{Bucket: t.ep.Bucket, Key: key}.String()
}

// out is one file being written.
type out struct {
	t      *target
	key    string
	cancel context.CancelFunc
	bw     *gcblob.Writer
	comp   io.WriteCloser // compression over bw, or nil
	pq     *pqarrow.FileWriter
	csv    *csvWriter
	bytes  int64 // Parquet: data in the buffered row group
	rows   int64
	full   bool
	done   bool
}

func (t *target) create(key string) (*out, error) {
	ctx, cancel := context.WithCancel(t.ctx)
	bw, err := t.bucket.NewWriter(ctx, key, &gcblob.WriterOptions{ContentType: "application/octet-stream", DisableContentTypeDetection: true})
	if err != nil {
		cancel()
		return nil, hblob.Describe(err, t.show(key))
	}
	o := &out{t: t, key: key, cancel: cancel, bw: bw}
	// Only a writer: the Parquet writer closes a Closer, and closing the
	// blob writer is the commit, which is ours to do.
	var w io.Writer = struct{ io.Writer }{bw}
	if t.format == FormatCSV {
		_, comp := formatOf(key)
		switch comp {
		case compGzip:
			o.comp = gzip.NewWriter(bw)
		case compZstd:
			z, _ := zstd.NewWriter(bw)
			o.comp = z
		}
		if o.comp != nil {
			w = o.comp
		}
		o.csv, err = newCSVWriter(w, t.schema, t.opts)
	} else {
		props := parquet.NewWriterProperties(parquet.WithCompression(t.codec), parquet.WithMaxRowGroupLength(int64(rowGroupRows(t.opts))),
			parquet.WithAllocator(memory.DefaultAllocator), parquet.WithCreatedBy("hpcml"))
		o.pq, err = pqarrow.NewFileWriter(t.schema, w, props, pqarrow.DefaultWriterProps())
	}
	if err != nil {
		o.abort()
		return nil, fmt.Errorf("%s: %w", t.show(key), err)
	}
	return o, nil
}

func rowGroupRows(o WriteOptions) int {
	if o.RowGroupRows > 0 {
		return o.RowGroupRows
	}
	return 1 << 20
}

const rowGroupBytes = 128 << 20

func (o *out) write(rec arrow.RecordBatch) error {
	var err error
	if o.csv != nil {
		err = o.csv.write(rec)
	} else {
		if o.full {
			// A new row group only when there are rows for it: no empty
			// row group at the end.
			o.pq.NewBufferedRowGroup()
			o.full, o.bytes, o.rows = false, 0, 0
		}
		if err = o.pq.WriteBuffered(rec); err == nil {
			o.bytes += recordBytes(rec)
			o.rows += rec.NumRows()
			o.full = o.bytes > rowGroupBytes || o.rows >= int64(rowGroupRows(o.t.opts))
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", o.t.show(o.key), err)
	}
	return nil
}

// recordBytes is about how much memory a batch's data takes.
func recordBytes(rec arrow.RecordBatch) int64 {
	var n int64
	for _, c := range rec.Columns() {
		for _, b := range c.Data().Buffers() {
			if b != nil {
				n += int64(b.Len())
			}
		}
	}
	return n
}

// commit completes the file under its name.
func (o *out) commit() error {
	var err error
	if o.csv != nil {
		err = o.csv.flush()
	} else {
		err = o.pq.Close()
	}
	if err == nil && o.comp != nil {
		err = o.comp.Close()
	}
	if err != nil {
		o.abort()
		return fmt.Errorf("%s: %w", o.t.show(o.key), err)
	}
	o.done = true
	defer o.cancel()
	if err := o.bw.Close(); err != nil {
		return hblob.Describe(err, o.t.show(o.key))
	}
	return nil
}

func (o *out) abort() {
	if o.done {
		return
	}
	o.done = true
	o.cancel() // before Close: the temp file or multipart upload goes
	o.bw.Close()
}

type singleWriter struct {
	t   *target
	out *out
}

func (w *singleWriter) Write(rec arrow.RecordBatch) error {
	if !rec.Schema().Equal(w.t.schema) {
		return fmt.Errorf("%s: a batch of another schema: %s", w.t.show(w.out.key), rec.Schema())
	}
	return w.out.write(rec)
}

func (w *singleWriter) Close() error {
	defer w.t.bucket.Close()
	return w.out.commit()
}

func (w *singleWriter) Abort() {
	w.out.abort()
	w.t.bucket.Close()
}

// partitionedWriter routes rows by their partition columns' values.
type partitionedWriter struct {
	t     *target
	name  string
	keys  []int
	outs  map[string]*partOut
	order []string
	kbuf  []byte
	err   error
}

type partOut struct {
	out  *out
	b    *array.RecordBuilder
	rows int
}

const partFlushRows = 64 * 1024

func (w *partitionedWriter) Write(rec arrow.RecordBatch) error {
	if w.err != nil {
		return w.err
	}
	if !rec.Schema().Equal(w.t.schema) {
		return fmt.Errorf("a batch of another schema: %s", rec.Schema())
	}
	cols := rec.Columns()
	for i := 0; i < int(rec.NumRows()); i++ {
		w.kbuf = w.kbuf[:0]
		for j, k := range w.keys {
			if j > 0 {
				w.kbuf = append(w.kbuf, '/')
			}
			w.kbuf = append(w.kbuf, escapePartition(w.t.schema.Field(k).Name)...)
			w.kbuf = append(w.kbuf, '=')
			w.kbuf = append(w.kbuf, escapePartition(partitionValue(cols[k], i))...)
		}
		po := w.outs[string(w.kbuf)]
		if po == nil {
			if len(w.outs) >= maxOpenPartitions {
				w.err = fmt.Errorf("more than %d partitions: partition by columns with fewer distinct values", maxOpenPartitions)
				return w.err
			}
			dir := string(w.kbuf)
			o, err := w.t.create(w.t.ep.Prefix + dir + "/" + w.name)
			if err != nil {
				w.err = err
				return err
			}
			po = &partOut{out: o, b: array.NewRecordBuilder(memory.DefaultAllocator, w.t.schema)}
			w.outs[dir] = po
			w.order = append(w.order, dir)
		}
		for c, col := range cols {
			if err := appendValue(po.b.Field(c), col, i); err != nil {
				w.err = fmt.Errorf("column %q: %w", w.t.schema.Field(c).Name, err)
				return w.err
			}
		}
		po.rows++
		if po.rows >= partFlushRows {
			if err := w.flush(po); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *partitionedWriter) flush(po *partOut) error {
	if po.rows == 0 {
		return nil
	}
	rec := po.b.NewRecordBatch()
	defer rec.Release()
	po.rows = 0
	// One row group per flush: the partitions' data is not held in memory.
	var err error
	if po.out.pq != nil {
		err = po.out.pq.Write(rec)
		if err != nil {
			err = fmt.Errorf("%s: %w", w.t.show(po.out.key), err)
		}
	} else {
		err = po.out.write(rec)
	}
	if err != nil {
		w.err = err
	}
	return err
}

func (w *partitionedWriter) Close() error {
	defer w.t.bucket.Close()
	err := w.err
	sort.Strings(w.order)
	var committed []string
	for _, dir := range w.order {
		po := w.outs[dir]
		if err == nil {
			err = w.flush(po)
		}
		if err == nil {
			if err = po.out.commit(); err == nil {
				committed = append(committed, po.out.key)
			}
		} else {
			po.out.abort()
		}
		po.b.Release()
	}
	if err != nil {
		for _, key := range committed {
			w.t.bucket.Delete(context.WithoutCancel(w.t.ctx), key)
		}
		return err
	}
	return nil
}

func (w *partitionedWriter) Abort() {
	for _, po := range w.outs {
		po.out.abort()
		po.b.Release()
	}
	w.outs = nil
	w.t.bucket.Close()
}

// partitionValue is a value as a partition directory names it.
func partitionValue(a arrow.Array, i int) string {
	if a.IsNull(i) {
		return "__HIVE_DEFAULT_PARTITION__"
	}
	switch a := a.(type) {
	case *array.Int64:
		return strconv.FormatInt(a.Value(i), 10)
	case *array.Float64:
		return strconv.FormatFloat(a.Value(i), 'g', -1, 64)
	case *array.Boolean:
		return strconv.FormatBool(a.Value(i))
	case *array.String:
		return a.Value(i)
	case *array.Timestamp:
		return formatTimestamp(a, i)
	}
	return a.ValueStr(i)
}

func formatTimestamp(a *array.Timestamp, i int) string {
	unit := a.DataType().(*arrow.TimestampType).Unit
	return a.Value(i).ToTime(unit).UTC().Format(time.RFC3339Nano)
}

// escapePartition escapes what a path segment cannot hold, as Hive does
// (%XX).
func escapePartition(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || strings.IndexByte("\"#%'*/:=?\\{[]^", c) >= 0 {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return b.String()
}

// appendValue appends row i of a to b.
func appendValue(b array.Builder, a arrow.Array, i int) error {
	if a.IsNull(i) {
		b.AppendNull()
		return nil
	}
	switch a := a.(type) {
	case *array.Int64:
		b.(*array.Int64Builder).Append(a.Value(i))
	case *array.Float64:
		b.(*array.Float64Builder).Append(a.Value(i))
	case *array.Boolean:
		b.(*array.BooleanBuilder).Append(a.Value(i))
	case *array.String:
		b.(*array.StringBuilder).Append(a.Value(i))
	case *array.Timestamp:
		b.(*array.TimestampBuilder).Append(a.Value(i))
	default:
		return b.AppendValueFromString(a.ValueStr(i))
	}
	return nil
}

// csvWriter writes RFC 4180 CSV. Nulls are empty fields; a string that
// would read back as something else — empty, a null word, or holding a
// delimiter, quote or newline — is quoted. Floats are written exactly
// (shortest round-trip form; NaN, +Inf, -Inf), timestamps as RFC 3339
// in UTC.
type csvWriter struct {
	w      *bufio.Writer
	delim  byte
	schema *arrow.Schema
	line   []byte
	nulls  nullSet
}

func newCSVWriter(w io.Writer, schema *arrow.Schema, opts WriteOptions) (*csvWriter, error) {
	d := opts.Delimiter
	if d == 0 {
		d = ','
	}
	if d > 127 || d == '"' || d == '\n' || d == '\r' {
		return nil, fmt.Errorf("delimiter %q: must be an ASCII character, not a quote or newline", d)
	}
	c := &csvWriter{w: bufio.NewWriterSize(w, 1<<20), delim: byte(d), schema: schema, nulls: newNullSet(nil)}
	if !opts.NoHeader {
		for i, f := range schema.Fields() {
			if i > 0 {
				c.line = append(c.line, c.delim)
			}
			c.line = c.appendString(c.line, f.Name)
		}
		c.line = append(c.line, '\n')
		if _, err := c.w.Write(c.line); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *csvWriter) appendString(dst []byte, s string) []byte {
	if s != "" && !c.nulls.is([]byte(s)) && strings.IndexByte(s, c.delim) < 0 && strings.IndexAny(s, "\"\r\n") < 0 {
		return append(dst, s...)
	}
	dst = append(dst, '"')
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			break
		}
		dst = append(append(dst, s[:i+1]...), '"')
		s = s[i+1:]
	}
	return append(append(dst, s...), '"')
}

func (c *csvWriter) write(rec arrow.RecordBatch) error {
	cols := rec.Columns()
	for i := 0; i < int(rec.NumRows()); i++ {
		line := c.line[:0]
		for j, col := range cols {
			if j > 0 {
				line = append(line, c.delim)
			}
			if col.IsNull(i) {
				continue
			}
			switch a := col.(type) {
			case *array.Int64:
				line = strconv.AppendInt(line, a.Value(i), 10)
			case *array.Float64:
				v := a.Value(i)
				if math.IsInf(v, 1) {
					line = append(line, "+Inf"...)
				} else {
					line = strconv.AppendFloat(line, v, 'g', -1, 64)
				}
			case *array.Boolean:
				line = strconv.AppendBool(line, a.Value(i))
			case *array.String:
				line = c.appendString(line, a.Value(i))
			case *array.Timestamp:
				line = append(line, formatTimestamp(a, i)...)
			default:
				line = c.appendString(line, col.ValueStr(i))
			}
		}
		line = append(line, '\n')
		c.line = line
		if _, err := c.w.Write(line); err != nil {
			return err
		}
	}
	return nil
}

func (c *csvWriter) flush() error { return c.w.Flush() }

// NewBatchReader reads batches already in memory (it takes their
// references: each is released once read or at Close).
func NewBatchReader(schema *arrow.Schema, batches ...arrow.RecordBatch) Reader {
	return &batchReader{schema: schema, batches: batches}
}

type batchReader struct {
	schema  *arrow.Schema
	batches []arrow.RecordBatch
}

func (b *batchReader) Schema() *arrow.Schema { return b.schema }

func (b *batchReader) Next(ctx context.Context) (arrow.RecordBatch, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(b.batches) == 0 {
		return nil, io.EOF
	}
	rec := b.batches[0]
	b.batches = b.batches[1:]
	if !rec.Schema().Equal(b.schema) {
		rec.Release()
		return nil, errors.New("a batch of another schema")
	}
	return rec, nil
}

func (b *batchReader) Close() error {
	for _, r := range b.batches {
		r.Release()
	}
	b.batches = nil
	return nil
}
