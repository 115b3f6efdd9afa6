package transfer

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Progress follows a transfer's progress: bytes and files done, the
// rate and the time left. It draws them on a terminal (redrawn in place a
// few times a second) or as lines in a log, and hands snapshots to a
// Report function (a job's progress file). The zero value draws nothing.
// Safe for concurrent use.
type Progress struct {
	w     io.Writer // nil: nothing drawn
	every time.Duration
	lines bool // a line per report (logs), not a line redrawn (terminals)

	report      func(Stats)
	reportEvery time.Duration

	files, total           int64
	bytes, doneFiles, fail atomic.Int64
	start                  time.Time
	stop                   chan struct{}
	wg                     sync.WaitGroup
	// writing: one write to the terminal at a time, the progress line's
	// or a note's (see Notes), so that neither cuts into the other.
	writing sync.Mutex
}

// Stats is a snapshot of a transfer's progress.
type Stats struct {
	Files       int64 // to copy
	FilesDone   int64
	FilesFailed int64
	Total       int64 // bytes to copy
	// Bytes moved so far; a retried file counts again, so it may pass Total.
	Bytes   int64
	Elapsed time.Duration
	Rate    float64       // bytes per second since the start
	ETA     time.Duration // 0: not known
	// Final: the copying is over (the snapshot Done takes).
	Final bool
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

// Report has fn called with a snapshot when the copying starts, every
// interval while it runs, and once more, Final, at Done. fn runs on the
// progress's own goroutine and should not take long. Call it before
// Start; a later call replaces fn.
func (p *Progress) Report(every time.Duration, fn func(Stats)) {
	p.report, p.reportEvery = fn, every
}

// Start begins drawing for files files of total bytes.
func (p *Progress) Start(files int, total int64) {
	p.files, p.total, p.start = int64(files), total, time.Now()
	p.stop = make(chan struct{})
	var draw, report *time.Ticker
	if p.w != nil {
		draw = time.NewTicker(p.every)
	}
	if p.report != nil {
		report = time.NewTicker(p.reportEvery)
		p.report(p.Stats())
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			select {
			case <-p.stop:
				if draw != nil {
					draw.Stop()
					p.draw(true)
				}
				if report != nil {
					report.Stop()
					s := p.Stats()
					s.Final = true
					p.report(s)
				}
				return
			case <-tickerC(draw):
				p.draw(false)
			case <-tickerC(report):
				p.report(p.Stats())
			}
		}
	}()
}

// tickerC is t's channel; nil (never ready) without a ticker.
func tickerC(t *time.Ticker) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

// Add counts bytes moved.
func (p *Progress) Add(n int64) { p.bytes.Add(n) }

// FileDone and FileFailed count files.
func (p *Progress) FileDone()   { p.doneFiles.Add(1) }
func (p *Progress) FileFailed() { p.fail.Add(1) }

// Done draws the last line, makes the last report, and stops.
func (p *Progress) Done() {
	if p.stop == nil {
		return
	}
	close(p.stop)
	p.wg.Wait()
}

// Stats is the progress now.
func (p *Progress) Stats() Stats {
	s := Stats{Files: p.files, FilesDone: p.doneFiles.Load(), FilesFailed: p.fail.Load(),
		Total: p.total, Bytes: p.bytes.Load(), Elapsed: time.Since(p.start)}
	if el := s.Elapsed.Seconds(); el > 0 {
		s.Rate = float64(s.Bytes) / el
	}
	if s.Rate > 0 && s.Total > s.Bytes {
		s.ETA = time.Duration(float64(s.Total-s.Bytes) / s.Rate * float64(time.Second))
	}
	return s
}

func (p *Progress) draw(last bool) {
	s := p.Stats()
	eta := "-"
	if s.ETA > 0 {
		eta = s.ETA.Round(time.Second).String()
	}
	pct := 100.0
	if s.Total > 0 {
		// Retries count their bytes again: never past 100 %.
		pct = min(100, 100*float64(s.Bytes)/float64(s.Total))
	}
	bar := strings.Repeat("#", int(pct/5)) + strings.Repeat(".", 20-int(pct/5))
	line := fmt.Sprintf("[%s] %5.1f%%  %s / %s  %s/s  ETA %s  files %d/%d", bar, pct, Bytes(s.Bytes), Bytes(s.Total),
		Bytes(int64(s.Rate)), eta, s.FilesDone, s.Files)
	if s.FilesFailed > 0 {
		line += fmt.Sprintf("  failed %d", s.FilesFailed)
	}
	p.writing.Lock()
	defer p.writing.Unlock()
	if p.lines {
		fmt.Fprintln(p.w, time.Now().UTC().Format(time.TimeOnly), line)
		return
	}
	fmt.Fprint(p.w, "\r"+line+"\x1b[K")
	if last {
		fmt.Fprintln(p.w)
	}
}

// Notes returns a writer for messages (a transfer's warnings) to w, the
// writer p draws on: each write goes whole, and on a terminal on a line
// of its own in place of the progress line, which the next redraw puts
// back below it.
func (p *Progress) Notes(w io.Writer) io.Writer { return noteWriter{p: p, w: w} }

type noteWriter struct {
	p *Progress
	w io.Writer
}

func (n noteWriter) Write(b []byte) (int, error) {
	n.p.writing.Lock()
	defer n.p.writing.Unlock()
	if n.p.w != nil && !n.p.lines {
		io.WriteString(n.w, "\r\x1b[K")
	}
	return n.w.Write(b)
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
