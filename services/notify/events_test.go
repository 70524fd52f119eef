package notify

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// MustCompileEventSchema compiles api/events/<type>.json.
func MustCompileEventSchema(t testing.TB, typ string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	path, err := filepath.Abs(filepath.Join("..", "..", "api", "events", typ+".json"))
	if err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(path)
	if err != nil {
		t.Fatalf("compile schema of %s: %v", typ, err)
	}
	return sch
}

func validateJSON(t testing.TB, sch *jsonschema.Schema, payload []byte) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(string(payload)))
	if err != nil {
		t.Fatal(err)
	}
	return sch.Validate(inst)
}

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
	sch := MustCompileEventSchema(t, EventWebhookDisabled)
	for name, payload := range map[string][]byte{
		"consecutive failures": mustDisabledEvent(t, Config{MaxConsecutiveFailures: 1, WebhookRetryFor: time.Minute}, status(http.StatusTeapot)),
		"failing for a day":    mustDisabledEvent(t, Config{}, status(http.StatusInternalServerError)),
		"after a timeout": mustDisabledEvent(t, Config{MaxConsecutiveFailures: 1, WebhookRetryFor: time.Second, WebhookTimeout: 100 * time.Millisecond},
			func(_ int, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }),
	} {
		if err := validateJSON(t, sch, payload); err != nil {
			t.Errorf("%s: the event does not match its schema: %v\n%s", name, err, payload)
		}
	}
}

// TestWebhookDisabledSchemaRejectsDrift makes sure the schema is strict
// enough to catch data that lost or mistyped a field.
func TestWebhookDisabledSchemaRejectsDrift(t *testing.T) {
	sch := MustCompileEventSchema(t, EventWebhookDisabled)
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
			var e map[string]any
			if err := json.Unmarshal(payload, &e); err != nil {
				t.Fatal(err)
			}
			tt.mutate(e, e["data"].(map[string]any))
			b, _ := json.Marshal(e)
			if err := validateJSON(t, sch, b); err == nil {
				t.Fatal("schema accepted a drifted event")
			}
		})
	}
}
