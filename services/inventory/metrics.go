package inventory

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/telemetry"
)

// Outcomes of souk_inventory_reservations_total.
const (
	outcomeReserved         = "reserved"
	outcomeOutOfStock       = "out_of_stock"
	outcomeIdempotentReplay = "idempotent_replay"
	outcomeReleased         = "released"
	outcomeCommitted        = "committed"
	outcomeExpired          = "expired"
)

// metrics are the inventory's Prometheus metrics:
//
//	souk_inventory_reservations_total{outcome}    counter
//	souk_inventory_reservation_conflicts_total    counter
//	souk_inventory_stock_low_total                counter
//
// A nil *metrics records nothing, so call sites need no checks.
type metrics struct {
	reservations *prometheus.CounterVec
	conflicts    prometheus.Counter
	stockLow     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		reservations: telemetry.MustRegister(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "souk_inventory_reservations_total",
			Help: "Reservation operations by outcome: reserved, out_of_stock, idempotent_replay, released, committed, expired.",
		}, []string{"outcome"})),
		conflicts: telemetry.MustRegister(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "souk_inventory_reservation_conflicts_total",
			Help: "Conditional stock updates that matched no row because the stock changed after it was read; the reservation was planned again.",
		})),
		stockLow: telemetry.MustRegister(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "souk_inventory_stock_low_total",
			Help: "souk.inventory.stock_low.v1 events published: a SKU's sellable stock fell to its threshold or below.",
		})),
	}
	for _, o := range []string{outcomeReserved, outcomeOutOfStock, outcomeIdempotentReplay, outcomeReleased, outcomeCommitted, outcomeExpired} {
		m.reservations.WithLabelValues(o) // export zeros, so rates work from the start
	}
	return m
}

func (m *metrics) reservation(outcome string, n int) {
	if m != nil && n > 0 {
		m.reservations.WithLabelValues(outcome).Add(float64(n))
	}
}

func (m *metrics) conflict() {
	if m != nil {
		m.conflicts.Inc()
	}
}

func (m *metrics) low(n int) {
	if m != nil && n > 0 {
		m.stockLow.Add(float64(n))
	}
}
