package sched

import (
	"github.com/hpcml/hpcml/internal/job"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the scheduler's Prometheus series.
type Metrics struct {
	submitted prometheus.Counter
	finished  *prometheus.CounterVec
	// Dataset objects that attempts found in their node's cache, and
	// fetched into it.
	cacheHits, cacheMisses prometheus.Counter
	submitToStart          prometheus.Histogram
}

// NewMetrics registers the scheduler's metrics on reg; the gauges read
// the scheduler's snapshot at scrape time.
func NewMetrics(reg prometheus.Registerer, snap func() *Snapshot) *Metrics {
	m := &Metrics{
		submitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hpcml_jobs_submitted_total", Help: "Jobs and array tasks submitted."}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hpcml_dataset_cache_hits_total", Help: "Objects of job inputs (datasets, and URLs on S3) served from a node's cache."}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hpcml_dataset_cache_misses_total", Help: "Objects of job inputs (datasets, and URLs on S3) fetched into a node's cache."}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hpcml_jobs_finished_total", Help: "Jobs and array tasks that reached a terminal state."}, []string{"state"}),
		submitToStart: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "hpcml_job_submit_to_start_seconds",
			Help:    "Time from submission to the command starting, first attempts.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18),
		}),
	}
	reg.MustRegister(m.submitted, m.finished, m.cacheHits, m.cacheMisses, m.submitToStart, &snapshotCollector{snap: snap})
	return m
}

var (
	jobsDesc     = prometheus.NewDesc("hpcml_jobs", "Jobs and array tasks by queue and state.", []string{"queue", "state"}, nil)
	depthDesc    = prometheus.NewDesc("hpcml_queue_depth", "Jobs waiting (PENDING or RUNNABLE) by queue.", []string{"queue"}, nil)
	cpuTotalDesc = prometheus.NewDesc("hpcml_capacity_cpus", "Declared CPUs.", nil, nil)
	cpuUsedDesc  = prometheus.NewDesc("hpcml_allocated_cpus", "CPUs held by running jobs.", nil, nil)
	memTotalDesc = prometheus.NewDesc("hpcml_capacity_memory_bytes", "Declared memory.", nil, nil)
	memUsedDesc  = prometheus.NewDesc("hpcml_allocated_memory_bytes", "Memory held by running jobs.", nil, nil)
)

// snapshotCollector turns the scheduler's snapshot into gauges.
type snapshotCollector struct{ snap func() *Snapshot }

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{jobsDesc, depthDesc, cpuTotalDesc, cpuUsedDesc, memTotalDesc, memUsedDesc} {
		ch <- d
	}
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snap()
	for q, m := range s.Counts {
		for _, st := range job.States {
			ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(m[st]), q, string(st))
		}
		ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(m[job.Pending]+m[job.Runnable]), q)
	}
	ch <- prometheus.MustNewConstMetric(cpuTotalDesc, prometheus.GaugeValue, s.Capacity.Total.CPUs)
	ch <- prometheus.MustNewConstMetric(cpuUsedDesc, prometheus.GaugeValue, s.Capacity.Used.CPUs)
	ch <- prometheus.MustNewConstMetric(memTotalDesc, prometheus.GaugeValue, float64(s.Capacity.Total.MemoryMB)*1024*1024)
	ch <- prometheus.MustNewConstMetric(memUsedDesc, prometheus.GaugeValue, float64(s.Capacity.Used.MemoryMB)*1024*1024)
}
