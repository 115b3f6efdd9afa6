package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	hblob "github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/synth"
	"github.com/hpcml/hpcml/internal/table"
	"github.com/hpcml/hpcml/internal/transfer"
)

type synthFlags struct {
	table       tableFlags
	fit         string
	model       string
	saveModel   string
	out         string
	rows        string
	seed        uint64
	format      string
	compression string
	force       bool
	by          string
	match       string
	maxFitRows  int
	noProgress  bool
}

// synthFitFlags apply to fitting only, not to a saved model.
var synthFitFlags = []string{"fit-format", "delimiter", "no-header", "skip-rows", "type", "null-values", "sample-rows", "by", "match", "max-fit-rows"}

func newDataSynthCmd(o *rootOptions) *cobra.Command {
	var f synthFlags
	cmd := &cobra.Command{
		Use:   "synth --fit URL --rows N --out URL",
		Short: "Synthesise a large realistic table from a small one (Gaussian copula)",
		Long: `Fit a Gaussian copula to a table (CSV, Parquet or JSON Lines; local, file://, s3:// or
dataset://) and sample any number of rows from it into a Parquet or CSV file: every column's
empirical distribution (floats interpolated between the source's values, integers, timestamps,
strings and booleans drawn at their frequencies, nulls and NaN at their shares) tied together by
one correlation matrix, calibrated so that the sample has the source's Pearson correlations
(--match spearman: rank correlations; scores: the normal scores' correlations, no calibration).
--by COLUMN fits a copula per value of a column (a class, say): right for labelled data, whose
classes a single copula blurs. The output has the source's columns and types. At most
--max-fit-rows rows are fitted on (a uniform sample of a longer table). The same --seed gives
the same rows; --save-model keeps the fitted model (JSON) for --model to sample from later.
The output appears whole or not at all; an existing one is replaced only with --force.
Accuracy and method: docs/analysis.md ("Synthesise").`,
		Example: `  hpcml data synth --fit wine.csv --skip-rows 1 --no-header --by column_14 --rows 1000000 --out wine-1m.parquet
  hpcml data synth --fit s3://lake/sample.parquet --save-model sample-model.json
  hpcml data synth --model sample-model.json --rows 10000000 --out s3://lake/synthetic/ --seed 7 --compression zstd`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSynth(cmd.Context(), cmd, o, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.fit, "fit", "", "the table to fit (a file, prefix or dataset://NAME[@VERSION])")
	fl.StringVar(&f.model, "model", "", "sample from this saved model (--save-model) instead of fitting")
	fl.StringVar(&f.saveModel, "save-model", "", "write the fitted model to this file (JSON)")
	fl.StringVar(&f.rows, "rows", "", "rows to sample, e.g. 100000, 250k, 10M")
	fl.StringVar(&f.out, "out", "", "where to write the sample: a file (.parquet, .csv, .csv.gz, .csv.zst), or a directory or prefix (part-0.parquet in it)")
	fl.Uint64Var(&f.seed, "seed", 1, "the random seed: the same seed gives the same rows")
	fl.StringVar(&f.format, "format", "", "output format: parquet or csv (default: the --out extension's, else parquet)")
	fl.StringVar(&f.compression, "compression", "", "Parquet compression: snappy (default), zstd, gzip or none")
	fl.BoolVar(&f.force, "force", false, "replace the output if it exists")
	fl.StringVar(&f.by, "by", "", "fit a copula per value of this column (at most 1000 values)")
	fl.StringVar(&f.match, "match", synth.MatchPearson, "which correlations the sample keeps: pearson, spearman or scores")
	fl.IntVar(&f.maxFitRows, "max-fit-rows", synth.DefaultMaxRows, "fit on at most this many rows (a uniform sample of a longer table)")
	fl.BoolVar(&f.noProgress, "no-progress", false, "no progress line (the default when stderr is not a terminal)")
	// The table-reading flags of data profile, --format renamed: here
	// --format is the output's.
	tf := pflag.NewFlagSet("table", pflag.ContinueOnError)
	f.table.add(tf)
	tf.VisitAll(func(fl *pflag.Flag) {
		if fl.Name == "format" {
			fl.Name, fl.Usage = "fit-format", "the --fit table's format: csv, parquet or jsonl (default: from its extension)"
		}
		cmd.Flags().AddFlag(fl)
	})
	return cmd
}

// parseCount reads a row count: digits, optionally with k, M or G
// (thousands, millions, billions) or underscores/commas between digits.
func parseCount(s string) (int64, error) {
	t := strings.NewReplacer("_", "", ",", "").Replace(strings.TrimSpace(s))
	mult := int64(1)
	switch {
	case strings.HasSuffix(t, "k"), strings.HasSuffix(t, "K"):
		mult, t = 1_000, t[:len(t)-1]
	case strings.HasSuffix(t, "M"):
		mult, t = 1_000_000, t[:len(t)-1]
	case strings.HasSuffix(t, "G"):
		mult, t = 1_000_000_000, t[:len(t)-1]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("--rows %q: want a number of rows of at least 1, e.g. 100000, 250k or 10M", s)
	}
	return n * mult, nil
}

// synthReport is what -o json prints.
type synthReport struct {
	Source      string   `json:"source,omitempty"`
	Model       string   `json:"model,omitempty"`
	SavedModel  string   `json:"saved_model,omitempty"`
	SourceRows  int64    `json:"source_rows"`
	FitRows     int64    `json:"fit_rows"`
	Columns     int      `json:"columns"`
	By          string   `json:"by,omitempty"`
	Copulas     int      `json:"copulas"`
	Match       string   `json:"match"`
	FitSeconds  float64  `json:"fit_seconds"`
	Out         string   `json:"out,omitempty"`
	Rows        int64    `json:"rows,omitempty"`
	Seed        uint64   `json:"seed"`
	Seconds     float64  `json:"seconds,omitempty"`
	RowsPerSec  float64  `json:"rows_per_second,omitempty"`
	Warnings    []string `json:"warnings,omitempty"`
	MaxCalError *float64 `json:"max_calibration_error,omitempty"`
}

func runSynth(ctx context.Context, cmd *cobra.Command, o *rootOptions, f *synthFlags) error {
	format, err := o.format(formatTable, formatJSON, formatYAML)
	if err != nil {
		return err
	}
	if (f.fit == "") == (f.model == "") {
		return fmt.Errorf("give --fit URL (a table to fit) or --model FILE (a saved model), one of them")
	}
	if f.model != "" {
		for _, name := range synthFitFlags {
			if cmd.Flags().Changed(name) {
				return fmt.Errorf("--%s is about fitting (--fit), not a saved --model", name)
			}
		}
		if f.saveModel != "" {
			return fmt.Errorf("--save-model keeps a fitted model: give it with --fit")
		}
	}
	var rows int64
	switch {
	case f.out == "" && f.rows != "":
		return fmt.Errorf("--rows needs --out: where to write them")
	case f.out == "" && f.saveModel == "":
		return fmt.Errorf("nothing to do: give --rows N and --out URL to sample, or --save-model FILE to keep the fitted model")
	case f.out != "" && f.rows == "":
		return fmt.Errorf("--rows N: how many rows to write to %s", f.out)
	case f.out != "":
		if rows, err = parseCount(f.rows); err != nil {
			return err
		}
	}
	wopts := table.WriteOptions{Format: table.Format(strings.ToLower(f.format)), Compression: f.compression}
	switch wopts.Format {
	case "", table.FormatParquet, table.FormatCSV:
	default:
		return fmt.Errorf("--format %q: parquet or csv", f.format)
	}
	csvOut := wopts.Format == table.FormatCSV || (wopts.Format == "" && isCSVName(f.out))
	if f.compression != "" && csvOut {
		return fmt.Errorf("--compression is Parquet's; a CSV file is compressed by its name (.csv.gz, .csv.zst)")
	}
	if f.maxFitRows <= 0 {
		return fmt.Errorf("--max-fit-rows must be at least 1")
	}
	if f.out != "" && !f.force {
		// Before fitting: a refusal should not cost the fit.
		name, exists, err := synthTarget(ctx, f.out, csvOut)
		if err != nil {
			return err
		}
		if exists {
			return fmt.Errorf("%s exists: give --force to replace it", name)
		}
	}

	rep := &synthReport{Seed: f.seed}
	progress := newSynthProgress(cmd.ErrOrStderr(), !f.noProgress && isTerminal(cmd.ErrOrStderr()))
	defer progress.stop()
	start := time.Now()
	var m *synth.Model
	if f.fit != "" {
		topts, err := f.table.options(o)
		if err != nil {
			return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), "--format", "--fit-format"))
		}
		if m, err = synthFit(ctx, f, topts, progress); err != nil {
			return err
		}
		rep.Source = m.Source
	} else {
		file, err := os.Open(f.model)
		if err != nil {
			return err
		}
		m, err = synth.Load(file)
		file.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f.model, err)
		}
		rep.Model, rep.Source = f.model, m.Source
	}
	rep.SourceRows, rep.FitRows, rep.Columns, rep.By, rep.Copulas, rep.Match = m.SourceRows, m.FitRows, len(m.Columns), m.By, len(m.Copulas), m.Match
	rep.Warnings = m.Warnings
	rep.FitSeconds = time.Since(start).Seconds()
	for _, c := range m.Copulas {
		if c.Calibration != nil {
			e := max(c.Calibration.MaxError, 0)
			if rep.MaxCalError != nil {
				e = max(e, *rep.MaxCalError)
			}
			rep.MaxCalError = &e
		}
	}
	progress.clear()
	for _, w := range m.Warnings {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
	}
	if f.saveModel != "" {
		var buf bytes.Buffer
		if err := m.Save(&buf); err != nil {
			return err
		}
		if err := writeFileAtomic(f.saveModel, buf.Bytes()); err != nil {
			return fmt.Errorf("--save-model: %w", err)
		}
		rep.SavedModel = f.saveModel
	}
	if f.out != "" {
		start := time.Now()
		if err := synthSample(ctx, m, f, rows, wopts, progress); err != nil {
			return err
		}
		rep.Out, rep.Rows = blobRedact(f.out), rows
		rep.Seconds = time.Since(start).Seconds()
		rep.RowsPerSec = float64(rows) / max(rep.Seconds, 1e-9)
	}
	progress.stop()
	if format != formatTable {
		return printDoc(cmd.OutOrStdout(), format, rep)
	}
	printSynth(cmd.OutOrStdout(), rep)
	return nil
}

func blobRedact(url string) string { return hblob.Redact(url) }

func isCSVName(name string) bool {
	n := strings.ToLower(name)
	for _, ext := range []string{".gz", ".zst"} {
		n = strings.TrimSuffix(n, ext)
	}
	return strings.HasSuffix(n, ".csv") || strings.HasSuffix(n, ".tsv") || strings.HasSuffix(n, ".txt")
}

// synthTarget is the file table.Create writes for url (a file, or
// part-0.parquet or part-0.csv in a directory or prefix) and whether it
// exists.
func synthTarget(ctx context.Context, url string, csv bool) (string, bool, error) {
	ep, err := transfer.ParseEndpoint(url)
	if err != nil {
		return "", false, err
	}
	if ep.Kind != transfer.KindLocal && ep.Kind != transfer.KindS3 {
		return "", false, fmt.Errorf("%s: tables are written to local paths, file:// or s3:// URLs", url)
	}
	key := ep.Prefix
	if !ep.Single() {
		ep = ep.AsTree()
		key = ep.Prefix + "part-0.parquet"
		if csv {
			key = ep.Prefix + "part-0.csv"
		}
	}
	if ep.Kind == transfer.KindLocal {
		p := filepath.Join(ep.Root, filepath.FromSlash(key))
		_, err := os.Stat(p)
		return p, err == nil, nil
	}
	name := hblob.Location{Bucket: ep.Bucket, Key: key}.String()
	b, err := hblob.Open(ctx, ep.Bucket)
	if err != nil {
		return "", false, err
	}
	defer b.Close()
	ok, err := b.Exists(ctx, key)
	if err != nil {
		return "", false, fmt.Errorf("%s: %w", name, err)
	}
	return name, ok, nil
}

// synthFit fits the --fit table.
func synthFit(ctx context.Context, f *synthFlags, topts table.Options, p *synthProgress) (*synth.Model, error) {
	r, err := table.Open(ctx, f.fit, topts)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var rows atomic.Int64
	p.show(func() string {
		return fmt.Sprintf("fitting %s: %s rows read", blobRedact(f.fit), groupDigits(rows.Load()))
	})
	m, err := synth.Fit(ctx, r, synth.FitOptions{
		MaxRows: f.maxFitRows, Seed: f.seed, Source: blobRedact(f.fit), Rows: &rows, Match: f.match, By: f.by,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", blobRedact(f.fit), err)
	}
	return m, nil
}

// synthSample writes rows rows of m to --out, whole or not at all.
func synthSample(ctx context.Context, m *synth.Model, f *synthFlags, rows int64, wopts table.WriteOptions, p *synthProgress) error {
	w, err := table.Create(ctx, f.out, m.Schema(), wopts)
	if err != nil {
		return err
	}
	var done atomic.Int64
	start := time.Now()
	p.show(func() string {
		n := done.Load()
		return fmt.Sprintf("sampling: %s of %s rows, %.0f rows/s", groupDigits(n), groupDigits(rows), float64(n)/time.Since(start).Seconds())
	})
	if err := m.SampleWith(ctx, rows, f.seed, w, synth.SampleOptions{Rows: &done}); err != nil {
		w.Abort()
		return err
	}
	return w.Close()
}

func printSynth(w io.Writer, r *synthReport) {
	from := "Fitted " + r.Source
	if r.Model != "" {
		from = "Model " + r.Model + " (of " + r.Source + ")"
	}
	fmt.Fprintf(w, "%s: %s rows", from, groupDigits(r.FitRows))
	if r.SourceRows > r.FitRows {
		fmt.Fprintf(w, " of %s", groupDigits(r.SourceRows))
	}
	fmt.Fprintf(w, ", %d columns", r.Columns)
	if r.By != "" {
		fmt.Fprintf(w, ", %d copulas by %s", r.Copulas, r.By)
	}
	fmt.Fprintf(w, ", %s correlations", map[string]string{synth.MatchPearson: "Pearson", synth.MatchSpearman: "Spearman", synth.MatchScores: "normal-score"}[r.Match])
	if r.MaxCalError != nil {
		fmt.Fprintf(w, " (calibrated within %.3f)", *r.MaxCalError)
	}
	if r.Model == "" {
		fmt.Fprintf(w, " in %.1fs", r.FitSeconds)
	}
	fmt.Fprintln(w)
	if r.SavedModel != "" {
		fmt.Fprintf(w, "Saved the model to %s\n", r.SavedModel)
	}
	if r.Out != "" {
		fmt.Fprintf(w, "Wrote %s rows to %s in %.1fs (%s rows/s, seed %d)\n", groupDigits(r.Rows), r.Out, r.Seconds, groupDigits(int64(r.RowsPerSec)), r.Seed)
	}
}

// synthProgress draws a progress line on a terminal.
type synthProgress struct {
	w       io.Writer
	on      bool
	line    atomic.Value // func() string
	quit    chan struct{}
	done    chan struct{}
	stopped bool
}

func newSynthProgress(w io.Writer, on bool) *synthProgress {
	p := &synthProgress{w: w, on: on, quit: make(chan struct{}), done: make(chan struct{})}
	if !on {
		close(p.done)
		return p
	}
	go func() {
		defer close(p.done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				if f, ok := p.line.Load().(func() string); ok {
					fmt.Fprintf(w, "\r\033[K%s", f())
				}
			}
		}
	}()
	return p
}

// show makes line the progress line.
func (p *synthProgress) show(line func() string) { p.line.Store(line) }

// clear empties the line (before other output).
func (p *synthProgress) clear() {
	if p.on {
		p.line.Store(func() string { return "" })
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func (p *synthProgress) stop() {
	if !p.stopped {
		p.stopped = true
		close(p.quit)
		<-p.done
	}
}
