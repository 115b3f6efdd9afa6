package table

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

// write puts a file in dir and returns its path.
func write(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// rowsOf reads everything r yields as rows of text: ValueStr per column,
// "∅" for a null.
func rowsOf(t testing.TB, r Reader) []string {
	t.Helper()
	rows, err := drain(r)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func drain(r Reader) ([]string, error) {
	var rows []string
	for {
		rec, err := r.Next(context.Background())
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return rows, err
		}
		if !rec.Schema().Equal(r.Schema()) {
			rec.Release()
			return rows, errors.New("batch schema differs from the reader's: " + rec.Schema().String())
		}
		if err := validate(rec); err != nil {
			rec.Release()
			return rows, err
		}
		rows = append(rows, render(rec)...)
		rec.Release()
	}
}

func validate(rec arrow.RecordBatch) error {
	for _, c := range rec.Columns() {
		if int64(c.Len()) != rec.NumRows() {
			return errors.New("a column's length differs from the batch's")
		}
	}
	return nil
}

func render(rec arrow.RecordBatch) []string {
	out := make([]string, rec.NumRows())
	for i := range out {
		var b strings.Builder
		for j, c := range rec.Columns() {
			if j > 0 {
				b.WriteString("|")
			}
			if c.IsNull(i) {
				b.WriteString("∅")
			} else {
				b.WriteString(c.ValueStr(i))
			}
		}
		out[i] = b.String()
	}
	return out
}

// open opens url and reads it all.
func readURL(t testing.TB, url string, opts Options) (*arrow.Schema, []string) {
	t.Helper()
	r, err := Open(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return r.Schema(), rowsOf(t, r)
}

// readErr opens url and reads until the error, which it returns.
func readErr(t testing.TB, url string, opts Options) error {
	t.Helper()
	r, err := Open(context.Background(), url, opts)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = drain(r)
	if err == nil {
		t.Fatalf("%s: read without an error", url)
	}
	return err
}

func wantErr(t testing.TB, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one with %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q\nlacks %q", err, p)
		}
	}
}

// types is the schema as "name:type" words.
func types(s *arrow.Schema) string {
	var w []string
	for _, f := range s.Fields() {
		w = append(w, f.Name+":"+TypeName(f.Type))
	}
	return strings.Join(w, " ")
}

func eq(t testing.TB, what string, got, want any) {
	t.Helper()
	if gs, ok := got.([]string); ok {
		ws := want.([]string)
		if strings.Join(gs, "\n") != strings.Join(ws, "\n") {
			t.Fatalf("%s:\ngot  %q\nwant %q", what, gs, ws)
		}
		return
	}
	if got != want {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}
