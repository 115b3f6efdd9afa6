package transfer

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
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

// TestProgressRateAndETA: a line drawn mid-transfer gives the rate since
// the start and the time left at that rate.
func TestProgressRateAndETA(t *testing.T) {
	var buf strings.Builder
	p := NewProgress(&buf)
	// As Start sets them, without its drawing goroutine: 1 MiB in 2 s.
	p.files, p.total, p.start = 4, 4<<20, time.Now().Add(-2*time.Second)
	p.Add(1 << 20)
	p.FileDone()
	p.draw(false)
	out := buf.String()
	line := out[strings.LastIndex(out, "\r")+1:]
	for _, want := range []string{"25.0%", "1.0 MiB / 4.0 MiB", "512.0 KiB/s", "ETA 6s", "files 1/4"} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
}

// TestProgressNotes: a warning printed while the progress line is drawn
// on a terminal clears that line and takes one of its own; in log mode
// and without a drawn line it goes as written.
func TestProgressNotes(t *testing.T) {
	var term bytes.Buffer
	p := NewProgress(&term)
	p.Start(2, 10)
	fmt.Fprint(p.Notes(&term), "WARN retrying\n")
	p.Done()
	out := term.String()
	if !strings.Contains(out, "\r\x1b[KWARN retrying\n") {
		t.Fatalf("terminal: %q: want the warning on a cleared line", out)
	}
	var logs bytes.Buffer
	if fmt.Fprint(NewProgressLines(&logs, time.Hour).Notes(&logs), "WARN x\n"); logs.String() != "WARN x\n" {
		t.Fatalf("log lines: %q", logs.String())
	}
	var plain bytes.Buffer
	if fmt.Fprint(new(Progress).Notes(&plain), "WARN y\n"); plain.String() != "WARN y\n" {
		t.Fatalf("nothing drawn: %q", plain.String())
	}
}
