package executor

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the executor's Prometheus series. The attempt outcomes carry
// the seed metric names' parts as labels: kind is ok, http_error,
// connection_error or timeout, and status the HTTP status of an http_error
// (scheduler.deliver_task.http_error.<status>.sum).
type Metrics struct {
	Fires         prometheus.Counter
	Attempts      *prometheus.CounterVec
	Lateness      prometheus.Histogram
	Latency       prometheus.Histogram
	Missed        prometheus.Counter
	Failed        prometheus.Counter
	InFlight      prometheus.Gauge
	LeaderChanges prometheus.Counter
}

// NewMetrics registers the executor's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Fires: prometheus.NewCounter(prometheus.CounterOpts{Name: "schedulerd_fires_total",
			Help: "Slots fired (first delivery attempt started)."}),
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "schedulerd_delivery_attempts_total",
			Help: "Delivery attempts by outcome kind and HTTP status."}, []string{"kind", "status"}),
		Lateness: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "schedulerd_fire_lateness_seconds",
			Help:    "Time from a slot to the start of its first delivery attempt.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 5, 10, 30, 60, 300, 600}}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "schedulerd_delivery_latency_seconds",
			Help: "Duration of delivery attempts.", Buckets: prometheus.DefBuckets}),
		Missed: prometheus.NewCounter(prometheus.CounterOpts{Name: "schedulerd_missed_slots_total",
			Help: "Slots older than the catch-up window recorded as missed."}),
		Failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "schedulerd_failed_tasks_total",
			Help: "Slots whose delivery exhausted its retries."}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "schedulerd_deliveries_in_flight",
			Help: "Delivery attempts in progress."}),
		LeaderChanges: prometheus.NewCounter(prometheus.CounterOpts{Name: "schedulerd_leader_terms_total",
			Help: "Times this node became leader and started the executor."}),
	}
	if reg != nil {
		reg.MustRegister(m.Fires, m.Attempts, m.Lateness, m.Latency, m.Missed, m.Failed, m.InFlight, m.LeaderChanges)
	}
	return m
}

func (m *Metrics) observe(r Result, attempt int, lateness time.Duration) {
	if m == nil {
		return
	}
	status := ""
	if r.Kind == KindHTTPError {
		status = strconv.Itoa(r.Status)
	}
	m.Attempts.WithLabelValues(r.Kind, status).Inc()
	m.Latency.Observe(r.Latency.Seconds())
	if attempt == 1 {
		m.Fires.Inc()
		m.Lateness.Observe(max(lateness, 0).Seconds())
	}
}
