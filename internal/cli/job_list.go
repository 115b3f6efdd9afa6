package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
)

func newJobListCmd(o *rootOptions) *cobra.Command {
	var (
		filter client.ListOptions
		array  string
	)
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List jobs, newest first",
		Args:    cobra.NoArgs,
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			if filter.State != "" {
				filter.State = strings.ToUpper(filter.State)
				if !job.State(filter.State).Valid() {
					return fmt.Errorf("--state %s: not one of %s", filter.State, statesList())
				}
			}
			if array != "" {
				id, _, isTask, err := job.ParseID(array)
				if err != nil || isTask {
					return fmt.Errorf("--array %q: want the id of an array job", array)
				}
				filter.Parent = id
			}
			jobs, err := c.ListJobs(ctx, filter)
			if err != nil {
				return err
			}
			if format != formatTable {
				if jobs == nil {
					jobs = []*job.Job{} // "[]", not "null", for jq
				}
				return printDoc(cmd.OutOrStdout(), format, jobs)
			}
			if len(jobs) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "No jobs found.")
				return nil
			}
			return printJobTable(cmd, o, jobs)
		}),
	}
	fs := cmd.Flags()
	fs.StringVar(&filter.State, "state", "", "only jobs in this state ("+statesList()+")")
	fs.StringVarP(&filter.Queue, "queue", "q", "", "only jobs of this queue")
	fs.StringVar(&array, "array", "", "list the tasks of this array job")
	fs.IntVar(&filter.Limit, "limit", 0, "at most this many jobs (server default 100, at most 1000)")
	fs.Int64Var(&filter.Before, "before", 0, "only jobs with a smaller id (to page back)")
	return cmd
}

func statesList() string {
	names := make([]string, len(job.States))
	for i, s := range job.States {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

func printJobTable(cmd *cobra.Command, o *rootOptions, jobs []*job.Job) error {
	now := o.now()
	tw := newTable(cmd.OutOrStdout())
	fmt.Fprintln(tw, "ID\tNAME\tQUEUE\tSTATE\tREASON\tATTEMPT\tSUBMITTED\tELAPSED\tEXIT")
	for _, j := range jobs {
		reason := j.Reason
		if reason == "" && j.IsArrayParent() {
			reason = countsText(j.ArrayCounts, false)
		}
		attempt := attemptText(j)
		if j.IsArrayParent() {
			attempt = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			j.DisplayID(), dash(j.Name), j.Queue, j.State, dash(truncate(reason, 40)), attempt,
			age(now, j.SubmittedAt), elapsed(now, j.StartedAt, j.EndedAt), exitText(j.ExitCode, j.Signal))
	}
	return tw.Flush()
}
