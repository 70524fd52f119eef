package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// NewRegistry returns a new Prometheus registry holding the Go runtime
// collector (go_*) and the process collector (process_*). Every metric of the
// process registers on it (never on prometheus.DefaultRegisterer) and
// GET /metrics serves it, with promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).
// A registry is safe for concurrent use.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}
