package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/client"
)

func newJobOutputCmd(o *rootOptions) *cobra.Command {
	var to string
	cmd := &cobra.Command{
		Use:   "output ID PATH",
		Short: "Print a file the job stored as an output in the server's storage (or write it --to a file)",
		Example: `  hpcml job output 12 report.json          # a data sync --submit job's report
  hpcml job output 7 results/metrics.csv --to metrics.csv`,
		Args: cobra.ExactArgs(2),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			rc, err := c.JobOutput(ctx, args[0], args[1])
			if err != nil {
				return err
			}
			defer rc.Close()
			copyOut := func(w io.Writer) error {
				if _, err := io.Copy(w, rc); err != nil {
					return fmt.Errorf("output %s of job %s: %w", args[1], args[0], err)
				}
				return nil
			}
			if to == "" {
				return copyOut(cmd.OutOrStdout())
			}
			return writeWhole(to, copyOut)
		}),
	}
	cmd.Flags().StringVar(&to, "to", "", "write the file here instead of to stdout (whole or not at all)")
	return cmd
}
