package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/registry"
	"github.com/hpcml/hpcml/internal/transfer"
)

func newModelCmd(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "The model registry: ONNX model versions, aliases (stages) and their lineage",
		Long: `A model is a name and a series of immutable versions 1, 2, 3… Each version is an ONNX
file copied byte for byte into the server's storage (models/NAME/VERSION/model.onnx) with
its SHA-256, input/output signature, preprocessing metadata, metrics and lineage (training
job, dataset version). Registering compiles the file with the engine's ONNX importer, so a
file the inference server could not load is refused, naming the operators it lacks.

Aliases such as staging and production point at one version each and can be moved.
A reference is NAME:VERSION, NAME:ALIAS or NAME (the latest version).`,
	}
	cmd.AddCommand(newModelRegisterCmd(o), newModelListCmd(o), newModelGetCmd(o), newModelVersionsCmd(o),
		newModelAliasCmd(o), newModelDownloadCmd(o))
	return cmd
}

// parseKV reads repeatable KEY=VALUE flags.
func parseKV(flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("--%s %q: want KEY=VALUE", flag, kv)
		}
		out[strings.TrimSpace(k)] = v
	}
	return out, nil
}

// resolveDatasetVersion resolves dataset NAME[@VERSION] to its source URL
// and version number (the latest when version is "").
func resolveDatasetVersion(ctx context.Context, o *rootOptions, name, version string) (string, int, error) {
	v := 0
	if version != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(version, "v"))
		if err != nil || n <= 0 {
			return "", 0, fmt.Errorf("version %q is not a positive number", version)
		}
		v = n
	}
	c, cfg, err := o.client()
	if err != nil {
		return "", 0, err
	}
	dv, err := c.GetDatasetVersion(ctx, name, v)
	if err != nil {
		return "", 0, explain(err, cfg)
	}
	return dv.Source, dv.Version.Version, nil
}

// artifactURL turns what the user typed into what the server reads: a
// file that exists here becomes an absolute file:// URL (the server reads
// it, so it must be on the server's machine or a shared file system);
// anything else (s3://, file://, a key in the server's storage) is passed
// as it is.
func artifactURL(s string) (string, error) {
	if strings.Contains(s, "://") {
		return s, nil
	}
	if _, err := os.Stat(s); err != nil {
		return s, nil
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return "", err
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String(), nil
}

func newModelRegisterCmd(o *rootOptions) *cobra.Command {
	var (
		artifact, description string
		fromTraining          int64
		metadata, metrics     []string
	)
	cmd := &cobra.Command{
		Use:   "register NAME (--artifact URL | --from-training JOB)",
		Short: "Register an ONNX file, or a training job's model, as the model's next version",
		Long: `Registers the next version of model NAME (made if new) from either

  --artifact URL        an ONNX file: a local path (read by the server, so on its machine
                        or a shared file system), file:///path, s3://bucket/key?..., or a
                        key in the server's storage
  --from-training JOB   the model.onnx of a SUCCEEDED training job, with its evaluation as
                        metrics and its data (dataset NAME:VERSION) and job as lineage

The file is checked by compiling it: a file that is not ONNX or uses an operator the
engine does not implement is refused, and nothing is registered.`,
		Example: `  hpcml model register iris --from-training 42 --description "mlp, 30 epochs"
  hpcml model register mnist-cnn --artifact ./model.onnx --metadata owner=vision
  hpcml model register mnist-cnn --artifact 's3://models/cnn.onnx?endpoint=http://127.0.0.1:7070&region=us-east-1&use_path_style=true'`,
		Args: cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			if err := registry.CheckName(args[0]); err != nil {
				return err
			}
			if (artifact == "") == (fromTraining == 0) {
				return fmt.Errorf("give one of --artifact URL and --from-training JOB")
			}
			req := registry.RegisterRequest{Name: args[0], TrainingJob: fromTraining, Description: description}
			if artifact != "" {
				if req.Artifact, err = artifactURL(artifact); err != nil {
					return err
				}
			}
			if req.Metadata, err = parseKV("metadata", metadata); err != nil {
				return err
			}
			ms, err := parseKV("metric", metrics)
			if err != nil {
				return err
			}
			for k, s := range ms {
				f, err := strconv.ParseFloat(s, 64)
				if err != nil {
					return fmt.Errorf("--metric %s=%s: not a number", k, s)
				}
				if req.Metrics == nil {
					req.Metrics = map[string]float64{}
				}
				req.Metrics[k] = f
			}
			v, err := c.RegisterModel(ctx, req)
			if err != nil {
				return err
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, v)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Registered %s:%d (%s, sha256 %.16s…) as %s\n", v.Name, v.Version,
				transfer.Bytes(v.Size), v.SHA256, v.URI)
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&artifact, "artifact", "", "the ONNX file: a local path, file://, s3:// or a key in the server's storage")
	fl.Int64Var(&fromTraining, "from-training", 0, "register the model of this (succeeded) training job")
	fl.StringVar(&description, "description", "", "what this version is")
	fl.StringArrayVar(&metadata, "metadata", nil, "KEY=VALUE to record with the version (repeatable)")
	fl.StringArrayVar(&metrics, "metric", nil, "NAME=NUMBER to record as a metric (repeatable; over a training job's)")
	return cmd
}

// aliasText lists a model's aliases as "production=3, staging=4".
func aliasText(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	names := make([]string, 0, len(m))
	for a := range m {
		names = append(names, a)
	}
	sort.Strings(names)
	for i, a := range names {
		names[i] = fmt.Sprintf("%s=%d", a, m[a])
	}
	return strings.Join(names, ",")
}

// metricText picks the headline metric of a version for a table.
func metricText(ms map[string]float64) string {
	for _, k := range []string{"accuracy", "rmse", "macro_f1", "r2", "loss"} {
		if v, ok := ms[k]; ok {
			return fmt.Sprintf("%s=%.4g", k, v)
		}
	}
	return "-"
}

func newModelListCmd(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List models with their latest versions and aliases",
		Args:    cobra.NoArgs,
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			ms, err := c.ListModels(ctx)
			if err != nil {
				return err
			}
			if format != formatTable {
				if ms == nil {
					ms = []*registry.Model{}
				}
				return printDoc(cmd.OutOrStdout(), format, ms)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "NAME\tLATEST\tVERSIONS\tALIASES\tMETRIC\tSIZE\tCREATED")
			for _, m := range ms {
				metric, size, created := "-", "-", "-"
				if v := m.Latest; v != nil {
					metric, size, created = metricText(v.Metrics), transfer.Bytes(v.Size), age(o.now(), v.CreatedAt)
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\n", m.Name, m.LatestVersion, m.VersionCount, aliasText(m.Aliases),
					metric, size, created)
			}
			return tw.Flush()
		}),
	}
}

func newModelGetCmd(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME[:VERSION|:ALIAS]",
		Short: "Show a version (default the latest): checksum, signature, metrics, lineage",
		Args:  cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			ref, err := registry.ParseRef(args[0])
			if err != nil {
				return err
			}
			v, err := c.GetModelVersion(ctx, ref)
			if err != nil {
				return err
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, v)
			}
			printModelVersion(cmd.OutOrStdout(), o.now(), v)
			return nil
		}),
	}
}

func printModelVersion(w io.Writer, now time.Time, v *client.ModelVersion) {
	aliases := "-"
	if len(v.Aliases) > 0 {
		aliases = strings.Join(v.Aliases, ", ")
	}
	fmt.Fprintf(w, "Model:     %s:%d  (%s)\n", v.Name, v.Version.Version, v.URI)
	if v.Description != "" {
		fmt.Fprintf(w, "About:     %s\n", v.Description)
	}
	fmt.Fprintf(w, "Aliases:   %s\nSize:      %s\nSHA-256:   %s\nCreated:   %s\n", aliases, transfer.Bytes(v.Size), v.SHA256,
		timeText(now, &v.CreatedAt))
	fmt.Fprintf(w, "Source:    %s\n", v.Lineage.Source)
	if l := v.Lineage; l.TrainingJob > 0 {
		fmt.Fprintf(w, "Training:  job %d (%s on %s)\n", l.TrainingJob, l.Algorithm, l.Data)
	}
	if v.Lineage.Dataset != "" {
		fmt.Fprintf(w, "Dataset:   %s\n", v.Lineage.Dataset)
	}
	fmt.Fprintln(w, "\nSignature:")
	tw := newTable(w)
	fmt.Fprintln(tw, "  \tNAME\tDATATYPE\tSHAPE")
	for _, t := range v.Signature.Inputs {
		fmt.Fprintf(tw, "  input\t%s\t%s\t%v\n", t.Name, t.DataType, t.Shape)
	}
	for _, t := range v.Signature.Outputs {
		fmt.Fprintf(tw, "  output\t%s\t%s\t%v\n", t.Name, t.DataType, t.Shape)
	}
	tw.Flush()
	printMap := func(title string, keys []string, value func(string) string) {
		if len(keys) == 0 {
			return
		}
		sort.Strings(keys)
		fmt.Fprintf(w, "\n%s:\n", title)
		tw := newTable(w)
		for _, k := range keys {
			fmt.Fprintf(tw, "  %s\t%s\n", k, value(k))
		}
		tw.Flush()
	}
	printMap("Metrics", keysOf(v.Metrics), func(k string) string { return strconv.FormatFloat(v.Metrics[k], 'g', 6, 64) })
	printMap("Metadata", keysOf(v.Metadata), func(k string) string { return v.Metadata[k] })
	printMap("Preprocessing", keysOf(v.Preprocessing), func(k string) string {
		s := v.Preprocessing[k]
		if len(s) > 100 {
			s = s[:100] + "…"
		}
		return s
	})
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func newModelVersionsCmd(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "versions NAME",
		Short: "List a model's versions, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			if err := registry.CheckName(args[0]); err != nil {
				return err
			}
			vs, err := c.ListModelVersions(ctx, args[0])
			if err != nil {
				return err
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, vs)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "VERSION\tALIASES\tMETRIC\tSIZE\tSHA256\tTRAINING JOB\tDATASET\tCREATED")
			for _, v := range vs {
				aliases, job, ds := "-", "-", "-"
				if len(v.Aliases) > 0 {
					aliases = strings.Join(v.Aliases, ",")
				}
				if v.Lineage.TrainingJob > 0 {
					job = strconv.FormatInt(v.Lineage.TrainingJob, 10)
				}
				if v.Lineage.Dataset != "" {
					ds = v.Lineage.Dataset
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%.12s\t%s\t%s\t%s\n", v.Version.Version, aliases, metricText(v.Metrics),
					transfer.Bytes(v.Size), v.SHA256, job, ds, age(o.now(), v.CreatedAt))
			}
			return tw.Flush()
		}),
	}
}

func newModelAliasCmd(o *rootOptions) *cobra.Command {
	var del bool
	cmd := &cobra.Command{
		Use:   "alias NAME ALIAS (VERSION | --delete)",
		Short: "Point an alias (staging, production, ...) at a version, move it, or delete it",
		Long: `Points ALIAS of model NAME at VERSION, creating the alias or moving it (a promotion).
VERSION is a number, or another alias or "latest": its version now is taken, so
'hpcml model alias iris production staging' promotes what staging points at.
--delete removes the alias.`,
		Example: `  hpcml model alias iris staging 3
  hpcml model alias iris production staging
  hpcml model alias iris staging --delete`,
		Args: cobra.RangeArgs(2, 3),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			name, alias := args[0], args[1]
			if err := registry.CheckName(name); err != nil {
				return err
			}
			if err := registry.CheckAlias(alias); err != nil {
				return err
			}
			if del {
				if len(args) == 3 {
					return fmt.Errorf("--delete takes no VERSION")
				}
				if err := c.DeleteModelAlias(ctx, name, alias); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Deleted alias %s of %s.\n", alias, name)
				return nil
			}
			if len(args) != 3 {
				return fmt.Errorf("give the VERSION for %s:%s (a number, an alias or latest), or --delete", name, alias)
			}
			ref, err := registry.ParseRef(name + ":" + args[2])
			if err != nil {
				return err
			}
			version := ref.Version
			if version == 0 {
				v, err := c.GetModelVersion(ctx, ref)
				if err != nil {
					return err
				}
				version = v.Version.Version
			}
			res, err := c.SetModelAlias(ctx, name, alias, version)
			if err != nil {
				return err
			}
			switch {
			case res.Previous == 0:
				fmt.Fprintf(cmd.OutOrStdout(), "%s:%s -> version %d (new alias).\n", name, alias, res.Version)
			case res.Previous == res.Version:
				fmt.Fprintf(cmd.OutOrStdout(), "%s:%s -> version %d (unchanged).\n", name, alias, res.Version)
			default:
				fmt.Fprintf(cmd.OutOrStdout(), "%s:%s -> version %d (was %d).\n", name, alias, res.Version, res.Previous)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&del, "delete", false, "delete the alias")
	return cmd
}

func newModelDownloadCmd(o *rootOptions) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "download NAME[:VERSION|:ALIAS] -o FILE",
		Short: "Download a version's ONNX file, checking its SHA-256",
		Long: `Writes the version's ONNX file to FILE ("-" for stdout), byte for byte as registered,
and checks it against the SHA-256 the registry recorded; on a mismatch FILE is removed
and the command fails. (-o names the file here, not an output format.)`,
		Example: `  hpcml model download iris:production -o iris.onnx`,
		Args:    cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			if out == "" {
				return fmt.Errorf("-o FILE is required (- for stdout)")
			}
			ref, err := registry.ParseRef(args[0])
			if err != nil {
				return err
			}
			if out == "-" {
				_, _, err := c.DownloadModel(ctx, ref, cmd.OutOrStdout())
				return err
			}
			// FILE is never a partial or wrong model: renamed into place
			// once the checksum matched.
			var version int
			var n int64
			if err := writeWhole(out, func(w io.Writer) (err error) {
				version, n, err = c.DownloadModel(ctx, ref, w)
				return err
			}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Wrote %s:%d to %s (%s, SHA-256 checked).\n", ref.Name, version, out, transfer.Bytes(n))
			return nil
		}),
	}
	// -o here is the file (a local flag of the same name shadows the
	// global --output format flag).
	cmd.Flags().StringVarP(&out, "output", "o", "", "the file to write (- for stdout)")
	return cmd
}
