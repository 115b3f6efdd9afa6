package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/client"
)

// env is what commands take from the process, injected so that tests need
// neither the real environment nor the wall clock.
type env struct {
	getenv    func(string) string
	lookupEnv func(string) (string, bool)
	now       func() time.Time
}

func osEnv() env { return env{getenv: os.Getenv, lookupEnv: os.LookupEnv, now: time.Now} }

// rootOptions holds the global flags; every command gets a pointer to it.
type rootOptions struct {
	env
	server string
	output string
}

// NewRoot builds the hpcml command tree; serverCmd (`hpcml server`) is
// added as is, so the CLI does not depend on the server's packages.
func NewRoot(serverCmd *cobra.Command) *cobra.Command {
	return newRoot(serverCmd, osEnv())
}

func newRoot(serverCmd *cobra.Command, e env) *cobra.Command {
	o := &rootOptions{env: e}
	root := &cobra.Command{
		Use:   "hpcml",
		Short: "Applied machine learning and HPC in one binary",
		Long: `hpcml runs batch, array and ML jobs on this machine or a cluster.

The CLI talks to an hpcml server: $HPCML_SERVER (default ` + client.DefaultServer + `),
authenticated with $HPCML_TOKEN or, without it, the token file <data-dir>/token
where data-dir is $HPCML_DATA_DIR or ./.hpcml.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&o.server, "server", "", "server URL (overrides $"+client.EnvServer+")")
	root.PersistentFlags().StringVarP(&o.output, "output", "o", formatTable, "output format: table, json or yaml")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &hintError{err: err, hint: fmt.Sprintf("run '%s --help' for usage", cmd.CommandPath())}
	})
	root.AddCommand(newJobCmd(o), newQueueCmd(o), newCapacityCmd(o), newDataCmd(o), newDatasetCmd(o), newTrainCmd(o), newModelCmd(o),
		newEndpointCmd(o), newBatchTransformCmd(o))
	root.AddCommand(newServeCmd(o))
	if serverCmd != nil {
		root.AddCommand(serverCmd)
	}
	return root
}

// client resolves the configuration, with --server winning over the
// environment, and returns a client with it.
func (o *rootOptions) client() (*client.Client, client.Config, error) {
	cfg, err := client.ConfigFromEnv(o.getenv)
	if err != nil {
		return nil, cfg, err
	}
	if o.server != "" {
		cfg.Server = o.server
	}
	return client.New(cfg.Server, cfg.Token), cfg, nil
}

// action is the body of every command that talks to the server: it
// builds the client and adds to the error what the user can do about it.
func (o *rootOptions) action(fn func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, cfg, err := o.client()
		if err != nil {
			return err
		}
		return explain(fn(cmd.Context(), cmd, c, args), cfg)
	}
}

// Execute runs the command line and returns the process exit code: 0, 1 on
// any error (printed as "error: ..." on stderr), 130 when interrupted.
func Execute(root *cobra.Command) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return execute(ctx, root)
}

func execute(ctx context.Context, root *cobra.Command) int {
	err := root.ExecuteContext(ctx)
	return report(root.ErrOrStderr(), err, ctx.Err() != nil)
}
