package resilience

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/telemetry"
)

// Outcomes of souk_dependency_calls_total.
const (
	outcomeSuccess  = "success"  // the call succeeded (perhaps after retries)
	outcomeFailure  = "failure"  // the dependency failed (Config.Failure)
	outcomeError    = "error"    // the call failed for the caller's reasons (a decline, a validation error)
	outcomeTimeout  = "timeout"  // the last attempt timed out
	outcomeRejected = "rejected" // not made: breaker open or bulkhead full
)

// metrics are a policy's Prometheus series; a nil *metrics records nothing.
type metrics struct {
	calls    *prometheus.CounterVec
	attempts prometheus.Counter
	state    prometheus.Gauge
}

var (
	callsOpts = prometheus.CounterOpts{
		Name: "souk_dependency_calls_total",
		Help: "Calls to a dependency through a resilience policy, by outcome: success, failure, error, timeout, rejected.",
	}
	attemptsOpts = prometheus.CounterOpts{
		Name: "souk_dependency_attempts_total",
		Help: "Attempts made to call a dependency, retries included.",
	}
	stateOpts = prometheus.GaugeOpts{
		Name: "souk_dependency_breaker_state",
		Help: "State of a dependency's circuit breaker: 0 closed, 1 half-open, 2 open.",
	}
)

func newMetrics(reg prometheus.Registerer, name string) *metrics {
	if reg == nil {
		return nil
	}
	calls := telemetry.MustRegister(reg, prometheus.NewCounterVec(callsOpts, []string{"name", "outcome"}))
	attempts := telemetry.MustRegister(reg, prometheus.NewCounterVec(attemptsOpts, []string{"name"}))
	state := telemetry.MustRegister(reg, prometheus.NewGaugeVec(stateOpts, []string{"name"}))
	for _, o := range []string{outcomeSuccess, outcomeFailure, outcomeError, outcomeTimeout, outcomeRejected} {
		calls.WithLabelValues(name, o)
	}
	return &metrics{
		calls:    calls.MustCurryWith(prometheus.Labels{"name": name}),
		attempts: attempts.WithLabelValues(name),
		state:    state.WithLabelValues(name),
	}
}

func (m *metrics) call(outcome string) {
	if m != nil {
		m.calls.WithLabelValues(outcome).Inc()
	}
}

func (m *metrics) attempt() {
	if m != nil {
		m.attempts.Inc()
	}
}

func (m *metrics) breaker(s BreakerState) {
	if m == nil {
		return
	}
	switch s {
	case BreakerClosed:
		m.state.Set(0)
	case BreakerHalfOpen:
		m.state.Set(1)
	case BreakerOpen:
		m.state.Set(2)
	}
}
