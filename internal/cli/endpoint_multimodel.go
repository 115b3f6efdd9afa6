package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hpcml/hpcml/internal/bytesize"
	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/deploy"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
)

// multiModelFlags are endpoint create's multi-model flags.
type multiModelFlags struct {
	multi              bool
	models, cacheBytes string
}

func (m *multiModelFlags) add(fl *pflag.FlagSet) {
	fl.BoolVar(&m.multi, "multi-model", false, "serve many registered models; each request names its model (needs --models)")
	fl.StringVar(&m.models, "models", "", "with --multi-model: the models served, NAME, NAME:VERSION or PREFIX* (comma-separated)")
	fl.StringVar(&m.cacheBytes, "model-cache-bytes", "", "with --multi-model: each replica's model cache (K, M, G; default half its memory)")
}

// spec is the MultiModel block of the create request (nil without
// --multi-model), refusing flags that mix it with one model.
func (m *multiModelFlags) spec(fl *pflag.FlagSet, model string, variants []string) (*endpoint.MultiModel, error) {
	if !m.multi {
		if m.models != "" || m.cacheBytes != "" {
			return nil, errors.New("--models and --model-cache-bytes need --multi-model")
		}
		return nil, nil
	}
	switch {
	case model != "" || len(variants) > 0:
		return nil, errors.New("--multi-model serves the models --models names: it takes no --model or --variant")
	case m.models == "":
		return nil, errors.New("--multi-model needs --models: NAME, NAME:VERSION or PREFIX* (comma-separated; '*' is every model)")
	case fl.Changed("async"):
		return nil, errors.New("an endpoint is either async or multi-model")
	}
	if _, err := endpoint.ParseFilter(m.models); err != nil {
		return nil, fmt.Errorf("--models: %w", err)
	}
	mm := &endpoint.MultiModel{Models: m.models}
	if m.cacheBytes != "" {
		n, err := bytesize.Parse(m.cacheBytes, bytesize.Byte)
		if err != nil {
			return nil, fmt.Errorf("--model-cache-bytes: %w", err)
		}
		if n <= 0 {
			return nil, fmt.Errorf("--model-cache-bytes %s must be more than 0", m.cacheBytes)
		}
		mm.CacheBytes = n
	}
	return mm, nil
}

func printMultiModelInvoke(w io.Writer, base string, st *deploy.Status) {
	fmt.Fprintf(w, "Invoke a model at %s/endpoints/%s/invocations with %s: NAME[:VERSION|:ALIAS],\n"+
		"or at %s/endpoints/%s/v2/models/NAME/infer (hpcml endpoint invoke %s --target-model NAME ...)\n",
		base, st.Name, deploy.HeaderTargetModel, base, st.Name, st.Name)
}

func newEndpointModelsCmd(o *rootOptions) *cobra.Command {
	var ready bool
	var load, unload string
	cmd := &cobra.Command{
		Use:   "models NAME [--ready] [--load MODEL | --unload MODEL]",
		Short: "A multi-model endpoint's models: which are loaded, on how many replicas; load or unload one",
		Long: `Lists every registered model version a multi-model endpoint's filter allows, with its state
on the replicas (READY: loaded on REPLICAS of them; LOADING; UNAVAILABLE: not loaded, it loads
on its first request). --load MODEL[:VERSION|:ALIAS] loads one on the replica its requests go
to (a warm-up); --unload unloads it from every replica. It is the Open Inference Protocol's
repository extension at /endpoints/NAME/v2/repository/.`,
		Example: `  hpcml endpoint models many
  hpcml endpoint models many --load digits-mlp:production
  hpcml endpoint models many --unload digits-mlp:3`,
		Args: cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			if load != "" && unload != "" {
				return errors.New("give --load or --unload, not both")
			}
			path, body := "v2/repository/index", []byte(`{"ready":`+strconv.FormatBool(ready)+`}`)
			switch {
			case load != "":
				path, body = "v2/repository/models/"+load+"/load", []byte("{}")
			case unload != "":
				path, body = "v2/repository/models/"+unload+"/unload", []byte("{}")
			}
			inv, err := c.InvokeEndpointTo(ctx, args[0], path, "application/json", body, client.Target{})
			if err != nil {
				return err
			}
			if inv.Status >= 300 {
				var e struct {
					Error string `json:"error"`
				}
				json.Unmarshal(inv.Body, &e)
				return &exitError{code: 1, err: fmt.Errorf("endpoint %s answered %d: %s", args[0], inv.Status, e.Error)}
			}
			out := cmd.OutOrStdout()
			if load != "" || unload != "" {
				if format != formatTable {
					var doc any
					json.Unmarshal(inv.Body, &doc)
					return printDoc(out, format, doc)
				}
				fmt.Fprintf(out, "%s\n", inv.Body)
				return nil
			}
			var rows []deploy.RepositoryRow
			if err := json.Unmarshal(inv.Body, &rows); err != nil {
				return fmt.Errorf("endpoint %s's index: %w", args[0], err)
			}
			if m := inv.Header.Get(deploy.HeaderIndexMissing); m != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s; the models they hold are not listed\n", m)
			}
			if format != formatTable {
				return printDoc(out, format, rows)
			}
			tw := newTable(out)
			fmt.Fprintln(tw, "MODEL\tVERSION\tSTATE\tREPLICAS\tBYTES")
			for _, r := range rows {
				bytes := "-"
				if r.Bytes > 0 {
					bytes = strconv.FormatInt(r.Bytes, 10)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.Name, r.Version, r.State, r.Replicas, bytes)
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVar(&ready, "ready", false, "only the loaded versions")
	cmd.Flags().StringVar(&load, "load", "", "load MODEL[:VERSION|:ALIAS] on the replica its requests go to")
	cmd.Flags().StringVar(&unload, "unload", "", "unload MODEL[:VERSION|:ALIAS] from every replica")
	return cmd
}
