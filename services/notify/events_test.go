package notify

import (
	"net/http"
	"testing"
	"time"

	"github.com/soukhq/souk/api/apitest"
)

// mustDisabledEvent drives a subscription into automatic disabling and
// returns the souk.notify.webhook_disabled.v1 outbox payload.
func mustDisabledEvent(t *testing.T, cfg Config, respond func(int, http.ResponseWriter, *http.Request)) []byte {
	t.Helper()
	db := mustSQLite(t)
	clk := newClock()
	rcv := newReceiver(t, clk)
	rcv.setRespond(respond)
	s := MustNewService(t, db, devConfig(cfg), WithClock(clk.Now), noJitter)
	w := MustCreateWebhook(t, s, rcv.URL, "*")
	MustHandle(t, db, s.handleEvent, MustOrderEvent(t, orderData("ada@example.com")))
	driveUntilDone(t, s, clk, w.ID)
	events := outboxEvents(t, db, EventWebhookDisabled)
	if len(events) != 1 {
		t.Fatalf("%d webhook_disabled events, want 1", len(events))
	}
	return events[0]
}

// TestWebhookDisabledMatchesItsSchema validates both kinds of the event
// (by count, by time; with an HTTP status and with a timeout) against
// api/events/souk.notify.webhook_disabled.v1.json.
func TestWebhookDisabledMatchesItsSchema(t *testing.T) {
	schemas := apitest.MustEventSchemas(t, EventWebhookDisabled)
	for _, payload := range map[string][]byte{
		"consecutive failures": mustDisabledEvent(t, Config{MaxConsecutiveFailures: 1, WebhookRetryFor: time.Minute}, status(http.StatusTeapot)),
		"failing for a day":    mustDisabledEvent(t, Config{}, status(http.StatusInternalServerError)),
		"after a timeout": mustDisabledEvent(t, Config{MaxConsecutiveFailures: 1, WebhookRetryFor: time.Second, WebhookTimeout: 100 * time.Millisecond},
			func(_ int, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }),
	} {
		schemas.Validate(t, payload)
	}
}

// TestWebhookDisabledSchemaRejectsDrift makes sure the schema is strict
// enough to catch data that lost or mistyped a field.
func TestWebhookDisabledSchemaRejectsDrift(t *testing.T) {
	schemas := apitest.MustEventSchemas(t, EventWebhookDisabled)
	payload := mustDisabledEvent(t, Config{MaxConsecutiveFailures: 1, WebhookRetryFor: time.Minute}, status(http.StatusBadGateway))
	for _, tt := range []struct {
		name   string
		mutate func(e, data map[string]any)
	}{
		{"missing data.webhook_id", func(_, d map[string]any) { delete(d, "webhook_id") }},
		{"unknown reason", func(_, d map[string]any) { d["reason"] = "tired" }},
		{"string consecutive_failures", func(_, d map[string]any) { d["consecutive_failures"] = "1" }},
		{"zero consecutive_failures", func(_, d map[string]any) { d["consecutive_failures"] = 0 }},
		{"unknown data field", func(_, d map[string]any) { d["secret"] = "whsec_x" }},
		{"bad delivery id", func(_, d map[string]any) { d["delivery_id"] = "evt_1" }},
		{"wrong source", func(e, _ map[string]any) { e["source"] = "orders" }},
		{"wrong type", func(e, _ map[string]any) { e["type"] = "souk.notify.webhook_enabled.v1" }},
		{"bad subject", func(e, _ map[string]any) { e["subject"] = "ord_1" }},
		{"a URL with its path", func(_, d map[string]any) { d["url"] = d["url"].(string) + "/hooks?token=abc" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			schemas.MustRejectDrift(t, EventWebhookDisabled, payload, func(e map[string]any) { tt.mutate(e, e["data"].(map[string]any)) })
		})
	}
}
