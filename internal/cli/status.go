package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/mattn/go-isatty"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
)

// isTerminal reports whether w is a terminal; only then does the CLI draw
// a status line, so pipes and CI logs get plain output.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// Long-poll lengths while waiting: short when a status line shows the
// state (so it is at most this stale), long otherwise (fewer requests).
const (
	statusPoll = time.Second
	quietPoll  = client.DefaultWaitPoll
)

// waitWithStatus waits for a job to end. When allowed and w is a terminal,
// it keeps a spinner with the job's state on w until then.
func waitWithStatus(ctx context.Context, c *client.Client, id string, w io.Writer, allowed bool, now func() time.Time) (*job.Job, error) {
	if !allowed || !isTerminal(w) {
		return c.WatchJob(ctx, id, quietPoll, nil)
	}
	line := startStatusLine(w, id, now)
	defer line.stop()
	return c.WatchJob(ctx, id, statusPoll, line.update)
}

// statusLine redraws "⠹ job 42 RUNNING 0:12 · attempt 1/3 · 45% · …"
// in place (the progress the job reports, if any).
type statusLine struct {
	w     io.Writer
	id    string
	now   func() time.Time
	begin time.Time

	mu  sync.Mutex
	job *job.Job

	done chan struct{}
	wg   sync.WaitGroup
}

const spinnerFrames = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

func startStatusLine(w io.Writer, id string, now func() time.Time) *statusLine {
	s := &statusLine{w: w, id: id, now: now, begin: now(), done: make(chan struct{})}
	s.wg.Add(1)
	go s.loop()
	return s
}

func (s *statusLine) update(j *job.Job) {
	s.mu.Lock()
	s.job = j
	s.mu.Unlock()
}

func (s *statusLine) loop() {
	defer s.wg.Done()
	frames := []rune(spinnerFrames)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for frame := 0; ; frame++ {
		// \r and "erase to end of line" redraw without scrolling.
		fmt.Fprintf(s.w, "\r\x1b[K%c %s", frames[frame%len(frames)], s.text())
		select {
		case <-s.done:
			fmt.Fprint(s.w, "\r\x1b[K")
			return
		case <-t.C:
		}
	}
}

func (s *statusLine) text() string {
	s.mu.Lock()
	j := s.job
	s.mu.Unlock()
	now := s.now()
	if j == nil {
		return fmt.Sprintf("job %s: waiting %s", s.id, clock(now.Sub(s.begin)))
	}
	txt := fmt.Sprintf("job %s %s", s.id, j.State)
	switch {
	case j.IsArrayParent() && len(j.ArrayCounts) > 0:
		txt += " · " + countsText(j.ArrayCounts, false)
	case j.StartedAt != nil:
		txt += " " + elapsed(now, j.StartedAt, j.EndedAt)
	default:
		txt += " " + clock(now.Sub(j.SubmittedAt))
	}
	if a := attemptText(j); a != "-" && j.Spec.Retry.Attempts > 1 {
		txt += " · attempt " + a
	}
	if p := progressText(now, j.Progress); p != "" {
		txt += " · " + truncate(p, 70)
	}
	if j.Reason != "" {
		txt += " · " + truncate(j.Reason, 50)
	}
	return txt
}

func (s *statusLine) stop() {
	close(s.done)
	s.wg.Wait()
}
