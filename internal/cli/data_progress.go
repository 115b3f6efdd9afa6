package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/transfer"
)

// jobProgressEvery is how often a transfer running as a job reports its
// progress to the server (HPCML_PROGRESS_FILE): often enough for a live
// bar, rarely enough to cost nothing beside the copying.
const jobProgressEvery = time.Second

// reportToJob makes a transfer running as a job write its progress to
// the file path (the job's HPCML_PROGRESS_FILE), where `job get` and the
// dashboard read it: at once (listing), every second while copying, and
// when the copying is over. A write that fails is said once on errw and
// does not stop the transfer.
func (f *transferFlags) reportToJob(path string, errw io.Writer) {
	if path == "" {
		return
	}
	if f.opts.Progress == nil {
		f.opts.Progress = new(transfer.Progress) // reports, draws nothing
	}
	warned := false
	write := func(p *job.Progress) {
		if err := job.WriteProgressFile(path, p); err != nil && !warned {
			warned = true
			fmt.Fprintf(errw, "warning: progress not reported to the server: %v\n", err)
		}
	}
	write(&job.Progress{Unit: job.UnitBytes, Message: "listing source and destination"})
	verify, del := f.opts.Verify, f.opts.Delete
	f.opts.Progress.Report(jobProgressEvery, func(s transfer.Stats) {
		write(jobProgress(s, verify, del))
	})
}

// jobProgress is a transfer's snapshot as a job's progress report.
func jobProgress(s transfer.Stats, verify string, del bool) *job.Progress {
	p := &job.Progress{
		Done: float64(s.Bytes), Total: float64(s.Total), Unit: job.UnitBytes,
		FilesDone: s.FilesDone, FilesTotal: s.Files,
		Rate: s.Rate, ETASeconds: s.ETA.Seconds(),
	}
	if s.Total > 0 {
		p.Done = float64(min(s.Bytes, s.Total)) // retries count their bytes again
	}
	var msg []string
	switch {
	case s.Files == 0:
		msg = append(msg, "nothing to copy")
	case s.Final:
		msg = append(msg, fmt.Sprintf("copied %d of %d files", s.FilesDone, s.Files))
	default:
		msg = append(msg, "copying")
	}
	if s.FilesFailed > 0 {
		msg = append(msg, fmt.Sprintf("%d failed", s.FilesFailed))
	}
	if s.Final {
		p.Rate, p.ETASeconds = 0, 0
		if del {
			msg = append(msg, "deleting")
		}
		if verify != "" && verify != transfer.VerifyNone {
			msg = append(msg, "verifying")
		}
	}
	p.Message = strings.Join(msg, "; ")
	return p
}
