package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/deploy"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
	"github.com/hpcml/hpcml/internal/job"
)

func newEndpointUpdateCmd(o *rootOptions) *cobra.Command {
	var (
		req          deploy.UpdateRequest
		maxErr       float64
		maxP99       time.Duration
		minReq       int
		readyTimeout time.Duration
		weight       int
		auto         string
		batch        batchingFlags
		async        asyncCreateFlags
		wait         bool
	)
	cmd := &cobra.Command{
		Use:   "update NAME (--model REF [--strategy S] | --replicas N | --weight W | --autoscale P|off)",
		Short: "Deploy a new model version blue/green (with automatic rollback), or resize an endpoint",
		Long: `With --model, deploys a new version (or new --cpus / batching) to a variant: green replicas
start beside blue, traffic moves by the strategy, and alarms on green's error rate and
p99 latency roll it back by themselves. Strategies:

  all-at-once[:BAKE]   everything to green once it is ready, then BAKE watching it
  canary:10%:5m        10 % to green for 5 minutes, then 100 % (baked again)
  linear:25%:2m        25 %, 50 %, 75 %, 100 %, each for 2 minutes
  rolling:N[:BAKE]     N replicas at a time: green up, blue down

In-flight requests finish on the replicas that took them (drain), so no request fails
because of the deployment. One update at a time: while one runs, another is refused.
--dry-run prints the plan. Without --model, --replicas, --weight and --autoscale change
the endpoint in place.`,
		Example: `  hpcml endpoint update digits --model digits-mlp:2 --strategy canary:10%:5m
  hpcml endpoint update digits --model digits-mlp:3 --strategy linear:25%:1m --max-error-rate 0.02 --max-p99 200ms --wait
  hpcml endpoint update digits --model digits-mlp:3 --dry-run
  hpcml endpoint update digits --replicas 4
  hpcml endpoint update digits --autoscale min=2,max=8,target=4
  hpcml endpoint update many --models 'digits-*,iris:2'
  hpcml endpoint update big --webhook https://hooks.example.com/new --max-attempts 5`,
		Args: cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			fl := cmd.Flags()
			if fl.Changed("max-error-rate") {
				req.MaxErrorRate = &maxErr
			}
			if fl.Changed("max-p99") {
				d := job.Duration(maxP99)
				req.MaxP99 = &d
			}
			if fl.Changed("min-requests") {
				req.MinRequests = &minReq
			}
			req.ReadyTimeout = job.Duration(readyTimeout)
			if fl.Changed("weight") {
				req.Weight = &weight
			}
			if batch.changed(fl) {
				b := batch.batching()
				req.Batching = &b
			}
			switch auto {
			case "":
			case "off", "none":
				req.NoAutoscale = true
			default:
				if req.Autoscale, err = endpoint.ParseAutoscale(auto); err != nil {
					return err
				}
			}
			if err := async.update(ctx, c, fl, args[0], auto, &req); err != nil {
				return err
			}
			res, err := c.UpdateEndpoint(ctx, args[0], req)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if res.Deployment == nil || res.DryRun {
				if format != formatTable {
					return printDoc(out, format, res)
				}
				if res.DryRun {
					fmt.Fprintf(out, "Dry run: nothing changed.\n")
				}
				if d := res.Deployment; d != nil {
					fmt.Fprintf(out, "Deployment of variant %s: %s:%d → %s:%d\n%s\n", d.Variant, d.From.Model, d.From.Version,
						d.To.Model, d.To.Version, res.Plan)
				} else {
					fmt.Fprintf(out, "Endpoint %s updated: %s\n", res.Endpoint.Name, specText(res.Endpoint))
				}
				return nil
			}
			d := res.Deployment
			if !wait {
				if format != formatTable {
					return printDoc(out, format, res)
				}
				fmt.Fprintf(out, "Deployment %d started on %s (variant %s: %s:%d → %s:%d)\n%s\nFollow it with: hpcml endpoint get %s   (or hpcml endpoint history %s)\n",
					d.ID, args[0], d.Variant, d.From.Model, d.From.Version, d.To.Model, d.To.Version, res.Plan, args[0], args[0])
				return nil
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "Deployment %d started: %s\n", d.ID, res.Plan)
			final, err := waitDeployment(ctx, c, cmd.ErrOrStderr(), args[0], d.ID)
			if err != nil {
				return err
			}
			if format != formatTable {
				if err := printDoc(out, format, final); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(out, "Deployment %d %s", final.ID, final.Outcome)
				if final.Reason != "" {
					fmt.Fprintf(out, ": %s", final.Reason)
				}
				fmt.Fprintln(out)
			}
			if final.Outcome != endpoint.Succeeded {
				return &exitError{code: 1, err: fmt.Errorf("deployment %d %s: %s", final.ID, final.Outcome, final.Reason)}
			}
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&req.Variant, "variant", "", "the variant to change (default: the only one)")
	fl.StringVar(&req.Model, "model", "", "the version to deploy: NAME, NAME:VERSION or NAME:ALIAS")
	fl.StringVar(&req.Models, "models", "", "a multi-model endpoint's new filter: NAME, NAME:VERSION, PREFIX* (comma-separated; no restart)")
	fl.StringVar(&req.Strategy, "strategy", "", "all-at-once[:BAKE], canary:PCT%:BAKE, linear:PCT%:BAKE or rolling:N[:BAKE] (default all-at-once)")
	fl.Float64Var(&maxErr, "max-error-rate", 0, "roll back when green's 5xx rate is above this fraction (default 0.01)")
	fl.DurationVar(&maxP99, "max-p99", 0, "roll back when green's p99 latency is above this (default 1s; 0 turns it off)")
	fl.IntVar(&minReq, "min-requests", 0, "alarms judge a window only once it has this many requests (default 20)")
	fl.DurationVar(&readyTimeout, "ready-timeout", 0, "how long green may take to become ready (default 5m)")
	fl.BoolVar(&req.DryRun, "dry-run", false, "print the plan and change nothing")
	fl.Float64Var(&req.CPUs, "cpus", 0, "CPUs per replica of green (default: as blue)")
	fl.IntVar(&req.Replicas, "replicas", 0, "resize the variant in place")
	fl.IntVar(&weight, "weight", 0, "change the variant's traffic weight in place")
	fl.StringVar(&auto, "autoscale", "", "change the autoscaling policy in place (off removes it)")
	fl.BoolVar(&wait, "wait", false, "wait for the deployment to end; exit 1 unless it succeeded")
	batch.add(fl)
	async.addSettings(fl)
	return cmd
}

func specText(e *endpoint.Endpoint) string {
	var parts []string
	for _, v := range e.Spec.Variants {
		parts = append(parts, fmt.Sprintf("%s=%s ×%d weight %d", v.Name, e.Spec.ModelText(v), v.Replicas, v.Weight))
	}
	s := strings.Join(parts, ", ")
	if e.Spec.Autoscale != nil {
		s += "; autoscale " + e.Spec.Autoscale.String()
	}
	return s
}

// waitDeployment follows a deployment's events until it ends.
func waitDeployment(ctx context.Context, c *client.Client, w io.Writer, name string, id int64) (*endpoint.Deployment, error) {
	shown := 0
	for {
		hist, err := c.EndpointHistory(ctx, name, 20)
		if err != nil {
			return nil, err
		}
		var d *endpoint.Deployment
		for _, x := range hist {
			if x.ID == id {
				d = x
			}
		}
		if d == nil {
			return nil, fmt.Errorf("deployment %d of %s is gone", id, name)
		}
		for ; shown < len(d.Events); shown++ {
			fmt.Fprintf(w, "  %s  %s\n", d.Events[shown].At.Local().Format("15:04:05"), d.Events[shown].Message)
		}
		if d.Outcome != endpoint.Running {
			return d, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func newEndpointHistoryCmd(o *rootOptions) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "history NAME",
		Short: "List an endpoint's deployments, newest first, with outcome and reason",
		Args:  cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			hist, err := c.EndpointHistory(ctx, args[0], limit)
			if err != nil {
				return err
			}
			if format != formatTable {
				if hist == nil {
					hist = []*endpoint.Deployment{}
				}
				return printDoc(cmd.OutOrStdout(), format, hist)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "ID\tVARIANT\tFROM\tTO\tSTRATEGY\tOUTCOME\tSTARTED\tTOOK\tREASON")
			for _, d := range hist {
				outcome := string(d.Outcome)
				end := d.EndedAt
				if d.Outcome == endpoint.Running {
					outcome, end = "running ("+d.Phase+")", o.now()
				}
				fmt.Fprintf(tw, "%d\t%s\t%s:%d\t%s:%d\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Variant, d.From.Model, d.From.Version,
					d.To.Model, d.To.Version, d.Strategy, outcome, age(o.now(), d.CreatedAt), clock(end.Sub(d.CreatedAt)), dash(d.Reason))
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many (default 100)")
	return cmd
}

func newEndpointInvokeCmd(o *rootOptions) *cobra.Command {
	var data, path, contentType, variant, targetModel string
	var async asyncInvokeFlags
	cmd := &cobra.Command{
		Use:   "invoke NAME --data JSON|@FILE|-",
		Short: "Send one request to an endpoint through the gateway and print the answer",
		Long: `Posts --data to /endpoints/NAME/invocations (or --path, e.g. v2/models/m/infer for the
Open Inference Protocol) with the server's token, and prints the answer. A body that is
CSV rather than JSON wants --content-type text/csv. Exits 1 on an error status.`,
		Example: `  hpcml endpoint invoke digits --data '{"instances": [[0, 1, 2, 3]]}'
  hpcml endpoint invoke digits --path v2/models/digits/infer --data @request.json
  hpcml endpoint invoke digits --content-type text/csv --data '0,1,2,3'
  hpcml endpoint invoke big --async --input-location s3://data/req/1.json --wait
  hpcml endpoint invoke many --target-model digits-mlp:3 --data '{"instances": [[0, 1, 2, 3]]}'`,
		Args: cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			if err := async.check(cmd.Flags()); err != nil {
				return err
			}
			if async.async {
				return async.run(ctx, o, cmd, c, args[0], data, contentType)
			}
			if data == "" {
				return fmt.Errorf("--data is required (JSON, @FILE, or - for standard input)")
			}
			body, err := readPayload(cmd, data)
			if err != nil {
				return err
			}
			inv, err := c.InvokeEndpointTo(ctx, args[0], path, contentType, body, client.Target{Variant: variant, Model: targetModel})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			out.Write(inv.Body)
			if len(inv.Body) > 0 && inv.Body[len(inv.Body)-1] != '\n' {
				fmt.Fprintln(out)
			}
			if inv.Status >= 300 {
				return &exitError{code: 1, err: fmt.Errorf("endpoint %s answered %d", args[0], inv.Status)}
			}
			if inv.Variant != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "(variant %s)\n", inv.Variant)
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&data, "data", "d", "", "the request body: JSON, @FILE, or - for standard input")
	cmd.Flags().StringVar(&path, "path", "invocations", "the gateway path under /endpoints/NAME/")
	cmd.Flags().StringVar(&contentType, "content-type", "application/json", "the body's content type")
	cmd.Flags().StringVar(&variant, "variant", "", "target this variant")
	cmd.Flags().StringVar(&targetModel, "target-model", "", "a multi-model endpoint's model: NAME, NAME:VERSION or NAME:ALIAS")
	async.add(cmd.Flags())
	return cmd
}
