package orders

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/money"
	"github.com/soukhq/souk/platform/telemetry"
)

// Outcomes of souk_orders_checkouts_total.
const (
	checkoutConfirmed  = "confirmed"
	checkoutOutOfStock = "out_of_stock"
	checkoutDeclined   = "declined"
	checkoutProcessing = "processing"
	checkoutCancelled  = "cancelled" // any other reason
	checkoutRefused    = "refused"   // no order made: invalid, not found, incomplete, unavailable
)

// metrics are the orders' Prometheus metrics:
//
//	souk_orders_checkouts_total{outcome}                  counter
//	souk_orders_saga_steps_total{step, action, outcome}   counter
//	souk_orders_saga_step_duration_seconds{step, action}  histogram
//	souk_orders_compensations_total{reason}               counter
//	souk_orders_placed_total                              counter
//	souk_orders_confirmed_total                           counter
//	souk_orders_cancelled_total{reason}                   counter
//	souk_orders_revenue_minor_total{currency}             counter (confirmed orders' totals, minor units)
//	souk_orders_saga_save_failures_total                  counter (saga saves the database failed)
//
// A nil *metrics records nothing, so call sites need no checks.
type metrics struct {
	checkouts     *prometheus.CounterVec
	steps         *prometheus.CounterVec
	stepDuration  *prometheus.HistogramVec
	compensations *prometheus.CounterVec
	placed        prometheus.Counter
	confirmed     prometheus.Counter
	cancelled     *prometheus.CounterVec
	revenue       *prometheus.CounterVec
	saveFailures  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		checkouts: telemetry.MustRegister(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "souk_orders_checkouts_total",
			Help: "Checkout requests by outcome: confirmed, out_of_stock, declined, cancelled (other reasons), processing (answered 202), refused (no order made).",
		}, []string{"outcome"})),
		steps: telemetry.MustRegister(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "souk_orders_saga_steps_total",
			Help: "Attempts of checkout saga steps by step, action (do, compensate) and outcome (ok, skipped, retry, failed).",
		}, []string{"step", "action", "outcome"})),
		stepDuration: telemetry.MustRegister(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "souk_orders_saga_step_duration_seconds",
			Help:    "Duration of one attempt of a checkout saga step, participant call included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"step", "action"})),
		compensations: telemetry.MustRegister(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "souk_orders_compensations_total",
			Help: "Sagas that started compensating, by cancellation reason.",
		}, []string{"reason"})),
		placed: telemetry.MustRegister(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "souk_orders_placed_total", Help: "Orders created (pending).",
		})),
		confirmed: telemetry.MustRegister(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "souk_orders_confirmed_total", Help: "Orders confirmed.",
		})),
		cancelled: telemetry.MustRegister(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "souk_orders_cancelled_total", Help: "Orders cancelled, by reason.",
		}, []string{"reason"})),
		revenue: telemetry.MustRegister(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "souk_orders_revenue_minor_total",
			Help: "Sum of the totals of confirmed orders, in minor units of the currency.",
		}, []string{"currency"})),
		saveFailures: telemetry.MustRegister(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "souk_orders_saga_save_failures_total",
			Help: "Saves of a saga's state that failed (its database did not answer); the saga is retried from its last recorded step.",
		})),
	}
	for _, o := range []string{checkoutConfirmed, checkoutOutOfStock, checkoutDeclined, checkoutProcessing, checkoutCancelled, checkoutRefused} {
		m.checkouts.WithLabelValues(o) // export zeros, so rates work from the start
	}
	return m
}

func (m *metrics) sagaSaveFailed() {
	if m != nil {
		m.saveFailures.Inc()
	}
}

func (m *metrics) checkout(outcome string) {
	if m != nil {
		m.checkouts.WithLabelValues(outcome).Inc()
	}
}

func (m *metrics) step(step, action, outcome string, d time.Duration) {
	if m != nil {
		m.steps.WithLabelValues(step, action, outcome).Inc()
		m.stepDuration.WithLabelValues(step, action).Observe(d.Seconds())
	}
}

func (m *metrics) compensation(reason string) {
	if m != nil {
		m.compensations.WithLabelValues(reason).Inc()
	}
}

func (m *metrics) orderPlaced() {
	if m != nil {
		m.placed.Inc()
	}
}

func (m *metrics) orderConfirmed(total money.Money) {
	if m != nil {
		m.confirmed.Inc()
		m.revenue.WithLabelValues(total.Currency).Add(float64(total.Amount))
	}
}

func (m *metrics) orderCancelled(reason string) {
	if m != nil {
		m.cancelled.WithLabelValues(reason).Inc()
	}
}
