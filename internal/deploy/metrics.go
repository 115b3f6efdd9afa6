package deploy

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// gatewayMetrics are the gateway's Prometheus series, by endpoint and
// variant (both bounded: at most MaxVariants per endpoint), not by
// replica or revision, which come and go.
type gatewayMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newGatewayMetrics(reg prometheus.Registerer) *gatewayMetrics {
	m := &gatewayMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hpcml_gateway_requests_total",
			Help: "Requests the endpoint gateway answered, by endpoint, variant and status class (2xx..5xx, or error: no answer).",
		}, []string{"endpoint", "variant", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hpcml_gateway_request_duration_seconds",
			Help:    "Time from a request's arrival at the gateway to the end of its answer, by endpoint and variant.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"endpoint", "variant"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// fleetMetrics are one variant's series, resolved once (a label lookup
// per request would cost more than the rest of the bookkeeping).
type fleetMetrics struct {
	byClass  [6]prometheus.Counter // 0: no answer, 1..5: 1xx..5xx
	duration prometheus.Observer
}

func (m *gatewayMetrics) fleet(endpoint, variant string) *fleetMetrics {
	f := &fleetMetrics{duration: m.duration.WithLabelValues(endpoint, variant)}
	f.byClass[0] = m.requests.WithLabelValues(endpoint, variant, "error")
	for c := 1; c <= 5; c++ {
		f.byClass[c] = m.requests.WithLabelValues(endpoint, variant, strconv.Itoa(c)+"xx")
	}
	return f
}

func (m *gatewayMetrics) forget(endpoint string) {
	m.requests.DeletePartialMatch(prometheus.Labels{"endpoint": endpoint})
	m.duration.DeletePartialMatch(prometheus.Labels{"endpoint": endpoint})
}

// observe counts one answer (status 0: none) that took seconds.
func (f *fleetMetrics) observe(status int, seconds float64) {
	if f == nil {
		return
	}
	c := status / 100
	if c < 1 || c > 5 {
		c = 0
	}
	f.byClass[c].Inc()
	f.duration.Observe(seconds)
}
