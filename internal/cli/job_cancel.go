package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
)

func newJobCancelCmd(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID...",
		Short: "Cancel jobs (an array job cancels all its tasks)",
		Long: `Cancel jobs. A running job gets SIGTERM, then SIGKILL after a grace period;
cancellation is asynchronous, so a running job may still show RUNNING for a moment.
Every ID is tried; the exit status is 1 if any could not be cancelled.`,
		Args: cobra.MinimumNArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			return forEachJob(cmd, args, format, func(id string) (*job.Job, error) {
				j, err := c.CancelJob(ctx, id)
				if err == nil && format == formatTable {
					if j.State.Terminal() {
						fmt.Fprintf(cmd.OutOrStdout(), "Job %s %s\n", j.DisplayID(), j.State)
					} else {
						fmt.Fprintf(cmd.OutOrStdout(), "Cancelling job %s (%s)\n", j.DisplayID(), j.State)
					}
				}
				return j, err
			}, nil)
		}),
	}
}

// forEachJob applies fn to every id. An error about one job (unknown,
// already ended) is printed and the others still run; an error that would
// repeat for every job (server unreachable, token refused) stops at once.
// ok, if not nil, says whether a job's outcome counts as success. With a
// document format the jobs are printed as one list at the end.
func forEachJob(cmd *cobra.Command, ids []string, format string, fn func(id string) (*job.Job, error), ok func(*job.Job) bool) error {
	failed := false
	jobs := []*job.Job{}
	for _, id := range ids {
		j, err := fn(id)
		if err != nil {
			if affectsAll(err) || cmd.Context().Err() != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "error: %v\n", err)
			failed = true
			continue
		}
		jobs = append(jobs, j)
		if ok != nil && !ok(j) {
			failed = true
		}
	}
	if format != formatTable {
		if err := printDoc(cmd.OutOrStdout(), format, jobs); err != nil {
			return err
		}
	}
	if failed {
		return &exitError{code: 1}
	}
	return nil
}

// affectsAll reports whether err is about the server rather than one job.
func affectsAll(err error) bool {
	var ue *client.UnreachableError
	return errors.As(err, &ue) || client.IsUnauthorized(err)
}
