package bus

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/telemetry"
)

// Metrics are the bus's Prometheus metrics: publishes, the outbox relay and
// consumers. One Metrics may be shared by a Bus (WithMetrics) and any number
// of relays; it is safe for concurrent use.
type Metrics struct {
	published       *prometheus.CounterVec   // type, outcome
	outboxPending   *prometheus.GaugeVec     // outbox
	outboxLag       *prometheus.GaugeVec     // outbox
	outboxRelayed   *prometheus.CounterVec   // outbox
	relayFailures   *prometheus.CounterVec   // outbox
	deliveries      *prometheus.CounterVec   // consumer, outcome
	redeliveries    *prometheus.CounterVec   // consumer
	consumerPending *prometheus.GaugeVec     // consumer
	handlerDuration *prometheus.HistogramVec // consumer
}

// Outcomes of a consumer delivery, the "outcome" label of
// souk_bus_consumer_deliveries_total.
const (
	outcomeProcessed    = "processed"     // the handler's transaction committed
	outcomeDuplicate    = "duplicate"     // the inbox had it: acknowledged without the handler
	outcomeSkipped      = "skipped"       // ConsumerConfig.Wants or WantsType declined it: acknowledged without a transaction
	outcomeRetried      = "retried"       // failed; redelivered after a backoff
	outcomeDeadLettered = "dead_lettered" // moved to the dead-letter stream
)

// NewMetrics creates the metrics and registers them on reg; reg may be nil
// (metrics are kept but not exported). Registering on a registry that
// already holds them (a second Bus, or a relay beside a Bus) reuses the
// registered ones, so every user reports into the same series. It fails only
// when reg holds a different collector under one of the names.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "souk_bus_published_total",
			Help: "Events published to the bus, by event type and outcome (ok, error).",
		}, []string{"type", "outcome"}),
		outboxPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "souk_bus_outbox_pending",
			Help: "Outbox rows not yet published, as last seen by the relay.",
		}, []string{"outbox"}),
		outboxLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "souk_bus_outbox_lag_seconds",
			Help: "Age of the oldest unpublished outbox row (0 when none), as last seen by the relay.",
		}, []string{"outbox"}),
		outboxRelayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "souk_bus_outbox_relayed_total",
			Help: "Outbox rows the relay published.",
		}, []string{"outbox"}),
		relayFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "souk_bus_outbox_publish_failures_total",
			Help: "Failed attempts of the relay to publish an outbox row.",
		}, []string{"outbox"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "souk_bus_consumer_deliveries_total",
			Help: "Events delivered to a durable consumer, by outcome (processed, duplicate, retried, dead_lettered).",
		}, []string{"consumer", "outcome"}),
		redeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "souk_bus_consumer_redeliveries_total",
			Help: "Deliveries that were not the event's first delivery to the consumer.",
		}, []string{"consumer"}),
		consumerPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "souk_bus_consumer_pending",
			Help: "Events in the stream not yet delivered to the consumer, as of its last delivery (consumer lag).",
		}, []string{"consumer"}),
		handlerDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "souk_bus_consumer_handler_duration_seconds",
			Help:    "Time to apply one event: inbox check, handler and commit.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9), // 1 ms … 65 s
		}, []string{"consumer"}),
	}
	var errs [9]error
	m.published, errs[0] = telemetry.Register(reg, m.published)
	m.outboxPending, errs[1] = telemetry.Register(reg, m.outboxPending)
	m.outboxLag, errs[2] = telemetry.Register(reg, m.outboxLag)
	m.outboxRelayed, errs[3] = telemetry.Register(reg, m.outboxRelayed)
	m.relayFailures, errs[4] = telemetry.Register(reg, m.relayFailures)
	m.deliveries, errs[5] = telemetry.Register(reg, m.deliveries)
	m.redeliveries, errs[6] = telemetry.Register(reg, m.redeliveries)
	m.consumerPending, errs[7] = telemetry.Register(reg, m.consumerPending)
	m.handlerDuration, errs[8] = telemetry.Register(reg, m.handlerDuration)
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("bus: %w", err)
	}
	return m, nil
}

// orNew returns m, or unexported metrics when m is nil.
func (m *Metrics) orNew() *Metrics {
	if m != nil {
		return m
	}
	m, _ = NewMetrics(nil)
	return m
}
