package serve

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Route labels: a fixed, small set, so that no request can create a new
// time series (no model names, paths or ids in labels).
const (
	routeHealth      = "health"
	routeMetadata    = "metadata"
	routeInfer       = "infer"
	routeInvocations = "invocations"
	routePing        = "ping"
	routeMetrics     = "metrics"
	routeOther       = "other"
)

var routes = []string{routeHealth, routeMetadata, routeInfer, routeInvocations, routePing, routeMetrics, routeOther}

var codeClasses = []string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// usualClasses are the classes whose series exist from the start (at 0),
// so that rates of errors are defined before the first error; 1xx and 3xx,
// which this server never sends itself, appear only if they happen.
var usualClasses = []int{1, 3, 4}

// metrics are the server's Prometheus metrics, on its own registry. The
// label values are resolved once here, so that a request only touches
// ready observers.
type metrics struct {
	reg         *prometheus.Registry
	requestsVec *prometheus.CounterVec
	requests    map[string]*[5]prometheus.Counter // route → code class; nil until first used
	duration    map[string]prometheus.Observer    // route
	queue       prometheus.Observer
	compute     prometheus.Observer
	batch       prometheus.Observer
	inflight    prometheus.Gauge
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hpcml_serve_requests_total",
		Help: "HTTP requests answered, by route and status class.",
	}, []string{"route", "code"})
	// Inference on a small model takes tens of microseconds; a slow one or
	// a long queue, seconds.
	latency := []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "hpcml_serve_request_duration_seconds",
		Help:    "Time from a request's arrival to its response, by route.",
		Buckets: latency,
	}, []string{"route"})
	queue := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hpcml_serve_queue_duration_seconds",
		Help:    "Time an inference request waited for a model execution (in the batching queue or for a free execution slot).",
		Buckets: latency,
	})
	compute := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hpcml_serve_compute_duration_seconds",
		Help:    "Time of one model execution (one batch).",
		Buckets: latency,
	})
	batch := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "hpcml_serve_batch_size",
		Help:    "Rows (first-dimension entries) per model execution; the count is the number of executions.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024},
	})
	inflight := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "hpcml_serve_inflight_requests",
		Help: "Inference requests (infer and invocations) being handled.",
	})
	reg.MustRegister(requests, duration, queue, compute, batch, inflight)
	m := &metrics{
		reg:         reg,
		requestsVec: requests,
		requests:    map[string]*[5]prometheus.Counter{},
		duration:    map[string]prometheus.Observer{},
		queue:       queue, compute: compute, batch: batch, inflight: inflight,
	}
	for _, r := range routes {
		var cs [5]prometheus.Counter
		for _, i := range usualClasses {
			cs[i] = requests.WithLabelValues(r, codeClasses[i])
		}
		m.requests[r] = &cs
		m.duration[r] = duration.WithLabelValues(r)
	}
	return m
}

func (m *metrics) request(route string, code int, seconds float64) {
	class := code/100 - 1
	if class < 0 || class > 4 {
		class = 4
	}
	c := m.requests[route][class]
	if c == nil {
		// Rare (1xx, 3xx); WithLabelValues is safe to call concurrently.
		c = m.requestsVec.WithLabelValues(route, codeClasses[class])
	}
	c.Inc()
	m.duration[route].Observe(seconds)
}
