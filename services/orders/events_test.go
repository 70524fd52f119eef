package orders

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/soukhq/souk/api/apitest"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/services/payments"
)

var eventTypes = []string{EventOrderPlaced, EventOrderConfirmed, EventOrderCancelled, EventOrderShipped, EventOrderRefunded}

// TestEventsMatchTheirSchemas produces every event the orders publish — a
// customer's and a guest's order, a declined one, a shipment, a refund, a
// staff cancellation — and validates each outbox row against its JSON
// Schema.
func TestEventsMatchTheirSchemas(t *testing.T) {
	schemas := apitest.MustEventSchemas(t, eventTypes...)
	engines(t, func(t *testing.T, engine store.Engine) {
		e := newEnv(t, engine)
		e.MustProduct(t, "SKU-1", 1000, 10)
		e.MustVoucher(t, "TEN", 10)
		ada := e.MustCheckout(t, e.MustCart(t, cartSpec{customer: "cus_ada", items: map[string]int64{"SKU-1": 2}, codes: []string{"TEN"}}), payments.TokenVisa)
		guest := e.MustCheckout(t, e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}}), payments.TokenVisa)
		declined := e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}})
		if _, err := e.s.Checkout(bg, declined.cartID, declined.caller, pay(payments.TokenDeclined), ""); err == nil {
			t.Fatal("a declined payment confirmed")
		}
		if _, err := e.s.Fulfil(staffCtx("usr_1"), ada.ID, FulfilmentInput{TrackingNumber: "T1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.Refund(staffCtx("usr_1"), ada.ID, RefundInput{Amount: ptr(eur(100)), Reason: "sorry"}, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.Cancel(staffCtx("usr_1"), guest.ID, CancelInput{Reason: "test"}); err != nil {
			t.Fatal(err)
		}

		rows, err := e.db.Query(bg, `SELECT event_type, aggregate_id, payload FROM souk_outbox ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		seen := map[string]int{}
		for rows.Next() {
			var typ, aggregate, payload string
			if err := rows.Scan(&typ, &aggregate, &payload); err != nil {
				t.Fatal(err)
			}
			seen[typ]++
			schemas.Validate(t, []byte(payload))
			var env struct {
				Subject string          `json:"subject"`
				Data    json.RawMessage `json:"data"`
			}
			_ = json.Unmarshal([]byte(payload), &env)
			var data struct {
				OrderID string `json:"order_id"`
			}
			_ = json.Unmarshal(env.Data, &data)
			if env.Subject != aggregate || data.OrderID != aggregate {
				t.Errorf("%s: subject %s, data.order_id %s, aggregate %s", typ, env.Subject, data.OrderID, aggregate)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		for _, typ := range eventTypes {
			if seen[typ] == 0 {
				t.Errorf("no %s was published", typ)
			}
		}
	})
}

// TestOrderConfirmedIsExactly pins the data of order_confirmed, which the
// notify service renders the confirmation email from: exactly these keys,
// a guest's customer_id null, and the schema refuses a drifted payload.
func TestOrderConfirmedIsExactly(t *testing.T) {
	schemas := apitest.MustEventSchemas(t, EventOrderConfirmed)
	e := newEnv(t, store.SQLite)
	e.MustProduct(t, "SKU-1", 1000, 10)
	o := e.MustCheckout(t, e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 2}}), payments.TokenVisa)
	var payload string
	if err := e.db.QueryRow(bg, `SELECT payload FROM souk_outbox WHERE event_type = ? AND aggregate_id = ?`, EventOrderConfirmed, o.ID).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal([]byte(payload), &ev); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range ev.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"confirmed_at", "currency", "customer_id", "discount_total", "email", "items", "order_id", "shipping_address",
		"shipping_total", "subtotal", "tax_total", "total"}
	if !slices.Equal(keys, want) {
		t.Fatalf("order_confirmed data keys %v, want %v", keys, want)
	}
	if ev.Data["customer_id"] != nil {
		t.Fatalf("a guest's customer_id is %v, want null", ev.Data["customer_id"])
	}
	item := ev.Data["items"].([]any)[0].(map[string]any)
	var itemKeys []string
	for k := range item {
		itemKeys = append(itemKeys, k)
	}
	slices.Sort(itemKeys)
	if want := []string{"quantity", "sku", "title", "total", "unit_price", "variant_id", "variant_title"}; !slices.Equal(itemKeys, want) {
		t.Fatalf("item keys %v, want %v", itemKeys, want)
	}
	addr := ev.Data["shipping_address"].(map[string]any)
	if addr["city"] != "Amsterdam" || addr["country"] != "NL" || addr["company"] != nil {
		t.Fatalf("shipping_address %v", addr)
	}

	for name, mutate := range map[string]func(m map[string]any){
		"an extra field":      func(m map[string]any) { m["data"].(map[string]any)["status"] = "confirmed" },
		"a float amount":      func(m map[string]any) { m["data"].(map[string]any)["total"].(map[string]any)["amount"] = 10.5 },
		"no confirmed_at":     func(m map[string]any) { delete(m["data"].(map[string]any), "confirmed_at") },
		"an item without sku": func(m map[string]any) { delete(m["data"].(map[string]any)["items"].([]any)[0].(map[string]any), "sku") },
		"a bad customer_id":   func(m map[string]any) { m["data"].(map[string]any)["customer_id"] = 7 },
		"an address sans city": func(m map[string]any) {
			delete(m["data"].(map[string]any)["shipping_address"].(map[string]any), "city")
		},
	} {
		t.Run(name, func(t *testing.T) {
			schemas.MustRejectDrift(t, EventOrderConfirmed, []byte(payload), mutate)
		})
	}
}
