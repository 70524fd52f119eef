package notify

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/telemetry"
)

// Outcomes of souk_notify_emails_total.
const (
	emailSent    = "sent"    // the SMTP server accepted it
	emailRetried = "retried" // an attempt failed; another is scheduled
	emailFailed  = "failed"  // given up (attempts exhausted, or refused for good)
	emailInvalid = "invalid" // not even tried: no usable recipient address
)

// Outcomes of souk_notify_webhook_deliveries_total (per attempt).
const (
	hookSucceeded = "succeeded" // 2xx
	hookRetried   = "retried"   // failed; another attempt is scheduled
	hookFailed    = "failed"    // failed, and the delivery gave up
)

// metrics are notify's Prometheus metrics:
//
//	souk_notify_emails_total{outcome}                                counter
//	souk_notify_email_send_duration_seconds                          histogram
//	souk_notify_webhook_deliveries_total{outcome, status_code}       counter (per attempt)
//	souk_notify_webhook_request_duration_seconds{outcome}            histogram
//	souk_notify_webhook_delivery_latency_seconds                     histogram (event to success)
//	souk_notify_webhooks_disabled_total                              counter
//
// status_code is the HTTP status, or "timeout", "refused" (SSRF guard) or
// "error" (no answer). A nil *metrics records nothing.
type metrics struct {
	emails          *prometheus.CounterVec
	emailDuration   prometheus.Histogram
	deliveries      *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	latency         prometheus.Histogram
	disabled        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		emails: telemetry.MustRegister(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "souk_notify_emails_total",
			Help: "Email send attempts by outcome: sent, retried, failed (given up), invalid (no usable address).",
		}, []string{"outcome"})),
		emailDuration: telemetry.MustRegister(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "souk_notify_email_send_duration_seconds",
			Help:    "Time of one e-mail's SMTP exchange, whatever its outcome; connecting included for the first e-mail of a session.",
			Buckets: prometheus.ExponentialBuckets(0.01, 3, 9), // 10 ms … 66 s
		})),
		deliveries: telemetry.MustRegister(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "souk_notify_webhook_deliveries_total",
			Help: "Webhook POST attempts by outcome (succeeded, retried, failed) and status_code (HTTP status, timeout, refused, error).",
		}, []string{"outcome", "status_code"})),
		requestDuration: telemetry.MustRegister(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "souk_notify_webhook_request_duration_seconds",
			Help:    "Time of one webhook POST, connecting included, by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 9), // 5 ms … 33 s
		}, []string{"outcome"})),
		latency: telemetry.MustRegister(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "souk_notify_webhook_delivery_latency_seconds",
			Help:    "Time from a delivery's creation (the event reached notify) to its successful attempt, retries included.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600},
		})),
		disabled: telemetry.MustRegister(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "souk_notify_webhooks_disabled_total",
			Help: "Webhook subscriptions disabled automatically after repeated failures.",
		})),
	}
	for _, o := range []string{emailSent, emailRetried, emailFailed, emailInvalid} {
		m.emails.WithLabelValues(o) // export zeros, so rates work from the start
	}
	return m
}

func (m *metrics) email(outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.emails.WithLabelValues(outcome).Inc()
	if d > 0 {
		m.emailDuration.Observe(d.Seconds())
	}
}

// delivery records one attempt; code is the HTTP status or 0 with kind
// ("timeout", "refused", "error").
func (m *metrics) delivery(outcome string, code int, kind string, d time.Duration) {
	if m == nil {
		return
	}
	label := kind
	if code > 0 {
		label = strconv.Itoa(code)
	}
	m.deliveries.WithLabelValues(outcome, label).Inc()
	m.requestDuration.WithLabelValues(outcome).Observe(d.Seconds())
}

func (m *metrics) delivered(latency time.Duration) {
	if m != nil && latency >= 0 {
		m.latency.Observe(latency.Seconds())
	}
}

func (m *metrics) disabledWebhook() {
	if m != nil {
		m.disabled.Inc()
	}
}
