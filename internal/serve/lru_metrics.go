package serve

import "github.com/prometheus/client_golang/prometheus"

// cacheMetrics are a MultiServer's model cache series, without model
// labels (a repository may hold thousands of models: one series each
// would be the high cardinality Prometheus warns against; the repository
// index says which models are loaded).
type cacheMetrics struct {
	loads, unloads, loadFailures prometheus.Counter
	loadSeconds                  prometheus.Observer
	loaded, bytes, budget        prometheus.Gauge
}

func newCacheMetrics(reg prometheus.Registerer) *cacheMetrics {
	loads := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hpcml_serve_model_loads_total",
		Help: "Models loaded into the multi-model cache (one per model however many requests waited for it).",
	})
	unloads := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hpcml_serve_model_unloads_total",
		Help: "Models unloaded from the multi-model cache: evicted (least recently used) or unloaded by request.",
	})
	failures := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "hpcml_serve_model_load_failures_total",
		Help: "Model loads that failed (missing, invalid, or larger than the cache).",
	})
	seconds := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hpcml_serve_model_load_seconds",
		Help:    "Time to load a model: read from storage, import, and check.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	})
	loaded := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "hpcml_serve_models_loaded",
		Help: "Models in the multi-model cache.",
	})
	bytes := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "hpcml_serve_model_cache_bytes",
		Help: "Bytes of the loaded models' tensors (weights and load-time constants), those draining after an unload included.",
	})
	budget := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "hpcml_serve_model_cache_budget_bytes",
		Help: "The multi-model cache's budget (--model-cache-bytes).",
	})
	reg.MustRegister(loads, unloads, failures, seconds, loaded, bytes, budget)
	return &cacheMetrics{loads: loads, unloads: unloads, loadFailures: failures, loadSeconds: seconds,
		loaded: loaded, bytes: bytes, budget: budget}
}
