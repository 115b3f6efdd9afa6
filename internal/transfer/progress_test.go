package transfer

import (
	"strings"
	"testing"
)

func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{10 << 20, "10.0 MiB"},
		{3 << 30, "3.0 GiB"},
		{5 << 40, "5.0 TiB"},
	} {
		if got := Bytes(tc.n); got != tc.want {
			t.Errorf("Bytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestProgressLastLine(t *testing.T) {
	var buf strings.Builder
	p := NewProgress(&buf)
	p.Done() // before Start: nothing to stop
	p.Start(3, 3<<20)
	for range 3 {
		p.Add(1 << 20)
	}
	p.FileDone()
	p.FileDone()
	p.FileFailed()
	p.Done()
	out := buf.String()
	last := out[strings.LastIndex(out, "\r")+1:]
	for _, want := range []string{"[####################]", "100.0%", "3.0 MiB / 3.0 MiB", "files 2/3", "failed 1"} {
		if !strings.Contains(last, want) {
			t.Errorf("last line %q lacks %q", last, want)
		}
	}
	if !strings.HasSuffix(out, "\n") {
		t.Errorf("the last line should end the output: %q", out)
	}
}

// A sync with nothing to copy still ends its line cleanly.
func TestProgressEmpty(t *testing.T) {
	var buf strings.Builder
	p := NewProgress(&buf)
	p.Start(0, 0)
	p.Done()
	if !strings.Contains(buf.String(), "100.0%") || !strings.Contains(buf.String(), "files 0/0") {
		t.Errorf("%q", buf.String())
	}
}
