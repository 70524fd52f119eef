package orders

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soukhq/souk/platform/bus"
	"github.com/soukhq/souk/platform/store"
	"github.com/soukhq/souk/platform/telemetry/telemetrytest"
	"github.com/soukhq/souk/services/payments"
)

// openBus starts an embedded bus of the test's own, whose duplicate window
// is short (100 ms) enough for a test to publish an event again (a redelivery the
// consumer must absorb).
func openBus(t testing.TB, reg prometheus.Registerer) *bus.Bus {
	t.Helper()
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	name := "orderstest_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	bs, err := bus.Open(ctx, bus.Config{Stream: name, SubjectPrefix: name, DuplicateWindow: 100 * time.Millisecond, DrainTimeout: 5 * time.Second}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bs.Close() })
	return bs
}

// relay publishes the env's outbox to b until the test ends.
func relay(t testing.TB, e *env, b *bus.Bus) {
	t.Helper()
	r, err := bus.NewRelay(e.db, b, bus.RelayConfig{Name: "orders", PollInterval: 10 * time.Millisecond}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// eventually polls cond (real time, bounded) until it holds.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func myOrders(t testing.TB, e *env, customerID string) map[string]CustomerOrder {
	t.Helper()
	page, err := e.s.CustomerOrders(bg, customerID, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]CustomerOrder{}
	for _, c := range page.Data {
		out[c.ID] = c
	}
	return out
}

// deliveries is the consumer's delivery count of an outcome.
func deliveries(t testing.TB, reg *prometheus.Registry, outcome string) float64 {
	t.Helper()
	return telemetrytest.MustMetric(t, reg, "souk_bus_consumer_deliveries_total", "consumer", ConsumerName, "outcome", outcome)
}

// TestReadModel: the customers' order list is fed by the orders' own
// events through the durable consumer: it shows each customer their
// orders (and guests' orders nowhere), follows them as they ship, are
// refunded or cancelled, and a redelivered or late event changes nothing.
func TestReadModel(t *testing.T) {
	engines(t, func(t *testing.T, engine store.Engine) {
		reg := prometheus.NewRegistry()
		b := openBus(t, reg)
		e := newEnv(t, engine)
		relay(t, e, b)
		if err := e.s.Subscribe(bg, b); err != nil {
			t.Fatal(err)
		}
		if err := e.s.Subscribe(bg, b); err == nil {
			t.Fatal("subscribed twice")
		}
		e.MustProduct(t, "SKU-1", 1000, 20)
		first := e.MustCheckout(t, e.MustCart(t, cartSpec{customer: "cus_ada", items: map[string]int64{"SKU-1": 2}}), payments.TokenVisa)
		declined := e.MustCart(t, cartSpec{customer: "cus_ada", items: map[string]int64{"SKU-1": 1}})
		second, err := e.s.Checkout(bg, declined.cartID, declined.caller, pay(payments.TokenDeclined), "")
		if err == nil {
			t.Fatal("declined payment confirmed")
		}
		bobs := e.MustCheckout(t, e.MustCart(t, cartSpec{customer: "cus_bob", items: map[string]int64{"SKU-1": 1}}), payments.TokenVisa)
		e.MustCheckout(t, e.MustCart(t, cartSpec{items: map[string]int64{"SKU-1": 1}}), payments.TokenVisa) // a guest

		eventually(t, "ada's two orders", func() bool {
			m := myOrders(t, e, "cus_ada")
			return len(m) == 2 && m[first.ID].Status == StatusConfirmed && m[second.ID].Status == StatusCancelled
		})
		got := myOrders(t, e, "cus_ada")[first.ID]
		if got.Total != first.Total || got.ItemCount != 2 || !got.PlacedAt.Equal(first.CreatedAt) {
			t.Fatalf("ada's order in the list: %+v, the order %+v", got, first)
		}
		eventually(t, "bob's order", func() bool {
			m := myOrders(t, e, "cus_bob")
			return len(m) == 1 && m[bobs.ID].Status == StatusConfirmed
		})
		if n := countRows(t, e.db, `SELECT COUNT(*) FROM orders_customer_orders`); n != 3 {
			t.Fatalf("%d rows in the read model (a guest's order must not be one)", n)
		}
		// The guest's events are declined before any transaction: no inbox
		// row, counted as skipped.
		eventually(t, "the guest's order_placed and order_confirmed skipped", func() bool { return deliveries(t, reg, "skipped") == 2 })
		if n := countRows(t, e.db, `SELECT COUNT(*) FROM souk_inbox WHERE consumer = '`+ConsumerName+`'`); n != int(deliveries(t, reg, "processed")) {
			t.Fatalf("%d inbox rows for %v processed events", n, deliveries(t, reg, "processed"))
		}

		if _, err := e.s.Fulfil(staffCtx("usr_pat"), first.ID, FulfilmentInput{}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.Refund(staffCtx("usr_rae"), first.ID, RefundInput{Amount: ptr(eur(300)), Reason: "late"}, ""); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the shipment and the refund", func() bool {
			c := myOrders(t, e, "cus_ada")[first.ID]
			return c.Status == StatusFulfilled && c.RefundedTotal == eur(300)
		})
		before := myOrders(t, e, "cus_ada")

		// Every event of ada's first order, delivered again.
		dups := deliveries(t, reg, "duplicate")
		rows, err := e.db.Query(bg, `SELECT payload FROM souk_outbox WHERE aggregate_id = ? ORDER BY seq`, first.ID)
		if err != nil {
			t.Fatal(err)
		}
		var events []bus.Event
		for rows.Next() {
			var payload string
			_ = rows.Scan(&payload)
			var ev bus.Event
			if err := json.Unmarshal([]byte(payload), &ev); err != nil {
				t.Fatal(err)
			}
			events = append(events, ev)
		}
		rows.Close()
		if len(events) != 4 {
			t.Fatalf("%d events of the order", len(events))
		}
		time.Sleep(150 * time.Millisecond) // past the stream's duplicate window
		for _, ev := range events {
			if err := b.Publish(bg, ev); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "the redeliveries to be absorbed", func() bool { return deliveries(t, reg, "duplicate") >= dups+4 })
		if after := myOrders(t, e, "cus_ada"); len(after) != 2 || after[first.ID] != before[first.ID] {
			t.Fatalf("a redelivery changed the read model:\n%+v\n%+v", after[first.ID], before[first.ID])
		}

		// A late event (applied without the inbox: a new id) moves nothing back.
		late := events[0] // order_placed
		late.ID = "evt_01JD3Q0000000000000000000A"
		if err := e.db.InTx(bg, func(tx *store.Tx) error { return e.s.applyEvent(bg, tx, late) }); err != nil {
			t.Fatal(err)
		}
		if c := myOrders(t, e, "cus_ada")[first.ID]; c != before[first.ID] {
			t.Fatalf("a late order_placed moved the order back: %+v", c)
		}

		// The HTTP route shows the list to its customer only.
		h := mount(e.s.Routes())
		page := MustDecode[struct {
			Data []CustomerOrder `json:"data"`
		}](t, MustServe(t, h, 200, request{method: "GET", path: "/store/customers/me/orders?limit=1", principal: "customer:cus_ada"}))
		if len(page.Data) != 1 || page.Data[0].ID != second.ID { // newest first
			t.Fatalf("page %+v", page)
		}
		MustServe(t, h, 401, request{method: "GET", path: "/store/customers/me/orders", principal: "staff:usr_1"})
	})
}
