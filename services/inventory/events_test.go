package inventory

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/apperr/apperrtest"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/bus/bustest"
)

// eventTypes is every event the inventory publishes.
var eventTypes = []string{EventStockReserved, EventStockReservationFailed, EventStockReleased, EventStockCommitted, EventStockLow, EventStockAdjusted}

// TestEventsMatchTheirSchemas drives the inventory through every kind of
// change, then validates each outbox row against its event's JSON Schema.
func TestEventsMatchTheirSchemas(t *testing.T) {
	schemas := apitest.MustEventSchemas(t, eventTypes...)
	clk := newClock()
	runStores(t, func(t *testing.T, s *Service) {
		ctx := context.Background()
		a := MustCreateLocation(t, s, "A", 1)
		b := MustCreateLocation(t, s, "B", 2)
		MustSetLevel(t, s, "SHIRT", a.ID, 6) // stock_adjusted
		MustSetLevel(t, s, "SHIRT", b.ID, 2)
		if _, err := s.Adjust(ctx, "SHIRT", AdjustmentInput{LocationID: b.ID, Delta: -1, Reason: ReasonDamaged, Note: "torn"}); err != nil {
			t.Fatal(err)
		}
		MustAllowBackorder(t, s, "PRE")
		MustSetLevel(t, s, "PRE", a.ID, 0)

		r, err := s.Reserve(ctx, ReserveRequest{Key: "ord_1:reserve", OrderID: "ord_1", Lines: []ReserveLine{line("SHIRT", 4), line("PRE", 2)}})
		if err != nil { // stock_reserved, stock_low (SHIRT 7 → 3)
			t.Fatal(err)
		}
		if _, err := s.Commit(ctx, r.ID, ""); err != nil { // stock_committed
			t.Fatal(err)
		}
		rel := MustReserve(t, s, "rel", line("SHIRT", 1))
		if _, err := s.Release(ctx, rel.ID); err != nil { // stock_released
			t.Fatal(err)
		}
		if _, err := s.Reserve(ctx, ReserveRequest{Key: "exp", Lines: []ReserveLine{line("SHIRT", 1)}, TTL: time.Second}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)
		if n, err := s.ExpireStale(ctx, clk.Now()); n != 1 || err != nil { // stock_released (expired)
			t.Fatalf("ExpireStale = %d, %v", n, err)
		}
		_, err = s.Reserve(ctx, ReserveRequest{Key: "fail", Lines: []ReserveLine{line("SHIRT", 50), line("GHOST", 1)}}) // stock_reservation_failed
		apperrtest.Want(t, err, CodeOutOfStock)

		seen := map[string]int{}
		for i, row := range bustest.MustOutbox(t, s.db) {
			schemas.Validate(t, row.Payload)
			var e bus.Event
			if err := json.Unmarshal(row.Payload, &e); err != nil {
				t.Fatal(err)
			}
			if e.Subject != row.Aggregate || e.Type != row.Type || e.Source != "inventory" {
				t.Errorf("row %d: subject %q, aggregate %q, type %q", i, e.Subject, row.Aggregate, e.Type)
			}
			seen[row.Type]++
		}
		for _, typ := range eventTypes {
			if seen[typ] == 0 {
				t.Errorf("no %s was emitted", typ)
			}
		}
		if seen[EventStockReleased] != 2 || seen[EventStockLow] != 1 {
			t.Errorf("events seen: %v", seen)
		}
	}, WithClock(clk.Now))
}

// TestEventSchemasRejectDrift makes sure the schemas are strict enough to
// catch data that lost or mistyped a field.
func TestEventSchemasRejectDrift(t *testing.T) {
	schemas := apitest.MustEventSchemas(t, eventTypes...)
	s := MustNewSQLiteService(t)
	loc := MustCreateLocation(t, s, "A", 1)
	MustSetLevel(t, s, "SKU", loc.ID, 10)
	MustReserve(t, s, "k", line("SKU", 1))
	var reserved []byte
	for _, row := range bustest.MustOutbox(t, s.db) {
		if row.Type == EventStockReserved {
			reserved = row.Payload
		}
	}
	if err := schemas.ValidateAs(EventStockReserved, reserved); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		mutate func(e, data map[string]any)
	}{
		{"missing data.reservation_id", func(_, d map[string]any) { delete(d, "reservation_id") }},
		{"string quantity", func(_, d map[string]any) { d["lines"].([]any)[0].(map[string]any)["quantity"] = "1" }},
		{"zero quantity", func(_, d map[string]any) { d["lines"].([]any)[0].(map[string]any)["quantity"] = 0 }},
		{"line without allocations", func(_, d map[string]any) { d["lines"].([]any)[0].(map[string]any)["allocations"] = []any{} }},
		{"unknown data field", func(_, d map[string]any) { d["price"] = 10 }},
		{"no lines", func(_, d map[string]any) { d["lines"] = []any{} }},
		{"wrong type", func(e, _ map[string]any) { e["type"] = EventStockReleased }},
		{"bad subject", func(e, _ map[string]any) { e["subject"] = "ord_1" }},
		{"bad location id", func(_, d map[string]any) {
			d["lines"].([]any)[0].(map[string]any)["allocations"].([]any)[0].(map[string]any)["location_id"] = "A"
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			schemas.MustRejectDrift(t, EventStockReserved, reserved, func(e map[string]any) { tt.mutate(e, e["data"].(map[string]any)) })
		})
	}
}
