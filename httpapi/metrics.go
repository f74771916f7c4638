package httpapi

import (
	"net/http"
	"runtime"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/seedscheduler/schedulerd/cluster"
)

// metricsNamespace prefixes every metric this process exposes.
const metricsNamespace = "schedulerd"

// metrics is the Prometheus registry of one Server, served on GET /metrics.
type metrics struct {
	reg *prometheus.Registry
	// requests counts API requests by route and status code; instrument
	// feeds it.
	requests *prometheus.CounterVec
	handler  http.Handler
}

// newMetrics builds the registry; the gauges read node on every scrape.
func newMetrics(node *cluster.Node, version string) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Subsystem: "http", Name: "requests_total",
			Help: "API requests served by this node, by route and status code.",
		}, []string{"route", "code"}),
	}
	boolGauge := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "build_info",
			Help:        "Always 1; the labels name the version of this process.",
			ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
		}, func() float64 { return 1 }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Subsystem: "raft", Name: "leader",
			Help: "1 when this node is the raft leader, 0 otherwise.",
		}, func() float64 { return boolGauge(node.IsLeader()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Subsystem: "raft", Name: "applied_index",
			Help: "Raft index of the last log entry applied to this node's state.",
		}, func() float64 { return float64(node.FSM().AppliedIndex()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Subsystem: "raft", Name: "commit_index",
			Help: "Raft commit index known to this node.",
		}, func() float64 { return float64(node.CommitIndex()) }),
		m.requests,
	)
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		// Counts failed scrapes in promhttp_metric_handler_errors_total.
		Registry: reg,
	})
	return m
}

// instrument counts the requests h serves under route (the route template,
// such as "/api/v1/schedule/{id}/", never the raw path, to bound the label
// values).
func (m *metrics) instrument(route string, h http.Handler) http.Handler {
	return promhttp.InstrumentHandlerCounter(m.requests.MustCurryWith(prometheus.Labels{"route": route}), h)
}

// Registry is the registry served on GET /metrics, for other parts of the
// process (the executor's delivery counters) to register their collectors.
func (s *Server) Registry() *prometheus.Registry { return s.met.reg }

// prometheusMetrics: GET /metrics, the Prometheus text exposition. It is
// meant for scrapers that reach a node directly: a request that came through
// the load balancer (X-Forwarded-For lists more than one address) is
// refused.
func (s *Server) prometheusMetrics(w http.ResponseWriter, r *http.Request) {
	if forwardedAddrs(r) > 1 {
		writeError(w, errForbidden())
		return
	}
	s.met.handler.ServeHTTP(w, r)
}

// forwardedAddrs counts the addresses in X-Forwarded-For, across repeated
// header lines.
func forwardedAddrs(r *http.Request) int {
	n := 0
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for part := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(part) != "" {
				n++
			}
		}
	}
	return n
}
