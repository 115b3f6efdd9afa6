package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/batchtransform"
	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/bytesize"
	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/registry"
	"github.com/hpcml/hpcml/internal/serve"
	"github.com/hpcml/hpcml/internal/task"
)

// Tags of a batch transform's jobs: the commit job (whose id is the
// transform's) carries the output, where `transform get` finds the report.
const (
	tagBatchTransform = "hpcml.batch-transform"
	tagBatchOutput    = "hpcml.batch-transform.output"
	tagBatchModel     = "hpcml.batch-transform.model"
	// batchAttempts: a worker killed (node lost, OOM, kill -9) is rerun
	// and skips the parts it finished.
	batchAttempts   = 3
	maxBatchWorkers = 256
)

type batchTransformFlags struct {
	model, input, output, split, join, format, idColumn, queue, partSize string
	features                                                             []string
	batchSize, workers                                                   int
	cpus                                                                 float64
	detach, overwrite                                                    bool
}

func newBatchTransformCmd(o *rootOptions) *cobra.Command {
	f := &batchTransformFlags{}
	cmd := &cobra.Command{
		Use:   "transform --model NAME[:VERSION|:ALIAS] --input URL --output URL [flags]",
		Short: "Score a dataset offline with a registered model (batch transform)",
		Long: `Score every record of a dataset with a registered model, as SageMaker's Batch Transform
does, on the server's backend (local or Slurm): --workers jobs score the input's parts in
mini-batches with the inference server's runtime, then a commit job writes one output file per
input file under --output, records in input order:

  <output>/<input-name>.out   the predictions (CSV or JSON Lines), joined with --join
  <output>/_errors.jsonl      records that could not be scored: {"file", "record", "reason"}
  <output>/_report.json       records, failures, seconds, rows/s, per-worker counts

The input is a CSV, JSON Lines or Parquet file, or a directory or prefix of them (local path,
file:// or s3:// URL). A record is a line (--split line), a CSV record whose quoted fields may
span lines (--split record), or a whole file as one sample (--split none). A record that does not
parse, or that the model fails on, goes to the error file and the rest goes on.

A killed worker is rerun and skips the parts it finished; the same command run again resumes
where the last run stopped (the plan must match: another plan at the same output is refused
unless --overwrite). See docs/batch-transform.md.`,
		Example: `  hpcml transform --model iris:production --input s3://data/iris/ --output s3://data/iris-scored/ \
      --workers 4 --id-column id --join id
  hpcml transform --model iris:3 --input ./rows.jsonl --output ./scored --join input -o json
  hpcml transform --model iris --input ./big.csv --output ./scored --detach
  hpcml transform get 57`,
		Args: cobra.NoArgs,
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, _ []string) error {
			return runBatchTransform(ctx, cmd, o, c, f)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "", "the registered model: NAME, NAME:VERSION or NAME:ALIAS (required)")
	fl.StringVar(&f.input, "input", "", "the input: a CSV, JSON Lines or Parquet file, or a directory or prefix of them (required)")
	fl.StringVar(&f.output, "output", "", "the output prefix: a directory, file:// or s3:// URL (required)")
	fl.StringVar(&f.split, "split", batchtransform.SplitLine, "what a record is: line, record (CSV quoted fields may span lines) or none (a file is one sample)")
	fl.IntVar(&f.batchSize, "batch-size", batchtransform.DefaultBatchSize, "records per model execution")
	fl.IntVar(&f.workers, "workers", 1, "worker jobs scoring parts in parallel")
	fl.StringSliceVar(&f.features, "features", nil, "the columns (JSON keys) a sample is made of, in order (default: every column but the id)")
	fl.StringVar(&f.idColumn, "id-column", "", "a column that identifies a record (left out of the features)")
	fl.StringVar(&f.join, "join", batchtransform.JoinNone, "what each output record carries besides the predictions: input (every input column), id (the id column) or none")
	fl.StringVar(&f.format, "output-format", "", "csv or jsonl (default: csv for CSV input, else jsonl)")
	fl.StringVar(&f.partSize, "part-size", "1MB", "about how much input a part (the unit of work and of resume) holds")
	fl.StringVarP(&f.queue, "queue", "q", "", "the jobs' queue")
	fl.Float64Var(&f.cpus, "cpus", 1, "CPUs per worker job")
	fl.BoolVar(&f.detach, "detach", false, "submit and print the transform's id; do not wait")
	fl.BoolVar(&f.overwrite, "overwrite", false, "replace another transform's plan or results at --output")
	// --output is the output prefix here, which hides the global
	// --output/-o (the print format): -o keeps its meaning under a name
	// of its own.
	fl.StringVarP(&o.output, "print-format", "o", formatTable, "how to print the report: table, json or yaml")
	for _, name := range []string{"model", "input", "output"} {
		cmd.MarkFlagRequired(name)
	}
	cmd.AddCommand(newBatchTransformGetCmd(o), newBatchTransformListCmd(o), newBatchWorkerCmd(o), newBatchCommitCmd())
	return cmd
}

func runBatchTransform(ctx context.Context, cmd *cobra.Command, o *rootOptions, c *client.Client, f *batchTransformFlags) error {
	format, err := o.format(formatTable, formatJSON, formatYAML)
	if err != nil {
		return err
	}
	if f.workers < 1 || f.workers > maxBatchWorkers {
		return fmt.Errorf("--workers %d: between 1 and %d", f.workers, maxBatchWorkers)
	}
	if f.cpus <= 0 {
		return fmt.Errorf("--cpus must be positive")
	}
	partBytes, err := bytesize.Parse(f.partSize, bytesize.Byte)
	if err != nil {
		return fmt.Errorf("--part-size: %w", err)
	}
	ref, err := registry.ParseRef(f.model)
	if err != nil {
		return fmt.Errorf("--model: %w", err)
	}
	v, err := c.GetModelVersion(ctx, ref)
	if err != nil {
		return err
	}
	opts := batchtransform.Options{Model: v.Name, Version: v.Version.Version, Input: f.input, Output: f.output,
		Split: f.split, Join: f.join, Format: f.format, Features: f.features, IDColumn: f.idColumn,
		BatchSize: f.batchSize, PartBytes: partBytes}
	for _, t := range v.Signature.Inputs {
		opts.Inputs = append(opts.Inputs, serve.TensorInfo{Name: t.Name, DataType: t.DataType, Shape: t.Shape})
	}
	for _, t := range v.Signature.Outputs {
		opts.Outputs = append(opts.Outputs, serve.TensorInfo{Name: t.Name, DataType: t.DataType, Shape: t.Shape})
	}
	p, err := batchtransform.NewPlan(ctx, opts)
	if err != nil {
		return err
	}
	st, err := batchtransform.Prepare(ctx, p, f.overwrite)
	if err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	if st.Done {
		fmt.Fprintf(stderr, "The transform at %s is already complete (the same model, input and settings); --overwrite redoes it.\n", blob.Redact(p.Output))
		return printBatchReport(cmd.OutOrStdout(), format, st.Report)
	}
	sub := st.Submission
	attached := false
	if sub != nil && sub.Commit > 0 {
		// The jobs of an earlier run may still be going: wait for them
		// rather than start a second set.
		if j, err := c.GetJob(ctx, strconv.FormatInt(sub.Commit, 10)); err == nil && !j.State.Terminal() {
			attached = true
			fmt.Fprintf(stderr, "Transform %d (started %s) is still running; waiting for it.\n", sub.Commit, sub.Submitted.Local().Format(time.DateTime))
		}
	}
	if !attached {
		if st.Resume {
			done, err := batchtransform.PartsDone(ctx, p)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "Resuming the transform at %s: %d of %d parts are already scored.\n", blob.Redact(p.Output), done, len(p.Parts))
		}
		if sub, err = submitBatchTransform(ctx, c, p, f); err != nil {
			if !st.Resume {
				// Nothing was submitted: leave the output as it was.
				batchtransform.Abandon(ctx, p)
			}
			return err
		}
		if err := batchtransform.SaveSubmission(ctx, p.Output, sub); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "Transform %d: %s over %s (%s), worker jobs %s, committed by job %d.\n",
			sub.Commit, p.Model+":"+strconv.Itoa(p.Version), plural(len(p.Files), "file"), plural(len(p.Parts), "part"), idList(sub.Workers), sub.Commit)
	}
	if f.detach {
		if format != formatTable {
			return printDoc(cmd.OutOrStdout(), format, map[string]any{"id": sub.Commit, "workers": sub.Workers, "output": blob.Redact(p.Output)})
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%d\n", sub.Commit)
		fmt.Fprintf(stderr, "Follow it with: hpcml transform get %d\n", sub.Commit)
		return nil
	}
	if err := waitBatchTransform(ctx, c, sub, stderr, o.now); err != nil {
		if errors.Is(err, context.Canceled) {
			// The exit says "interrupted"; what goes on is said here.
			fmt.Fprintf(stderr, "Stopped waiting; transform %d goes on: hpcml transform get %d\n", sub.Commit, sub.Commit)
		}
		return err
	}
	rep, ok, err := batchtransform.ReadReport(ctx, p.Output)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("transform %d: the commit job succeeded but %s is missing", sub.Commit, batchtransform.Join(p.Output, batchtransform.ReportFile))
	}
	return printBatchReport(cmd.OutOrStdout(), format, rep)
}

// submitBatchTransform submits the workers and the commit job that
// waits (afterok) for all of them.
func submitBatchTransform(ctx context.Context, c *client.Client, p *batchtransform.Plan, f *batchTransformFlags) (*batchtransform.Submission, error) {
	started := time.Now().UTC()
	sub := &batchtransform.Submission{Submitted: started}
	workers := strconv.Itoa(f.workers)
	base := []string{task.SelfProgram, "transform"}
	name := p.Model
	if len(name) > 48 {
		name = name[:48]
	}
	var deps []job.Dependency
	for w := range f.workers {
		s := &job.Spec{Name: fmt.Sprintf("transform-%s-w%d", name, w), Queue: f.queue,
			Command: append(append([]string(nil), base...), "__worker", "--output", p.Output, "--worker", strconv.Itoa(w), "--workers", workers,
				"--threads", strconv.Itoa(int(math.Ceil(f.cpus)))),
			Resources: job.Resources{CPUs: f.cpus}, Retry: job.RetryPolicy{Attempts: batchAttempts},
			Tags: map[string]string{tagBatchTransform: "worker"}}
		j, err := c.SubmitJob(ctx, s)
		if err != nil {
			cancelJobs(ctx, c, sub.Workers)
			return nil, fmt.Errorf("submit worker %d: %w", w, err)
		}
		sub.Workers = append(sub.Workers, j.ID)
		deps = append(deps, job.Dependency{Type: job.AfterOK, JobID: j.ID})
	}
	s := &job.Spec{Name: "transform-" + name, Queue: f.queue, DependsOn: deps,
		Command: append(append([]string(nil), base...), "__commit", "--output", p.Output, "--workers", workers,
			"--started", started.Format(time.RFC3339Nano)),
		Resources: job.Resources{CPUs: 0.25}, Retry: job.RetryPolicy{Attempts: batchAttempts},
		Tags: map[string]string{tagBatchTransform: "commit", tagBatchOutput: p.Output, tagBatchModel: p.Model + ":" + strconv.Itoa(p.Version)}}
	j, err := c.SubmitJob(ctx, s)
	if err != nil {
		cancelJobs(ctx, c, sub.Workers)
		return nil, fmt.Errorf("submit the commit job: %w", err)
	}
	sub.Commit = j.ID
	return sub, nil
}

func cancelJobs(ctx context.Context, c *client.Client, ids []int64) {
	for _, id := range ids {
		c.CancelJob(ctx, strconv.FormatInt(id, 10))
	}
}

func idList(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ", ")
}

// batchStatus is where a transform's jobs stand.
type batchStatus struct {
	ID      int64              `json:"id"`
	State   job.State          `json:"state"`
	Output  string             `json:"output"`
	Workers []batchWorkerState `json:"workers"`
	// Done and Total bytes of input scored, over every worker.
	Done  float64 `json:"done_bytes"`
	Total float64 `json:"total_bytes"`
	// Failed is the first worker that failed for good, if any.
	Failed *job.Job `json:"-"`
}

type batchWorkerState struct {
	Job      int64         `json:"job"`
	State    job.State     `json:"state"`
	Attempt  int           `json:"attempt"`
	Progress *job.Progress `json:"progress,omitempty"`
}

// batchStatusOf reads the commit job and its workers.
func batchStatusOf(ctx context.Context, c *client.Client, commit *job.Job) (*batchStatus, error) {
	st := &batchStatus{ID: commit.ID, State: commit.State, Output: blob.Redact(commit.Spec.Tags[tagBatchOutput])}
	for _, d := range commit.Spec.DependsOn {
		w, err := c.GetJob(ctx, strconv.FormatInt(d.JobID, 10))
		if err != nil {
			return nil, err
		}
		ws := batchWorkerState{Job: w.ID, State: w.State, Attempt: w.Attempt, Progress: w.Progress}
		if w.Progress != nil {
			st.Done += w.Progress.Done
			st.Total += w.Progress.Total
		}
		if w.State.Terminal() && w.State != job.Succeeded && st.Failed == nil {
			st.Failed = w
		}
		st.Workers = append(st.Workers, ws)
	}
	return st, nil
}

// text is the one-line status: "transform 57 RUNNING · 45% of 120 MiB · 2 workers running".
func (st *batchStatus) text() string {
	s := fmt.Sprintf("transform %d %s", st.ID, st.State)
	if st.Total > 0 {
		s += fmt.Sprintf(" · %.0f%% of %s", 100*min(st.Done/st.Total, 1), bytesText(int64(st.Total)))
	}
	counts := map[job.State]int{}
	for _, w := range st.Workers {
		counts[w.State]++
	}
	return s + " · workers " + countsText(counts, false)
}

// waitBatchTransform waits for the commit job, with the workers'
// progress on w (a line redrawn on a terminal, a line every 10 s
// otherwise). A worker that failed for good ends the wait with its error.
func waitBatchTransform(ctx context.Context, c *client.Client, sub *batchtransform.Submission, w io.Writer, now func() time.Time) error {
	id := strconv.FormatInt(sub.Commit, 10)
	tty := isTerminal(w)
	var last string
	var lastAt time.Time
	defer func() {
		if tty {
			fmt.Fprint(w, "\r\033[K")
		}
	}()
	for {
		commit, err := c.GetJob(ctx, id)
		if err != nil {
			return err
		}
		if commit.State == job.Succeeded {
			return nil
		}
		st, err := batchStatusOf(ctx, c, commit)
		if err != nil {
			return err
		}
		if st.Failed != nil || commit.State.Terminal() {
			failed := st.Failed
			if failed == nil {
				failed = commit
			}
			fid := failed.DisplayID()
			return fmt.Errorf("transform %d: job %s (%s) %s: %s (hpcml job logs --stderr %s); finished parts are kept: rerun the same command to resume",
				sub.Commit, fid, failed.Spec.Name, failed.State, lastError(ctx, c, fid, failed.Reason), fid)
		}
		line := st.text()
		switch {
		case tty:
			fmt.Fprintf(w, "\r\033[K%s %s", line, clock(now().Sub(sub.Submitted)))
		case line != last && now().Sub(lastAt) >= 10*time.Second:
			fmt.Fprintln(w, line)
			last, lastAt = line, now()
		}
		// Long-poll the commit job (it returns at once when the job
		// ends), for a second, so that the status is redrawn.
		wctx, cancel := context.WithTimeout(ctx, statusPoll)
		_, err = c.WatchJob(wctx, id, statusPoll, nil)
		cancel()
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func printBatchReport(w io.Writer, format string, rep *batchtransform.Report) error {
	if format != formatTable {
		return printDoc(w, format, rep)
	}
	fmt.Fprintf(w, "Model:      %s\n", rep.Model)
	fmt.Fprintf(w, "Input:      %s (%s, %s)\n", rep.Input, plural(rep.Files, "file"), plural(rep.Parts, "part"))
	fmt.Fprintf(w, "Output:     %s\n", rep.Output)
	fmt.Fprintf(w, "Records:    %s scored, %s failed", groupDigits(rep.Records), groupDigits(rep.Failures))
	if rep.Failures > 0 {
		fmt.Fprintf(w, " (see %s)", rep.ErrorsFile)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Time:       %.1fs, %s rows/s\n", rep.Seconds, groupDigits(int64(rep.RowsPerSecond)))
	tw := newTable(w)
	fmt.Fprintln(tw, "WORKER\tJOB\tPARTS\tRECORDS\tFAILURES\tROWS/S\tBY ATTEMPT")
	for _, wr := range rep.Workers {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\n", wr.Worker, dash(wr.Job), wr.Parts, groupDigits(wr.Records),
			groupDigits(wr.Failures), groupDigits(int64(wr.RowsPerSecond)), attemptsText(wr.PartsByAttempt))
	}
	return tw.Flush()
}

// attemptsText is "1:3 2:5": parts scored by each attempt.
func attemptsText(m map[string]int) string {
	var parts []string
	for a := 1; a <= job.MaxAttempts; a++ {
		if n := m[strconv.Itoa(a)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d:%d", a, n))
		}
	}
	return dash(strings.Join(parts, " "))
}

// newBatchTransformGetCmd shows a transform: its report once committed,
// else where its jobs stand.
func newBatchTransformGetCmd(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a batch transform: its report when done, else its jobs' progress",
		Long: `Show batch transform ID (the id 'hpcml transform' printed: its commit job's). Once it is
committed this is its report, read from <output>/_report.json; before, the state and progress of
its worker jobs.`,
		Args: cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			commit, err := c.GetJob(ctx, args[0])
			if err != nil {
				return err
			}
			output := commit.Spec.Tags[tagBatchOutput]
			if output == "" {
				return fmt.Errorf("job %s is not a batch transform (its id is the one 'hpcml transform' printed)", args[0])
			}
			if commit.State.Terminal() {
				rep, ok, err := batchtransform.ReadReport(ctx, output)
				if err != nil {
					return err
				}
				switch {
				case ok && commit.State != job.Succeeded:
					// A rerun of the same command finished what this run
					// left.
					fmt.Fprintf(cmd.ErrOrStderr(), "Transform %s %s; a later run at the same output finished it:\n", args[0], commit.State)
					fallthrough
				case ok:
					return printBatchReport(cmd.OutOrStdout(), format, rep)
				case commit.State == job.Succeeded:
					return fmt.Errorf("transform %s was committed, but %s is gone", args[0], batchtransform.Join(output, batchtransform.ReportFile))
				}
			}
			st, err := batchStatusOf(ctx, c, commit)
			if err != nil {
				return err
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, st)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintln(w, st.text())
			fmt.Fprintf(w, "Output: %s\n", st.Output)
			tw := newTable(w)
			fmt.Fprintln(tw, "WORKER JOB\tSTATE\tATTEMPT\tPROGRESS")
			for _, ws := range st.Workers {
				fmt.Fprintf(tw, "%d\t%s\t%d\t%s\n", ws.Job, ws.State, ws.Attempt, dash(progressText(o.now(), ws.Progress)))
			}
			return tw.Flush()
		}),
	}
}

// batchListed is one transform in `transform list`.
type batchListed struct {
	ID        int64     `json:"id"`
	State     job.State `json:"state"`
	Model     string    `json:"model"`
	Output    string    `json:"output"`
	Workers   int       `json:"workers"`
	Submitted time.Time `json:"submitted_at"`
}

// newBatchTransformListCmd lists the batch transforms among the newest
// jobs: their commit jobs, by their tag.
func newBatchTransformListCmd(o *rootOptions) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List batch transforms, newest first",
		Long: `List the batch transforms among the server's newest --limit jobs: each one's id (its commit
job's), state, model, output and number of workers.`,
		Args: cobra.NoArgs,
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, _ []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			jobs, err := c.ListJobs(ctx, client.ListOptions{Limit: limit})
			if err != nil {
				return err
			}
			list := []batchListed{}
			for _, j := range jobs {
				if j.Spec.Tags[tagBatchTransform] != "commit" {
					continue
				}
				list = append(list, batchListed{ID: j.ID, State: j.State, Model: j.Spec.Tags[tagBatchModel],
					Output: blob.Redact(j.Spec.Tags[tagBatchOutput]), Workers: len(j.Spec.DependsOn), Submitted: j.SubmittedAt})
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, list)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "ID\tSTATE\tMODEL\tWORKERS\tSUBMITTED\tOUTPUT")
			for _, b := range list {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", b.ID, b.State, dash(b.Model), b.Workers, age(o.now(), b.Submitted), b.Output)
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 1000, "how many of the newest jobs to look through (at most 1000)")
	return cmd
}

// newBatchWorkerCmd is a worker job: the parts it owns, scored with the
// registered model loaded from the server's storage.
func newBatchWorkerCmd(o *rootOptions) *cobra.Command {
	var output, storage string
	var worker, workers, threads int
	cmd := &cobra.Command{
		Use:    "__worker",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			p, err := batchtransform.Load(ctx, output)
			if err != nil {
				return err
			}
			if storage == "" {
				storage = o.getenv(task.StorageEnv)
			}
			data, name, version, err := loadModel(ctx, registry.URI(p.Model, p.Version), storage)
			if err != nil {
				return err
			}
			m, err := serve.LoadONNX(data, name, version)
			if err != nil {
				return fmt.Errorf("model %s:%s: %w", name, version, err)
			}
			attempt, _ := strconv.Atoi(o.getenv(envAttempt))
			progressFile := o.getenv(job.ProgressFileEnv)
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			res, err := batchtransform.RunWorker(ctx, output, m, batchtransform.WorkerOptions{
				Worker: worker, Workers: workers, Threads: threads, Job: o.getenv(envJobID), Attempt: attempt, Log: log,
				Progress: func(pr batchtransform.WorkerProgress) {
					if progressFile == "" {
						return
					}
					job.WriteProgressFile(progressFile, &job.Progress{Done: float64(pr.BytesDone), Total: float64(pr.BytesOwned),
						Unit: job.UnitBytes, Message: fmt.Sprintf("part %d of %d, %s records, %s failed", pr.PartsDone, pr.PartsOwned,
							groupDigits(pr.Records), groupDigits(pr.Failures))})
				}})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "worker %d of %d: %d parts scored, %d already done, %d records, %d failed, %.1fs\n",
				worker, workers, res.PartsScored, res.PartsSkipped, res.Records, res.Failures, res.Seconds)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&output, "output", "", "the transform's output prefix (holding its plan)")
	fl.IntVar(&worker, "worker", 0, "this worker (0-based)")
	fl.IntVar(&workers, "workers", 1, "how many workers share the parts")
	fl.IntVar(&threads, "threads", 1, "parts scored at once (the job's CPUs)")
	fl.StringVar(&storage, "storage", "", "the server's storage, where the model is (default $"+task.StorageEnv+")")
	return cmd
}

// newBatchCommitCmd is the commit job: the outputs assembled, the error
// file and the report written, the work area removed.
func newBatchCommitCmd() *cobra.Command {
	var output, started string
	var workers int
	cmd := &cobra.Command{
		Use:    "__commit",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			at, err := time.Parse(time.RFC3339Nano, started)
			if err != nil {
				return fmt.Errorf("--started: %w", err)
			}
			rep, err := batchtransform.Commit(cmd.Context(), output, batchtransform.CommitOptions{Workers: workers, Started: at})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "committed %s: %d records, %d failed, %d files, %.1fs, %.0f rows/s\n",
				rep.Output, rep.Records, rep.Failures, rep.Files, rep.Seconds, rep.RowsPerSecond)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&output, "output", "", "the transform's output prefix")
	fl.IntVar(&workers, "workers", 1, "how many workers the run had")
	fl.StringVar(&started, "started", "", "when the run was submitted (RFC 3339)")
	return cmd
}
