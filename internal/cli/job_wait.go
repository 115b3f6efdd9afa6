package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
)

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
			// One after the other: the total wait is the longest job's
			// either way, and the output stays in the order given.
			return forEachJob(cmd, args, format, func(id string) (*job.Job, error) {
				j, err := waitWithStatus(ctx, c, id, cmd.ErrOrStderr(), format == formatTable, o.now)
				if err == nil && format == formatTable {
					fmt.Fprintln(cmd.OutOrStdout(), finalLine(j))
				}
				return j, err
			}, func(j *job.Job) bool { return j.State == job.Succeeded })
		}),
	}
}
