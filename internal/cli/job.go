package cli

import "github.com/spf13/cobra"

func newJobCmd(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Submit, inspect and control batch jobs",
	}
	cmd.AddCommand(
		newJobSubmitCmd(o),
		newJobListCmd(o),
		newJobGetCmd(o),
		newJobLogsCmd(o),
		newJobOutputCmd(o),
		newJobCancelCmd(o),
		newJobWaitCmd(o),
	)
	return cmd
}
