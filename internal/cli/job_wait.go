package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
)

func succeeded(j *job.Job) bool { return j.State == job.Succeeded }

func newJobWaitCmd(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "wait ID...",
		Short: "Wait for jobs to end and print their final states",
		Long: `Wait for every job to end and print how it ended.
The exit status is 0 only if every job SUCCEEDED.`,
		Args: cobra.MinimumNArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			status := format == formatTable && isTerminal(cmd.ErrOrStderr())
			if len(args) > 1 && !status {
				// Many jobs, nobody watching a status line: one long poll
				// for all of them. If that fails for a job's sake (an id
				// that names none), the one-by-one wait below says which.
				jobs, err := c.WaitJobs(ctx, args)
				if err == nil {
					next := 0 // forEachJob goes through args in order
					return forEachJob(cmd, args, format, func(string) (*job.Job, error) {
						j := jobs[next]
						next++
						if format == formatTable {
							fmt.Fprintln(cmd.OutOrStdout(), finalLine(j))
						}
						return j, nil
					}, succeeded)
				}
				if affectsAll(err) || ctx.Err() != nil {
					return err
				}
			}
			// One after the other: the total wait is the longest job's
			// either way, and the output stays in the order given.
			return forEachJob(cmd, args, format, func(id string) (*job.Job, error) {
				j, err := waitWithStatus(ctx, c, id, cmd.ErrOrStderr(), format == formatTable, o.now)
				if err == nil && format == formatTable {
					fmt.Fprintln(cmd.OutOrStdout(), finalLine(j))
				}
				return j, err
			}, succeeded)
		}),
	}
}
