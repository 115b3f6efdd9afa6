package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/bytesize"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/transfer"
)

// The data commands move data themselves, in this process, like rclone
// or aws s3: no server is needed.
func newDataCmd(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "data",
		Short: "Move and inspect data: local paths, file://, s3:// and http(s):// sources",
		Long: `Move data between local disks and S3-compatible object stores, verifiably.

Locations: a local path (a directory, or a path ending in /, is a tree), file:///path,
s3://bucket/prefix (query: endpoint=URL, region=..., use_path_style=true; credentials from
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS config files), and http(s)://... as a
source. Every object written gets its SHA-256 recorded (metadata "sha256" on object stores);
nothing is ever visible at the destination half-written.`,
	}
	cmd.PersistentPreRun = func(*cobra.Command, []string) {
		// hpcml checksums every object with SHA-256 end to end; the S3
		// SDK's own CRCs of what it reads cannot be checked on multipart
		// objects anyway (it warns on each such read). Left to the SDK
		// when the user chose otherwise. (What protects request bodies is
		// decided where buckets are opened: internal/blob/s3.go.)
		const k = "AWS_RESPONSE_CHECKSUM_VALIDATION"
		if _, set := o.lookupEnv(k); !set {
			os.Setenv(k, "when_required")
		}
	}
	cmd.AddCommand(newDataTransferCmd(o, "sync"), newDataTransferCmd(o, "cp"), newDataVerifyCmd(o),
		newDataLsCmd(o), newDataDuCmd(o), newDataRmCmd(o), newDataCleanupCmd(o), newDataProfileCmd(o), newDataTransformCmd(o),
		newProfilePartCmd(), newProfileMergeCmd())
	cmd.AddCommand(newDataSynthCmd(o))
	return cmd
}

// transferFlags are the flags of sync, cp and verify.
type transferFlags struct {
	s3        s3Flags
	opts      transfer.Options
	bwlimit   string
	maxMemory string
	report    string
	progress  bool
	noProg    bool
}

func (f *transferFlags) add(cmd *cobra.Command, withCopy bool) {
	fs := cmd.Flags()
	fs.IntVar(&f.opts.Transfers, "transfers", 16, "objects copied in parallel")
	fs.IntVar(&f.opts.Checkers, "checkers", 16, "objects compared in parallel")
	fs.StringArrayVar(&f.opts.Include, "include", nil, "only keys matching this glob (repeatable; ** for any directories)")
	fs.StringArrayVar(&f.opts.Exclude, "exclude", nil, "skip keys matching this glob (repeatable)")
	fs.StringVar(&f.report, "report", "", "write the JSON task report to this file")
	f.s3.add(fs)
	if !withCopy {
		return
	}
	fs.BoolVar(&f.opts.Checksum, "checksum", false, "compare by SHA-256 instead of size and modification time")
	fs.BoolVar(&f.opts.DryRun, "dry-run", false, "show what would be copied and deleted; change nothing")
	fs.StringVar(&f.bwlimit, "bwlimit", "", "bandwidth limit, e.g. 10M (MiB/s) or 512K")
	fs.StringVar(&f.maxMemory, "max-memory", "2G", "bound on the part buffers of the large uploads and downloads under way; a large file waits beyond it (one alone always goes; 0: the default)")
	fs.IntVar(&f.opts.Retries, "retries", 3, "retries of a failed object, with doubling backoff")
	fs.StringVar(&f.opts.Verify, "verify", transfer.VerifyNone, "after copying, verify: none, transferred (re-read what was written) or all (the whole destination)")
	fs.BoolVar(&f.noProg, "no-progress", false, "no progress bar (the default when stderr is not a terminal)")
}

// prepareEndpoints checks the flags and parses the SRC and DST arguments.
func (f *transferFlags) prepareEndpoints(cmd *cobra.Command, args []string) (src, dst transfer.Endpoint, err error) {
	if err = f.prepare(cmd); err != nil {
		return src, dst, err
	}
	if src, err = f.s3.parse(args[0]); err != nil {
		return src, dst, err
	}
	dst, err = f.s3.parse(args[1])
	return src, dst, err
}

func (f *transferFlags) prepare(cmd *cobra.Command) error {
	rate, err := transfer.ParseRate(f.bwlimit)
	if err != nil {
		return fmt.Errorf("--bwlimit: %w", err)
	}
	f.opts.BwLimit = rate
	if f.maxMemory != "" {
		mem, err := bytesize.Parse(f.maxMemory, bytesize.Byte)
		if err != nil {
			return fmt.Errorf("--max-memory: %w", err)
		}
		f.opts.MaxMemory = mem
	}
	if f.opts.Transfers < 1 || f.opts.Checkers < 1 {
		return fmt.Errorf("--transfers and --checkers must be at least 1")
	}
	file, ok := cmd.ErrOrStderr().(*os.File)
	switch {
	case !ok || f.noProg:
	case isatty.IsTerminal(file.Fd()):
		f.opts.Progress = transfer.NewProgress(file)
	case os.Getenv("HPCML_JOB_ID") != "":
		// Running as a job: a line every few seconds, for `job logs`.
		f.opts.Progress = transfer.NewProgressLines(cmd.OutOrStdout(), 5*time.Second)
	}
	// Warnings (a file retried, a full destination) on stderr, as they
	// happen; the report has every failure's reason at the end.
	var notes io.Writer = cmd.ErrOrStderr()
	if f.opts.Progress != nil {
		notes = f.opts.Progress.Notes(notes)
	}
	f.opts.Log = slog.New(slog.NewTextHandler(notes, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return nil
}

func newDataTransferCmd(o *rootOptions, name string) *cobra.Command {
	f := &transferFlags{}
	sub := &dataSubmitFlags{}
	var del bool
	short := "Copy new and changed files from SRC to DST (and with --delete, remove what SRC lacks)"
	if name == "cp" {
		short = "Copy SRC (a file or a tree) to DST; never deletes"
	}
	cmd := &cobra.Command{
		Use:   name + " SRC DST",
		Short: short,
		Example: `  hpcml data ` + name + ` ./dataset 's3://ml/datasets/v1/?endpoint=http://127.0.0.1:7070&region=us-east-1&use_path_style=true'
  hpcml data ` + name + ` s3://ml/datasets/v1/ /scratch/v1/ --transfers 32 --verify transferred --report report.json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if sub.submit {
				return submitTransfer(cmd.Context(), cmd, o, name, args, sub)
			}
			op := map[string]string{"cp": "copy", "sync": "sync"}[name]
			run := transferRun{op: op, src: args[0], dst: args[1], started: time.Now()}
			rep, err := func() (*transfer.Report, error) {
				src, dst, err := f.prepareEndpoints(cmd, args)
				if err != nil {
					return nil, err
				}
				f.opts.Delete = del
				f.reportToJob(o.getenv(job.ProgressFileEnv), cmd.ErrOrStderr())
				if name == "cp" {
					return transfer.Copy(cmd.Context(), src, dst, f.opts)
				}
				return transfer.Sync(cmd.Context(), src, dst, f.opts)
			}()
			return finishTransfer(cmd, o, f.report, run, rep, err)
		},
	}
	f.add(cmd, true)
	sub.add(cmd.Flags())
	if name == "sync" {
		cmd.Flags().BoolVar(&del, "delete", false, "remove destination files the source does not have (not if anything failed)")
	}
	return cmd
}

func newDataVerifyCmd(o *rootOptions) *cobra.Command {
	f := &transferFlags{}
	cmd := &cobra.Command{
		Use:   "verify SRC DST",
		Short: "Check that DST holds every file of SRC with the same content (SHA-256)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			run := transferRun{op: "verify", src: args[0], dst: args[1], started: time.Now()}
			rep, err := func() (*transfer.Report, error) {
				src, dst, err := f.prepareEndpoints(cmd, args)
				if err != nil {
					return nil, err
				}
				return transfer.Verify(cmd.Context(), src, dst, f.opts)
			}()
			return finishTransfer(cmd, o, f.report, run, rep, err)
		},
	}
	f.add(cmd, false)
	return cmd
}

// transferRun names a transfer for the report written when it could not
// start: the operation and the locations as given.
type transferRun struct {
	op, src, dst string
	started      time.Time
}

// finishTransfer writes the report, prints a summary (or the report with
// -o json) and sets the exit code: 1 when anything failed. A transfer
// that could not start (bad input, a missing source, refused
// credentials) has no report of its own; --report then gets one that
// carries the error, so that whatever reads it learns why.
func finishTransfer(cmd *cobra.Command, o *rootOptions, reportPath string, run transferRun, rep *transfer.Report, err error) error {
	if rep == nil {
		if err != nil && reportPath != "" {
			if werr := writeReport(reportPath, transfer.FailedReport(run.op, run.src, run.dst, run.started, err)); werr != nil {
				return fmt.Errorf("%w (and the report could not be written: %v)", err, werr)
			}
		}
		return err
	}
	if reportPath != "" {
		if werr := writeReport(reportPath, rep); werr != nil {
			return werr
		}
	}
	format, ferr := o.format(formatTable, formatJSON, formatYAML)
	if ferr != nil {
		return ferr
	}
	out := cmd.OutOrStdout()
	if format != formatTable {
		if perr := printDoc(out, format, rep); perr != nil {
			return perr
		}
	} else {
		printSummary(out, rep)
	}
	if err != nil {
		return err
	}
	if !rep.OK() {
		return &exitError{code: 1}
	}
	return nil
}

func printSummary(w io.Writer, rep *transfer.Report) {
	t := rep.Totals
	verb := "Transferred"
	if rep.DryRun {
		verb = "Would transfer"
	}
	switch rep.Operation {
	case "verify":
		fmt.Fprintf(w, "Verified %d of %d files", t.FilesVerified, t.FilesListed)
	case "remove":
		verb = "Deleted"
		if rep.DryRun {
			verb = "Would delete"
		}
		fmt.Fprintf(w, "%s %d files", verb, len(rep.Deleted))
	default:
		fmt.Fprintf(w, "%s %d files (%s), skipped %d unchanged (%s)", verb, t.FilesTransferred,
			transfer.Bytes(t.BytesTransferred), t.FilesSkipped, transfer.Bytes(t.BytesSkipped))
		if len(rep.Deleted) > 0 {
			fmt.Fprintf(w, ", deleted %d", len(rep.Deleted))
		}
		if t.FilesVerified > 0 {
			fmt.Fprintf(w, ", verified %d", t.FilesVerified)
		}
	}
	fmt.Fprintf(w, " in %.1fs\n", rep.Seconds)
	if rep.DryRun {
		for i, e := range rep.Transferred {
			if i == maxListed {
				fmt.Fprintf(w, "  ... and %d more\n", len(rep.Transferred)-maxListed)
				break
			}
			fmt.Fprintf(w, "  copy    %s (%s)\n", e.Key, transfer.Bytes(e.Size))
		}
		if rep.Operation != "remove" {
			for i, k := range rep.Deleted {
				if i == maxListed {
					fmt.Fprintf(w, "  ... and %d more\n", len(rep.Deleted)-maxListed)
					break
				}
				fmt.Fprintf(w, "  delete  %s\n", k)
			}
		}
	}
	printFailures(w, "FAILED  ", rep.Failed)
	printFailures(w, "MISMATCH", rep.Mismatched)
}

// maxListed bounds the failures printed; the report has them all.
const maxListed = 20

func printFailures(w io.Writer, label string, fs []transfer.Failure) {
	for i, f := range fs {
		if i == maxListed {
			fmt.Fprintf(w, "%s  ... and %d more (--report FILE lists them all)\n", label, len(fs)-maxListed)
			return
		}
		fmt.Fprintf(w, "%s  %s: %s\n", label, f.Key, f.Reason)
	}
}

func newDataLsCmd(o *rootOptions) *cobra.Command {
	var s3 s3Flags
	cmd := &cobra.Command{
		Use:   "ls LOCATION",
		Short: "List the files under a location, with sizes and times",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			ep, err := s3.parse(args[0])
			if err != nil {
				return err
			}
			objs, err := transfer.List(cmd.Context(), ep)
			if err != nil {
				return err
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, objs)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "SIZE\tMODIFIED\tKEY")
			for _, ob := range objs {
				key := ob.Key
				if key == "" {
					key = ep.Prefix
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\n", ob.Size, ob.ModTime.Local().Format(time.DateTime), key)
			}
			return tw.Flush()
		},
	}
	s3.add(cmd.Flags())
	return cmd
}

func newDataDuCmd(o *rootOptions) *cobra.Command {
	var s3 s3Flags
	cmd := &cobra.Command{
		Use:   "du LOCATION",
		Short: "Count the files and bytes under a location",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			ep, err := s3.parse(args[0])
			if err != nil {
				return err
			}
			files, bytes, err := transfer.Usage(cmd.Context(), ep)
			if err != nil {
				return err
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, map[string]any{"location": args[0], "files": files, "bytes": bytes})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d files, %s (%d bytes)\n", files, transfer.Bytes(bytes), bytes)
			return nil
		},
	}
	s3.add(cmd.Flags())
	return cmd
}

func newDataRmCmd(o *rootOptions) *cobra.Command {
	f := &transferFlags{}
	var recursive bool
	cmd := &cobra.Command{
		Use:   "rm LOCATION",
		Short: "Remove a file, or with --recursive every file under a location",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			run := transferRun{op: "remove", src: args[0], started: time.Now()}
			rep, err := func() (*transfer.Report, error) {
				ep, err := f.s3.parse(args[0])
				if err != nil {
					return nil, err
				}
				if ep, err = transfer.Locate(cmd.Context(), ep); err != nil {
					return nil, err
				}
				if !ep.Single() && !recursive {
					return nil, fmt.Errorf("%s is a tree: give --recursive to remove everything under it", args[0])
				}
				return transfer.Remove(cmd.Context(), ep, f.opts)
			}()
			return finishTransfer(cmd, o, f.report, run, rep, err)
		},
	}
	f.add(cmd, false)
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "remove every file under the location")
	cmd.Flags().BoolVar(&f.opts.DryRun, "dry-run", false, "list what would be removed; remove nothing")
	return cmd
}

// writeReport writes a report as indented JSON, whole or not at all.
func writeReport(path string, rep *transfer.Report) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err == nil {
		err = writeFileAtomic(path, append(data, '\n'))
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
