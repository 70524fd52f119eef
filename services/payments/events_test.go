package payments

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/bus/bustest"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/store/storetest"
)

// eventTypes is every event payments publishes.
var eventTypes = []string{EventPaymentAuthorized, EventPaymentFailed, EventPaymentCaptured, EventPaymentVoided,
	EventPaymentRefunded, EventProviderSwitched}

// TestEventsMatchTheirSchemas drives payments through every kind of
// change, then validates each outbox row against its event's JSON Schema.
func TestEventsMatchTheirSchemas(t *testing.T) {
	schemas := apitest.MustEventSchemas(t, eventTypes...)
	storetest.Run(t, testMigrations, func(t *testing.T, db *store.DB) {
		cfg := testConfig()
		cfg.Secondary = "backup"
		f := newFixture(t, db, cfg, WithProvider(NewTestProvider(0).Named("backup")))
		ctx := context.Background()
		p := MustAuthorize(t, f, "o1:auth", 5000)                          // payment_authorized
		MustCapture(t, f, "o1:capture", p.ID, 4000)                        // payment_captured
		if _, err := f.Refund(ctx, "o1:r1", p.ID, eur(1000)); err != nil { // payment_refunded (partially)
			t.Fatal(err)
		}
		if _, err := f.Refund(ctx, "o1:r2", p.ID, eur(3000)); err != nil { // payment_refunded (refunded)
			t.Fatal(err)
		}
		v := MustAuthorize(t, f, "o2:auth", 100)
		if _, err := f.Void(ctx, "o2:void", v.ID); err != nil { // payment_voided
			t.Fatal(err)
		}
		_, err := f.Authorize(ctx, authReq("o3:auth", TokenDeclined, 100)) // payment_failed
		wantDeclined(t, err, "card_declined")
		if _, err := f.SwitchProvider(ctx, "backup", "drill"); err != nil { // provider_switched
			t.Fatal(err)
		}

		seen := map[string]int{}
		for i, row := range bustest.MustOutbox(t, f.db) {
			schemas.Validate(t, row.Payload)
			var e bus.Event
			if err := json.Unmarshal(row.Payload, &e); err != nil {
				t.Fatal(err)
			}
			if e.Subject != row.Aggregate || e.Type != row.Type || e.Source != "payments" {
				t.Errorf("row %d: subject %q, aggregate %q, type %q", i, e.Subject, row.Aggregate, e.Type)
			}
			seen[row.Type]++
		}
		for _, typ := range eventTypes {
			if seen[typ] == 0 {
				t.Errorf("no %s was emitted", typ)
			}
		}
		if seen[EventPaymentRefunded] != 2 || seen[EventPaymentAuthorized] != 2 {
			t.Errorf("events seen: %v", seen)
		}
	})
}

// TestEventSchemasRejectDrift makes sure the schemas are strict enough to
// catch data that lost or mistyped a field.
func TestEventSchemasRejectDrift(t *testing.T) {
	schemas := apitest.MustEventSchemas(t, eventTypes...)
	f := MustNewSQLite(t)
	p := MustAuthorize(t, f, "k", 100)
	MustCapture(t, f, "c", p.ID, 100)
	var captured []byte
	for _, row := range bustest.MustOutbox(t, f.db) {
		if row.Type == EventPaymentCaptured {
			captured = row.Payload
		}
	}
	if err := schemas.ValidateAs(EventPaymentCaptured, captured); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		mutate func(e, data map[string]any)
	}{
		{"missing data.payment_id", func(_, d map[string]any) { delete(d, "payment_id") }},
		{"string amount", func(_, d map[string]any) { d["amount"].(map[string]any)["amount"] = "100" }},
		{"zero amount", func(_, d map[string]any) { d["amount"].(map[string]any)["amount"] = 0 }},
		{"lower-case currency", func(_, d map[string]any) { d["captured"].(map[string]any)["currency"] = "eur" }},
		{"another status", func(_, d map[string]any) { d["status"] = "authorized" }},
		{"unknown data field", func(_, d map[string]any) { d["token"] = "tok_visa" }},
		{"wrong type", func(e, _ map[string]any) { e["type"] = EventPaymentVoided }},
		{"bad subject", func(e, _ map[string]any) { e["subject"] = "ord_1" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			schemas.MustRejectDrift(t, EventPaymentCaptured, captured, func(e map[string]any) { tt.mutate(e, e["data"].(map[string]any)) })
		})
	}
}
