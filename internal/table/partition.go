package table

import (
	"context"
	"fmt"
)

// Partition is a part of a table a job reads on its own: it carries the
// table's Spec (so that every partition reads the same columns and
// types) and its pieces — whole files, row groups of a Parquet file, or
// byte ranges of an uncompressed CSV or JSON Lines file. It is plain
// JSON.
type Partition struct {
	Index  int     `json:"index"`
	Spec   Spec    `json:"spec"`
	Pieces []Piece `json:"pieces"`
	// Bytes is about how much of the input the partition reads.
	Bytes int64 `json:"bytes"`
}

// Piece is a file of a partition, or a part of one.
type Piece struct {
	// URL opens the file alone: a local path or s3://bucket/key?query.
	URL string `json:"url"`
	// Start and End: the records starting in bytes [Start, End) of the
	// file. End 0 is the whole file.
	Start int64 `json:"start,omitempty"`
	End   int64 `json:"end,omitempty"`
	// RowGroups of a Parquet file (0-based); nil is all of them.
	RowGroups []int `json:"row_groups,omitempty"`
}

// Split cuts a table (as Open takes it) into about n partitions of
// similar size (n <= 0: one per opts.PartitionBytes, 128 MiB by
// default). The schema is inferred once, from the start of the first
// file, and carried in every partition. The units cut are files,
// Parquet row groups, and byte ranges of uncompressed CSV and JSON
// Lines files; a compressed file (or a Parquet file of one row group)
// is never cut, so there may be fewer than n partitions. The
// partitions together read every row once, in order.
//
// A byte range [Start, End) holds the records that start in it: a
// reader starting inside a file skips to the first record starting at
// or after Start (after the first newline at or after Start-1) and reads
// on past End to finish the record that straddles it. That "record
// start" is found without knowing whether the newline is inside a
// quoted field (which would need the file read from its start), so:
// CSV files whose inferred sample had a quoted field spanning lines
// (Spec.QuotedNewlines) are not cut by bytes but read whole; a quoted
// newline later in a file that is cut may end in a parse error (which
// says so), not in wrong rows. JSON Lines cannot hold raw newlines in
// values: their ranges are exact.
func Split(ctx context.Context, url string, opts Options, n int) ([]Partition, error) {
	src, err := listSource(ctx, url, &opts)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	spec, err := specFor(ctx, src.files[0], &opts)
	if err != nil {
		return nil, err
	}
	type unit struct {
		f      *file
		size   int64
		group  int // a Parquet row group, or -1
		ranges bool
	}
	var units []unit
	var total int64
	for _, f := range src.files {
		f.format = spec.Format
		u := unit{f: f, size: max(f.size, 1), group: -1}
		switch {
		case spec.Format == FormatParquet:
			p, err := openParquet(ctx, f, &opts)
			if err != nil {
				return nil, err
			}
			if err := sameColumns(p.cols, spec, f.name); err != nil {
				p.Close()
				return nil, err
			}
			md := p.pf.MetaData()
			if g := md.NumRowGroups(); g > 1 {
				for i := 0; i < g; i++ {
					rg := md.RowGroup(i)
					size := rg.TotalCompressedSize()
					if size <= 0 {
						size = rg.TotalByteSize()
					}
					units = append(units, unit{f: f, size: max(size, 1), group: i})
					total += max(size, 1)
				}
				p.Close()
				continue
			}
			p.Close()
		case f.comp == compNone && !(spec.Format == FormatCSV && spec.QuotedNewlines):
			u.ranges = true
		}
		units = append(units, u)
		total += u.size
	}
	if n <= 0 {
		per := opts.PartitionBytes
		if per <= 0 {
			per = DefaultPartitionBytes
		}
		n = int((total + per - 1) / per)
	}
	n = max(n, 1)
	// Partition k holds the bytes [bound(k), bound(k+1)) of the input taken
	// as one sequence; an uncut unit goes where its middle is.
	bound := func(k int) int64 { return int64(float64(total) * float64(k) / float64(n)) }
	parts := make([]Partition, n)
	add := func(k int, p Piece, size int64) {
		part := &parts[k]
		part.Bytes += size
		if last := len(part.Pieces) - 1; last >= 0 && part.Pieces[last].URL == p.URL {
			prev := &part.Pieces[last]
			switch {
			case p.RowGroups != nil && prev.RowGroups != nil:
				prev.RowGroups = append(prev.RowGroups, p.RowGroups...)
				return
			case p.End > 0 && prev.End == p.Start:
				prev.End = p.End
				return
			}
		}
		part.Pieces = append(part.Pieces, p)
	}
	var cum int64
	k := 0
	for _, u := range units {
		if !u.ranges {
			mid := cum + u.size/2
			for k < n-1 && bound(k+1) <= mid {
				k++
			}
			p := Piece{URL: u.f.url}
			if u.group >= 0 {
				p.RowGroups = []int{u.group}
			}
			add(k, p, u.size)
			cum += u.size
			continue
		}
		for s := cum; s < cum+u.size; {
			for k < n-1 && bound(k+1) <= s {
				k++
			}
			e := cum + u.size
			if k < n-1 {
				e = min(e, bound(k+1))
			}
			p := Piece{URL: u.f.url, Start: s - cum, End: e - cum}
			if p.Start == 0 && e == cum+u.size {
				p.End = 0 // the whole file
			}
			add(k, p, e-s)
			s = e
		}
		cum += u.size
	}
	out := parts[:0]
	for _, p := range parts {
		if len(p.Pieces) > 0 {
			p.Index = len(out)
			p.Spec = *spec
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: nothing to read", url)
	}
	return out, nil
}

// OpenPartition reads one partition, as Split made it. Its Spec fixes
// the format, columns and parse settings; of opts only BatchRows,
// MaxRecordBytes and Allocator count.
func OpenPartition(ctx context.Context, p Partition, opts Options) (Reader, error) {
	spec := p.Spec
	if err := spec.check(); err != nil {
		return nil, fmt.Errorf("partition %d: %w", p.Index, err)
	}
	op := &opener{}
	pieces := make([]piece, len(p.Pieces))
	for i, pc := range p.Pieces {
		f, err := op.file(ctx, pc.URL, spec.Format)
		if err != nil {
			op.Close()
			return nil, err
		}
		if pc.Start < 0 || pc.End < 0 || pc.End > 0 && pc.End <= pc.Start {
			op.Close()
			return nil, fmt.Errorf("partition %d: %s: bad byte range [%d, %d)", p.Index, f.name, pc.Start, pc.End)
		}
		if pc.RowGroups != nil && spec.Format != FormatParquet {
			op.Close()
			return nil, fmt.Errorf("partition %d: %s: row groups of a %s file", p.Index, f.name, spec.Format)
		}
		pieces[i] = piece{f: f, start: pc.Start, end: pc.End, groups: pc.RowGroups}
	}
	r, err := newMultiReader(ctx, &spec, pieces, opts, op.Close)
	if err != nil {
		op.Close()
		return nil, err
	}
	return r, nil
}
