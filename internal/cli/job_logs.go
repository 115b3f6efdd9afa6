package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/client"
)

func newJobLogsCmd(o *rootOptions) *cobra.Command {
	var (
		opts   client.LogOptions
		stderr bool
	)
	cmd := &cobra.Command{
		Use:   "logs [-f] [--stderr] [--attempt N] ID",
		Short: "Print a job's stdout (or stderr)",
		Args:  cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			if stderr {
				opts.Stream = "stderr"
			}
			if opts.Attempt < 0 {
				return fmt.Errorf("--attempt %d: must be positive", opts.Attempt)
			}
			rc, err := c.Logs(ctx, args[0], opts)
			if err != nil {
				return err
			}
			defer rc.Close()
			if _, err := io.Copy(cmd.OutOrStdout(), rc); err != nil {
				return fmt.Errorf("logs of job %s: %w", args[0], err)
			}
			return nil
		}),
	}
	fs := cmd.Flags()
	fs.BoolVarP(&opts.Follow, "follow", "f", false, "keep printing until the attempt ends")
	fs.BoolVar(&stderr, "stderr", false, "print stderr instead of stdout")
	fs.IntVar(&opts.Attempt, "attempt", 0, "attempt number (default: the latest)")
	return cmd
}
