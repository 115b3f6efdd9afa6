package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/deploy"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
	"github.com/hpcml/hpcml/internal/job"
)

func newEndpointCmd(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "endpoint",
		Aliases: []string{"endpoints", "ep"},
		Short:   "Real-time endpoints: registered models behind the gateway, blue/green updates, autoscaling",
		Long: `An endpoint serves registered model versions (hpcml model register) through the
server's gateway, at /endpoints/NAME/invocations (SageMaker style) and
/endpoints/NAME/v2/... (the Open Inference Protocol, KServe and Triton clients), with the
server's token. Its replicas are hpcml serve jobs, health-checked and replaced when they
crash. Several variants share the traffic by weight; a header targets one
(X-Hpcml-Target-Variant or X-Amzn-SageMaker-Target-Variant).

'endpoint update --model' deploys a new version blue/green (all-at-once, canary, linear)
or rolling, watching green's error rate and p99 latency, and rolls back by itself.
See docs/endpoints.md.`,
	}
	cmd.AddCommand(newEndpointCreateCmd(o), newEndpointListCmd(o), newEndpointGetCmd(o), newEndpointUpdateCmd(o),
		newEndpointHistoryCmd(o), newEndpointDeleteCmd(o), newEndpointInvokeCmd(o), newEndpointAsyncCmd(o),
		newEndpointModelsCmd(o))
	return cmd
}

// batchingFlags are the replicas' dynamic batching flags.
type batchingFlags struct {
	maxBatch, concurrency int
	maxQueueDelay         time.Duration
	preferred             []int
}

func (b *batchingFlags) add(fl *pflag.FlagSet) {
	fl.IntVar(&b.maxBatch, "max-batch", 0, "replicas batch up to this many requests (hpcml serve --max-batch)")
	fl.DurationVar(&b.maxQueueDelay, "max-queue-delay", 0, "how long a replica holds a request to fill a batch (e.g. 500us)")
	fl.IntSliceVar(&b.preferred, "preferred-batch", nil, "batch sizes a replica prefers (e.g. 4,8)")
	fl.IntVar(&b.concurrency, "concurrency", 0, "requests a replica computes at once")
}

func (b *batchingFlags) batching() endpoint.Batching {
	return endpoint.Batching{MaxBatch: b.maxBatch, MaxQueueDelay: job.Duration(b.maxQueueDelay), PreferredBatch: b.preferred,
		Concurrency: b.concurrency}
}

func (b *batchingFlags) changed(fl *pflag.FlagSet) bool {
	for _, n := range []string{"max-batch", "max-queue-delay", "preferred-batch", "concurrency"} {
		if fl.Changed(n) {
			return true
		}
	}
	return false
}

// parseVariantFlag reads NAME=REF:WEIGHT (REF may hold a colon itself:
// a=mlp:2:3 is version 2 of mlp at weight 3).
func parseVariantFlag(s string) (name, ref string, weight int, err error) {
	name, rest, ok := strings.Cut(s, "=")
	i := strings.LastIndex(rest, ":")
	if !ok || name == "" || i <= 0 {
		return "", "", 0, fmt.Errorf("--variant %q: want NAME=MODEL[:VERSION]:WEIGHT, e.g. a=mlp:2:90", s)
	}
	weight, err = strconv.Atoi(rest[i+1:])
	if err != nil || weight < 0 {
		return "", "", 0, fmt.Errorf("--variant %q: weight %q is not a number ≥ 0", s, rest[i+1:])
	}
	return name, rest[:i], weight, nil
}

func newEndpointCreateCmd(o *rootOptions) *cobra.Command {
	var (
		model, queue, auto string
		variants           []string
		replicas           int
		cpus               float64
		batch              batchingFlags
		async              asyncCreateFlags
		multi              multiModelFlags
		wait               bool
		waitTimeout        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create NAME (--model REF | --variant NAME=REF:WEIGHT ... | --multi-model --models FILTER)",
		Short: "Create an endpoint serving a registered model version",
		Long: `Creates endpoint NAME and starts its replicas (hpcml serve jobs, --cpus each).
REF is a registered model: NAME:VERSION, NAME:ALIAS (staging, production...) or NAME (the
latest); it is resolved now, and the endpoint keeps that version until an update.
--variant (repeatable) makes several production variants sharing the traffic by weight.
--multi-model serves every registered model version --models names (NAME, NAME:VERSION,
PREFIX*), each loaded on its first request into a replica's cache of --model-cache-bytes;
a request names its model (X-Hpcml-Target-Model, or the OIP path).`,
		Example: `  hpcml endpoint create digits --model digits-mlp:1 --replicas 2 --wait
  hpcml endpoint create ab --variant a=digits-mlp:1:90 --variant b=digits-mlp:2:10
  hpcml endpoint create digits --model digits-mlp --autoscale min=1,max=4,target=2
  hpcml endpoint create many --multi-model --models 'digits-*,iris' --model-cache-bytes 1G --replicas 2`,
		Args: cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			if replicas < 1 {
				// The API reads 0 as "the default, 1": an explicit 0 here
				// is a mistake, not a request for one.
				return fmt.Errorf("--replicas %d: an endpoint needs at least 1 replica per variant", replicas)
			}
			req := deploy.CreateRequest{Name: args[0], Queue: queue}
			if req.MultiModel, err = multi.spec(cmd.Flags(), model, variants); err != nil {
				return err
			}
			if req.MultiModel == nil && (model == "") == (len(variants) == 0) {
				return fmt.Errorf("give --model REF, or --variant NAME=REF:WEIGHT (repeatable), not both")
			}
			vr := deploy.VariantRequest{Model: model, Replicas: replicas, CPUs: cpus, Batching: batch.batching()}
			if model != "" || req.MultiModel != nil {
				req.Variants = []deploy.VariantRequest{vr}
			}
			for _, s := range variants {
				name, ref, weight, err := parseVariantFlag(s)
				if err != nil {
					return err
				}
				v := vr
				v.Name, v.Model, v.Weight = name, ref, weight
				req.Variants = append(req.Variants, v)
			}
			if auto != "" {
				if req.Autoscale, err = endpoint.ParseAutoscale(async.autoscale(auto)); err != nil {
					return err
				}
			}
			if req.Async, err = async.spec(cmd.Flags()); err != nil {
				return err
			}
			st, err := c.CreateEndpoint(ctx, req)
			if err != nil {
				return err
			}
			if wait {
				if st, err = waitEndpoint(ctx, c, cmd.ErrOrStderr(), args[0], waitTimeout); err != nil {
					return err
				}
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, st)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Endpoint %s %s: %s\n", st.Name, st.State, variantsText(st))
			if st.Spec.Async != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "Queue requests at %s/endpoints/%s/async-invocations (hpcml endpoint invoke %s --async)\n",
					c.BaseURL(), st.Name, st.Name)
				return nil
			}
			if st.Spec.MultiModel != nil {
				printMultiModelInvoke(cmd.OutOrStdout(), c.BaseURL(), st)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Invoke it at %s/endpoints/%s/invocations or %s/endpoints/%s/v2/models/%s/infer\n",
				c.BaseURL(), st.Name, c.BaseURL(), st.Name, st.Spec.Variants[0].Model)
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&model, "model", "", "the model: NAME, NAME:VERSION or NAME:ALIAS")
	fl.StringArrayVar(&variants, "variant", nil, "a production variant NAME=REF:WEIGHT (repeatable)")
	fl.IntVar(&replicas, "replicas", 1, "replicas per variant")
	fl.Float64Var(&cpus, "cpus", 1, "CPUs per replica")
	fl.StringVarP(&queue, "queue", "q", "", "the queue of the replica jobs (default: the default queue)")
	fl.StringVar(&auto, "autoscale", "", "target tracking: min=1,max=4,target=2[,metric=inflight|rps][,scale-out-cooldown=30s][,scale-in-cooldown=60s]")
	fl.BoolVar(&wait, "wait", false, "wait until every variant has all its replicas ready")
	fl.DurationVar(&waitTimeout, "wait-timeout", 5*time.Minute, "give up waiting after this long")
	batch.add(fl)
	async.add(fl)
	multi.add(fl)
	return cmd
}

// waitEndpoint polls until the endpoint is in service with every variant
// at its full replica count: in service alone means one replica of each
// serves, and a caller that asked for N expects N to take its load.
func waitEndpoint(ctx context.Context, c *client.Client, w io.Writer, name string, timeout time.Duration) (*deploy.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	for {
		st, err := c.GetEndpoint(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("endpoint %s not ready after %s", name, timeout)
			}
			return nil, err
		}
		if st.State == endpoint.InService && fullyReady(st) {
			return st, nil
		}
		line := fmt.Sprintf("%s: %s", st.State, variantsText(st))
		if st.Reason != "" {
			line += " (" + st.Reason + ")"
		}
		if line != last {
			fmt.Fprintf(w, "Endpoint %s %s\n", name, line)
			last = line
		}
		select {
		case <-ctx.Done():
			// "in-service: primary=m:1 1/2 ready" says it serves, short
			// of the replicas asked for.
			return nil, fmt.Errorf("endpoint %s not fully ready after %s (%s)", name, timeout, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func fullyReady(st *deploy.Status) bool {
	for _, v := range st.Variants {
		if v.Ready < v.Replicas {
			return false
		}
	}
	return true
}

func variantsText(st *deploy.Status) string {
	var parts []string
	for _, v := range st.Variants {
		parts = append(parts, fmt.Sprintf("%s=%s %d/%d ready", v.Name, st.Spec.ModelText(v.Variant), v.Ready, v.Replicas))
	}
	return strings.Join(parts, ", ")
}

func newEndpointListCmd(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List endpoints with their variants and last minute of traffic",
		Args:    cobra.NoArgs,
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			list, err := c.ListEndpoints(ctx)
			if err != nil {
				return err
			}
			if format != formatTable {
				if list == nil {
					list = []*deploy.Status{}
				}
				return printDoc(cmd.OutOrStdout(), format, list)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "NAME\tSTATE\tVARIANTS\tREQ/S\tERRORS\tP99\tAGE")
			for _, st := range list {
				var errs int
				var rps, p99 float64
				for _, v := range st.Variants {
					errs += v.Traffic.Errors
					rps += v.Traffic.RPS
					p99 = max(p99, v.Traffic.P99Ms)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%d\t%s\t%s\n", st.Name, st.State, variantsText(st), rps, errs, msText(p99),
					age(o.now(), st.CreatedAt))
			}
			return tw.Flush()
		}),
	}
}

func msText(ms float64) string {
	if ms == 0 {
		return "-"
	}
	if ms < 1 {
		return fmt.Sprintf("%.0fµs", ms*1000)
	}
	return fmt.Sprintf("%.1fms", ms)
}

func newEndpointGetCmd(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show an endpoint: variants with traffic, latency and errors, replicas, deployment, scale events",
		Args:  cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			st, err := c.GetEndpoint(ctx, args[0])
			if err != nil {
				return err
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, st)
			}
			printEndpoint(cmd.OutOrStdout(), o.now(), c.BaseURL(), st)
			return nil
		}),
	}
}

func printEndpoint(out io.Writer, now time.Time, base string, st *deploy.Status) {
	fmt.Fprintf(out, "Endpoint:  %s\nState:     %s", st.Name, st.State)
	if st.Reason != "" {
		fmt.Fprintf(out, " (%s)", st.Reason)
	}
	fmt.Fprintf(out, "\nURL:       %s%sinvocations  |  %s%sv2/...\n", base, st.URL, base, st.URL)
	if st.Spec.Autoscale != nil {
		fmt.Fprintf(out, "Autoscale: %s\n", st.Spec.Autoscale)
	}
	if st.Spec.Async != nil {
		printAsyncSpec(out, base, st)
	}
	fmt.Fprintf(out, "Created:   %s\n\n", age(now, st.CreatedAt))
	tw := newTable(out)
	fmt.Fprintf(tw, "VARIANT\tMODEL\tWEIGHT\tREPLICAS\tREQUESTS/%ds\tREQ/S\tERRORS\tP50\tP99\tIN FLIGHT\n", int(deploy.TrafficWindow.Seconds()))
	for _, v := range st.Variants {
		t := v.Traffic
		fmt.Fprintf(tw, "%s\t%s\t%d (%.0f%%)\t%d/%d\t%d\t%.1f\t%d\t%s\t%s\t%d\n", v.Name, st.Spec.ModelText(v.Variant), v.Weight,
			100*v.TrafficShare, v.Ready, v.Replicas, t.Requests, t.RPS, t.Errors, msText(t.P50Ms), msText(t.P99Ms), t.InFlight)
		if g := v.Green; g != nil && st.Deployment != nil {
			d := st.Deployment
			fmt.Fprintf(tw, "  green\t%s:%d\t\t\t%d\t%.1f\t%d\t%s\t%s\t%d\n", d.To.Model, d.To.Version, g.Requests, g.RPS, g.Errors,
				msText(g.P50Ms), msText(g.P99Ms), g.InFlight)
		}
	}
	tw.Flush()
	if len(st.Replicas) > 0 {
		fmt.Fprintln(out)
		tw = newTable(out)
		fmt.Fprintln(tw, "JOB\tVARIANT\tFLEET\tSTATE\tJOB STATE\tADDRESS\tOUTSTANDING\tSINCE\tREASON")
		for _, r := range st.Replicas {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.Job, r.Variant, r.Fleet, r.State, r.JobState, dash(r.Addr),
				r.Outstanding, age(now, r.Since), dash(r.Reason))
		}
		tw.Flush()
	}
	if d := st.Deployment; d != nil {
		fmt.Fprintf(out, "\nDeployment %d: %s:%d → %s:%d, %s, phase %s (step %d)\n", d.ID, d.From.Model, d.From.Version,
			d.To.Model, d.To.Version, d.Strategy, d.Phase, d.Step+1)
		for _, ev := range d.Events {
			fmt.Fprintf(out, "  %s  %s\n", ev.At.Local().Format("15:04:05"), ev.Message)
		}
	}
	if len(st.ScaleEvents) > 0 {
		fmt.Fprintln(out, "\nScale events:")
		tw = newTable(out)
		for _, ev := range st.ScaleEvents {
			fmt.Fprintf(tw, "  %s\t%s\t%d → %d\t%s\n", age(now, ev.At), ev.Variant, ev.From, ev.To, ev.Reason)
		}
		tw.Flush()
	}
}

func newEndpointDeleteCmd(o *rootOptions) *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an endpoint: it leaves the gateway, its replicas drain and stop",
		Args:  cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			if _, err := c.DeleteEndpoint(ctx, args[0]); err != nil {
				return err
			}
			if wait {
				for {
					if _, err := c.GetEndpoint(ctx, args[0]); client.IsNotFound(err) {
						break
					} else if err != nil {
						return err
					}
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(500 * time.Millisecond):
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Endpoint %s deleted.\n", args[0])
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Endpoint %s is being deleted (its replicas drain).\n", args[0])
			return nil
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until its replicas have stopped")
	return cmd
}
