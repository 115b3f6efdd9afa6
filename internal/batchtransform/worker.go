package batchtransform

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/hpcml/hpcml/internal/serve"
)

// WorkerOptions say which worker this is and where it reports.
type WorkerOptions struct {
	// Worker (0-based) of Workers: the worker scores the parts whose
	// index is Worker modulo Workers.
	Worker, Workers int
	// Job and Attempt are recorded in every part it scores.
	Job     string
	Attempt int
	// Threads is how many parts the worker scores at once (each with its
	// own parser and renderer; the model is shared): the worker job's
	// CPUs, so that a worker given several uses them. 0 is 1.
	Threads int
	// Progress, if set, is called after every part.
	Progress func(WorkerProgress)
	Log      *slog.Logger
}

// WorkerProgress is how far a worker has come.
type WorkerProgress struct {
	PartsDone, PartsOwned int
	BytesDone, BytesOwned int64
	Records, Failures     int64
}

// WorkerResult is what one attempt of a worker did; the last attempt's
// is stored at _hpcml/workers/NNN.json for the report.
type WorkerResult struct {
	Worker       int     `json:"worker"`
	Job          string  `json:"job,omitempty"`
	Attempt      int     `json:"attempt,omitempty"`
	PartsOwned   int     `json:"parts_owned"`
	PartsScored  int     `json:"parts_scored"`
	PartsSkipped int     `json:"parts_skipped"` // done by an earlier attempt (or run)
	Records      int64   `json:"records"`
	Failures     int64   `json:"failures"`
	Seconds      float64 `json:"seconds"`
}

func partKey(i int) string           { return fmt.Sprintf("%s%06d", partsDir, i) }
func workerKey(w int) string         { return fmt.Sprintf("%s%03d.json", workersDir, w) }
func owns(w, workers, part int) bool { return part%workers == w }

// RunWorker scores the parts of the plan at output that this worker owns
// with the model m, skipping those whose object exists (a rerun after a
// kill). Each part's object — its header line, then its output records —
// is written in one piece once the part is scored.
func RunWorker(ctx context.Context, output string, m serve.Model, o WorkerOptions) (*WorkerResult, error) {
	if o.Workers < 1 || o.Worker < 0 || o.Worker >= o.Workers {
		return nil, fmt.Errorf("worker %d of %d", o.Worker, o.Workers)
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := openOutput(ctx, output)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	p, err := s.plan(ctx)
	if err != nil {
		return nil, err
	}
	threads := max(o.Threads, 1)
	scorers := make([]*scorer, threads)
	for t := range scorers {
		if scorers[t], err = newScorer(p, m); err != nil {
			return nil, fmt.Errorf("model %s:%d: %w", p.Model, p.Version, err)
		}
	}
	in := newInputs()
	defer in.Close()
	start := time.Now()
	res := &WorkerResult{Worker: o.Worker, Job: o.Job, Attempt: o.Attempt}
	prog := WorkerProgress{}
	var owned []Part
	for _, part := range p.Parts {
		if owns(o.Worker, o.Workers, part.Index) {
			owned = append(owned, part)
			prog.PartsOwned++
			prog.BytesOwned += part.Bytes
		}
	}
	res.PartsOwned = prog.PartsOwned
	// The threads take the owned parts in order; res and prog are theirs
	// to update under mu, in the order parts finish.
	var mu sync.Mutex
	next := make(chan Part)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(next)
		for _, part := range owned {
			select {
			case next <- part:
			case <-gctx.Done():
				return nil
			}
		}
		return nil
	})
	for _, sc := range scorers {
		g.Go(func() error {
			defer sc.out.reset()
			for part := range next {
				done, err := s.exists(gctx, partKey(part.Index))
				if err != nil {
					return err
				}
				var hdr *partHeader
				if !done {
					if hdr, err = sc.scorePart(gctx, in, part); err != nil {
						return fmt.Errorf("part %d (%s): %w", part.Index, p.Files[part.File].Name, err)
					}
					hdr.Worker, hdr.Job, hdr.Attempt = o.Worker, o.Job, o.Attempt
					if err := writePart(gctx, s, part.Index, hdr, &sc.out); err != nil {
						return err
					}
					log.Debug("part scored", "part", part.Index, "records", hdr.Records, "failures", hdr.Failures, "seconds", hdr.Seconds)
				}
				mu.Lock()
				if done {
					res.PartsSkipped++
				} else {
					res.PartsScored++
					res.Records += hdr.Records
					res.Failures += hdr.Failures
					prog.Records += hdr.Records
					prog.Failures += hdr.Failures
				}
				prog.PartsDone++
				prog.BytesDone += part.Bytes
				if o.Progress != nil {
					o.Progress(prog)
				}
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	data, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	if err := s.write(ctx, workerKey(o.Worker), data); err != nil {
		return nil, err
	}
	return res, nil
}

// writePart writes a part's object, its header line then its output
// records, in one piece: a reader sees all of it or nothing.
func writePart(ctx context.Context, s *outputStore, i int, hdr *partHeader, out *spool) error {
	line, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	if out.file == nil {
		obj := make([]byte, 0, len(line)+1+len(out.mem))
		return s.write(ctx, partKey(i), append(append(append(obj, line...), '\n'), out.mem...))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.create(ctx, partKey(i))
	if err != nil {
		return err
	}
	_, err = w.Write(append(line, '\n'))
	if err == nil {
		err = out.writeTo(w)
	}
	if err != nil {
		cancel() // the object is abandoned, not written half
		w.Close()
		return fmt.Errorf("write %s: %w", s.where(partKey(i)), err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write %s: %w", s.where(partKey(i)), err)
	}
	return nil
}
