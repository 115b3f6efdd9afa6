package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hpcml/hpcml/internal/bytesize"
	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/deploy"
	"github.com/hpcml/hpcml/internal/deploy/asyncq"
	"github.com/hpcml/hpcml/internal/deploy/endpoint"
	"github.com/hpcml/hpcml/internal/job"
)

// asyncCreateFlags are endpoint create's asynchronous inference flags.
type asyncCreateFlags struct {
	async                 bool
	output, failure, hook string
	maxInline             string
	attempts, concurrency int
	timeout               time.Duration
}

func (a *asyncCreateFlags) add(fl *pflag.FlagSet) {
	fl.BoolVar(&a.async, "async", false, "an asynchronous endpoint: requests are queued and their results written to storage (docs/async-inference.md)")
	a.addSettings(fl)
}

// asyncSettingFlags are the flags of an asynchronous endpoint's settings
// (create's with --async; update's for an async endpoint).
var asyncSettingFlags = []string{"async-output", "async-failure", "webhook", "max-inline-bytes", "max-attempts", "invocation-timeout",
	"async-concurrency"}

func (a *asyncCreateFlags) addSettings(fl *pflag.FlagSet) {
	fl.StringVar(&a.output, "async-output", "", "where results go: a URL or key prefix (default async/NAME/output/ in the server's storage)")
	fl.StringVar(&a.failure, "async-failure", "", "where error objects go (default: <async-output>failures/, or async/NAME/failure/)")
	fl.StringVar(&a.hook, "webhook", "", "http(s) URL POSTed a JSON notice when each request ends")
	fl.StringVar(&a.maxInline, "max-inline-bytes", "6MB", "largest payload sent inline; larger ones go by --input-location (up to 1GB)")
	fl.IntVar(&a.attempts, "max-attempts", endpoint.DefaultAsyncAttempts, "sends of a request whose replica fails (5xx, connection lost) before it fails")
	fl.DurationVar(&a.timeout, "invocation-timeout", endpoint.DefaultAsyncTimeout, "a request's processing limit unless it asks for another (at most 1h)")
	fl.IntVar(&a.concurrency, "async-concurrency", endpoint.DefaultAsyncConcurrency, "requests in flight per replica")
}

// spec is the Async block the flags ask for (nil without --async; the
// other flags without it are an error).
func (a *asyncCreateFlags) spec(fl *pflag.FlagSet) (*endpoint.Async, error) {
	if !a.async {
		for _, n := range asyncSettingFlags {
			if fl.Changed(n) {
				return nil, fmt.Errorf("--%s is for asynchronous endpoints: add --async", n)
			}
		}
		return nil, nil
	}
	inline, err := bytesize.Parse(a.maxInline, bytesize.Byte)
	if err != nil {
		return nil, fmt.Errorf("--max-inline-bytes: %w", err)
	}
	return &endpoint.Async{OutputPath: a.output, FailurePath: a.failure, Webhook: a.hook, MaxInlineBytes: inline,
		MaxAttempts: a.attempts, InvocationTimeout: job.Duration(a.timeout), MaxConcurrency: a.concurrency}, nil
}

// update fills an update's asynchronous part: the endpoint's settings
// with the flags given changed, and, for an async endpoint, backlog as
// the metric of an --autoscale that names none. It asks the server only
// when one of those applies.
func (a *asyncCreateFlags) update(ctx context.Context, c *client.Client, fl *pflag.FlagSet, name, auto string, req *deploy.UpdateRequest) error {
	changed := slices.ContainsFunc(asyncSettingFlags, fl.Changed)
	if !changed && req.Autoscale == nil {
		return nil
	}
	st, err := c.GetEndpoint(ctx, name)
	if err != nil {
		return err
	}
	cur := st.Spec.Async
	if cur == nil {
		if changed {
			return fmt.Errorf("endpoint %s is real-time: --webhook, --max-attempts and the other asynchronous settings are for endpoints created with --async", name)
		}
		return nil
	}
	if req.Autoscale != nil && !strings.Contains(auto, "metric=") {
		req.Autoscale.Metric = endpoint.MetricBacklog
	}
	if !changed {
		return nil
	}
	next := *cur
	set := map[string]func() error{
		"async-output":       func() error { next.OutputPath = a.output; return nil },
		"async-failure":      func() error { next.FailurePath = a.failure; return nil },
		"webhook":            func() error { next.Webhook = a.hook; return nil },
		"max-attempts":       func() error { next.MaxAttempts = a.attempts; return nil },
		"invocation-timeout": func() error { next.InvocationTimeout = job.Duration(a.timeout); return nil },
		"async-concurrency":  func() error { next.MaxConcurrency = a.concurrency; return nil },
		"max-inline-bytes": func() (err error) {
			if next.MaxInlineBytes, err = bytesize.Parse(a.maxInline, bytesize.Byte); err != nil {
				return fmt.Errorf("--max-inline-bytes: %w", err)
			}
			return nil
		},
	}
	for _, n := range asyncSettingFlags {
		if fl.Changed(n) {
			if err := set[n](); err != nil {
				return err
			}
		}
	}
	req.Async = &next
	return nil
}

// autoscale gives an asynchronous endpoint's --autoscale its metric,
// backlog, unless it names one.
func (a *asyncCreateFlags) autoscale(s string) string {
	if a.async && s != "" && !strings.Contains(s, "metric=") {
		return s + ",metric=" + endpoint.MetricBacklog
	}
	return s
}

// asyncInvokeFlags are endpoint invoke's asynchronous flags.
type asyncInvokeFlags struct {
	async         bool
	inputLocation string
	webhook       string
	accept        string
	id            string
	timeout       time.Duration
	wait          bool
	waitTimeout   time.Duration
}

func (a *asyncInvokeFlags) add(fl *pflag.FlagSet) {
	fl.BoolVar(&a.async, "async", false, "queue the request on an asynchronous endpoint; prints its inference id and output location")
	fl.StringVar(&a.inputLocation, "input-location", "", "with --async: the payload is this object (URL or key in the server's storage), up to 1GB")
	fl.StringVar(&a.webhook, "webhook", "", "with --async: notify this http(s) URL instead of the endpoint's webhook")
	fl.StringVar(&a.accept, "accept", "", "the answer's content type (e.g. text/csv)")
	fl.StringVar(&a.id, "inference-id", "", "with --async: the request's id (default: one the server makes); the same id again is refused")
	fl.DurationVar(&a.timeout, "invocation-timeout", 0, "with --async: this request's processing limit (at most 1h)")
	fl.BoolVar(&a.wait, "wait", false, "with --async: wait for the request to end and print its result")
	fl.DurationVar(&a.waitTimeout, "wait-timeout", time.Hour, "with --wait: give up waiting after this long")
}

func (a *asyncInvokeFlags) check(fl *pflag.FlagSet) error {
	if a.async {
		return nil
	}
	for _, n := range []string{"input-location", "webhook", "accept", "inference-id", "invocation-timeout", "wait", "wait-timeout"} {
		if fl.Changed(n) {
			return fmt.Errorf("--%s is for asynchronous invocations: add --async", n)
		}
	}
	return nil
}

// readPayload reads --data: JSON (or any text) as given, @FILE, or - for
// standard input.
func readPayload(cmd *cobra.Command, data string) ([]byte, error) {
	switch {
	case data == "-":
		return io.ReadAll(cmd.InOrStdin())
	case strings.HasPrefix(data, "@"):
		return os.ReadFile(data[1:])
	}
	return []byte(data), nil
}

// asyncResult is what invoke --async --wait -o json prints.
type asyncResult struct {
	*deploy.AsyncStatus
	Result json.RawMessage `json:"result,omitempty"`
	// ResultText is the result when it is not JSON.
	ResultText string `json:"result_text,omitempty"`
}

// run queues the request and, with --wait, waits for its end.
func (a *asyncInvokeFlags) run(ctx context.Context, o *rootOptions, cmd *cobra.Command, c *client.Client, name, data, contentType string) error {
	format, err := o.format(formatTable, formatJSON, formatYAML)
	if err != nil {
		return err
	}
	opts := client.AsyncOptions{ContentType: contentType, Accept: a.accept, InputLocation: a.inputLocation, Webhook: a.webhook,
		Timeout: a.timeout, InferenceID: a.id}
	var body io.Reader
	switch {
	case a.inputLocation != "" && data != "":
		return fmt.Errorf("give --data or --input-location, not both")
	case a.inputLocation == "" && data == "":
		return fmt.Errorf("--data (JSON, @FILE, or -) or --input-location URL is required")
	case strings.HasPrefix(data, "@"):
		// A file streams to the server as it is read.
		f, err := os.Open(data[1:])
		if err != nil {
			return err
		}
		defer f.Close()
		body = f
	case data != "":
		b, err := readPayload(cmd, data)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	acc, err := c.InvokeAsync(ctx, name, body, opts)
	if err != nil {
		return err
	}
	out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if !a.wait {
		if format != formatTable {
			return printDoc(out, format, acc)
		}
		fmt.Fprintf(out, "Inference ID:      %s\nOutput location:   %s\nFailure location:  %s\n", acc.InferenceID,
			acc.OutputLocation, acc.FailureLocation)
		fmt.Fprintf(out, "Status: hpcml endpoint async get %s %s\n", name, acc.InferenceID)
		return nil
	}
	fmt.Fprintf(errw, "Queued %s (output %s)\n", acc.InferenceID, acc.OutputLocation)
	st, err := waitAsync(ctx, c, errw, name, acc.InferenceID, a.waitTimeout)
	if err != nil {
		return err
	}
	var result bytes.Buffer
	if st.State == asyncq.Succeeded {
		if _, err := c.AsyncOutput(ctx, name, st.ID, &result); err != nil {
			return err
		}
	}
	if format != formatTable {
		doc := asyncResult{AsyncStatus: st}
		if json.Valid(result.Bytes()) {
			doc.Result = bytes.TrimSpace(result.Bytes())
		} else {
			doc.ResultText = result.String()
		}
		if err := printDoc(out, format, doc); err != nil {
			return err
		}
	} else if st.State == asyncq.Succeeded {
		out.Write(result.Bytes())
		if result.Len() > 0 && !bytes.HasSuffix(result.Bytes(), []byte("\n")) {
			fmt.Fprintln(out)
		}
	}
	if st.State == asyncq.Failed {
		return &exitError{code: 1, err: fmt.Errorf("request %s failed after %d attempt(s): %s (error object at %s)", st.ID,
			st.Attempts, st.Error, st.Failure)}
	}
	return nil
}

// waitAsync polls a request until it ends, saying on w when its state
// changes.
func waitAsync(ctx context.Context, c *client.Client, w io.Writer, name, id string, timeout time.Duration) (*deploy.AsyncStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := asyncq.State("")
	pause := 100 * time.Millisecond
	for {
		st, err := c.GetAsync(ctx, name, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("request %s has not ended after %s (%s)", id, timeout, last)
			}
			return nil, err
		}
		if st.State.Terminal() {
			return st, nil
		}
		if st.State != last {
			fmt.Fprintf(w, "Request %s %s (attempt %d)\n", id, st.State, max(st.Attempts, 1))
			last = st.State
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("request %s has not ended after %s (%s)", id, timeout, last)
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

func newEndpointAsyncCmd(o *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "async",
		Short: "Requests of asynchronous endpoints: list them, show one, print a result",
		Long: `An asynchronous endpoint (endpoint create --async) queues each request
(endpoint invoke --async, or POST /endpoints/NAME/async-invocations) and writes its result to
storage. These commands read the queue. See docs/async-inference.md.`,
	}
	cmd.AddCommand(newEndpointAsyncListCmd(o), newEndpointAsyncGetCmd(o), newEndpointAsyncResultCmd(o))
	return cmd
}

func newEndpointAsyncListCmd(o *rootOptions) *cobra.Command {
	var status string
	var limit int
	cmd := &cobra.Command{
		Use:     "list NAME",
		Aliases: []string{"ls"},
		Short:   "List an asynchronous endpoint's requests, newest first",
		Args:    cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			list, err := c.ListAsync(ctx, args[0], status, limit)
			if err != nil {
				return err
			}
			if format != formatTable {
				if list == nil {
					list = []*deploy.AsyncStatus{}
				}
				return printDoc(cmd.OutOrStdout(), format, list)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "INFERENCE ID\tSTATUS\tATTEMPTS\tINPUT\tSUBMITTED\tTOOK\tWEBHOOK\tERROR")
			for _, r := range list {
				took := "-"
				if !r.EndedAt.IsZero() {
					took = clock(r.EndedAt.Sub(r.SubmittedAt))
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, r.Attempts, bytesText(r.InputBytes),
					age(o.now(), r.SubmittedAt), took, dash(string(r.WebhookState)), dash(r.Error))
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().StringVar(&status, "status", "", "only requests in this state: queued, running, succeeded or failed")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many (default 100)")
	return cmd
}

func newEndpointAsyncGetCmd(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME ID",
		Short: "Show an asynchronous request: status, attempts, timestamps, error, locations, webhook",
		Args:  cobra.ExactArgs(2),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			st, err := c.GetAsync(ctx, args[0], args[1])
			if err != nil {
				return err
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, st)
			}
			printAsync(cmd.OutOrStdout(), o.now(), st)
			return nil
		}),
	}
}

func printAsync(w io.Writer, now time.Time, st *deploy.AsyncStatus) {
	fmt.Fprintf(w, "Inference ID:  %s\nEndpoint:      %s\nStatus:        %s\n", st.ID, st.Endpoint, st.State)
	if st.Error != "" {
		fmt.Fprintf(w, "Error:         %s\n", st.Error)
	}
	fmt.Fprintf(w, "Attempts:      %d (replica failures %d of at most %d)\n", st.Attempts, st.Failures, st.MaxAttempts)
	fmt.Fprintf(w, "Input:         %s (%s", st.Input, bytesText(st.InputBytes))
	if st.Inline {
		fmt.Fprint(w, ", sent inline")
	}
	fmt.Fprintf(w, ")\nOutput:        %s\nFailure:       %s\nTimeout:       %s\n", st.Output, st.Failure, st.Timeout)
	fmt.Fprintf(w, "Submitted:     %s\n", age(now, st.SubmittedAt))
	if !st.StartedAt.IsZero() {
		fmt.Fprintf(w, "Started:       %s\n", age(now, st.StartedAt))
	}
	if !st.EndedAt.IsZero() {
		fmt.Fprintf(w, "Ended:         %s (took %s)\n", age(now, st.EndedAt), clock(st.EndedAt.Sub(st.SubmittedAt)))
	}
	if st.Webhook != "" {
		fmt.Fprintf(w, "Webhook:       %s: %s, %d attempt(s)", st.Webhook, st.WebhookState, st.WebhookAttempts)
		if st.WebhookError != "" {
			fmt.Fprintf(w, " (%s)", st.WebhookError)
		}
		fmt.Fprintln(w)
	}
}

func newEndpointAsyncResultCmd(o *rootOptions) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "result NAME ID",
		Short: "Print a succeeded asynchronous request's result (exit 1 with its error if it failed)",
		Args:  cobra.ExactArgs(2),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			w := cmd.OutOrStdout()
			if file != "" {
				f, err := os.Create(file)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			if _, err := c.AsyncOutput(ctx, args[0], args[1], w); err != nil {
				return &exitError{code: 1, err: err}
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&file, "output-file", "f", "", "write the result to this file instead of standard output")
	return cmd
}

// printAsyncSpec is endpoint get's part for an asynchronous endpoint.
func printAsyncSpec(w io.Writer, base string, st *deploy.Status) {
	a := st.Spec.Async
	fmt.Fprintf(w, "Async:     %s%sasync-invocations", base, st.URL)
	if q := st.AsyncQueue; q != nil {
		fmt.Fprintf(w, "; %d queued, %d running", q.Queued, q.Running)
	}
	out := a.OutputPath
	if out == "" {
		out = "async/" + st.Name + "/output/"
	}
	fmt.Fprintf(w, "\n           results to %s; at most %d attempts; timeout %s; %d per replica; inline up to %s\n", out,
		a.MaxAttempts, a.InvocationTimeout, a.MaxConcurrency, bytesText(a.MaxInlineBytes))
	if a.Webhook != "" {
		fmt.Fprintf(w, "           webhook %s\n", a.Webhook)
	}
}
