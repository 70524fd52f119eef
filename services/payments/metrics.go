package payments

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/telemetry"
)

// Outcomes of souk_payments_operations_total.
const (
	outcomeSucceeded  = "succeeded"  // the provider did it
	outcomeDeclined   = "declined"   // the provider refused it
	outcomeUnknown    = "unknown"    // the call failed or timed out: to be reconciled
	outcomeAbandoned  = "abandoned"  // not sent (breaker open) or unknown to the provider
	outcomeReplayed   = "replayed"   // a request with a settled key got the recorded result
	outcomeReconciled = "reconciled" // an unknown outcome was learnt from the provider
)

// metrics are payments' Prometheus metrics:
//
//	souk_payments_operations_total{provider, op, outcome}          counter
//	souk_payments_provider_latency_seconds{provider, op}           histogram (op also "lookup")
//
// The providers' circuit breakers are the resilience policies'
// souk_dependency_breaker_state{name="payments.<provider>"}, with
// souk_dependency_calls_total beside it. A nil *metrics records nothing.
type metrics struct {
	ops       *prometheus.CounterVec
	latencies *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	return &metrics{
		ops: telemetry.MustRegister(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "souk_payments_operations_total",
			Help: "Payment operations by provider, operation (authorize, capture, void, refund) and outcome: succeeded, declined, unknown, abandoned, replayed, reconciled.",
		}, []string{"provider", "op", "outcome"})),
		latencies: telemetry.MustRegister(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "souk_payments_provider_latency_seconds",
			Help:    "Duration of payment provider calls, retries included, by provider and operation.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 5, 10, 30},
		}, []string{"provider", "op"})),
	}
}

func (m *metrics) operation(provider string, op Operation, outcome string) {
	if m != nil {
		m.ops.WithLabelValues(provider, string(op), outcome).Inc()
	}
}

func (m *metrics) latency(provider string, op Operation, d time.Duration) {
	if m != nil {
		m.latencies.WithLabelValues(provider, string(op)).Observe(d.Seconds())
	}
}
