package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	gcblob "gocloud.dev/blob"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/collective"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/task"
	"github.com/hpcml/hpcml/internal/train"
)

func parseRunID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("training run %q: want the run's job id, e.g. 42", s)
	}
	return id, nil
}

func newTrainListCmd(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List training runs, newest first",
		Args:  cobra.NoArgs,
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, _ []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			runs, err := c.ListTraining(ctx)
			if err != nil {
				return err
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, runs)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "ID\tALGORITHM\tTASK\tSTATE\tEPOCHS\tRESULT\tDATA")
			for _, r := range runs {
				result := "-"
				if r.Value != nil {
					result = fmt.Sprintf("%s %.4g (%s)", r.Metric, *r.Value, r.Set)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.Algorithm, r.Task, orDash(r.State), r.Epochs, result, r.Data)
			}
			return tw.Flush()
		}),
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newTrainGetCmd(o *rootOptions) *cobra.Command {
	var onnxOut string
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show a finished training run's model and evaluation (--onnx FILE saves the model)",
		Args:  cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			data, err := c.GetTrainingFile(ctx, id, "model")
			if err != nil {
				if client.IsNotFound(err) {
					s, serr := c.GetTraining(ctx, id)
					if serr == nil {
						return fmt.Errorf("training run %d has no model yet (job %s)", id, orDash(s.State))
					}
				}
				return err
			}
			var meta train.ModelMetadata
			if err := json.Unmarshal(data, &meta); err != nil {
				return fmt.Errorf("model metadata of run %d: %w", id, err)
			}
			if onnxOut != "" {
				model, err := c.GetTrainingFile(ctx, id, "onnx")
				if err != nil {
					return err
				}
				if err := writeFileAtomic(onnxOut, model); err != nil {
					return fmt.Errorf("--onnx: %w", err)
				}
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, meta)
			}
			printModel(cmd.OutOrStdout(), id, &meta)
			if onnxOut != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "Saved the ONNX model to %s\n", onnxOut)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&onnxOut, "onnx", "", "save the run's model.onnx to this file")
	return cmd
}

func newTrainMetricsCmd(o *rootOptions) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "metrics ID",
		Short: "Print a training run's metrics (loss, accuracy, samples/s); -f follows a running one",
		Args:  cobra.ExactArgs(1),
		RunE: o.action(func(ctx context.Context, cmd *cobra.Command, c *client.Client, args []string) error {
			format, err := o.format(formatTable, formatJSON)
			if err != nil {
				return err
			}
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			enc := json.NewEncoder(w)
			from, header := 0, false
			for {
				m, err := c.GetTrainingMetrics(ctx, id, from)
				if err != nil {
					return err
				}
				if m.Total < from { // resumed from a checkpoint: points rewritten
					from = 0
					continue
				}
				for _, p := range m.Points {
					if format == formatJSON {
						enc.Encode(p)
						continue
					}
					if !header {
						fmt.Fprintf(w, "%-6s %6s %8s  %s\n", "KIND", "EPOCH", "STEP", "VALUES")
						header = true
					}
					fmt.Fprintf(w, "%-6s %6d %8d  %s\n", p.Kind, p.Epoch, p.Step, formatValues(p.Values))
				}
				from = m.Total
				if !follow {
					return nil
				}
				s, err := c.GetTraining(ctx, id)
				if err == nil && job.State(s.State).Terminal() {
					// One more read: points written just before the end.
					if m, err := c.GetTrainingMetrics(ctx, id, from); err == nil {
						for _, p := range m.Points {
							if format == formatJSON {
								enc.Encode(p)
							} else {
								fmt.Fprintf(w, "%-6s %6d %8d  %s\n", p.Kind, p.Epoch, p.Step, formatValues(p.Values))
							}
						}
					}
					return nil
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Second):
				}
			}
		}),
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new points until the run ends")
	return cmd
}

// formatValues renders metric values in a fixed order.
func formatValues(v map[string]float64) string {
	order := []string{"loss", "accuracy", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_rmse", "lr", "samples_per_sec"}
	var parts []string
	for _, k := range order {
		if x, ok := v[k]; ok {
			if k == "samples_per_sec" {
				parts = append(parts, fmt.Sprintf("%s=%.0f", k, x))
			} else {
				parts = append(parts, fmt.Sprintf("%s=%.4g", k, x))
			}
		}
	}
	return strings.Join(parts, " ")
}

// trainJobProgress reports a training job's progress to the file the job's
// HPCML_PROGRESS_FILE names (job get and the dashboard show it): steps
// done of all, the rate, the time left, and the latest loss.
func trainJobProgress(path string, log *slog.Logger) train.Progress {
	start, startStep := time.Now(), -1
	return func(p train.Point, epochs, perEpoch int) {
		if path == "" {
			return
		}
		if startStep < 0 {
			startStep = p.Step // a resumed run starts mid-way
		}
		total := float64(epochs * perEpoch)
		jp := &job.Progress{Done: float64(p.Step), Total: total, Unit: "steps", UpdatedAt: time.Now()}
		if secs := time.Since(start).Seconds(); secs > 0 && p.Step > startStep {
			jp.Rate = float64(p.Step-startStep) / secs
			jp.ETASeconds = (total - float64(p.Step)) / jp.Rate
		}
		jp.Message = fmt.Sprintf("epoch %d of %d: %s", p.Epoch, epochs, formatValues(p.Values))
		if err := job.WriteProgressFile(path, jp); err != nil {
			log.Debug("progress not written", "err", err)
		}
	}
}

// joinRanks joins the job's other tasks (HPCML_RANK, HPCML_WORLD_SIZE,
// HPCML_MASTER_*): every rank must run the same configuration.
func joinRanks(ctx context.Context, cfg train.Config) (*collective.Group, error) {
	cc, err := collective.ConfigFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	if cc.WorldSize != cfg.Ranks() {
		return nil, fmt.Errorf("the run wants %d ranks, the job has %d tasks", cfg.Ranks(), cc.WorldSize)
	}
	body, _ := json.Marshal(cfg)
	sum := sha256.Sum256(body)
	cc.Fingerprint = "config:" + hex.EncodeToString(sum[:8])
	return collective.Join(ctx, cc)
}

// newTrainRunCmd is the training job's command: the run's config in,
// its files to training/<job id>/ in the server's storage.
func newTrainRunCmd() *cobra.Command {
	var config string
	cmd := &cobra.Command{
		Use:    "__run",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg train.Config
			dec := json.NewDecoder(strings.NewReader(config))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&cfg); err != nil {
				return fmt.Errorf("--config: %w", err)
			}
			storage, jobID := os.Getenv(task.StorageEnv), os.Getenv("HPCML_JOB_ID")
			id, err := strconv.ParseInt(jobID, 10, 64)
			if storage == "" || err != nil {
				return fmt.Errorf("not in a job: %s and HPCML_JOB_ID must be set", task.StorageEnv)
			}
			ctx := cmd.Context()
			b, err := blob.Open(ctx, blob.WithCreateDir(storage))
			if err != nil {
				return err
			}
			out := gcblob.PrefixedBucket(b, train.RunDir(id))
			defer out.Close()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			progress := trainJobProgress(os.Getenv(job.ProgressFileEnv), log)
			opts := train.Options{Out: out, Log: log, Progress: progress}
			if cfg.Ranks() > 1 {
				g, err := joinRanks(ctx, cfg)
				if err != nil {
					return err
				}
				defer g.Close()
				opts.Comm = train.GroupComm(g)
				if g.Rank() != 0 {
					opts.Progress = nil // rank 0 reports for the job
				}
				log = log.With("rank", g.Rank())
				opts.Log = log
			}
			if n, err := strconv.ParseFloat(os.Getenv("HPCML_CPUS"), 64); err == nil && n >= 1 {
				// As many threads as CPUs the task was given: two
				// workers on two cores each take one.
				runtime.GOMAXPROCS(int(n))
			}
			meta, err := train.Run(ctx, cfg, opts)
			var peer *collective.PeerError
			if errors.As(err, &peer) {
				// A lost peer is the job's to retry: every rank exits so,
				// and the retry resumes from the newest checkpoint.
				return &exitError{code: ExitPeerLost, err: err}
			}
			if err != nil {
				return err
			}
			if ev := meta.Evaluation; ev != nil {
				if meta.Data.Task == train.Regression {
					fmt.Fprintf(cmd.OutOrStdout(), "evaluation (%s): rmse=%.6g mae=%.6g r2=%.4f\n", ev.Set, ev.RMSE, ev.MAE, ev.R2)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "evaluation (%s): accuracy=%.4f macro_f1=%.4f\n", ev.Set, ev.Accuracy, ev.MacroF1)
				}
			}
			if opts.Comm == nil || opts.Comm.Rank() == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "model: %s%s\n", train.RunDir(id), train.ModelFile)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&config, "config", "", "the run, as JSON")
	return cmd
}
