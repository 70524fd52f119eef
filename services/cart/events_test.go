package cart

import (
	"encoding/json"
	"testing"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/bus/bustest"
)

// TestEventsMatchTheirSchemas checks out an anonymous and a customer cart
// (one of them twice), then validates each outbox row against the event's
// JSON Schema and its data against the carts.
func TestEventsMatchTheirSchemas(t *testing.T) {
	schema := apitest.MustEventSchemas(t, EventCartCheckedOut)
	runStores(t, func(t *testing.T, e *env) {
		anonCart, shopper := e.MustCreate(t, Caller{})
		e.MustAdd(t, shopper, anonCart.ID, e.shirt.ID, 2)
		if _, err := e.s.AddCode(bg, shopper, anonCart.ID, "WINTER10", 0); err != nil {
			t.Fatal(err)
		}
		custCart, ada := e.MustCreate(t, customer("cus_events"))
		e.MustAdd(t, ada, custCart.ID, e.mug.ID, 1)
		if _, err := e.s.Update(bg, ada, custCart.ID, Patch{Email: Value("ada@example.com")}, 0); err != nil {
			t.Fatal(err)
		}
		orders := map[string]string{anonCart.ID: orderID(), custCart.ID: orderID()}
		for _, cartID := range []string{anonCart.ID, custCart.ID, anonCart.ID} {
			if err := e.s.MarkCheckedOut(bg, cartID, orders[cartID]); err != nil {
				t.Fatal(err)
			}
		}

		rows := bustest.MustOutbox(t, e.db)
		if len(rows) != 2 {
			t.Fatalf("%d events, want one per checked-out cart", len(rows))
		}
		for i, row := range rows {
			schema.Validate(t, row.Payload)
			var ev bus.Event
			if err := json.Unmarshal(row.Payload, &ev); err != nil {
				t.Fatal(err)
			}
			var data CheckedOut
			if err := ev.Decode(&data); err != nil {
				t.Fatal(err)
			}
			if ev.Type != EventCartCheckedOut || row.Type != ev.Type || ev.Subject != data.CartID || row.Aggregate != data.CartID ||
				ev.Source != "cart" || data.OrderID != orders[data.CartID] {
				t.Errorf("row %d: %+v / %+v", i, ev, data)
			}
		}
		var first, second CheckedOut
		_ = json.Unmarshal(rows[0].Payload, &struct{ Data *CheckedOut }{&first})
		_ = json.Unmarshal(rows[1].Payload, &struct{ Data *CheckedOut }{&second})
		if first.CustomerID != nil || len(first.Items) != 1 || first.Items[0].Quantity != 2 || first.Items[0].SKU != "LIN-M" ||
			len(first.DiscountCodes) != 1 || first.Email != "" {
			t.Errorf("anonymous checkout = %+v", first)
		}
		if second.CustomerID == nil || *second.CustomerID != "cus_events" || second.Email != "ada@example.com" || len(second.DiscountCodes) != 0 {
			t.Errorf("customer checkout = %+v", second)
		}
	})
}

// TestEventSchemaRejectsDrift makes sure the schema is strict enough to
// catch an event that lost or mistyped a field.
func TestEventSchemaRejectsDrift(t *testing.T) {
	schema := apitest.MustEventSchemas(t, EventCartCheckedOut)
	e := MustNewSQLiteEnv(t, Config{})
	cart, c := e.MustCreate(t, Caller{})
	e.MustAdd(t, c, cart.ID, e.shirt.ID, 1)
	if err := e.s.MarkCheckedOut(bg, cart.ID, orderID()); err != nil {
		t.Fatal(err)
	}
	rows := bustest.MustOutbox(t, e.db)
	if len(rows) != 1 {
		t.Fatalf("%d outbox rows", len(rows))
	}
	data := func(ev map[string]any) map[string]any { return ev["data"].(map[string]any) }
	for _, tt := range []struct {
		name   string
		mutate func(ev map[string]any)
	}{
		{"missing order_id", func(ev map[string]any) { delete(data(ev), "order_id") }},
		{"string version", func(ev map[string]any) { data(ev)["version"] = "2" }},
		{"prices leaked in", func(ev map[string]any) { data(ev)["total"] = 10 }},
		{"item without sku", func(ev map[string]any) { delete(data(ev)["items"].([]any)[0].(map[string]any), "sku") }},
		{"zero quantity", func(ev map[string]any) { data(ev)["items"].([]any)[0].(map[string]any)["quantity"] = 0 }},
		{"wrong type", func(ev map[string]any) { ev["type"] = "souk.cart.cart_abandoned.v1" }},
		{"bad subject", func(ev map[string]any) { ev["subject"] = "prod_1" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			schema.MustRejectDrift(t, EventCartCheckedOut, rows[0].Payload, tt.mutate)
		})
	}
}
