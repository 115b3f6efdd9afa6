package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hpcml/hpcml/internal/analysis"
	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/profile"
	"github.com/hpcml/hpcml/internal/table"
)

// tableFlags say how to read a table (internal/table.Options).
type tableFlags struct {
	format     string
	delimiter  string
	noHeader   bool
	skipRows   int
	types      []string
	nullValues []string
	sampleRows int
}

func (f *tableFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.format, "format", "", "csv, parquet or jsonl (default: from the file extension)")
	fs.StringVar(&f.delimiter, "delimiter", "", `CSV field delimiter, e.g. ";" or "\t" (default: detected)`)
	fs.BoolVar(&f.noHeader, "no-header", false, "CSV: the first line is data (columns are named column_1, column_2, ...)")
	fs.IntVar(&f.skipRows, "skip-rows", 0, "CSV: lines to skip before the header")
	fs.StringArrayVar(&f.types, "type", nil, "a column's type, COLUMN=TYPE (int64, float64, bool, timestamp, string), instead of the inferred one (repeatable)")
	fs.StringSliceVar(&f.nullValues, "null-values", nil, `CSV fields read as null (default: "", NA, N/A, null, NULL)`)
	fs.IntVar(&f.sampleRows, "sample-rows", 0, "rows types are inferred from (default 10000)")
}

// options are the table options the flags say; dataset://NAME[@VERSION]
// names are resolved through the server (o) to their version's source.
func (f *tableFlags) options(o *rootOptions) (table.Options, error) {
	opts := table.Options{
		Format: table.Format(strings.ToLower(f.format)), NoHeader: f.noHeader, SkipRows: f.skipRows,
		NullValues: f.nullValues, SampleRows: f.sampleRows,
		ResolveDataset: func(ctx context.Context, name, version string) (string, error) {
			return resolveDataset(ctx, o, name, version)
		},
	}
	switch opts.Format {
	case "", table.FormatCSV, table.FormatParquet, table.FormatJSONL:
	default:
		return opts, fmt.Errorf("--format %q: one of csv, parquet, jsonl", f.format)
	}
	if f.delimiter != "" {
		d := f.delimiter
		if d == `\t` || d == "tab" {
			d = "\t"
		}
		r := []rune(d)
		if len(r) != 1 || r[0] == '"' || r[0] == '\n' || r[0] == '\r' {
			return opts, fmt.Errorf("--delimiter %q: want one character other than a quote or newline", f.delimiter)
		}
		opts.Delimiter = r[0]
	}
	if f.skipRows < 0 || f.sampleRows < 0 {
		return opts, fmt.Errorf("--skip-rows and --sample-rows cannot be negative")
	}
	for _, t := range f.types {
		name, typ, ok := strings.Cut(t, "=")
		if !ok || name == "" {
			return opts, fmt.Errorf("--type %q: want COLUMN=TYPE", t)
		}
		dt, err := table.ParseType(typ)
		if err != nil {
			return opts, fmt.Errorf("--type %q: %w", t, err)
		}
		if opts.Types == nil {
			opts.Types = map[string]arrow.DataType{}
		}
		opts.Types[name] = dt
	}
	return opts, nil
}

// resolveDataset finds where a dataset version's objects are: the source
// its manifest was made from. The table is read there, so it is the
// version's bytes only while the source is unchanged.
func resolveDataset(ctx context.Context, o *rootOptions, name, version string) (string, error) {
	v := 0
	if version != "" {
		n, err := strconv.Atoi(version)
		if err != nil || n <= 0 {
			return "", fmt.Errorf("version %q is not a positive number", version)
		}
		v = n
	}
	c, cfg, err := o.client()
	if err != nil {
		return "", err
	}
	dv, err := c.GetDatasetVersion(ctx, name, v)
	if err != nil {
		return "", explain(err, cfg)
	}
	return dv.Source, nil
}

type profileFlags struct {
	table           tableFlags
	partitions      int
	workers         int
	exactDuplicates bool
	out             string
	save            bool
	submit          bool
	queue           string
	cpus            float64
}

func newDataProfileCmd(o *rootOptions) *cobra.Command {
	var f profileFlags
	cmd := &cobra.Command{
		Use:   "profile URL",
		Short: "Profile a table: per-column statistics, quantiles, histograms, correlations, alerts",
		Long: `Profile a table (CSV, Parquet or JSON Lines; a file or a prefix of many; local, file://,
s3:// or dataset://NAME[@VERSION]): rows, missing cells, duplicates; per column count, missing,
distinct, mean, stddev, min, quantiles, max, skewness, kurtosis, histogram, top values; Pearson
and Spearman correlations; alerts. Sketched statistics state their error (docs/profile.md).

The table is cut into partitions (--partitions, default one per 128 MiB) whose partial states
merge into one report; the same partitions give the same report wherever they ran. By default
they are read here, one per CPU. With --submit each partition is a job on the server's backend
(local or Slurm) and a last job merges their states; the report is stored on the server and
shown in the dashboard (--save stores a report computed here the same way).`,
		Example: `  hpcml data profile measurements.csv
  hpcml data profile s3://lake/events/ --partitions 16 --submit -o json
  hpcml data profile wine.csv --skip-rows 1 --no-header --out wine-profile.json --save`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runProfile(cmd.Context(), cmd, o, args[0], &f)
		},
	}
	fl := cmd.Flags()
	f.table.add(fl)
	fl.IntVar(&f.partitions, "partitions", 0, "partitions to cut the table into (default: one per 128 MiB)")
	fl.IntVar(&f.workers, "workers", 0, "partitions read at once here (default: one per CPU)")
	fl.BoolVar(&f.exactDuplicates, "exact-duplicates", false, "count duplicate rows exactly (memory grows with the rows) instead of estimating beyond 100,000 distinct rows")
	fl.StringVar(&f.out, "out", "", "also write the report as JSON to this file")
	fl.BoolVar(&f.save, "save", false, "store the report on the server (listed in the dashboard's data page)")
	fl.BoolVar(&f.submit, "submit", false, "run the partitions as jobs on the server's backend and merge there; the report is stored on the server")
	fl.StringVarP(&f.queue, "queue", "q", "", "with --submit: the jobs' queue")
	fl.Float64Var(&f.cpus, "cpus", 1, "with --submit: CPUs per partition job")
	return cmd
}

func runProfile(ctx context.Context, cmd *cobra.Command, o *rootOptions, url string, f *profileFlags) error {
	format, err := o.format(formatTable, formatJSON, formatYAML)
	if err != nil {
		return err
	}
	topts, err := f.table.options(o)
	if err != nil {
		return err
	}
	if f.partitions < 0 || f.workers < 0 {
		return fmt.Errorf("--partitions and --workers cannot be negative")
	}
	opts := analysis.ProfileOptions{
		Table: topts, Partitions: f.partitions, Workers: f.workers,
		Profile: profile.Options{ExactDuplicates: f.exactDuplicates},
	}
	var rep *analysis.ProfileReport
	if f.submit {
		rep, err = submitProfile(ctx, cmd, o, url, opts, f)
	} else {
		rep, err = profileHere(ctx, cmd, url, opts)
	}
	if err != nil {
		return err
	}
	if f.out != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := writeFileAtomic(f.out, append(data, '\n')); err != nil {
			return fmt.Errorf("--out: %w", err)
		}
	}
	if f.save && !f.submit {
		c, cfg, err := o.client()
		if err != nil {
			return err
		}
		if _, err := c.PutProfileReport(ctx, rep); err != nil {
			return explain(err, cfg)
		}
		if format == formatTable {
			fmt.Fprintf(cmd.ErrOrStderr(), "Stored as report %s on the server.\n", rep.ID)
		}
	}
	if format != formatTable {
		return printDoc(cmd.OutOrStdout(), format, rep)
	}
	printProfile(cmd.OutOrStdout(), rep)
	return nil
}

// newReportID names a report: its time and a few random bytes.
func newReportID(now time.Time) string {
	var b [3]byte
	rand.Read(b[:])
	return now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// profileHere profiles in this process, with a progress line on a
// terminal.
func profileHere(ctx context.Context, cmd *cobra.Command, url string, opts analysis.ProfileOptions) (*analysis.ProfileReport, error) {
	start := time.Now()
	var rows atomic.Int64
	opts.Rows = &rows
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if !isTerminal(cmd.ErrOrStderr()) {
			return
		}
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				fmt.Fprint(cmd.ErrOrStderr(), "\r\033[K")
				return
			case <-t.C:
				secs := time.Since(start).Seconds()
				fmt.Fprintf(cmd.ErrOrStderr(), "\rprofiling %s: %s rows, %.0f rows/s", url, groupDigits(rows.Load()), float64(rows.Load())/secs)
			}
		}
	}()
	st, parts, err := analysis.ProfileLocal(ctx, url, opts)
	close(stop)
	<-done
	if err != nil {
		return nil, err
	}
	return &analysis.ProfileReport{
		ID: newReportID(start), Kind: analysis.KindProfile, Source: blob.Redact(url), CreatedAt: start.UTC(),
		Partitions: len(parts), Seconds: time.Since(start).Seconds(), Profile: st.Report(),
	}, nil
}

// groupDigits writes 1234567 as 1,234,567.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// printProfile writes a report for people: the table, a line per column,
// the alerts.
func printProfile(w io.Writer, rep *analysis.ProfileReport) {
	p := rep.Profile
	t := p.Table
	parts := fmt.Sprintf("%d partitions", rep.Partitions)
	if rep.Partitions == 1 {
		parts = "1 partition"
	}
	fmt.Fprintf(w, "Profile of %s (%s, %.1fs)\n", rep.Source, parts, rep.Seconds)
	dup := groupDigits(t.DuplicateRows)
	if !t.DuplicateRowsExact && t.DuplicateRowsStdErr > 0 {
		dup += fmt.Sprintf(" (estimated, ±%.0f)", t.DuplicateRowsStdErr)
	}
	fmt.Fprintf(w, "Rows %s · columns %d · memory %s · missing cells %s (%.1f%%) · duplicate rows %s\n\n",
		groupDigits(t.Rows), t.Columns, bytesText(t.MemoryBytes), groupDigits(t.MissingCells), 100*t.MissingCellsShare, dup)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COLUMN\tTYPE\tCOUNT\tMISSING\tDISTINCT\tMEAN\tSTDDEV\tMIN\t25%\t50%\t75%\tMAX")
	for _, c := range p.Columns {
		distinct := groupDigits(c.Distinct)
		if !c.DistinctExact {
			distinct = "≈" + distinct
		}
		cells := []string{c.Name, c.Type, groupDigits(c.Count), groupDigits(c.Missing), distinct}
		switch {
		case c.Numeric != nil:
			n := c.Numeric
			for _, v := range []*float64{n.Mean, n.Stddev, n.Min, n.P25, n.P50, n.P75, n.Max} {
				cells = append(cells, num(v))
			}
		case c.String != nil:
			cells = append(cells, "-", "-", strOr(c.String.Min), "-", "-", "-", strOr(c.String.Max))
		case c.DateTime != nil:
			cells = append(cells, "-", "-", strOr(c.DateTime.Min), "-", "-", "-", strOr(c.DateTime.Max))
		default:
			cells = append(cells, "-", "-", "-", "-", "-", "-", "-")
		}
		for i := range cells {
			cells[i] = truncate(cells[i], 28)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
	if len(p.Alerts) > 0 {
		fmt.Fprintln(w, "\nAlerts:")
		for _, a := range p.Alerts {
			fmt.Fprintf(w, "  %-17s %-24s %s\n", a.Type, truncate(strings.Join(a.Columns, ", "), 24), a.Message)
		}
	}
}

// num formats a statistic with 6 significant digits; "-" when undefined.
func num(v *float64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v, 'g', 6, 64)
}

func strOr(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}
