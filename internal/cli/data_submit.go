package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/transfer"
)

// dataSubmitFlags run a data command as a job on the server instead of here.
type dataSubmitFlags struct {
	submit bool
	queue  string
	wait   bool
}

func (s *dataSubmitFlags) add(fs *pflag.FlagSet) {
	fs.BoolVar(&s.submit, "submit", false, "run the transfer as a job on the server's backend (progress in job get, the dashboard and job logs; report stored with the job)")
	fs.StringVarP(&s.queue, "queue", "q", "", "with --submit: the job's queue")
	fs.BoolVar(&s.wait, "wait", false, "with --submit: wait for the job to end; exit 1 if it failed")
}

// notForwarded are the flags that concern this process, not the job's.
var notForwarded = map[string]bool{"submit": true, "queue": true, "wait": true, "report": true, "no-progress": true, "output": true, "server": true}

// submitTransfer submits `hpcml data <name> SRC DST [flags]` as a job.
// Local paths become absolute (the job runs in its own dir); the report
// goes to the server's storage under transfers/<time>/report.json when
// the job succeeds. Credentials for S3 are the server's (its environment),
// not this shell's.
func submitTransfer(ctx context.Context, cmd *cobra.Command, o *rootOptions, name string, args []string, s *dataSubmitFlags) error {
	argv := []string{"hpcml", "data", name}
	for _, a := range args {
		ep, err := transfer.ParseEndpoint(a)
		if err != nil {
			return err
		}
		if ep.Kind == transfer.KindLocal && !filepath.IsAbs(a) {
			abs, err := filepath.Abs(a)
			if err != nil {
				return err
			}
			if len(a) > 0 && a[len(a)-1] == '/' {
				abs += "/"
			}
			a = abs
		}
		argv = append(argv, a)
	}
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if notForwarded[f.Name] {
			return
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, v := range sv.GetSlice() {
				argv = append(argv, "--"+f.Name+"="+v)
			}
			return
		}
		argv = append(argv, "--"+f.Name+"="+f.Value.String())
	})
	reportKey := fmt.Sprintf("transfers/%s-%d/report.json", name, time.Now().UnixNano())
	argv = append(argv, "--report", "report.json")
	spec := &job.Spec{
		Name:    "data-" + name,
		Queue:   s.queue,
		Command: argv,
		// Always: a failed transfer's report is the one that says what failed.
		Outputs: []job.Output{{Path: "report.json", URL: reportKey, Always: true}},
	}
	format, err := o.format(formatTable, formatJSON, formatYAML)
	if err != nil {
		return err
	}
	c, cfg, err := o.client()
	if err != nil {
		return err
	}
	if format == formatTable {
		fmt.Fprintf(cmd.OutOrStdout(), "The report will be stored at %s when the job ends (hpcml job output JOB report.json prints it).\n", reportKey)
	}
	return explain(submit(ctx, cmd, o, c, spec, s.wait, format), cfg)
}
