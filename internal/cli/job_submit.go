package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
)

func newJobSubmitCmd(o *rootOptions) *cobra.Command {
	f := &submitFlags{}
	cmd := &cobra.Command{
		Use:   "submit [flags] [-f spec.yaml|-] [-- CMD ARGS...]",
		Short: "Submit a job",
		Long: `Submit a job that runs CMD ARGS (without a shell unless --shell).

With -f, the spec is read from a YAML or JSON file ('-' for stdin); flags given
explicitly override its fields (env and tags merge key by key, lists such as
--input replace the file's) and a command after -- replaces the file's command.

Everything after the first argument that is not a flag is the command, so
'hpcml job submit --cpus 2 python train.py --lr 0.1' passes --lr to python.

-o/--output takes either the output format (json, yaml) or, as PATH=URL, a file
or directory in the job dir to copy to storage after the job succeeds.`,
		Example: `  hpcml job submit -- echo hello
  hpcml job submit --cpus 2 --memory 4G --time 1h --wait -- python train.py
  hpcml job submit --array 0-99%10 -- ./process.sh
  hpcml job submit --mpi --nodes 2 --tasks-per-node 4 --cpus 1 -- ./solver
  hpcml job submit --dependency afterok:12 --input s3://data/x.csv=x.csv -o out/=s3://results/ -- ./run
  hpcml job submit -f job.yaml --queue gpu`,
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			spec, err := f.spec(cmd.Flags(), args, cmd.InOrStdin(), o.lookupEnv)
			if err != nil {
				return err
			}
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			return submit(ctx, cmd, o, c, spec, f.wait, format)
		}),
	}
	f.register(cmd.Flags(), o)
	return cmd
}

func submit(ctx context.Context, cmd *cobra.Command, o *rootOptions, c *client.Client, spec *job.Spec, wait bool, format string) error {
	out := cmd.OutOrStdout()
	j, err := c.SubmitJob(ctx, spec)
	if err != nil {
		return err
	}
	if format == formatTable {
		if j.IsArrayParent() {
			fmt.Fprintf(out, "Submitted array job %s (%d tasks)\n", j.DisplayID(), j.ArraySize)
		} else {
			fmt.Fprintf(out, "Submitted job %s\n", j.DisplayID())
		}
	}
	if !wait {
		if format != formatTable {
			return printDoc(out, format, j)
		}
		return nil
	}
	final, err := waitWithStatus(ctx, c, j.DisplayID(), cmd.ErrOrStderr(), format == formatTable, o.now)
	if err != nil {
		return err
	}
	if format == formatTable {
		fmt.Fprintln(out, finalLine(final))
	} else if err := printDoc(out, format, final); err != nil {
		return err
	}
	if final.State != job.Succeeded {
		return &exitError{code: 1}
	}
	return nil
}
