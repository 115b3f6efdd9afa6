package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/transform"
)

type transformFlags struct {
	file    string
	submit  bool
	dryRun  bool
	workers int
	tempDir string
	queue   string
	cpus    float64
}

func newDataTransformCmd(o *rootOptions) *cobra.Command {
	var f transformFlags
	cmd := &cobra.Command{
		Use:   "transform -f SPEC.yaml",
		Short: "Transform a table as a spec says: select, rename, cast, filter, IQR outliers, duplicates, missing values, split; write Parquet or CSV",
		Long: `Transform a table (CSV, Parquet or JSON Lines; local, file://, s3:// or dataset://) by the steps of a
YAML spec, in order: select, rename, cast, filter (predicates combined with all/any/not),
iqr_outliers, drop_duplicates, drop_missing, impute (mean, median, mode, constant), and a seeded
split into named parts (train/validation/test). The result is written as Parquet (snappy or
zstd) or CSV, a directory per split, optionally partitioned by columns (Hive style), and appears
whole or not at all. The spec format is in docs/analysis.md ("Transform").

The table is cut into partitions (input.partitions, default one per 128 MiB). Steps that need
statistics (iqr_outliers; impute mean, median, mode) get a pass over the data first, and
drop_duplicates a shuffle; --dry-run prints these passes. By default the partitions are processed
here, one per CPU; with --submit each partition (and shuffle bucket) of each pass is a job on the
server's backend, intermediate results in the server's storage, the output written to the spec's
URL by the jobs themselves.`,
		Example: `  hpcml data transform -f clean.yaml
  hpcml data transform -f clean.yaml --dry-run
  hpcml data transform -f clean.yaml --submit -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTransform(cmd.Context(), cmd, o, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "file", "f", "", "the transform spec (YAML)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "check the spec against the input's columns and print the plan; read and write nothing")
	fl.IntVar(&f.workers, "workers", 0, "partitions processed at once here (default: one per CPU)")
	fl.StringVar(&f.tempDir, "temp-dir", "", "where drop_duplicates' shuffle files go when run here (default: the system's temporary directory)")
	fl.BoolVar(&f.submit, "submit", false, "run the passes as jobs on the server's backend")
	fl.StringVarP(&f.queue, "queue", "q", "", "with --submit: the jobs' queue")
	fl.Float64Var(&f.cpus, "cpus", 1, "with --submit: CPUs per job")
	cmd.MarkFlagRequired("file")
	cmd.AddCommand(newTransformUnitCmd(), newTransformGatherCmd(), newTransformCommitCmd(), newTransformCleanupCmd())
	return cmd
}

func runTransform(ctx context.Context, cmd *cobra.Command, o *rootOptions, f *transformFlags) error {
	format, err := o.format(formatTable, formatJSON, formatYAML)
	if err != nil {
		return err
	}
	if f.workers < 0 {
		return fmt.Errorf("--workers cannot be negative")
	}
	text, err := os.ReadFile(f.file)
	if err != nil {
		return err
	}
	spec, err := transform.Parse(text, f.file)
	if err != nil {
		return err
	}
	start := time.Now()
	popts := transform.PlanOptions{ID: newReportID(start)}
	if !f.submit {
		popts.Workers = f.workers
		if popts.Workers == 0 {
			popts.Workers = runtime.GOMAXPROCS(0)
		}
	}
	p, err := transform.NewPlan(ctx, spec, string(text), popts)
	if err != nil {
		return err
	}
	if f.dryRun {
		if format != formatTable {
			return printDoc(cmd.OutOrStdout(), format, map[string]any{"id": p.ID, "partitions": p.NumPartitions, "passes": p.Passes(), "output": p.Output, "stage": p.Stage})
		}
		fmt.Fprint(cmd.OutOrStdout(), p.Describe())
		return nil
	}
	var rep *transform.Report
	if f.submit {
		rep, err = submitTransform(ctx, cmd, o, p, f)
	} else {
		rep, err = transformHere(ctx, cmd, p, f)
	}
	if err != nil {
		return err
	}
	if format != formatTable {
		return printDoc(cmd.OutOrStdout(), format, rep)
	}
	printTransform(cmd.OutOrStdout(), rep)
	return nil
}

// transformHere runs the plan in this process, with a progress line on
// a terminal.
func transformHere(ctx context.Context, cmd *cobra.Command, p *transform.Plan, f *transformFlags) (*transform.Report, error) {
	start := time.Now()
	var rows atomic.Int64
	var pass atomic.Value
	pass.Store("")
	npasses := len(p.Passes())
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		w := cmd.ErrOrStderr()
		if !isTerminal(w) {
			return
		}
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				n := rows.Load()
				fmt.Fprintf(w, "\r\033[Ktransform %s: %s, %s rows read, %.0f rows/s", p.ID, pass.Load(), groupDigits(n), float64(n)/time.Since(start).Seconds())
			}
		}
	}()
	rep, err := p.RunLocal(ctx, transform.LocalOptions{Workers: f.workers, TempDir: f.tempDir, Rows: &rows,
		Pass: func(ps transform.Pass) { pass.Store(fmt.Sprintf("pass %d/%d (%s)", ps.Index+1, npasses, ps.Kind)) }})
	close(stop)
	<-done
	return rep, err
}

// printTransform writes a report for people: rows per step, per split.
func printTransform(w io.Writer, rep *transform.Report) {
	fmt.Fprintf(w, "Transform %s (%s): %s rows in, %s out · %s · %s · %.1fs\n\n",
		rep.ID, rep.Spec, groupDigits(rep.RowsIn), groupDigits(rep.RowsOut), plural(rep.Partitions, "partition"), plural(rep.Passes, "pass"), rep.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tROWS IN\tROWS OUT\tDROPPED")
	for _, s := range rep.Steps {
		fmt.Fprintf(tw, "%d %s\t%s\t%s\t%s\n", s.Step, truncate(s.Description, 60), groupDigits(s.RowsIn), groupDigits(s.RowsOut), groupDigits(s.RowsIn-s.RowsOut))
	}
	tw.Flush()
	for _, s := range rep.Steps {
		if s.Stats == nil {
			continue
		}
		fmt.Fprintf(w, "\nStep %d statistics", s.Step)
		approx := false
		for _, c := range s.Stats.Columns {
			approx = approx || !c.Exact
		}
		if approx && s.Stats.QuantileRankError > 0 {
			fmt.Fprintf(w, " (≈: sketched, rank within ±%.2f%% of the values at 99%% confidence)", 100*s.Stats.QuantileRankError)
		}
		fmt.Fprintln(w, ":")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, c := range s.Stats.Columns {
			exact := ""
			if !c.Exact {
				exact = "≈"
			}
			switch {
			case c.Lower != nil:
				fmt.Fprintf(tw, "  %s\tkeep [%s, %s]\tQ1 %s%s, Q3 %s%s\n", c.Column, fnum(*c.Lower), fnum(*c.Upper), exact, fnum(*c.Q1), exact, fnum(*c.Q3))
			case c.Strategy != "":
				fmt.Fprintf(tw, "  %s\t%s\t%s%v\n", c.Column, c.Strategy, exact, c.Fill)
			default:
				fmt.Fprintf(tw, "  %s\tno values\n", c.Column)
			}
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OUTPUT\tFRACTION\tROWS\tURL")
	for _, s := range rep.Splits {
		name := s.Name
		if name == "" {
			name = "(all)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, strconv.FormatFloat(s.Fraction, 'g', 4, 64), groupDigits(s.Rows), s.URL)
	}
	tw.Flush()
	if len(rep.Jobs) > 0 {
		var ids []string
		for _, j := range rep.Jobs {
			ids = append(ids, strconv.FormatInt(j, 10))
		}
		fmt.Fprintf(w, "\nJobs: %s\n", strings.Join(ids, " "))
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	if strings.HasSuffix(what, "s") {
		return strconv.Itoa(n) + " " + what + "es"
	}
	return strconv.Itoa(n) + " " + what + "s"
}

func fnum(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
