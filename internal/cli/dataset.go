package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/dataset"
	"github.com/hpcml/hpcml/internal/transfer"
)

func newDatasetCmd(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dataset",
		Short: "Versioned datasets: immutable manifests of objects, sizes and SHA-256",
		Long: `A dataset is a name and a series of immutable versions. Each version is a
manifest of the objects under a URL (key, size, SHA-256), so that jobs and
training can name NAME@VERSION and get exactly those bytes later.`,
	}
	cmd.AddCommand(newDatasetCreateCmd(o), newDatasetListCmd(o), newDatasetGetCmd(o), newDatasetVersionsCmd(o))
	return cmd
}

func newDatasetCreateCmd(o *rootOptions) *cobra.Command {
	var opts transfer.Options
	cmd := &cobra.Command{
		Use:   "create NAME URL",
		Short: "Record the objects under URL as the next version of dataset NAME",
		Long: `Lists URL (a local path, file://, s3:// or http(s)://) here, with this shell's
credentials, takes every object's SHA-256 (the one recorded by hpcml data, else
read), and stores the manifest on the server as the dataset's next version. If
the latest version holds exactly the same objects, no version is added.`,
		Example: `  hpcml dataset create mnist 's3://ml/mnist/?endpoint=http://127.0.0.1:7070&region=us-east-1&use_path_style=true'`,
		Args:    cobra.ExactArgs(2),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			if !dataset.ValidName(args[0]) {
				return fmt.Errorf("%q is not a valid dataset name (letters, digits, . _ -; at most 128)", args[0])
			}
			if err := dataset.CheckSource(args[1]); err != nil {
				return err
			}
			ep, err := transfer.ParseEndpoint(args[1])
			if err != nil {
				return err
			}
			m, err := transfer.Manifest(ctx, ep, opts)
			if err != nil {
				return err
			}
			prev := 0
			if d, err := c.GetDataset(ctx, args[0]); err == nil && d.Latest != nil {
				prev = d.Latest.Version
			} else if err != nil && !client.IsNotFound(err) {
				return err
			}
			v, err := c.AddDatasetVersion(ctx, args[0], m)
			if err != nil {
				return err
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, v)
			}
			what := "Created"
			if v.Version == prev {
				what = "Unchanged: the latest version already holds these objects:"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s@%d: %d files, %s (digest %.12s)\n", what, v.Dataset, v.Version, v.Files,
				transfer.Bytes(v.Bytes), v.Digest)
			return nil
		}),
	}
	cmd.Flags().IntVar(&opts.Checkers, "checkers", 16, "objects checksummed in parallel")
	cmd.Flags().StringArrayVar(&opts.Include, "include", nil, "only keys matching this glob (repeatable)")
	cmd.Flags().StringArrayVar(&opts.Exclude, "exclude", nil, "skip keys matching this glob (repeatable)")
	return cmd
}

func newDatasetListCmd(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List datasets with their latest versions",
		Args:    cobra.NoArgs,
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			ds, err := c.ListDatasets(ctx)
			if err != nil {
				return err
			}
			if format != formatTable {
				if ds == nil {
					ds = []*dataset.Dataset{}
				}
				return printDoc(cmd.OutOrStdout(), format, ds)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "NAME\tLATEST\tFILES\tSIZE\tSOURCE\tCREATED")
			for _, d := range ds {
				v := d.Latest
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", d.Name, v.Version, v.Files, transfer.Bytes(v.Bytes), v.Source, age(o.now(), v.CreatedAt))
			}
			return tw.Flush()
		}),
	}
}

func newDatasetGetCmd(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME[@VERSION]",
		Short: "Show a version of a dataset (default the latest) and its objects",
		Args:  cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			ref, err := dataset.ParseRef(args[0])
			if err != nil {
				return err
			}
			v, err := c.GetDatasetVersion(ctx, ref.Name, ref.Version)
			if err != nil {
				return err
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, v)
			}
			out := cmd.OutOrStdout()
			ver := v.Version
			fmt.Fprintf(out, "Dataset:  %s@%d\nSource:   %s\nFiles:    %d (%s)\nDigest:   %s\nCreated:  %s\n\n",
				ver.Dataset, ver.Version, ver.Source, ver.Files, transfer.Bytes(ver.Bytes), ver.Digest, timeText(o.now(), &ver.CreatedAt))
			tw := newTable(out)
			fmt.Fprintln(tw, "SIZE\tSHA256\tKEY")
			for _, ob := range v.Manifest.Objects {
				fmt.Fprintf(tw, "%d\t%.16s…\t%s\n", ob.Size, ob.SHA256, ob.Key)
			}
			return tw.Flush()
		}),
	}
}

func newDatasetVersionsCmd(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "versions NAME",
		Short: "List a dataset's versions, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			d, err := c.GetDataset(ctx, args[0])
			if err != nil {
				return err
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, d.Versions)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "VERSION\tFILES\tSIZE\tDIGEST\tSOURCE\tCREATED")
			for _, v := range d.Versions {
				fmt.Fprintf(tw, "%d\t%d\t%s\t%.12s\t%s\t%s\n", v.Version, v.Files, transfer.Bytes(v.Bytes), v.Digest, v.Source, age(o.now(), v.CreatedAt))
			}
			return tw.Flush()
		}),
	}
}
