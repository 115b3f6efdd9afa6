package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/bytesize"
	"github.com/hpcml/hpcml/internal/registry"
	"github.com/hpcml/hpcml/internal/serve"
	"github.com/hpcml/hpcml/internal/task"
)

// Environment of `hpcml serve`.
const (
	envServeToken = "HPCML_SERVE_TOKEN"
	envJobID      = "HPCML_JOB_ID"
	envAttempt    = "HPCML_ATTEMPT"
)

type serveFlags struct {
	model, name, version, listen, announce, storage string
	maxBatch, concurrency                           int
	maxQueueDelay, timeout, drainTimeout            time.Duration
	preferred                                       []int
	maxPayload                                      string
	// Multi-model: --multi-model, --models, --model-cache-bytes.
	multi              bool
	models, cacheBytes string
}

func newServeCmd(o *rootOptions) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve --model PATH|URL|model://NAME/VERSION | --multi-model",
		Short: "Serve a model over the Open Inference Protocol v2 and SageMaker's /invocations",
		Long: `Serve one ONNX model over HTTP until SIGTERM or SIGINT, then drain: stop accepting
connections, finish the requests in flight (up to --drain-timeout) and exit 0.

Routes: GET /v2/health/live, /v2/health/ready, /v2, /v2/models/NAME[/versions/V][/ready],
POST /v2/models/NAME[/versions/V]/infer (Open Inference Protocol v2, KServe/Triton),
POST /invocations (JSON or CSV) and GET /ping (SageMaker), GET /metrics (Prometheus).
When $` + envServeToken + ` is set every route but the health checks and /ping needs
"Authorization: Bearer <token>".

--model takes a local path, a file:// or s3:// URL, or model://NAME/VERSION: the
registered artefact models/NAME/VERSION/model.onnx in --storage ($HPCML_STORAGE).
--announce KEY writes {"addr", "job", "attempt", "pid", "model", "version", "started"}
to KEY in that storage once the model is loaded and the listener is up (a KEY
ending in "/" gets "$HPCML_JOB_ID.json" appended), and deletes it on a graceful exit.

Dynamic batching (--max-batch > 1) merges concurrent requests into one model
execution of up to --max-batch rows, waiting at most --max-queue-delay for more,
and sends a batch of a --preferred-batch size at once.

--multi-model serves every model of the registry's layout in --storage
(models/NAME/VERSION/model.onnx) instead of one: a model loads on its first request
into a cache of --model-cache-bytes, least recently used evicted; --models limits
which (NAME, NAME:VERSION or PREFIX*, comma-separated). /invocations then needs
X-Hpcml-Target-Model (or X-Amzn-SageMaker-Target-Model): NAME or NAME:VERSION, and
POST /v2/repository/index, /v2/repository/models/NAME/load and .../unload are served.
See docs/serving.md.`,
		Example: `  hpcml serve --model mnist.onnx --listen 127.0.0.1:8081
  hpcml serve --model model://mnist/3 --storage file:///srv/hpcml/objects --max-batch 32 --max-queue-delay 2ms
  curl -s localhost:8081/v2/models/mnist
  hpcml serve --multi-model --storage file:///srv/hpcml/objects --models 'digits-*,iris:2' --model-cache-bytes 512M`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), f, o.env, cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "", "the model: a path, file:// or s3:// URL, or model://NAME/VERSION (required)")
	fl.StringVar(&f.name, "name", "", "model name served (default: NAME of model://, else the file name without extension)")
	fl.StringVar(&f.version, "model-version", "", `model version served (default: VERSION of model://, else "1")`)
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8081", `address to listen on (port 0 picks a free port; host 0.0.0.0 listens on every interface and announces this node's address)`)
	fl.StringVar(&f.announce, "announce", "", `storage key to write the replica's announcement to once ready (trailing "/" appends "$HPCML_JOB_ID.json")`)
	fl.StringVar(&f.storage, "storage", "", "object storage URL for model:// and --announce (default $"+task.StorageEnv+")")
	fl.IntVar(&f.maxBatch, "max-batch", 1, "most rows per model execution; > 1 turns dynamic batching on")
	fl.DurationVar(&f.maxQueueDelay, "max-queue-delay", 0, "longest wait for more requests to fill a batch (e.g. 500us, 2ms)")
	fl.IntSliceVar(&f.preferred, "preferred-batch", nil, "batch sizes sent at once when nothing more is queued (e.g. 4,8)")
	fl.IntVar(&f.concurrency, "concurrency", 0, "most model executions at once (default: GOMAXPROCS)")
	fl.StringVar(&f.maxPayload, "max-payload", "6MB", "largest request body (413 beyond); K, M, G units are binary")
	fl.DurationVar(&f.timeout, "timeout", serve.DefaultTimeout, "per-request timeout (503 if still queued, 504 if computing)")
	fl.DurationVar(&f.drainTimeout, "drain-timeout", 30*time.Second, "how long SIGTERM waits for requests in flight")
	fl.BoolVar(&f.multi, "multi-model", false, "serve every model in --storage (models/NAME/VERSION/model.onnx), each loaded on first use")
	fl.StringVar(&f.models, "models", "", "with --multi-model: the models served, NAME, NAME:VERSION or PREFIX* (comma-separated; default all)")
	fl.StringVar(&f.cacheBytes, "model-cache-bytes", "", "with --multi-model: bytes of loaded models kept (K, M, G; default half the memory)")
	return cmd
}

// announcement is what a replica writes to storage once it is ready; the
// deployment controller reads it to find the replica.
type announcement struct {
	Addr    string `json:"addr"`
	Job     string `json:"job"`
	Attempt int    `json:"attempt"`
	PID     int    `json:"pid"`
	Model   string `json:"model"`
	Version string `json:"version"`
	Started string `json:"started"`
}

func runServe(ctx context.Context, f *serveFlags, e env, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if err := checkMultiFlags(f); err != nil {
		return err
	}
	if f.model == "" && !f.multi {
		return errors.New("--model is required (a path, a file:// or s3:// URL, or model://NAME/VERSION)")
	}
	maxPayload, err := bytesize.Parse(f.maxPayload, bytesize.Byte)
	if err != nil {
		return fmt.Errorf("--max-payload: %w", err)
	}
	if maxPayload <= 0 {
		return fmt.Errorf("--max-payload %s must be more than 0", f.maxPayload)
	}
	if f.timeout <= 0 {
		return fmt.Errorf("--timeout %v must be more than 0", f.timeout)
	}
	if f.drainTimeout < 0 {
		return fmt.Errorf("--drain-timeout %v is negative", f.drainTimeout)
	}
	storage := f.storage
	if storage == "" {
		storage = e.getenv(task.StorageEnv)
	}
	var announceKey string
	if f.announce != "" {
		if storage == "" {
			return fmt.Errorf("--announce needs storage: --storage or $%s", task.StorageEnv)
		}
		announceKey = f.announce
		if strings.HasSuffix(announceKey, "/") {
			id := e.getenv(envJobID)
			if id == "" {
				return fmt.Errorf("--announce %s ends in \"/\", which appends $%s.json, but $%s is not set", f.announce, envJobID, envJobID)
			}
			announceKey += id + ".json"
		}
		if _, err := blob.Resolve(announceKey, storage); err != nil {
			return fmt.Errorf("--announce: %w", err)
		}
	}

	if e.getenv("GOGC") == "" {
		// The server's live heap is small (the weights and some buffers)
		// and every request allocates, so at Go's default the collector
		// runs every few thousand requests; four times the live heap
		// costs a few MB and a quarter of that work.
		debug.SetGCPercent(400)
	}
	opts := serve.Options{
		MaxBatch: f.maxBatch, MaxQueueDelay: f.maxQueueDelay, PreferredBatch: f.preferred,
		Concurrency: f.concurrency, MaxPayload: maxPayload, Timeout: f.timeout,
		Token: e.getenv(envServeToken), ServerVersion: buildVersion(), Logger: log,
	}
	var srv servedHandler
	var name, version string
	if f.multi {
		srv, err = newMultiServer(ctx, f, storage, opts)
	} else {
		srv, name, version, err = newSingleServer(ctx, f, storage, opts)
	}
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", f.listen, err)
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	addr, err := reachableAddr(ln.Addr().(*net.TCPAddr))
	if err != nil {
		hs.Close()
		return err
	}
	log.Info("serving", "addr", addr, "model", name, "version", version, "multi_model", f.multi,
		"max_batch", f.maxBatch, "max_queue_delay", f.maxQueueDelay, "token", e.getenv(envServeToken) != "")

	var bucket *blob.Bucket
	var loc blob.Location
	if announceKey != "" {
		loc, _ = blob.Resolve(announceKey, storage)
		bucket, err = blob.Open(ctx, blob.WithCreateDir(loc.Bucket))
		if err == nil {
			attempt, _ := strconv.Atoi(e.getenv(envAttempt))
			a := announcement{Addr: addr, Job: e.getenv(envJobID), Attempt: attempt, PID: os.Getpid(),
				Model: name, Version: version, Started: e.now().UTC().Format(time.RFC3339)}
			b, _ := json.Marshal(a)
			err = bucket.WriteAll(ctx, loc.Key, b, nil)
		}
		if err != nil {
			hs.Close()
			return fmt.Errorf("--announce %s: %w", loc, err)
		}
		defer bucket.Close()
		log.Info("announced", "key", loc.String())
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("serving on %s: %w", addr, err)
	case <-ctx.Done():
	}
	// Drain: unready first, the announcement gone so that nobody routes
	// here any more, then let the requests in flight finish.
	log.Info("draining", "timeout", f.drainTimeout)
	srv.Drain()
	bg := context.WithoutCancel(ctx)
	if bucket != nil {
		dctx, cancel := context.WithTimeout(bg, 10*time.Second)
		if err := bucket.Delete(dctx, loc.Key); err != nil && !blob.IsNotFound(err) {
			log.Warn("could not delete the announcement", "key", loc.String(), "err", err)
		}
		cancel()
	}
	sctx, cancel := context.WithTimeout(bg, f.drainTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("drain timed out; closing the connections still open", "err", err)
		hs.Close()
	}
	log.Info("stopped")
	return nil
}

// servedHandler is a Server or a MultiServer.
type servedHandler interface {
	Handler() http.Handler
	Drain()
	Close()
}

// newSingleServer loads --model and serves it.
func newSingleServer(ctx context.Context, f *serveFlags, storage string, opts serve.Options) (*serve.Server, string, string, error) {
	data, name, version, err := loadModel(ctx, f.model, storage)
	if err != nil {
		return nil, "", "", err
	}
	if f.name != "" {
		name = f.name
	}
	if f.version != "" {
		version = f.version
	}
	if name == "" || strings.ContainsAny(name, "/?#%") {
		return nil, "", "", fmt.Errorf("model name %q cannot be served (set --name)", name)
	}
	if version == "" || strings.ContainsAny(version, "/?#%") {
		return nil, "", "", fmt.Errorf("model version %q cannot be served (set --model-version)", version)
	}
	model, err := serve.LoadONNX(data, name, version)
	if err != nil {
		return nil, "", "", fmt.Errorf("model %s: %w", f.model, err)
	}
	srv, err := serve.New(model, opts)
	return srv, name, version, err
}

// loadModel reads the model's bytes and the name and version it implies.
func loadModel(ctx context.Context, ref, storage string) (data []byte, name, version string, err error) {
	if rest, ok := strings.CutPrefix(ref, "model://"); ok {
		n, v, ok := strings.Cut(rest, "/")
		if !ok {
			return nil, "", "", fmt.Errorf("--model %s: want model://NAME/VERSION", ref)
		}
		if err := registry.CheckName(n); err != nil {
			return nil, "", "", fmt.Errorf("--model %s: want model://NAME/VERSION: %w", ref, err)
		}
		iv, err := strconv.Atoi(v)
		if err != nil || iv < 1 || strconv.Itoa(iv) != v {
			return nil, "", "", fmt.Errorf("--model %s: the version must be a whole number ≥ 1", ref)
		}
		if storage == "" {
			return nil, "", "", fmt.Errorf("--model %s needs storage: --storage or $%s", ref, task.StorageEnv)
		}
		data, err := readObject(ctx, storage, registry.ArtifactKey(n, iv))
		if err != nil {
			return nil, "", "", fmt.Errorf("--model %s: %w", ref, err)
		}
		return data, n, v, nil
	}
	base := ref
	if strings.HasPrefix(ref, "s3://") || strings.HasPrefix(ref, "file://") {
		loc, err := blob.Resolve(ref, "")
		if err != nil {
			return nil, "", "", fmt.Errorf("--model: %w", err)
		}
		if loc.IsPrefix() {
			return nil, "", "", fmt.Errorf("--model %s names a prefix, not a model file", ref)
		}
		if data, err = readObject(ctx, loc.Bucket, loc.Key); err != nil {
			return nil, "", "", fmt.Errorf("--model %s: %w", ref, err)
		}
		base = loc.Key
	} else if data, err = os.ReadFile(ref); err != nil {
		return nil, "", "", fmt.Errorf("--model: %w", err)
	}
	return data, nameFromFile(base), "1", nil
}

func readObject(ctx context.Context, bucketURL, key string) ([]byte, error) {
	b, err := blob.Open(ctx, bucketURL)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	data, err := b.ReadAll(ctx, key)
	if blob.IsNotFound(err) {
		return nil, fmt.Errorf("no object %s in storage %s", key, blob.Redact(bucketURL))
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return data, nil
}

// nameFromFile makes a model name of a file's name: lower case, without
// extension, characters outside the registry's rule replaced by "-".
func nameFromFile(p string) string {
	base := strings.ToLower(strings.TrimSuffix(filepath.Base(p), filepath.Ext(p)))
	b := []byte(base)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	return strings.TrimLeft(string(b), ".-_")
}

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
