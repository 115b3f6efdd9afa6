package batchtransform

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/table"
)

// maxLine bounds one line (or CSV record) of the input, as the table
// readers do: an unterminated quote must not read a whole file.
const maxLine = table.DefaultMaxRecordBytes

// firstRecord is what the planner learns from the input's first record.
type firstRecord struct {
	file    string
	array   bool           // JSON lines are arrays: the array is the sample
	volume  int            // numbers in the first array
	columns []string       // columns or keys, in order
	volumes map[string]int // numbers in each key's value (arrays), 1 for scalars
}

// inferInput reads how the input is to be read: its format and columns.
// CSV files get their delimiter and header inferred (a first line of
// numbers only is data, not a header); the JSON Lines keys come from the
// first object.
func inferInput(ctx context.Context, input string) (*table.Spec, *firstRecord, error) {
	// Read as headerless first: a CSV whose first line is numbers only
	// has no header (SageMaker's inputs mostly have none).
	spec, err := table.Infer(ctx, input, table.Options{SampleRows: 1, NoHeader: true})
	if err != nil || spec.Format != table.FormatCSV || !numericTypes(spec.Columns) {
		spec, err = table.Infer(ctx, input, table.Options{SampleRows: 1})
	}
	if err != nil {
		// JSON lines that are arrays are not a table to the table
		// package, but they are samples: look at the first line.
		first, ferr := firstJSONLine(ctx, input)
		if ferr != nil || !first.array {
			return nil, nil, fmt.Errorf("--input: %w", err)
		}
		return &table.Spec{Format: table.FormatJSONL, Columns: []table.Column{{Name: "value", Type: "string"}}}, first, nil
	}
	if spec.Format == table.FormatJSONL {
		first, err := firstJSONLine(ctx, input)
		if err != nil {
			return nil, nil, fmt.Errorf("--input: %w", err)
		}
		return spec, first, nil
	}
	first := &firstRecord{file: spec.From, volumes: map[string]int{}}
	for _, c := range spec.Columns {
		first.columns = append(first.columns, c.Name)
	}
	return spec, first, nil
}

// numericTypes: every column of the (one-row) sample is a number.
func numericTypes(cols []table.Column) bool {
	for _, c := range cols {
		if c.Type != "int64" && c.Type != "float64" {
			return false
		}
	}
	return len(cols) > 0
}

// firstJSONLine reads the first non-blank line of the input's first file.
func firstJSONLine(ctx context.Context, input string) (*firstRecord, error) {
	dummy := table.Spec{Format: table.FormatJSONL, Columns: []table.Column{{Name: "value", Type: "string"}}}
	parts, err := table.Split(ctx, input, table.Options{Spec: &dummy, PartitionBytes: 1 << 62}, 1)
	if err != nil {
		return nil, err
	}
	url := parts[0].Pieces[0].URL
	in := newInputs()
	defer in.Close()
	r, err := in.open(ctx, url, 0, 0)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		line = bytes.TrimSpace(line)
		if len(line) > 0 {
			return describeJSON(url, line)
		}
		if err == io.EOF {
			return nil, fmt.Errorf("%s: no lines", url)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", url, err)
		}
	}
}

// describeJSON reads a first JSON line's shape: an array, or an object's
// keys in order and the numbers each holds.
func describeJSON(file string, line []byte) (*firstRecord, error) {
	f := &firstRecord{file: file, volumes: map[string]int{}}
	if line[0] == '[' {
		var v any
		if err := json.Unmarshal(line, &v); err != nil {
			return nil, fmt.Errorf("%s:line 1: %w", file, err)
		}
		vals, err := flatten(nil, v)
		if err != nil {
			return nil, fmt.Errorf("%s:line 1: %w", file, err)
		}
		f.array, f.volume = true, len(vals)
		return f, nil
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("%s:line 1: not a JSON object or array", file)
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s:line 1: %w", file, err)
		}
		key, _ := t.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s:line 1: %w", file, err)
		}
		f.columns = append(f.columns, key)
		if vals, err := flatten(nil, v); err == nil && len(vals) > 0 {
			f.volumes[key] = len(vals)
		} else {
			f.volumes[key] = 1
		}
	}
	return f, nil
}

// inputs opens input files by the URL a part carries, sharing buckets.
type inputs struct{ cache *blob.Cache }

func newInputs() *inputs { return &inputs{cache: blob.NewCache()} }

func (in *inputs) Close() error { return in.cache.Close() }

// open reads bytes [off, end) of a file as stored (end 0: to its end),
// decompressed when its name says .gz or .zst (then from its start only).
func (in *inputs) open(ctx context.Context, url string, off, end int64) (io.ReadCloser, error) {
	n := int64(-1)
	if end > 0 {
		n = end - off
	}
	var r io.ReadCloser
	if !strings.Contains(url, "://") {
		f, err := os.Open(url)
		if err != nil {
			return nil, err
		}
		if off > 0 {
			if _, err := f.Seek(off, io.SeekStart); err != nil {
				f.Close()
				return nil, err
			}
		}
		r = f
		if n >= 0 {
			r = readCloser{io.LimitReader(f, n), f}
		}
	} else {
		loc, err := blob.Resolve(url, "")
		if err != nil {
			return nil, err
		}
		b, err := in.cache.Open(ctx, loc.Bucket)
		if err != nil {
			return nil, err
		}
		if r, err = b.NewRangeReader(ctx, loc.Key, off, n, nil); err != nil {
			return nil, fmt.Errorf("%s: %w", blob.Redact(url), err)
		}
	}
	name := urlPath(url)
	if off != 0 && compressed(name) {
		r.Close()
		return nil, fmt.Errorf("%s: a compressed file is read whole", url)
	}
	return table.Decompress(name, r)
}

func compressed(name string) bool {
	n := strings.ToLower(name)
	return strings.HasSuffix(n, ".gz") || strings.HasSuffix(n, ".zst")
}

// pieceFileSize is a file's size, by the URL a part carries.
func pieceFileSize(ctx context.Context, url string) (int64, error) {
	if !strings.Contains(url, "://") {
		st, err := os.Stat(url)
		if err != nil {
			return 0, err
		}
		return st.Size(), nil
	}
	loc, err := blob.Resolve(url, "")
	if err != nil {
		return 0, err
	}
	b, err := blob.Open(ctx, loc.Bucket)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	a, err := b.Attributes(ctx, loc.Key)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", blob.Redact(url), err)
	}
	return a.Size, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}
