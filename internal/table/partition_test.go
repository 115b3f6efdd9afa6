package table

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// readParts splits url into n partitions, sends each through JSON (as a
// job would get it) and reads them in order.
func readParts(t *testing.T, url string, opts Options, n int) ([]Partition, []string) {
	t.Helper()
	parts, err := Split(context.Background(), url, opts, n)
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for i, p := range parts {
		if p.Index != i {
			t.Fatalf("partition %d has index %d", i, p.Index)
		}
		js, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var q Partition
		if err := json.Unmarshal(js, &q); err != nil {
			t.Fatal(err)
		}
		r, err := OpenPartition(context.Background(), q, Options{BatchRows: 7})
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, rowsOf(t, r)...)
		r.Close()
	}
	return parts, rows
}

// csvWithQuotes is a CSV with quoted delimiters, doubled quotes, nulls
// and fields of every length, so that cuts fall everywhere.
func csvWithQuotes(rows int, crlf bool) string {
	rng := rand.New(rand.NewPCG(3, 4))
	eol := "\n"
	if crlf {
		eol = "\r\n"
	}
	var b strings.Builder
	b.WriteString("id,name,x" + eol)
	for i := 0; i < rows; i++ {
		name := strings.Repeat("ab", rng.IntN(6))
		switch rng.IntN(4) {
		case 0:
			name = `"` + name + `, ""q"""`
		case 1:
			name = `"` + name + `"`
		}
		x := fmt.Sprint(rng.Float64())
		if rng.IntN(5) == 0 {
			x = ""
		}
		fmt.Fprintf(&b, "%d,%s,%s%s", i, name, x, eol)
	}
	return b.String()
}

func TestSplitCSVByteRanges(t *testing.T) {
	dir := t.TempDir()
	for _, crlf := range []bool{false, true} {
		p := write(t, dir, fmt.Sprintf("q%v.csv", crlf), csvWithQuotes(500, crlf))
		_, whole := readURL(t, p, Options{})
		if len(whole) != 500 {
			t.Fatalf("%d rows", len(whole))
		}
		for n := 1; n <= 40; n += 3 {
			parts, rows := readParts(t, p, Options{}, n)
			if n > 1 && len(parts) != n {
				t.Fatalf("n=%d: %d partitions", n, len(parts))
			}
			eq(t, fmt.Sprintf("crlf=%v n=%d", crlf, n), rows, whole)
		}
		// Every cut: partitions of one byte each, around the header too.
		small := write(t, dir, "small.csv", csvWithQuotes(40, crlf))
		_, want := readURL(t, small, Options{})
		_, rows := readParts(t, small, Options{}, int(mustSize(t, small)))
		eq(t, "one byte each", rows, want)
	}
}

func mustSize(t *testing.T, p string) int64 {
	info, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

func TestSplitQuotedNewlines(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("id,text\n")
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&b, "%d,\"line one\nline, two %d\"\n", i, i)
	}
	p := write(t, dir, "nl.csv", b.String())
	_, whole := readURL(t, p, Options{})
	parts, rows := readParts(t, p, Options{}, 8)
	eq(t, "rows", rows, whole)
	if len(parts) != 1 || parts[0].Pieces[0].End != 0 || !parts[0].Spec.QuotedNewlines {
		t.Fatalf("a file with quoted newlines was cut: %+v", parts)
	}
	// Newlines in quotes after the sample: the cut file's partitions fail
	// with a message rather than read wrong rows.
	var c strings.Builder
	c.WriteString("id,text\n")
	for i := 0; i < 400; i++ {
		if i < 200 {
			fmt.Fprintf(&c, "%d,plain%d\n", i, i)
		} else {
			fmt.Fprintf(&c, "%d,\"a,\nb%d\"\n", i, i)
		}
	}
	p = write(t, dir, "late.csv", c.String())
	parts, err := Split(context.Background(), p, Options{SampleRows: 100}, 4)
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, part := range parts {
		r, err := OpenPartition(context.Background(), part, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := drain(r); err != nil {
			failed++
			wantErr(t, err, "late.csv:line ", "this partition starts inside the file")
		}
		r.Close()
	}
	if failed == 0 {
		t.Fatal("no partition noticed the quoted newlines")
	}
}

func TestSplitMultiFile(t *testing.T) {
	dir := t.TempDir()
	var whole []string
	for f := 0; f < 5; f++ {
		var b strings.Builder
		b.WriteString("k,v\n")
		for i := 0; i < 50*(f+1); i++ {
			fmt.Fprintf(&b, "%d,%d\n", f, i)
			whole = append(whole, fmt.Sprintf("%d|%d", f, i))
		}
		name := fmt.Sprintf("data/part-%d.csv", f)
		if f == 2 {
			var z bytes.Buffer
			w := gzip.NewWriter(&z)
			w.Write([]byte(b.String()))
			w.Close()
			name += ".gz"
			write(t, dir, name, z.String())
			continue
		}
		write(t, dir, name, b.String())
	}
	write(t, dir, "data/_SUCCESS", "")
	write(t, dir, "data/.part-0.csv.crc", "xx")
	write(t, dir, "data/README.md", "not data")
	write(t, dir, "data/empty.csv", "")
	_, rows := readURL(t, filepath.Join(dir, "data"), Options{})
	eq(t, "whole prefix", rows, whole)
	for _, n := range []int{1, 2, 3, 7, 20} {
		parts, rows := readParts(t, filepath.Join(dir, "data")+"/", Options{}, n)
		eq(t, fmt.Sprintf("n=%d", n), rows, whole)
		for _, p := range parts {
			for _, pc := range p.Pieces {
				if strings.HasSuffix(pc.URL, ".gz") && (pc.Start != 0 || pc.End != 0) {
					t.Fatalf("a gzip file was cut: %+v", pc)
				}
			}
		}
	}
	// Automatic: one partition per PartitionBytes.
	parts, err := Split(context.Background(), filepath.Join(dir, "data"), Options{PartitionBytes: 1000}, 0)
	if err != nil || len(parts) < 3 {
		t.Fatalf("%d partitions, %v", len(parts), err)
	}
	// A file of other columns, named with the first.
	write(t, dir, "data/part-9.csv", "k,w\n1,2\n")
	err = readErr(t, filepath.Join(dir, "data"), Options{})
	wantErr(t, err, "part-9.csv:line 1: column 2 is \"w\" here but \"v\" in ", "part-0.csv")
	write(t, dir, "data/part-9.csv", "k,v,w\n1,2,3\n")
	wantErr(t, readErr(t, filepath.Join(dir, "data"), Options{}), "part-9.csv:line 1: the header has 3 columns but ")
	// Mixed formats.
	os.Remove(filepath.Join(dir, "data/part-9.csv"))
	write(t, dir, "data/x.jsonl", "{}\n")
	_, err = Open(context.Background(), filepath.Join(dir, "data"), Options{})
	wantErr(t, err, "is csv but ", "x.jsonl is jsonl: a table's files are of one format")
}

func TestSplitJSONL(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&b, "{\"i\": %d, \"s\": \"a\\nb %d\", \"f\": %d.5}\n", i, i, i)
		if i%50 == 0 {
			b.WriteString("\n")
		}
	}
	p := write(t, dir, "d.ndjson", b.String())
	_, whole := readURL(t, p, Options{})
	if len(whole) != 300 {
		t.Fatalf("%d rows", len(whole))
	}
	for _, n := range []int{2, 5, 33, 1000} {
		_, rows := readParts(t, p, Options{}, n)
		eq(t, fmt.Sprintf("n=%d", n), rows, whole)
	}
}

func TestPartitionErrorLines(t *testing.T) {
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("a,b\n")
	for i := 0; i < 1000; i++ {
		if i == 900 {
			b.WriteString("x,1\n") // line 902
			continue
		}
		fmt.Fprintf(&b, "%d,%d\n", i, i)
	}
	p := write(t, dir, "e.csv", b.String())
	parts, err := Split(context.Background(), p, Options{SampleRows: 100}, 4)
	if err != nil {
		t.Fatal(err)
	}
	r, err := OpenPartition(context.Background(), parts[3], Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = drain(r)
	wantErr(t, err, "e.csv:line 902, column \"a\": \"x\" is not an int64")
}

// A byte order mark belongs to the first record, wherever the cuts are.
func TestSplitByteOrderMark(t *testing.T) {
	dir := t.TempDir()
	for _, opts := range []Options{{NoHeader: true}, {}} {
		p := write(t, dir, "b.csv", "\xef\xbb\xbfa,b\n1,2\n3,4\n")
		_, whole := readURL(t, p, opts)
		for n := 1; n <= 20; n++ {
			_, got := readParts(t, p, opts, n)
			eq(t, fmt.Sprint(n), got, whole)
		}
	}
}
