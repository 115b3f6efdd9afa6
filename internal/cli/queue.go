package cli

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
)

func newQueueCmd(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "Create and inspect job queues",
	}
	cmd.AddCommand(newQueueCreateCmd(o), newQueueUpdateCmd(o), newQueueListCmd(o), newQueueGetCmd(o))
	return cmd
}

func newQueueCreateCmd(o *rootOptions) *cobra.Command {
	q := &job.Queue{}
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a queue",
		Args:  cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			q.Name = args[0]
			created, err := c.CreateQueue(ctx, q)
			if err != nil {
				return err
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, created)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created queue %s\n", created.Name)
			return nil
		}),
	}
	fs := cmd.Flags()
	fs.IntVar(&q.Priority, "priority", 0, "priority; jobs of higher-priority queues run first")
	fs.IntVar(&q.MaxRunning, "max-running", 0, "at most this many of the queue's jobs run at once (0: no limit)")
	fs.Float64Var(&q.PriceCPUHour, "price-cpu-hour", 0, "cost of one CPU core for an hour")
	fs.Float64Var(&q.PriceGBHour, "price-gb-hour", 0, "cost of one GB of memory for an hour")
	fs.StringVar(&q.Backend, "backend", job.BackendLocal, "where the queue's jobs run: local or slurm")
	fs.StringVar(&q.Partition, "partition", "", "slurm queues: the Slurm partition (default: the cluster's default)")
	fs.StringVar(&q.Account, "account", "", "slurm queues: the Slurm account to charge")
	fs.StringVar(&q.QOS, "qos", "", "slurm queues: the Slurm quality of service")
	return cmd
}

func newQueueListCmd(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List queues",
		Args:    cobra.NoArgs,
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			queues, err := c.ListQueues(ctx)
			if err != nil {
				return err
			}
			if format != formatTable {
				if queues == nil {
					queues = []*job.Queue{}
				}
				return printDoc(cmd.OutOrStdout(), format, queues)
			}
			now := o.now()
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "NAME\tPRIORITY\tMAX RUNNING\tCPU-HOUR\tGB-HOUR\tBACKEND\tCREATED")
			for _, q := range queues {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%g\t%g\t%s\t%s\n", q.Name, q.Priority, maxRunningText(q.MaxRunning),
					q.PriceCPUHour, q.PriceGBHour, dash(q.Backend), age(now, q.CreatedAt))
			}
			return tw.Flush()
		}),
	}
}

func newQueueGetCmd(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show a queue and how many of its jobs are in each state",
		Args:  cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			q, err := c.GetQueue(ctx, args[0])
			if err != nil {
				return err
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, q)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintf(tw, "Name:\t%s\n", q.Name)
			fmt.Fprintf(tw, "Priority:\t%d\n", q.Priority)
			fmt.Fprintf(tw, "Max running:\t%s\n", maxRunningText(q.MaxRunning))
			fmt.Fprintf(tw, "Price:\t%g per CPU-hour, %g per GB-hour\n", q.PriceCPUHour, q.PriceGBHour)
			fmt.Fprintf(tw, "Backend:\t%s\n", dash(q.Backend))
			if q.Backend == job.BackendSlurm {
				fmt.Fprintf(tw, "Partition:\t%s\n", dash(q.Partition))
				fmt.Fprintf(tw, "Account:\t%s\n", dash(q.Account))
				fmt.Fprintf(tw, "QOS:\t%s\n", dash(q.QOS))
			}
			fmt.Fprintf(tw, "Created:\t%s\n", dash(timeText(o.now(), &q.CreatedAt)))
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "\nJobs:")
			tw = newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "STATE\tCOUNT")
			for _, s := range job.States {
				fmt.Fprintf(tw, "%s\t%d\n", s, q.Counts[s])
			}
			return tw.Flush()
		}),
	}
}

func maxRunningText(n int) string {
	if n == 0 {
		return "unlimited"
	}
	return strconv.Itoa(n)
}

func newQueueUpdateCmd(o *rootOptions) *cobra.Command {
	var priority, maxRunning int
	var priceCPU, priceGB float64
	var partition, account, qos string
	cmd := &cobra.Command{
		Use:   "update NAME",
		Short: "Change a queue's priority, max running jobs, prices or Slurm partition/account/qos",
		Long: `Change a queue's settings; the flags not given stay as they are.
Waiting jobs are scheduled under the new settings at once; the cost of
running jobs is reckoned at the prices in force when they end.`,
		Example: `  hpcml queue update urgent --priority 20
  hpcml queue update default --max-running 4 --price-cpu-hour 0.04`,
		Args: cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			var p job.QueuePatch
			fs := cmd.Flags()
			if fs.Changed("priority") {
				p.Priority = &priority
			}
			if fs.Changed("max-running") {
				p.MaxRunning = &maxRunning
			}
			if fs.Changed("price-cpu-hour") {
				p.PriceCPUHour = &priceCPU
			}
			if fs.Changed("price-gb-hour") {
				p.PriceGBHour = &priceGB
			}
			if fs.Changed("partition") {
				p.Partition = &partition
			}
			if fs.Changed("account") {
				p.Account = &account
			}
			if fs.Changed("qos") {
				p.QOS = &qos
			}
			if p == (job.QueuePatch{}) {
				return fmt.Errorf("nothing to change: give --priority, --max-running, --price-cpu-hour, --price-gb-hour, --partition, --account or --qos")
			}
			q, err := c.UpdateQueue(ctx, args[0], p)
			if err != nil {
				return err
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, q)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Updated queue %s: priority %d, max running %d, %g per CPU-hour, %g per GB-hour\n",
				q.Name, q.Priority, q.MaxRunning, q.PriceCPUHour, q.PriceGBHour)
			return nil
		}),
	}
	fs := cmd.Flags()
	fs.IntVar(&priority, "priority", 0, "priority; jobs of higher-priority queues run first")
	fs.IntVar(&maxRunning, "max-running", 0, "at most this many of the queue's jobs run at once (0: no limit)")
	fs.Float64Var(&priceCPU, "price-cpu-hour", 0, "cost of one CPU core for an hour")
	fs.Float64Var(&priceGB, "price-gb-hour", 0, "cost of one GB of memory for an hour")
	fs.StringVar(&partition, "partition", "", "slurm queues: the Slurm partition for jobs submitted from now on")
	fs.StringVar(&account, "account", "", "slurm queues: the Slurm account")
	fs.StringVar(&qos, "qos", "", "slurm queues: the Slurm quality of service")
	return cmd
}
