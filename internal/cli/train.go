package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	gcblob "gocloud.dev/blob"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/registry"
	"github.com/hpcml/hpcml/internal/task"
	"github.com/hpcml/hpcml/internal/train"
)

// ExitPeerLost is the exit code of a training rank whose peer was lost
// (killed, its node gone): the job is retried on it and resumes from the
// newest checkpoint (EX_TEMPFAIL).
const ExitPeerLost = 75

// trainFlags are hpcml train's flags.
type trainFlags struct {
	algorithm  string
	data, test string
	label      string
	hp         []string
	epochs     int
	seed       uint64
	table      tableFlags
	queue      string
	cpus       float64
	memory     string
	name       string
	attempts   int
	wait       bool
	here       bool
	out        string
	workers    int
	stages     int
	nodes      int
	register   string
	// datasets are the dataset versions --data and --test named,
	// NAME:VERSION by job tag, recorded on the job as its lineage.
	datasets map[string]string
}

func newTrainCmd(o *rootOptions) *cobra.Command {
	var f trainFlags
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train a built-in algorithm (linear, mlp, cnn) as a job, with checkpoints, live metrics and an ONNX model",
		Long: `Train a built-in algorithm on a table (CSV, Parquet, JSON Lines; local, file://, s3://,
dataset://NAME[@VERSION]) with a label column, or on IDX images (MNIST's format: an images file,
or a directory of train-*/t10k-* pairs). No code is needed: the algorithm and its
hyperparameters (--hp k=v; see 'hpcml train algorithms') say what to build.

By default the run is a job on the server's backend (local or Slurm). It checkpoints weights,
optimiser and RNG state to the server's storage (training/<job id>/) every checkpoint_every
steps and at each epoch's end, and a retried attempt resumes from the newest good checkpoint.
Loss, accuracy and samples/s stream to the server (hpcml train metrics ID, the dashboard). It
ends with model.onnx (preprocessing included: it takes raw features or pixels), model.json
and evaluation.json (accuracy, F1, confusion matrix; or RMSE, MAE, R²).

--here trains in this process instead and writes those files to --out.`,
		Example: `  hpcml train --algorithm cnn --data ./mnist/ --epochs 3 --wait
  hpcml train -a linear --data breast_cancer.csv --label target --skip-rows 1 --no-header --wait
  hpcml train -a mlp --data digits.csv --label label --hp hidden=128,64 --hp lr=0.002 -o json --wait
  hpcml train -a mlp --data wine.csv --label class --here --out ./wine-model/
  hpcml train -a mlp --data dataset://iris --label species --wait --register iris`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTrain(cmd.Context(), cmd, o, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.algorithm, "algorithm", "a", "", "linear, mlp or cnn (required)")
	fl.StringVar(&f.data, "data", "", "training data: a table or IDX images (required)")
	fl.StringVar(&f.test, "test", "", "held-out test data to evaluate on (default: an IDX directory's t10k files, else the validation split)")
	fl.StringVar(&f.label, "label", "", "a table's label column")
	fl.StringArrayVar(&f.hp, "hp", nil, "a hyperparameter, KEY=VALUE (repeatable; see 'hpcml train algorithms')")
	fl.IntVar(&f.epochs, "epochs", 10, "passes over the training data")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the initialisation, split, shuffling and dropout")
	f.table.add(fl)
	fl.StringVarP(&f.queue, "queue", "q", "", "the job's queue")
	fl.IntVar(&f.workers, "workers", 1, "data-parallel workers: the job runs this many tasks, each on its share of every batch (batch_size per worker)")
	fl.IntVar(&f.stages, "pipeline-stages", 1, "pipeline (model-parallel) stages: the network is cut into this many parts, one per task")
	fl.IntVar(&f.nodes, "nodes", 1, "nodes the workers or stages are spread over (they must divide evenly)")
	fl.Float64Var(&f.cpus, "cpus", 0, "CPUs per task (default: 2 for one task, 1 per task for several)")
	fl.StringVar(&f.memory, "memory", "", "the job's memory: 512M, 4G, or a number of MB (default: the queue's)")
	fl.StringVar(&f.name, "name", "", "the job's name (default train-ALGORITHM)")
	fl.IntVar(&f.attempts, "attempts", 3, "attempts of the job when killed or its node is lost; each resumes from the newest checkpoint")
	fl.BoolVar(&f.wait, "wait", false, "wait for the run to end and print its evaluation")
	fl.BoolVar(&f.here, "here", false, "train in this process instead of as a job")
	fl.StringVar(&f.out, "out", "", "with --here: the directory or URL (file://, s3://) for the model, metrics and checkpoints")
	fl.StringVar(&f.register, "register", "", "with --wait: register the run's model as the next version of this model once the job succeeds")
	cmd.AddCommand(newTrainAlgorithmsCmd(o), newTrainListCmd(o), newTrainGetCmd(o), newTrainMetricsCmd(o), newTrainRunCmd())
	return cmd
}

// config turns the flags into a run config, checked.
func (f *trainFlags) config(ctx context.Context, o *rootOptions) (train.Config, error) {
	cfg := train.Config{Algorithm: f.algorithm, Data: f.data, Test: f.test, Label: f.label, Epochs: f.epochs, Seed: f.seed}
	if f.workers > 1 {
		cfg.Workers = f.workers
	}
	if f.stages > 1 {
		cfg.PipelineStages = f.stages
	}
	if f.workers < 1 || f.stages < 1 {
		return cfg, fmt.Errorf("--workers and --pipeline-stages must be at least 1")
	}
	if f.algorithm == "" {
		return cfg, fmt.Errorf("--algorithm is required (linear, mlp or cnn)")
	}
	if len(f.hp) > 0 {
		cfg.HP = map[string]string{}
	}
	for _, kv := range f.hp {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return cfg, fmt.Errorf("--hp %q: want KEY=VALUE", kv)
		}
		cfg.HP[strings.TrimSpace(k)] = v
	}
	topts, err := f.table.options(o)
	if err != nil {
		return cfg, err
	}
	if len(f.table.types) > 0 || f.table.sampleRows != 0 {
		return cfg, fmt.Errorf("--type and --sample-rows do not apply to training")
	}
	cfg.Table = train.TableConfig{Format: string(topts.Format), NoHeader: topts.NoHeader, SkipRows: topts.SkipRows, NullValues: topts.NullValues}
	if topts.Delimiter != 0 {
		cfg.Table.Delimiter = string(topts.Delimiter)
	}
	// A job runs in its own dir: local paths become absolute, and
	// dataset names are resolved now, to the version current at submit.
	for _, u := range []*string{&cfg.Data, &cfg.Test} {
		switch {
		case *u == "":
		case strings.HasPrefix(*u, "dataset://") && !f.here:
			name, version, _ := strings.Cut(strings.TrimPrefix(*u, "dataset://"), "@")
			r, n, err := resolveDatasetVersion(ctx, o, name, version)
			if err != nil {
				return cfg, fmt.Errorf("%s: %w", *u, err)
			}
			*u = r
			tag := registry.DatasetTag
			if u == &cfg.Test {
				tag = registry.TestDatasetTag
			}
			if f.datasets == nil {
				f.datasets = map[string]string{}
			}
			f.datasets[tag] = fmt.Sprintf("%s:%d", name, n)
		case !strings.Contains(*u, "://"):
			abs, err := filepath.Abs(*u)
			if err != nil {
				return cfg, err
			}
			if strings.HasSuffix(*u, "/") {
				abs += "/"
			}
			*u = abs
		}
	}
	return cfg, cfg.Check()
}

func runTrain(ctx context.Context, cmd *cobra.Command, o *rootOptions, f *trainFlags) error {
	format, err := o.format(formatTable, formatJSON, formatYAML)
	if err != nil {
		return err
	}
	if f.register != "" {
		// Checked before anything is submitted. Registering needs the
		// finished job's model, so the command must be there when it
		// finishes; a job submitted without --wait is registered later
		// with model register --from-training.
		if err := registry.CheckName(f.register); err != nil {
			return fmt.Errorf("--register: %w", err)
		}
		switch {
		case f.here:
			return fmt.Errorf("--register applies to a training job; with --here, register the file yourself: hpcml model register %s --artifact %s",
				f.register, filepath.Join(f.out, train.ModelFile))
		case !f.wait:
			return fmt.Errorf("--register needs --wait (the model is registered once the job has succeeded); without --wait, run hpcml model register %s --from-training JOB_ID when it has", f.register)
		}
	}
	cfg, err := f.config(ctx, o)
	if err != nil {
		return err
	}
	if f.here {
		if cfg.Ranks() > 1 {
			return fmt.Errorf("--workers and --pipeline-stages run as a job of several tasks, not --here")
		}
		return trainHere(ctx, cmd, o, cfg, f.out, format)
	}
	if f.out != "" {
		return fmt.Errorf("--out applies with --here; a job writes to the server's storage (training/<job id>/)")
	}
	c, ccfg, err := o.client()
	if err != nil {
		return err
	}
	if f.attempts < 1 || f.attempts > job.MaxAttempts {
		return fmt.Errorf("--attempts %d: want 1..%d", f.attempts, job.MaxAttempts)
	}
	ranks := cfg.Ranks()
	if f.nodes < 1 || ranks%f.nodes != 0 {
		return fmt.Errorf("--nodes %d: the %d workers or stages must spread evenly over the nodes", f.nodes, ranks)
	}
	cpus := f.cpus
	if cpus == 0 {
		cpus = 2
		if ranks > 1 {
			cpus = 1
		}
	}
	var memoryMB int64
	if f.memory != "" {
		if memoryMB, err = parseMemoryMB(f.memory); err != nil {
			return fmt.Errorf("--memory: %w", err)
		}
	}
	body, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	name := f.name
	if name == "" {
		name = "train-" + cfg.Algorithm
	}
	spec := &job.Spec{
		Name: name, Queue: f.queue, Command: []string{task.SelfProgram, "train", "__run", "--config", string(body)},
		Resources: job.Resources{CPUs: cpus, MemoryMB: memoryMB},
		// A killed attempt (or a lost node, or a rank that lost a peer)
		// is retried and resumes from the newest checkpoint; bad data or
		// a diverged run is not retried.
		// The tasks of a job of several report a task killed by a signal
		// as a shell does (128 + signal).
		Retry: job.RetryPolicy{Attempts: f.attempts, OnSignals: []string{"SIGKILL", "SIGTERM"}, OnNodeLoss: true,
			OnExitCodes: []int{ExitPeerLost, 128 + 9, 128 + 15}},
		Tags: map[string]string{"hpcml.train": cfg.Algorithm},
	}
	// The model registry's lineage: which dataset versions this run read
	// (the URLs in its config are their resolved sources).
	maps.Copy(spec.Tags, f.datasets)
	if ranks > 1 {
		spec.Nodes, spec.TasksPerNode = f.nodes, ranks/f.nodes
	}
	j, err := c.SubmitJob(ctx, spec)
	if err != nil {
		return explain(fmt.Errorf("submit training job: %w", err), ccfg)
	}
	if !f.wait {
		if format != formatTable {
			return printDoc(cmd.OutOrStdout(), format, map[string]any{"id": j.ID, "job": j})
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Training run %d submitted (files under training/%d/).\n", j.ID, j.ID)
		fmt.Fprintf(cmd.OutOrStdout(), "Follow it with: hpcml train metrics -f %d   (or the dashboard)\n", j.ID)
		return nil
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Training run %d submitted.\n", j.ID)
	final, err := waitWithStatus(ctx, c, strconv.FormatInt(j.ID, 10), cmd.ErrOrStderr(), true, o.now)
	if err != nil {
		return explain(err, ccfg)
	}
	if final.State != job.Succeeded {
		id := final.DisplayID()
		return &exitError{code: 1, err: fmt.Errorf("training run %s %s: %s (hpcml job logs --stderr %s)", id, final.State, lastError(ctx, c, id, final.Reason), id)}
	}
	data, err := c.GetTrainingFile(ctx, j.ID, "model")
	if err != nil {
		return explain(err, ccfg)
	}
	var meta train.ModelMetadata
	if err := json.Unmarshal(data, &meta); err != nil {
		return fmt.Errorf("model metadata of run %d: %w", j.ID, err)
	}
	var registered *registry.Version
	if f.register != "" {
		registered, err = c.RegisterModel(ctx, registry.RegisterRequest{Name: f.register, TrainingJob: j.ID})
		if err != nil {
			return explain(fmt.Errorf("training run %d succeeded, but registering its model failed (retry with hpcml model register %s --from-training %d): %w",
				j.ID, f.register, j.ID, err), ccfg)
		}
	}
	if format != formatTable {
		doc := map[string]any{"id": j.ID, "model": meta}
		if registered != nil {
			doc["registered"] = registered
		}
		return printDoc(cmd.OutOrStdout(), format, doc)
	}
	printModel(cmd.OutOrStdout(), j.ID, &meta)
	if registered != nil {
		fmt.Fprintf(cmd.OutOrStdout(), "Registered as %s:%d (sha256 %.16s…, %s).\n", registered.Name, registered.Version, registered.SHA256, registered.URI)
	}
	return nil
}

// trainHere trains in this process, writing the run's files to out.
func trainHere(ctx context.Context, cmd *cobra.Command, o *rootOptions, cfg train.Config, out, format string) error {
	if out == "" {
		return fmt.Errorf("--here needs --out: the directory or URL for the model, metrics and checkpoints")
	}
	b, err := openOutDir(ctx, out)
	if err != nil {
		return err
	}
	defer b.Close()
	// Warnings (a checkpoint skipped, a resume) as log lines; progress as
	// one line per epoch, and a live status line on a terminal.
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	meta, err := train.Run(ctx, cfg, train.Options{Out: b, Log: log,
		Progress: consoleProgress(cmd.ErrOrStderr(), isTerminal(cmd.ErrOrStderr())),
		ResolveDataset: func(ctx context.Context, name, version string) (string, error) {
			return resolveDataset(ctx, o, name, version)
		}})
	if err != nil {
		return err
	}
	if format != formatTable {
		return printDoc(cmd.OutOrStdout(), format, map[string]any{"out": out, "model": meta})
	}
	printModel(cmd.OutOrStdout(), 0, meta)
	fmt.Fprintf(cmd.OutOrStdout(), "\nWrote %s, %s, %s and %s to %s\n", train.ModelFile, train.MetadataFile, train.EvaluationFile, train.MetricsFile, out)
	return nil
}

// consoleProgress prints each epoch's metrics, and on a terminal a status
// line that follows the steps.
func consoleProgress(w io.Writer, tty bool) train.Progress {
	return func(p train.Point, epochs, perEpoch int) {
		if p.Kind == "epoch" {
			if tty {
				fmt.Fprint(w, "\r\033[K")
			}
			fmt.Fprintf(w, "epoch %d/%d  %s\n", p.Epoch, epochs, formatValues(p.Values))
			return
		}
		if tty {
			fmt.Fprintf(w, "\r\033[Kepoch %d/%d  step %d/%d  %s", p.Epoch, epochs, p.Step-(p.Epoch-1)*perEpoch, perEpoch, formatValues(p.Values))
		}
	}
}

// openOutDir opens a local directory (made if missing) or a file:// or
// s3:// prefix as a bucket.
func openOutDir(ctx context.Context, out string) (*blob.Bucket, error) {
	u := out
	if !strings.Contains(out, "://") {
		abs, err := filepath.Abs(out)
		if err != nil {
			return nil, err
		}
		u = "file://" + filepath.ToSlash(abs) + "/"
	}
	loc, err := blob.Resolve(strings.TrimSuffix(u, "/")+"/", "")
	if err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	b, err := blob.Open(ctx, blob.WithCreateDir(loc.Bucket))
	if err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	if loc.Key == "" {
		return b, nil
	}
	return gcblob.PrefixedBucket(b, loc.Key), nil
}

// printModel shows a trained model and its evaluation.
func printModel(w io.Writer, id int64, m *train.ModelMetadata) {
	if id > 0 {
		fmt.Fprintf(w, "Run %d: %s %s on %s\n", id, m.Config.Algorithm, m.Data.Task, m.Data.Source)
	} else {
		fmt.Fprintf(w, "%s %s on %s\n", m.Config.Algorithm, m.Data.Task, m.Data.Source)
	}
	fmt.Fprintf(w, "  %d parameters, %d epochs (%d steps) in %s (%s BLAS)\n", m.Params, m.Epochs, m.Steps, time.Duration(m.Seconds*float64(time.Second)).Round(time.Millisecond), m.BLAS)
	if m.Stopped != "" {
		fmt.Fprintf(w, "  %s\n", m.Stopped)
	}
	ev := m.Evaluation
	if ev == nil {
		return
	}
	fmt.Fprintf(w, "Evaluation on the %s set (%d rows):\n", ev.Set, ev.Rows)
	if m.Data.Task == train.Regression {
		fmt.Fprintf(w, "  RMSE %.6g   MAE %.6g   R² %.4f\n", ev.RMSE, ev.MAE, ev.R2)
		return
	}
	fmt.Fprintf(w, "  accuracy %.4f   macro precision %.4f   macro recall %.4f   macro F1 %.4f\n", ev.Accuracy, ev.MacroPrecision, ev.MacroRecall, ev.MacroF1)
	if len(ev.ConfusionMatrix) > 0 && len(ev.ConfusionMatrix) <= 20 {
		fmt.Fprintln(w, "Confusion matrix (rows: true, columns: predicted):")
		tw := newTable(w)
		fmt.Fprint(tw, "\t")
		for _, c := range ev.Classes {
			fmt.Fprintf(tw, "%s\t", c)
		}
		fmt.Fprintln(tw)
		for i, row := range ev.ConfusionMatrix {
			fmt.Fprintf(tw, "%s\t", ev.Classes[i])
			for _, n := range row {
				fmt.Fprintf(tw, "%d\t", n)
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
}

func newTrainAlgorithmsCmd(o *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "algorithms",
		Short: "List the built-in algorithms and their hyperparameters with defaults",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := o.format(formatTable, formatJSON, formatYAML)
			if err != nil {
				return err
			}
			type hp struct {
				Name    string `json:"name"`
				Default string `json:"default"`
				Doc     string `json:"doc"`
			}
			type alg struct {
				Name            string `json:"name"`
				Doc             string `json:"doc"`
				Hyperparameters []hp   `json:"hyperparameters"`
			}
			var out []alg
			for _, a := range train.Algorithms() {
				defaults := a.Defaults().Map(a.HParamNames())
				names := a.HParamNames()
				sort.Strings(names)
				x := alg{Name: a.Name, Doc: a.Doc}
				for _, n := range names {
					x.Hyperparameters = append(x.Hyperparameters, hp{n, defaults[n], train.HParamDoc(n)})
				}
				out = append(out, x)
			}
			if format != formatTable {
				return printDoc(cmd.OutOrStdout(), format, out)
			}
			w := cmd.OutOrStdout()
			for i, a := range out {
				if i > 0 {
					fmt.Fprintln(w)
				}
				fmt.Fprintf(w, "%s — %s\n", a.Name, a.Doc)
				tw := newTable(w)
				for _, h := range a.Hyperparameters {
					fmt.Fprintf(tw, "  %s\t%s\t%s\n", h.Name, h.Default, h.Doc)
				}
				tw.Flush()
			}
			return nil
		},
	}
}
