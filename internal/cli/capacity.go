package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/client"
)

func newCapacityCmd(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "capacity",
		Short: "Show what the backend can run and what running jobs hold",
		Args:  cobra.NoArgs,
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			capa, err := c.Capacity(ctx)
			if err != nil {
				return err
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, capa)
			}
			t, u := capa.Total, capa.Used
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "RESOURCE\tUSED\tTOTAL\tFREE")
			fmt.Fprintf(tw, "cpus\t%s\t%s\t%s\n", cpuText(u.CPUs), cpuText(t.CPUs), cpuText(max(0, t.CPUs-u.CPUs)))
			fmt.Fprintf(tw, "memory\t%s\t%s\t%s\n", memText(u.MemoryMB), memText(t.MemoryMB), memText(max(0, t.MemoryMB-u.MemoryMB)))
			fmt.Fprintf(tw, "gpus\t%d\t%d\t%d\n", u.GPUs, t.GPUs, max(0, t.GPUs-u.GPUs))
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "\nRunning jobs: %d\n", capa.Running)
			return nil
		}),
	}
}
