package transfer

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Progress shows a transfer's progress on a terminal: bytes and files
// done, the rate and the time left, redrawn in place a few times a
// second. Safe for concurrent use.
type Progress struct {
	w     io.Writer
	every time.Duration
	lines bool // a line per report (logs), not a line redrawn (terminals)

	files, total           int64
	bytes, doneFiles, fail atomic.Int64
	start                  time.Time
	stop                   chan struct{}
	wg                     sync.WaitGroup
}

// NewProgress draws on w (a terminal).
func NewProgress(w io.Writer) *Progress {
	return &Progress{w: w, every: 250 * time.Millisecond}
}

// NewProgressLines writes a progress line to w every interval: for logs
// (a transfer running as a job), where redrawing makes no sense.
func NewProgressLines(w io.Writer, every time.Duration) *Progress {
	return &Progress{w: w, every: every, lines: true}
}

// Start begins drawing for files files of total bytes.
func (p *Progress) Start(files int, total int64) {
	p.files, p.total, p.start = int64(files), total, time.Now()
	p.stop = make(chan struct{})
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(p.every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				p.draw(true)
				return
			case <-t.C:
				p.draw(false)
			}
		}
	}()
}

// Add counts bytes moved.
func (p *Progress) Add(n int64) { p.bytes.Add(n) }

// FileDone and FileFailed count files.
func (p *Progress) FileDone()   { p.doneFiles.Add(1) }
func (p *Progress) FileFailed() { p.fail.Add(1) }

// Done draws the last line and stops.
func (p *Progress) Done() {
	if p.stop == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
}

func (p *Progress) draw(last bool) {
	el := time.Since(p.start).Seconds()
	b := p.bytes.Load()
	rate := 0.0
	if el > 0 {
		rate = float64(b) / el
	}
	eta := "-"
	if rate > 0 && p.total > b {
		eta = time.Duration(float64(p.total-b) / rate * float64(time.Second)).Round(time.Second).String()
	}
	pct := 100.0
	if p.total > 0 {
		// Retries count their bytes again: never past 100 %.
		pct = min(100, 100*float64(b)/float64(p.total))
	}
	bar := strings.Repeat("#", int(pct/5)) + strings.Repeat(".", 20-int(pct/5))
	line := fmt.Sprintf("[%s] %5.1f%%  %s / %s  %s/s  ETA %s  files %d/%d", bar, pct, Bytes(b), Bytes(p.total),
		Bytes(int64(rate)), eta, p.doneFiles.Load(), p.files)
	if f := p.fail.Load(); f > 0 {
		line += fmt.Sprintf("  failed %d", f)
	}
	if p.lines {
		fmt.Fprintln(p.w, time.Now().UTC().Format(time.TimeOnly), line)
		return
	}
	fmt.Fprint(p.w, "\r"+line+"\x1b[K")
	if last {
		fmt.Fprintln(p.w)
	}
}

// progressReader counts bytes read.
type progressReader struct {
	r io.Reader
	p *Progress
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if r.p != nil && n > 0 {
		r.p.Add(int64(n))
	}
	return n, err
}

// Bytes formats a byte count with binary units.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
